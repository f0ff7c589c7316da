/**
 * The Debian 13 (trixie) tree of scripts/trixie-lab.sh (.cache/trixie/root), for the tests that need
 * Debian 13's own programs: run under an overlay of the test's own, so the cached tree is never
 * changed (what apt installs, what Postfix writes goes to a temp dir and is gone afterwards).
 *
 * `openTrixie()` starts a holder process in a mount namespace of its own (`unshare -m`, private
 * propagation) that mounts the overlay (the cached tree below, a temp dir above), /proc, /sys and /dev
 * in it, and any host directories the test binds in at the same path; with `network: 'own'` it also
 * gets a network namespace of its own with only lo, up (so a daemon there can use its default ports
 * whatever the host runs). Every command then runs through `nsenter` into those namespaces and
 * `chroot` into the tree, with a clean environment. The mounts exist only in that namespace: they go
 * when its last process ends, also if the test dies. Needs root.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { alive, processTree, type ProcId } from './processes.js';

const REPO = resolve(import.meta.dirname, '../..');
export const TRIXIE_LAB_SCRIPT = 'scripts/trixie-lab.sh';
/** What a login shell on Debian would have; nothing of the host's environment goes in. */
const TREE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const READY_TIMEOUT_MS = 20_000;
const STOP_POLL_MS = 100;
const STOP_ROUNDS = 50;

export interface TreeResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TreeRunOptions {
  input?: string;
  timeout?: number;
  /** Working directory inside the tree (default /). */
  cwd?: string;
  env?: Record<string, string>;
}

export interface TrixieTree {
  /** The overlay's mount point: a path only inside the tree's mount namespace. */
  readonly merged: string;
  /** The holder process: `nsenter -t PID -m` enters the tree's mount namespace. */
  readonly pid: number;
  /** The argv prefix that runs a command in the tree (for wrappers), ending with `chroot MERGED`. */
  readonly prefix: readonly string[];
  /** Runs `argv` in the tree to its end; a non-zero exit is a result, not an exception. */
  run(argv: string[], opts?: TreeRunOptions): Promise<TreeResult>;
  /** Starts `argv` in the tree (a daemon); its output is the caller's. */
  spawn(argv: string[], opts?: { cwd?: string; env?: Record<string, string> }): ChildProcess;
  /** Copies a host file into the tree. */
  copyIn(hostPath: string, treePath: string): Promise<void>;
  /** Kills whatever the tree's commands left running (by pid and start time), ends the holder. */
  close(): Promise<void>;
}

export interface TrixieOptions {
  /** 'own': a network namespace with only lo; 'inherit': the caller's (e.g. the e2e world's). */
  network: 'own' | 'inherit';
  /** Host directories mounted into the tree at the same path (read-write), e.g. the e2e run's TMPDIR. */
  binds?: string[];
  /** Host files mounted over the same path in the tree, e.g. /etc/resolv.conf of the e2e world. */
  fileBinds?: string[];
}

/** The cached tree; runs scripts/trixie-lab.sh first (quiet and quick when it is built). */
export function trixieRoot(): string {
  try {
    return execFileSync('bash', [join(REPO, TRIXIE_LAB_SCRIPT), '--root'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  } catch (err) {
    throw new Error(`the Debian 13 tree is not there and could not be built: bash ${TRIXIE_LAB_SCRIPT} (${(err as Error).message})`);
  }
}

const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export async function openTrixie(opts: TrixieOptions): Promise<TrixieTree> {
  if (process.getuid?.() !== 0) throw new Error('the Debian 13 tree needs root (mount and network namespaces, chroot)');
  const lower = trixieRoot();
  const dir = mkdtempSync(join(tmpdir(), 'trixie-'));
  const merged = join(dir, 'merged');
  const lines = [
    'set -e',
    `mkdir -p ${shQuote(join(dir, 'upper'))} ${shQuote(join(dir, 'work'))} ${shQuote(merged)}`,
    `mount -t overlay overlay -o ${shQuote(`lowerdir=${lower},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`)} ${shQuote(merged)}`,
    `mount -t proc proc ${shQuote(join(merged, 'proc'))}`,
    `mount -t sysfs sysfs ${shQuote(join(merged, 'sys'))}`,
    `mount --rbind /dev ${shQuote(join(merged, 'dev'))}`,
    ...(opts.binds ?? []).flatMap((b) => [`mkdir -p ${shQuote(merged + b)}`, `mount --bind ${shQuote(b)} ${shQuote(merged + b)}`]),
    ...(opts.fileBinds ?? []).flatMap((f) => [`touch ${shQuote(merged + f)}`, `mount --bind ${shQuote(f)} ${shQuote(merged + f)}`]),
    ...(opts.network === 'own' ? ['ip link set lo up'] : []),
    'echo ready',
    // Holds the namespaces until the test closes stdin (or dies).
    'exec cat >/dev/null',
  ];
  const unshareArgs = ['-m', '--propagation', 'private', ...(opts.network === 'own' ? ['-n'] : [])];
  const holder = spawn('unshare', [...unshareArgs, 'sh', '-c', lines.join('\n')], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` },
  });
  let holderErr = '';
  holder.stderr!.on('data', (b: Buffer) => (holderErr += b.toString()));
  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the Debian 13 tree's namespace did not come up: ${holderErr}`)), READY_TIMEOUT_MS);
    holder.stdout!.once('data', () => (clearTimeout(timer), ok()));
    holder.once('exit', (code) => (clearTimeout(timer), fail(new Error(`the Debian 13 tree's namespace exited ${code}: ${holderErr}`))));
  });
  const pid = holder.pid!;
  const prefix = ['nsenter', '-t', String(pid), '-m', ...(opts.network === 'own' ? ['-n'] : []), '--', 'chroot', merged];
  const started: ProcId[] = [];

  /** argv in the tree: clean environment, working directory `cwd`. */
  const treeArgv = (argv: string[], cwd = '/', env: Record<string, string> = {}) => [
    ...prefix.slice(1),
    '/usr/bin/env',
    '-i',
    `PATH=${TREE_PATH}`,
    'HOME=/root',
    'LANG=C.UTF-8',
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    'sh',
    '-c',
    'cd "$0" && exec "$@"',
    cwd,
    ...argv,
  ];

  const tree: TrixieTree = {
    merged,
    pid,
    prefix,
    run(argv, o = {}) {
      return new Promise((ok, fail) => {
        const child = execFile(prefix[0]!, treeArgv(argv, o.cwd, o.env), { timeout: o.timeout ?? 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
          if (err && typeof err.code !== 'number') fail(new Error(`${argv.join(' ')} in the Debian 13 tree: ${err.message}\n${stderr}`));
          else ok({ code: err ? (err.code as number) : 0, stdout, stderr });
        });
        child.stdin!.on('error', () => {}); // EPIPE when the child exits early: its status tells
        child.stdin!.end(o.input ?? '');
      });
    },
    spawn(argv, o = {}) {
      const child = spawn(prefix[0]!, treeArgv(argv, o.cwd, o.env), { stdio: ['ignore', 'pipe', 'pipe'] });
      if (child.pid !== undefined) started.push(...processTree(child.pid));
      return child;
    },
    async copyIn(hostPath, treePath) {
      // The holder's mount namespace still sees the host's files: copy from there into the overlay.
      execFileSync('nsenter', ['-t', String(pid), '-m', '--', 'cp', hostPath, merged + treePath]);
    },
    async close() {
      // Everything still running in the tree: the spawned commands' trees, and every process in its mount
      // namespace (daemons that detached, e.g. Postfix's master).
      const left = [...started.flatMap((p) => (alive(p) ? processTree(p.pid) : [])), ...processesInNamespaceOf(pid)];
      for (const p of left) if (alive(p)) kill(p.pid, 'SIGTERM');
      for (let i = 0; i < STOP_ROUNDS && left.some(alive); i++) await new Promise((r) => setTimeout(r, STOP_POLL_MS));
      for (const p of left) if (alive(p)) kill(p.pid, 'SIGKILL');
      holder.stdin!.end();
      if (holder.exitCode === null) await new Promise((ok) => holder.once('exit', ok));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return tree;
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* gone */
  }
}

/**
 * Every process in the holder's mount namespace but the holder: only what the test entered there (through
 * nsenter) and what that forked, e.g. Postfix's master and its children.
 */
function processesInNamespaceOf(holderPid: number): ProcId[] {
  const ns = linkOf(`/proc/${holderPid}/ns/mnt`);
  if (ns === null) return [];
  const out: ProcId[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === holderPid || linkOf(`/proc/${e}/ns/mnt`) !== ns) continue;
    const p = processTree(Number(e))[0];
    if (p) out.push(p);
  }
  return out;
}

function linkOf(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}
