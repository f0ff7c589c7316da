/**
 * Runs the built daemon (`bin/mta-sts-sidecar serve`) as a child process with a config of the test's
 * own, the way an operator runs it. Requires `npm run build` first (the test command does that).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
export const BIN = join(ROOT, 'bin/mta-sts-sidecar');
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 12_000;

export interface Sidecar {
  readonly dir: string;
  readonly process: ChildProcess;
  /** Everything the daemon wrote to stdout and stderr so far (pino JSON lines). */
  output(): string;
  /** Rewrites the config file (`$DIR` replaced as at start); send SIGHUP to apply it. */
  writeConfig(configYaml: string): Promise<void>;
  /** SIGTERM, wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(0, '127.0.0.1', ok));
  const { port } = server.address() as { port: number };
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

export function assertBuilt(): void {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first (npm test does it)');
  }
}

export interface SidecarOptions {
  /** Extra environment variables (NOTIFY_SOCKET, LISTEN_FDS, ...). */
  env?: Record<string, string>;
  /** Open descriptors handed to the daemon as fd 3, 4, ... (systemd socket activation). */
  passFds?: number[];
  /**
   * Start through `sh -c 'LISTEN_PID=$$ exec node ...'`, so that LISTEN_PID is the daemon's own pid, as
   * systemd sets it (spawn cannot know the pid before the process exists).
   */
  listenPid?: boolean;
  /** Arguments after `serve --config FILE`. */
  args?: string[];
}

/**
 * A config of ours that does not mention `http` gets `http: { listen: [] }`: the metrics endpoint's
 * default address (127.0.0.1:8462) is one for the whole machine, and test files run in parallel.
 */
function withoutDefaultHttp(configYaml: string): string {
  const resolverFormat = /^(host|port|path|default_zone|cache_grace|shutdown_timeout|proactive_policy_fetching):/m.test(configYaml);
  if (resolverFormat || /^http:/m.test(configYaml)) return configYaml;
  return `${configYaml}\nhttp: { listen: [] }\n`;
}

/**
 * Starts the daemon with `configYaml`, written to a temp dir whose path replaces `$DIR`, beside `files`
 * (name -> content, e.g. a CA file the config names).
 */
export async function startSidecar(configYaml: string, files: Record<string, string> = {}, options: SidecarOptions = {}): Promise<Sidecar> {
  assertBuilt();
  const dir = await mkdtemp(join(tmpdir(), 'sidecar-'));
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  const configFile = join(dir, 'config.yml');
  await writeFile(configFile, withoutDefaultHttp(configYaml).replaceAll('$DIR', dir));
  const argv = [BIN, 'serve', '--config', configFile, ...(options.args ?? [])];
  const env = { ...process.env, ...options.env };
  const stdio = ['ignore', 'pipe', 'pipe', ...(options.passFds ?? [])] as const;
  const child = options.listenPid
    ? spawn('/bin/sh', ['-c', 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"', process.execPath, ...argv], { stdio: [...stdio], env })
    : spawn(process.execPath, argv, { stdio: [...stdio], env });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));

  const ready = await new Promise<boolean>((ok) => {
    const timer = setTimeout(() => ok(false), READY_TIMEOUT_MS);
    const check = () => {
      if (out.includes('"msg":"mta-sts-sidecar ready"')) {
        clearTimeout(timer);
        ok(true);
      }
    };
    child.stdout!.on('data', check);
    exited.then(() => {
      clearTimeout(timer);
      ok(false);
    });
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    const code = await exited;
    clearTimeout(timer);
    await rm(dir, { recursive: true, force: true });
    return code;
  };
  if (!ready) {
    await stop();
    throw new Error(`daemon did not become ready:\n${out}`);
  }
  const writeConfig = (yaml: string) => writeFile(configFile, withoutDefaultHttp(yaml).replaceAll('$DIR', dir));
  return { dir, process: child, output: () => out, writeConfig, stop };
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built CLI. Asynchronous on purpose: lab servers living in the test process must keep
 * answering while the CLI runs.
 */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: options.timeoutMs ?? 30_000, env: options.env ?? process.env }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}
