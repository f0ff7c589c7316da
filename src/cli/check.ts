/**
 * `mta-sts-sidecar check DOMAIN`: the domain owner's checklist (src/check), shown step by step as it runs,
 * in colour on a terminal, or as one JSON document with `--json`. Progress goes to stderr, the report
 * to stdout. Exit status: 0 nothing failed (warnings allowed), 1 some step failed, 2 the check did not
 * run (bad arguments, invalid domain, config error).
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { loadConfig } from '../config/load.js';
import { CHECK_DEFAULTS, assembleCheck, runCheck } from '../check/run-check.js';
import type { CheckReport, Status, Step } from '../check/types.js';
import { normalizeDomainKey } from '../sts/domain.js';

export const CHECK_EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export interface CheckCommandOptions {
  config?: string;
  json: boolean;
  smtpTimeout: number;
}

export interface CheckIo {
  /** One line of the report on stdout. */
  out(line: string): void;
  /** Replace the progress line (stderr). */
  progress(message: string): void;
  /** Error message (stderr). */
  error(message: string): void;
  colour: boolean;
}

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('check the MTA-STS setup of a domain you run: DNS records, policy host, policy, STARTTLS on every MX')
    .argument('<domain>', 'the domain to check')
    .option('-c, --config <file>', 'YAML config file (dns.servers, fetch.ca_file, fetch.allow_private_addresses, timeouts)')
    .option('--json', 'print the report as JSON', false)
    .option('--smtp-timeout <ms>', 'deadline of each STARTTLS probe, in milliseconds', wholeMs, CHECK_DEFAULTS.smtp_timeout_ms)
    // Usage errors exit 2, so that scripts can tell "the domain fails" (1) from "the check did not run".
    .exitOverride((err) => {
      throw err.exitCode === 0 ? err : new CommanderError(CHECK_EXIT.usage, err.code, err.message);
    })
    .action(async (domain: string, opts: CheckCommandOptions) => {
      process.exitCode = await runCheckCommand(domain, opts, processIo());
    });
}

function wholeMs(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 100 || n > 600_000) throw new InvalidArgumentError('a whole number of milliseconds from 100 to 600000');
  return n;
}

/** Runs the check and renders it; returns the exit status. */
export async function runCheckCommand(key: string, opts: CheckCommandOptions, io: CheckIo): Promise<number> {
  const normal = normalizeDomainKey(key);
  if (normal.kind !== 'domain') {
    const why = normal.kind === 'invalid' ? normal.why : `MTA-STS does not apply (${normal.why})`;
    io.error(`mta-sts-sidecar: check: invalid domain ${JSON.stringify(key)}: ${why}`);
    return CHECK_EXIT.usage;
  }
  let assembled: ReturnType<typeof assembleCheck>;
  try {
    assembled = assembleCheck(loadConfig(opts.config), opts.smtpTimeout);
  } catch (err) {
    io.error(`mta-sts-sidecar: ${(err as Error).message}`);
    return CHECK_EXIT.usage;
  }
  const paint = painter(io.colour);
  try {
    const run = runCheck(normal.domain, assembled.deps, assembled.options);
    if (!opts.json) io.out(paint.bold(`MTA-STS check of ${normal.domain}`));
    let next = await run.next();
    while (!next.done) {
      const event = next.value;
      if (event.type === 'progress') io.progress(event.message);
      else if (!opts.json) for (const line of stepLines(event.step, paint)) io.out(line);
      next = await run.next();
    }
    const report = next.value;
    io.progress('');
    if (opts.json) io.out(JSON.stringify(report, null, 2));
    else for (const line of summaryLines(report, paint)) io.out(line);
    return report.status === 'fail' ? CHECK_EXIT.failed : CHECK_EXIT.ok;
  } catch (err) {
    io.progress('');
    io.error(`mta-sts-sidecar: check: ${(err as Error).message}`);
    return CHECK_EXIT.usage;
  } finally {
    await assembled.close();
  }
}

const LABEL: Record<Status, string> = { pass: 'PASS', warn: 'WARN', fail: 'FAIL' };
const INDENT = '      ';

/** A step as the terminal shows it: status, title, the MX and address it is about, reason, fix. */
export function stepLines(step: Step, paint: Painter): string[] {
  const about = step.mx ? ` ${step.mx}${step.address ? ` (${step.address})` : ''}` : '';
  const lines = [`${paint.status(step.status, LABEL[step.status])}  ${paint.bold(step.title + about)}: ${clean(step.reason)}`];
  if (step.fix) lines.push(`${INDENT}${paint.dim('fix:')} ${clean(step.fix)}`);
  return lines;
}

export function summaryLines(report: CheckReport, paint: Painter): string[] {
  const lines = [''];
  if (report.advice.length > 0) {
    lines.push(paint.bold('Next steps:'));
    for (const a of report.advice) lines.push(`  * ${clean(a)}`);
    lines.push('');
  }
  const { pass, warn, fail } = report.counts;
  lines.push(`${paint.status(report.status, `Result: ${LABEL[report.status]}`)} (${pass} passed, ${warn} warning(s), ${fail} failed)`);
  return lines;
}

/** Text from DNS, certificates and SMTP servers may hold control characters: never send them to a terminal. */
function clean(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

export interface Painter {
  status(status: Status, text: string): string;
  bold(text: string): string;
  dim(text: string): string;
}

const SGR = { pass: '32', warn: '33', fail: '31' } as const;

export function painter(colour: boolean): Painter {
  const sgr = (code: string, text: string) => (colour ? `\u001b[${code}m${text}\u001b[0m` : text);
  return {
    status: (status, text) => sgr(`1;${SGR[status]}`, text),
    bold: (text) => sgr('1', text),
    dim: (text) => sgr('2', text),
  };
}

/**
 * Colour when stdout is a terminal, unless NO_COLOR is set to anything non-empty (no-color.org);
 * FORCE_COLOR (non-empty, not "0") forces it on, as in Node's own tools.
 */
export function useColour(env: NodeJS.ProcessEnv, stdoutIsTty: boolean): boolean {
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== '' && force !== '0') return true;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return stdoutIsTty;
}

function processIo(): CheckIo {
  const tty = process.stderr.isTTY === true;
  let shown = false;
  const clear = () => {
    if (tty && shown) process.stderr.write('\r\u001b[K');
    shown = false;
  };
  return {
    out(line) {
      clear();
      process.stdout.write(line + '\n');
    },
    // On a terminal one line is rewritten in place; otherwise (logs, CI) each message is its own line.
    progress(message) {
      clear();
      if (message === '') return;
      if (tty) {
        process.stderr.write(`... ${clean(message)}`);
        shown = true;
      } else {
        process.stderr.write(`... ${clean(message)}\n`);
      }
    },
    error(message) {
      clear();
      process.stderr.write(message + '\n');
    },
    colour: useColour(process.env, process.stdout.isTTY === true),
  };
}
