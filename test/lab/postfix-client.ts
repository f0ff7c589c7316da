/** Postfix's own socketmap client: `postmap -q`, with a private, empty config directory. */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const POSTMAP_TIMEOUT_MS = 30_000;
let configDir: string | undefined;

export interface PostmapResult {
  /** 0 found, 1 not found (or error: see stderr). */
  code: number;
  stdout: string;
  stderr: string;
}

/** `postmap -q KEY MAP`; KEY `-` reads keys from `stdin`, one per line, over one connection. */
export function postmapQuery(key: string, map: string, stdin?: string): Promise<PostmapResult> {
  if (!configDir) {
    configDir = mkdtempSync(join(tmpdir(), 'postmap-'));
    // A fixed host name keeps postmap from looking up its own.
    writeFileSync(join(configDir, 'main.cf'), 'compatibility_level = 3.6\nmyhostname = postmap.localdomain\n');
  }
  return new Promise((resolve, reject) => {
    const child = execFile('postmap', ['-c', configDir!, '-q', key, map], { timeout: POSTMAP_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`postmap could not run (${String(err.code ?? err.message)}): install it with apt-get install -y postfix`));
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
    child.stdin!.on('error', () => {}); // EPIPE when the child exits early: its status tells
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
}
