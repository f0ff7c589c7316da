/**
 * Owner and group for unix socket files (config `socketmap.unix_owner` / `unix_group`, and the same keys
 * under `exim`): a name from /etc/passwd and /etc/group, or a numeric id. Resolved when the socket is
 * bound, so a name is looked up as the system knows it then.
 */
import { readFileSync } from 'node:fs';

export interface UnixOwnership {
  /** User name or numeric uid; null keeps the daemon's own. */
  owner: string | null;
  /** Group name or numeric gid; null keeps the daemon's own. */
  group: string | null;
}

/** The numeric ids for chown(2): -1 leaves that one unchanged. Throws naming what was not found. */
export function resolveOwnership(o: UnixOwnership, files = { passwd: '/etc/passwd', group: '/etc/group' }): { uid: number; gid: number } {
  return {
    uid: o.owner === null ? -1 : idOf(o.owner, files.passwd, 'user'),
    gid: o.group === null ? -1 : idOf(o.group, files.group, 'group'),
  };
}

function idOf(nameOrId: string, file: string, what: string): number {
  if (/^[0-9]{1,10}$/.test(nameOrId)) return Number(nameOrId);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file} to look up ${what} ${JSON.stringify(nameOrId)}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  // passwd(5) / group(5): name:password:id:...
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === nameOrId && fields.length >= 3 && /^[0-9]+$/.test(fields[2]!)) return Number(fields[2]);
  }
  throw new Error(`no ${what} ${JSON.stringify(nameOrId)} in ${file}`);
}
