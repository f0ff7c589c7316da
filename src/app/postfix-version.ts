/**
 * The local Postfix's version, asked of `postconf -d -h mail_version` (what `tlsrpt: auto` decides by):
 * mail_version is compiled in, and -d answers it even where main.cf does not exist yet.
 * No Postfix, or one that does not answer in time: undefined.
 */
import { execFile } from 'node:child_process';

/**
 * postconf answers in milliseconds on an idle host; a loaded one (or a wrapper such as a chroot) can
 * take seconds, and a wrong "no Postfix" turns the TLSRPT attributes off, so this is generous. It
 * delays only the start or reload, never an answer.
 */
const POSTCONF_TIMEOUT_MS = 15_000;

/** Where postconf is: found on PATH, or in Debian's /usr/sbin (not on an unprivileged user's PATH). */
const POSTCONF = ['postconf', '/usr/sbin/postconf'];

export async function localPostfixVersion(commands: readonly string[] = POSTCONF): Promise<string | undefined> {
  for (const command of commands) {
    const version = await ask(command);
    if (version !== undefined) return version;
  }
  return undefined;
}

function ask(command: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(command, ['-d', '-h', 'mail_version'], { timeout: POSTCONF_TIMEOUT_MS, maxBuffer: 4096 }, (err, stdout) => {
      const version = stdout?.toString().trim();
      resolve(err || !version ? undefined : version);
    });
  });
}
