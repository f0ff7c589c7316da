/**
 * A real Postfix instance for the end-to-end world: its own config_directory, queue_directory,
 * data_directory and log file in one temp dir, started with `postfix -c DIR start`, fed with
 * `sendmail -C DIR`, read through its maillog file and `postqueue -j`, stopped with `postfix stop`
 * (and any process of its that is still alive afterwards is killed by pid).
 *
 * Runs as root (the test world's network namespace needs it anyway): then Postfix does not ask for the
 * config directory to be listed in alternate_config_directories of /etc/postfix/main.cf.
 *
 * Which Postfix: `PostfixOptions.install`, the host's (Debian 12: 3.7) by default, or the private build
 * of vendor/postfix (3.11.6) that scripts/postfix-lab.sh leaves in .cache (`labPostfix()`). Either way
 * main.cf names the install's command, daemon and meta directories, so every program of the instance
 * (master, smtp, postdrop, postfix-script, ...) comes from the same install.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, procStat, processTree } from '../lab/processes.js';

const HERE = import.meta.dirname;
const REPO = join(HERE, '..', '..');
const CMD_TIMEOUT_MS = 30_000;
const POLL_MS = 100;

/* ------------------------------------------------------------------ which Postfix */

export type PostfixVersion = readonly [major: number, minor: number, patch: number];

/** One set of Postfix programs. */
export interface PostfixInstall {
  /** For test names and errors, e.g. `Postfix 3.11.6 (.cache/postfix-3.11.6/root)`. */
  readonly label: string;
  /** `mail_version` of its programs. */
  readonly version: PostfixVersion;
  /** The path to run one of its commands: `postfix`, `sendmail`, `postqueue`, `postmap`, `postconf`. */
  command(name: string): string;
  /** main.cf settings that keep an instance inside this install (its directories). */
  readonly directories: Readonly<Record<string, string>>;
}

/** `version` >= `min`, component by component. */
export function versionAtLeast(version: PostfixVersion, min: PostfixVersion): boolean {
  for (let i = 0; i < 3; i++) if (version[i] !== min[i]) return version[i]! > min[i]!;
  return true;
}

function parseVersion(text: string): PostfixVersion {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(text.trim());
  if (!m) throw new Error(`e2e postfix: not a Postfix mail_version: ${JSON.stringify(text)}`);
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

// The directories an instance's programs are found in; postconf -d prints the compiled-in defaults.
const DIRECTORY_PARAMETERS = ['command_directory', 'daemon_directory', 'meta_directory', 'shlib_directory'] as const;

/**
 * The install whose programs are `root` + their compiled-in paths ('' = the host's Postfix, in PATH).
 * A tree made by `make non-interactive-package install_root=ROOT` is such a root: its binaries still
 * default to /usr/sbin, /usr/libexec/postfix and /etc/postfix, so main.cf moves those below ROOT.
 */
export function installAt(root: string, label: (version: string) => string = (v) => `Postfix ${v} (${root})`): PostfixInstall {
  const postconf = root === '' ? 'postconf' : join(root, 'usr', 'sbin', 'postconf');
  if (root !== '' && !existsSync(postconf)) {
    throw new Error(`e2e postfix: no ${postconf}; build it with: bash scripts/postfix-lab.sh (scripts/test does)`);
  }
  const out = execFileSync(postconf, ['-d', '-h', 'mail_version', ...DIRECTORY_PARAMETERS], { encoding: 'utf8' });
  const [version = '', ...dirs] = out.split('\n');
  const directories: Record<string, string> = {};
  DIRECTORY_PARAMETERS.forEach((name, i) => {
    const value = dirs[i]?.trim() ?? '';
    // shlib_directory = no: a static build, nothing to move.
    directories[name] = root === '' || value === 'no' || value === '' ? value : join(root, value);
  });
  const commandDir = directories.command_directory!;
  return {
    label: label(version.trim()),
    version: parseVersion(version),
    command: (name) => (root === '' ? name : join(commandDir, name)),
    directories,
  };
}

let host: PostfixInstall | undefined;
/** The host's Postfix (Debian's package), found in PATH. */
export function hostPostfix(): PostfixInstall {
  host ??= installAt('', (v) => `Postfix ${v} (host)`);
  return host;
}

/** Version of the one release in vendor/postfix/ (its tarball's name, as scripts/postfix-lab.sh reads it). */
export function vendorPostfixVersion(): string {
  const tarballs = readdirSync(join(REPO, 'vendor', 'postfix')).filter((f) => /^postfix-.+\.tar\.gz$/.test(f));
  if (tarballs.length !== 1) throw new Error(`e2e postfix: expected one postfix-*.tar.gz in vendor/postfix, found ${tarballs.join(', ') || 'none'}`);
  return tarballs[0]!.replace(/^postfix-/, '').replace(/\.tar\.gz$/, '');
}

let lab: PostfixInstall | undefined;
/** The private build of vendor/postfix (3.11.6) in .cache/postfix-<version>/root, by scripts/postfix-lab.sh. */
export function labPostfix(): PostfixInstall {
  if (lab) return lab;
  const version = vendorPostfixVersion();
  const cache = join('.cache', `postfix-${version}`, 'root');
  const built = installAt(join(REPO, cache), (v) => `Postfix ${v} (${cache})`);
  if (built.version.join('.') !== version) {
    throw new Error(`e2e postfix: ${cache} holds ${built.label}, not ${version}; rebuild with: bash scripts/postfix-lab.sh`);
  }
  lab = built;
  return lab;
}

/** An extra smtp(8) transport with a TLS policy map of its own, used for `domains` (transport_maps). */
export interface ExtraTransport {
  /** master.cf service name, e.g. `smtp-chroot`. */
  name: string;
  domains: string[];
  /** Run it chrooted in queue_directory (the `y` in master.cf's chroot column, Debian's default for smtp). */
  chroot: boolean;
  /** Its `smtp_tls_policy_maps`. */
  policyMap: string;
  /** master.cf maxproc; 1 = one smtp(8) process does every delivery of this transport. Default: no limit. */
  maxproc?: number;
  /** More `-o name=value` overrides for this transport, e.g. its own `smtp_dns_reply_filter`. */
  settings?: Readonly<Record<string, string>>;
}

export interface PostfixOptions {
  /** An empty directory for everything of this instance (created when missing). Default: a new temp dir. */
  dir?: string;
  /** `smtp_tls_policy_maps` value, e.g. `socketmap:inet:127.0.0.1:PORT:postfix`. */
  policyMap: string;
  /** PEM of the CA that smtp(8) trusts (`smtp_tls_CAfile`). */
  caPem: string;
  transports?: ExtraTransport[];
  /** Which Postfix runs this instance. Default: the host's (`hostPostfix()`). */
  install?: PostfixInstall;
  /**
   * More main.cf settings, written after the template's (so they win; Postfix warns about the
   * override), e.g. `{ smtp_dns_reply_filter: 'socketmap:inet:127.0.0.1:PORT:mx-filter' }`.
   */
  settings?: Readonly<Record<string, string>>;
}

/** One recipient's entry in `postqueue -j` output. */
export interface QueuedRecipient {
  address: string;
  delay_reason?: string;
}

/** One message in `postqueue -j` output (Postfix >= 3.1). */
export interface QueuedMessage {
  queue_name: string;
  queue_id: string;
  recipients: QueuedRecipient[];
}

/** A delivery attempt as logged by smtp(8) (or error(8)): `QUEUEID: to=<...>, relay=..., status=... (...)`. */
export interface DeliveryLine {
  queueId: string;
  to: string;
  relay: string;
  status: string;
  reason: string;
  line: string;
}

export interface Mail {
  from: string;
  to: string;
  subject: string;
  messageId: string;
  /**
   * Submitted with `sendmail -O requiretls=yes` (Postfix >= 3.11): the sender asks for REQUIRETLS
   * (RFC 8689), as `MAIL FROM:<...> REQUIRETLS` would over SMTP.
   */
  requireTls?: boolean;
}

export interface Postfix {
  /** The Postfix programs this instance runs. */
  readonly install: PostfixInstall;
  readonly dir: string;
  readonly configDir: string;
  /** queue_directory: the chroot jail of chrooted services. */
  readonly queueDir: string;
  /** Submits one message with sendmail(1) (postdrop into this instance's maildrop). */
  submit(mail: Mail): Promise<void>;
  /** The instance's maillog so far. */
  log(): string;
  /** Queue id that cleanup(8) logged for `messageId`, if any yet. */
  queueIdOf(messageId: string): string | undefined;
  /** smtp(8) delivery lines for a queue id, oldest first. */
  deliveries(queueId: string): DeliveryLine[];
  /** Polls the log (bounded) until `messageId` has a delivery line after the first `skip` ones. */
  waitForDelivery(messageId: string, timeoutMs: number, skip?: number): Promise<DeliveryLine>;
  /** Polls the log (bounded) until `messageId` has a delivery line with `status`. */
  waitForStatus(messageId: string, status: string, timeoutMs: number): Promise<DeliveryLine>;
  /** `postmap -q KEY MAP` with this instance's main.cf (so `proxy:` maps go to its proxymap), run in `cwd`. */
  postmap(key: string, map: string, cwd?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** `postqueue -j`. */
  queue(): Promise<QueuedMessage[]>;
  /** `postqueue -f`: deliver all deferred mail now. */
  flush(): Promise<void>;
  /** `postfix stop`, kill whatever of it survived, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], stdin?: string, cwd?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: CMD_TIMEOUT_MS, cwd }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`${cmd} could not run (${String(err.code ?? err.message)}); install the Debian package postfix, or run scripts/postfix-lab.sh`));
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
    // A command that exits without reading its stdin must not turn into an EPIPE error here.
    child.stdin!.on('error', () => undefined);
    child.stdin!.on('error', () => {}); // EPIPE when the child exits early: its status tells
    child.stdin!.end(stdin ?? '');
  });
}

async function must(cmd: string, args: string[], stdin?: string): Promise<Run> {
  const r = await run(cmd, args, stdin);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}`);
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/* ------------------------------------------------------------------ processes */

/* ------------------------------------------------------------------ log parsing */

const DELIVERY = /^.*? postfix\/[\w-]+\[\d+\]: ([0-9A-F]+): to=<([^>]*)>, relay=([^,]*), .*?status=(\w+) \((.*)\)$/;

export function parseDeliveries(log: string): DeliveryLine[] {
  const out: DeliveryLine[] = [];
  for (const line of log.split('\n')) {
    const m = DELIVERY.exec(line);
    if (m) out.push({ queueId: m[1]!, to: m[2]!, relay: m[3]!, status: m[4]!, reason: m[5]!, line });
  }
  return out;
}

/* ------------------------------------------------------------------ start */

/** queue_directory of an instance started with `dir` (known before it starts, for map paths). */
export const queueDirOf = (dir: string) => join(dir, 'spool');

export async function startPostfix(opts: PostfixOptions): Promise<Postfix> {
  let dir: string;
  if (opts.dir !== undefined) {
    dir = opts.dir;
    await mkdir(dir, { recursive: true });
  } else {
    dir = await mkdtemp(join(tmpdir(), 'mta-sts-e2e-postfix-'));
  }
  // Postfix daemons drop to the postfix user: the path to data_directory must be searchable.
  chmodSync(dir, 0o755);
  const transports = opts.transports ?? [];
  const install = opts.install ?? hostPostfix();
  const cmd = (name: string) => install.command(name);
  const configDir = join(dir, 'etc');
  const logFile = join(dir, 'maillog');
  const caFile = join(dir, 'ca.pem');
  const vars: Record<string, string> = {
    DIR: dir,
    CONFIG_DIR: configDir,
    QUEUE_DIR: queueDirOf(dir),
    DATA_DIR: join(dir, 'lib'),
    LOG_FILE: logFile,
    CA_FILE: caFile,
    POLICY_MAP: opts.policyMap,
    INSTALL_DIRECTORIES: Object.entries(install.directories)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n'),
    SETTINGS: Object.entries(opts.settings ?? {})
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n'),
    TRANSPORT_MAPS: transports.length
      ? `inline:{ ${transports.flatMap((t) => t.domains.map((d) => `${d}=${t.name}:`)).join(', ')} }`
      : '',
    // proxymap(8) serves only the tables listed here (main.cf's, not master.cf -o overrides).
    PROXY_READ_MAPS: [
      '$smtp_tls_policy_maps',
      ...transports.filter((t) => t.policyMap.startsWith('proxy:')).map((t) => t.policyMap),
    ].join(' '),
    EXTRA_TRANSPORTS: transports
      .map((t) =>
        [
          `${t.name} unix - - ${t.chroot ? 'y' : 'n'} - ${t.maxproc ?? '-'} smtp`,
          `  -o smtp_tls_policy_maps=${t.policyMap}`,
          ...Object.entries(t.settings ?? {}).map(([k, v]) => `  -o ${k}=${v}`),
        ].join('\n'),
      )
      .join('\n'),
  };
  const fill = (t: string) =>
    t.replace(/@([A-Z_]+)@/g, (all: string, k: string) => {
      const v = vars[k];
      if (v === undefined) throw new Error(`e2e postfix: unknown template variable ${all}`);
      return v;
    });
  async function configure(): Promise<void> {
    await mkdir(configDir);
    // queue_directory must exist (root-owned); `postfix start` creates what goes inside it.
    await mkdir(vars.QUEUE_DIR!, { mode: 0o755 });
    await writeFile(caFile, opts.caPem);
    // What a chrooted smtp(8) reads from /etc (Debian's init script copies the same into the jail).
    await mkdir(join(vars.QUEUE_DIR!, 'etc'), { mode: 0o755 });
    for (const f of ['resolv.conf', 'services', 'hosts', 'nsswitch.conf']) {
      await copyFile(join('/etc', f), join(vars.QUEUE_DIR!, 'etc', f)).catch(() => undefined);
    }
    await writeFile(join(configDir, 'main.cf'), fill(await readFile(join(HERE, 'main.cf.template'), 'utf8')));
    await writeFile(join(configDir, 'master.cf'), fill(await readFile(join(HERE, 'master.cf.template'), 'utf8')));
  }

  const logText = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const masterPid = (): number | null => {
    try {
      const pid = Number(readFileSync(join(vars.QUEUE_DIR!, 'pid', 'master.pid'), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  };

  let stopped = false;
  async function stop(): Promise<void> {
    if (stopped) return;
    stopped = true;
    const pid = masterPid();
    const tree = pid !== null ? processTree(pid) : [];
    await run(cmd('postfix'), ['-c', configDir, 'stop']).catch(() => undefined);
    for (let i = 0; i < 50 && tree.some(alive); i++) await sleep(POLL_MS);
    for (const p of tree) {
      if (alive(p)) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    await rm(dir, { recursive: true, force: true });
  }

  try {
    await configure();
    const started = await run(cmd('postfix'), ['-c', configDir, 'start']);
    if (started.code !== 0) {
      throw new Error(`e2e postfix: postfix start exited ${started.code}:\n${started.stdout}${started.stderr}\nmaillog:\n${logText()}`);
    }
    // Started = master is up and the log says so (postlogd works, so the log can be trusted later).
    const deadline = Date.now() + 20_000;
    for (let i = 0; ; i++) {
      const pid = masterPid();
      if (pid !== null && procStat(pid) !== null && /postfix\/master\[\d+\]: daemon started/.test(logText())) break;
      if (i >= 200 || Date.now() > deadline) throw new Error(`e2e postfix: master did not start; log:\n${logText()}`);
      await sleep(POLL_MS);
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const queueIdOf = (messageId: string): string | undefined => {
    const re = new RegExp(`postfix/cleanup\\[\\d+\\]: ([0-9A-F]+): message-id=<${messageId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}>`);
    return re.exec(logText())?.[1];
  };
  const deliveries = (queueId: string) => parseDeliveries(logText()).filter((d) => d.queueId === queueId);

  /** Polls the log, bounded in time and rounds, until `pick` finds a delivery line of `messageId`. */
  async function poll(
    messageId: string,
    timeoutMs: number,
    what: string,
    pick: (all: DeliveryLine[]) => DeliveryLine | undefined,
  ): Promise<DeliveryLine> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; ; i++) {
      const id = queueIdOf(messageId);
      const found = id !== undefined ? pick(deliveries(id)) : undefined;
      if (found) return found;
      if (i >= Math.ceil(timeoutMs / POLL_MS) || Date.now() > deadline) {
        const lines = logText().split('\n');
        const mine = id !== undefined ? lines.filter((l) => l.includes(id)) : [];
        throw new Error(
          `e2e postfix: no ${what} for <${messageId}> (queue id ${id ?? 'none'}) within ${timeoutMs} ms; ` +
            `its log lines:\n${mine.join('\n')}\nlast log lines:\n${lines.slice(-30).join('\n')}`,
        );
      }
      await sleep(POLL_MS);
    }
  }

  return {
    install,
    dir,
    configDir,
    queueDir: vars.QUEUE_DIR!,
    log: logText,
    async submit(mail) {
      const message =
        `From: <${mail.from}>\nTo: <${mail.to}>\nSubject: ${mail.subject}\nMessage-ID: <${mail.messageId}>\n\n` +
        `end-to-end test message ${mail.messageId}\n`;
      const options = mail.requireTls ? ['-O', 'requiretls=yes'] : [];
      await must(cmd('sendmail'), ['-C', configDir, '-i', ...options, '-f', mail.from, '--', mail.to], message);
    },
    queueIdOf,
    deliveries,
    waitForDelivery: (messageId, timeoutMs, skip = 0) =>
      poll(messageId, timeoutMs, `delivery attempt #${skip + 1}`, (all) => all[skip]),
    waitForStatus: (messageId, status, timeoutMs) =>
      poll(messageId, timeoutMs, `delivery with status=${status}`, (all) => all.find((d) => d.status === status)),
    postmap: (key, map, cwd) => run(cmd('postmap'), ['-c', configDir, '-q', key, map], undefined, cwd),
    async queue() {
      const r = await must(cmd('postqueue'), ['-c', configDir, '-j']);
      return r.stdout
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as QueuedMessage);
    },
    async flush() {
      await must(cmd('postqueue'), ['-c', configDir, '-f']);
    },
    stop,
  };
}
