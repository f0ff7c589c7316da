/**
 * `mta-sts-sidecar check DOMAIN`: the domain owner's checklist (src/check), shown step by step as it runs,
 * in colour on a terminal, or as one JSON document with `--json`. Progress goes to stderr, the report
 * to stdout. Exit status: 0 nothing failed (warnings allowed), 1 some step failed, 2 the check did not
 * run (bad arguments, invalid domain, config error).
 */
import { clearLine, cursorTo } from 'node:readline';
import { WriteStream } from 'node:tty';
import { styleText } from 'node:util';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import type { CheckReport, Status, Step } from '../check/types.js';
import { normalizeDomainKey } from '../sts/domain.js';

export const CHECK_EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export interface CheckCommandOptions {
  config?: string;
  json: boolean;
  /** Default CHECK_DEFAULTS.smtp_timeout_ms. */
  smtpTimeout?: number;
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
    // No default value here: it is CHECK_DEFAULTS.smtp_timeout_ms, and src/check (the STARTTLS prober,
    // DANE, undici) is loaded only when `check` runs.
    .option('--smtp-timeout <ms>', 'deadline of each STARTTLS probe, in milliseconds (default: 30000)', wholeMs)
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
  const [{ CHECK_DEFAULTS, assembleCheck, runCheck }, { loadConfig }] = await Promise.all([
    import('../check/run-check.js'),
    import('../config/load.js'),
  ]);
  let assembled: ReturnType<typeof assembleCheck>;
  try {
    assembled = assembleCheck(loadConfig(opts.config), opts.smtpTimeout ?? CHECK_DEFAULTS.smtp_timeout_ms);
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

/** A util.inspect.colors name, or several applied left to right. */
type Style = Parameters<typeof styleText>[0];
const STATUS_STYLE: Record<Status, Style> = { pass: ['bold', 'green'], warn: ['bold', 'yellow'], fail: ['bold', 'red'] };

/** Styles text with Node's util.styleText when `colour` (from useColour), and leaves it plain otherwise. */
export function painter(colour: boolean): Painter {
  // validateStream: false, because whether to colour was decided once, by useColour(), for the stream
  // the report goes to (styleText would look at process.stdout, and Node 20 skips that for style lists).
  const style = (format: Style, text: string) => (colour ? styleText(format, text, { validateStream: false }) : text);
  return {
    status: (status, text) => style(STATUS_STYLE[status], text),
    bold: (text) => style('bold', text),
    dim: (text) => style('dim', text),
  };
}

/** The stream the report goes to: a terminal (tty.WriteStream) has isTTY and hasColors, a pipe or a file neither. */
export type ColourTarget = NodeJS.WritableStream & {
  isTTY?: boolean;
  hasColors?: (count: number, env?: object) => boolean;
};

/** Basic ANSI colours: all the report uses. */
const COLOURS_NEEDED = 16;

/**
 * Colour exactly when Node's own tools would (tty.WriteStream#hasColors, 16 colours): on a terminal
 * whose TERM has colours, unless NO_COLOR or NODE_DISABLE_COLORS is set (to anything, even empty) or
 * TERM is "dumb"; FORCE_COLOR decides before all of these, on a pipe too: "0" or "false" turns colour
 * off, "", "1", "2", "3" or "true" on. docs/decisions.md: "Colour in `check`".
 */
export function useColour(stream: ColourTarget, env: NodeJS.ProcessEnv = process.env): boolean {
  // Node's colour rules for a stream that is not a terminal: only FORCE_COLOR can turn colour on there.
  if (env.FORCE_COLOR !== undefined) return WriteStream.prototype.hasColors.call(stream, COLOURS_NEEDED, env);
  return stream.isTTY === true && typeof stream.hasColors === 'function' && stream.hasColors(COLOURS_NEEDED, env);
}

function processIo(): CheckIo {
  const tty = process.stderr.isTTY === true;
  let shown = false;
  const clear = () => {
    // Back to the start of the progress line and erase it, so that the next output takes its place.
    if (tty && shown) {
      cursorTo(process.stderr, 0);
      clearLine(process.stderr, 1);
    }
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
    colour: useColour(process.stdout),
  };
}
