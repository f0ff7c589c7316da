/**
 * Debian 13's own Postfix (3.10) for the e2e world: scripts/trixie-lab.sh's tree, run under a private
 * overlay (test/lab/trixie.ts) in the world's network namespace, so its smtp(8) reaches the world's lab
 * servers on 127.x and resolves through the world's /etc/resolv.conf (mounted over the tree's, with the
 * host's /etc/hosts: what the host's Postfix sees). It needs Debian 13's libraries, so every Postfix
 * program runs chrooted in the tree: `command(name)` is a small wrapper script that runs the program
 * there (nsenter into the tree's mount namespace, chroot, the caller's working directory when the tree
 * has it, else /). The run's TMPDIR is mounted into the tree at the same path, so the instance's config,
 * queue, data directory and maillog (all below it) have the same paths inside and out: postfix.ts reads
 * the log, the pid file and the queue as for any other install.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTrixie, type TrixieTree } from '../lab/trixie.js';
import type { PostfixInstall, PostfixVersion } from './postfix.js';

const DIRECTORY_PARAMETERS = ['command_directory', 'daemon_directory', 'meta_directory', 'shlib_directory'] as const;
const TREE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** A file only the tree's overlay has: the wrappers run the program directly when they see it. */
const INSIDE_MARK = '/etc/mta-sts-e2e-trixie-tree';

export interface TrixiePostfix {
  readonly install: PostfixInstall;
  readonly tree: TrixieTree;
  /** Ends everything still running in the tree, unmounts it (the namespace goes), removes the wrappers. */
  close(): Promise<void>;
}

const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Opens the tree (binding in `binds` besides TMPDIR, e.g. the checkout for a daemon run there) and
 * describes its Postfix. Call it at the top of a test file (its version decides which cases exist).
 */
export async function trixiePostfix(binds: string[] = []): Promise<TrixiePostfix> {
  const tree = await openTrixie({ network: 'inherit', binds: [tmpdir(), ...binds], fileBinds: ['/etc/resolv.conf', '/etc/hosts'] });
  try {
    const r = await tree.run(['postconf', '-d', '-h', 'mail_version', ...DIRECTORY_PARAMETERS]);
    if (r.code !== 0) throw new Error(`postconf in the Debian 13 tree exited ${r.code}: ${r.stderr}`);
    const [version = '', ...dirs] = r.stdout.split('\n');
    const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(version.trim());
    if (!m) throw new Error(`e2e trixie: not a Postfix mail_version: ${JSON.stringify(version)}`);
    const directories: Record<string, string> = {};
    DIRECTORY_PARAMETERS.forEach((name, i) => (directories[name] = dirs[i]?.trim() ?? ''));

    // A wrapper for each program of command_directory (postfix-files lists them) and sendmail, in a
    // directory below TMPDIR: the same path inside the tree and out. Outside, it enters the tree; inside
    // (postfix-script runs $command_directory/postsuper, sendmail runs postdrop) it runs the program.
    const listed = await tree.run(['sed', '-n', 's|^\\$command_directory/\\([a-z]*\\):.*|\\1|p', '/etc/postfix/postfix-files']);
    const names = [...listed.stdout.split('\n').filter(Boolean), 'sendmail'];
    if (!names.includes('postconf') || !names.includes('postfix')) throw new Error(`e2e trixie: postfix-files lists no programs: ${listed.stdout}${listed.stderr}`);
    await tree.run(['sh', '-c', `: > ${INSIDE_MARK}`]);
    const bin = mkdtempSync(join(tmpdir(), 'trixie-postfix-bin-'));
    chmodSync(bin, 0o755);
    const enter = tree.prefix.map(shQuote).join(' ');
    for (const name of names) {
      const program = name === 'sendmail' ? '/usr/sbin/sendmail' : join(directories.command_directory!, name);
      writeFileSync(
        join(bin, name),
        `#!/bin/sh\n# ${name} of Debian 13's Postfix, in the trixie tree (test/e2e/trixie-postfix.ts)\n` +
          `[ -e ${INSIDE_MARK} ] && exec ${shQuote(program)} "$@"\n` +
          `exec ${enter} /usr/bin/env -i PATH=${TREE_PATH} LANG=C.UTF-8 sh -c '{ cd "$0" 2>/dev/null || cd /; } && exec "$@"' "$PWD" ${shQuote(program)} "$@"\n`,
        { mode: 0o755 },
      );
    }
    // main.cf's command_directory is the wrappers' directory: the daemon, given it first on its PATH
    // (delivery-cases.ts), asks this Postfix's postconf, as on a Debian 13 host.
    directories.command_directory = bin;
    const install: PostfixInstall = {
      label: `Postfix ${version.trim()} (Debian 13, .cache/trixie)`,
      version: [Number(m[1]), Number(m[2]), Number(m[3])] as PostfixVersion,
      command: (name) => join(bin, name),
      directories,
    };
    return { install, tree, close: async () => (await tree.close(), rmSync(bin, { recursive: true, force: true })) };
  } catch (err) {
    await tree.close();
    throw err;
  }
}
