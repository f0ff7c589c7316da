/**
 * The command line: parse arguments, load config, call below. Errors are one line and exit non-zero.
 * Each command's modules are imported when it runs, not here: `--version` or `config check` should not
 * pay for the daemon's dependencies (undici, prom-client, better-sqlite3), nor `serve` for `check`'s
 * (BENCHMARKS.md, "Footprint").
 */
import { Command, CommanderError } from 'commander';
import type { Config } from '../config/schema.js';
import { registerCheck } from './check.js';
import { VERSION } from '../version.js';

const loadConfig = async (file: string | undefined): Promise<Config> => (await import('../config/load.js')).loadConfig(file);

export async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('mta-sts-sidecar')
    .description('MTA-STS (RFC 8461) policy daemon for Postfix and Exim')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('serve')
    .description('run the daemon (answers Postfix socketmap queries)')
    .option('-c, --config <file>', 'YAML config file (default: embedded defaults)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .option('--log-format <format>', 'json (one JSON object per line) or pretty (for a terminal)')
    .option('--http-listen <specs>', 'metrics/health listeners, comma-separated (overrides http.listen; "none" = off)')
    .action(async (opts: { config?: string; logLevel?: string; logFormat?: string; httpListen?: string }) => {
      const httpListen = opts.httpListen === undefined ? undefined : opts.httpListen === 'none' ? [] : opts.httpListen.split(',');
      const { runServe } = await import('./serve.js');
      await runServe({ configFile: opts.config, logLevel: opts.logLevel, logFormat: opts.logFormat, httpListen });
    });

  program
    .command('config')
    .description('configuration tools')
    .command('check')
    .description('validate a config (also postfix-mta-sts-resolver\'s mta-sts-daemon.yml) and print the effective settings')
    .option('-c, --config <file>', 'YAML config file (default: embedded defaults)')
    .action(async (opts: { config?: string }) => {
      const { runConfigCheck } = await import('./config-check.js');
      process.exitCode = await runConfigCheck(opts.config, (s) => process.stdout.write(s), (s) => process.stderr.write(s + '\n'));
    });

  program
    .command('query')
    .description('resolve a domain now and print its policy and the reply Postfix would get')
    .argument('<domain>', 'the destination domain')
    .option('-c, --config <file>', 'YAML config file (for dns and fetch settings)')
    .option('--zone <name>', 'socketmap name whose zone settings apply', 'default')
    .option('--json', 'print JSON', false)
    .action(async (domain: string, opts: { config?: string; zone: string; json: boolean }) => {
      const config = await loadConfig(opts.config);
      const { runQuery } = await import('./query.js');
      process.exitCode = await runQuery(domain, config, { json: opts.json, zone: opts.zone }, (s) =>
        process.stdout.write(s + '\n'),
      );
    });

  const cache = program.command('cache').description('read and change the configured policy cache');
  const cacheAction =
    (run: (cache: typeof import('./cache.js'), config: Config, args: string[], json: boolean) => Promise<number>) =>
    async (...received: unknown[]) => {
      const command = received[received.length - 1] as Command;
      const opts = command.opts<{ config?: string; json?: boolean }>();
      const config = await loadConfig(opts.config);
      process.exitCode = await run(await import('./cache.js'), config, command.args, opts.json ?? false);
    };
  const out = (line: string) => process.stdout.write(line + '\n');
  const cacheCommand = (name: string, description: string) =>
    cache.command(name).description(description).option('-c, --config <file>', 'YAML config file (cache.* settings)');
  cacheCommand('list', 'one line per cached domain').option('--json', 'print JSON', false)
    .action(cacheAction((m, c, _a, json) => m.cacheList(c, { json }, out)));
  cacheCommand('show', 'the cached policy of one domain').argument('<domain>').option('--json', 'print JSON', false)
    .action(cacheAction((m, c, a, json) => m.cacheShow(c, a[0]!, { json }, out)));
  cacheCommand('forget', 'remove a domain from the cache').argument('<domain>')
    .action(cacheAction((m, c, a) => m.cacheForget(c, a[0]!, out)));
  cacheCommand('refresh', 'resolve a domain now and store the result').argument('<domain>').option('--json', 'print JSON', false)
    .action(cacheAction((m, c, a, json) => m.cacheRefresh(c, a[0]!, { json }, out)));
  cacheCommand('export', 'every cached entry: JSON lines, or one JSON array with --json').option('--json', 'print one JSON array', false)
    .action(cacheAction((m, c, _a, json) => m.cacheExport(c, { json }, out)));

  registerCheck(program);

  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its message (or help/version, which exit 0).
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(`mta-sts-sidecar: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
