/**
 * mta-sts-sidecar(8) (docs/mta-sts-sidecar.8.md, turned into the package's man page) against the built
 * CLI: every command, subcommand and long option that `--help` lists is in the page. A command added
 * to src/cli fails this until the page documents it.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, BIN } from '../lab/sidecar.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MAN8 = readFileSync(join(ROOT, 'docs/mta-sts-sidecar.8.md'), 'utf8');

function help(args: string[]): Promise<string> {
  return new Promise((ok, fail) =>
    execFile(process.execPath, [BIN, ...args, '--help'], (err, stdout) => (err ? fail(err) : ok(stdout))),
  );
}

/** Command names and long options from commander's help text. */
function parseHelp(text: string): { commands: string[]; options: string[] } {
  const section = (name: string) => {
    const start = text.indexOf(`${name}:\n`);
    if (start < 0) return [];
    const rest = text.slice(start + name.length + 2).split('\n');
    const end = rest.findIndex((l) => l.trim() === '');
    return rest.slice(0, end < 0 ? undefined : end);
  };
  const commands = section('Commands')
    .map((l) => /^ {2}(\S+)/.exec(l)?.[1])
    .filter((c): c is string => c !== undefined && c !== 'help');
  const options = section('Options').flatMap((l) => [...l.matchAll(/(?<![\w-])(--[a-z][a-z-]*)/g)].map((m) => m[1]!));
  return { commands, options };
}

/** [command path, long options] for every command the CLI has, subcommands included. */
const commands: Array<[string, string[]]> = [];

beforeAll(async () => {
  assertBuilt();
  const top = parseHelp(await help([]));
  commands.push(['', top.options]);
  for (const name of top.commands) {
    const own = parseHelp(await help([name]));
    if (own.commands.length === 0) commands.push([name, own.options]);
    for (const sub of own.commands) commands.push([`${name} ${sub}`, parseHelp(await help([name, sub])).options]);
  }
}, 60_000);

describe('mta-sts-sidecar(8)', () => {
  it('finds the CLI commands (the help parser works)', () => {
    const names = commands.map(([c]) => c);
    expect(names).toEqual(expect.arrayContaining(['serve', 'query', 'cache list', 'cache show']));
  });

  it('documents every command under COMMANDS', () => {
    // definition-list terms: the lines of the section that are not descriptions (`: ...`, indented)
    const terms = MAN8.slice(MAN8.indexOf('# COMMANDS'), MAN8.indexOf('# OPTIONS'))
      .split('\n')
      .filter((l) => l.startsWith('**'));
    const missing = commands.map(([c]) => c).filter((c) => c !== '' && !terms.some((t) => t.includes(`**${c}**`)));
    expect(missing, 'docs/mta-sts-sidecar.8.md: add these to COMMANDS').toEqual([]);
  });

  it('documents every long option', () => {
    const missing = [...new Set(commands.flatMap(([, options]) => options))].filter((o) => !MAN8.includes(`**${o}**`));
    expect(missing, 'docs/mta-sts-sidecar.8.md: add these options').toEqual([]);
  });
});
