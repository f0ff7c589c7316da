/** The command line: parse arguments, load config, call below. Errors are one line and exit non-zero. */
import { Command, CommanderError } from 'commander';
import { loadConfig } from '../config/load.js';
import { runQuery } from './query.js';
import { runServe } from './serve.js';

const VERSION = '0.1.0';

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
    .action(async (opts: { config?: string; logLevel?: string }) => {
      const config = loadConfig(opts.config);
      if (opts.logLevel) config.log.level = opts.logLevel;
      await runServe(config);
    });

  program
    .command('query')
    .description('resolve a domain now and print its policy and the reply Postfix would get')
    .argument('<domain>', 'the destination domain')
    .option('-c, --config <file>', 'YAML config file (for dns and fetch settings)')
    .option('--zone <name>', 'socketmap name whose zone settings apply', 'default')
    .option('--json', 'print JSON', false)
    .action(async (domain: string, opts: { config?: string; zone: string; json: boolean }) => {
      const config = loadConfig(opts.config);
      process.exitCode = await runQuery(domain, config, { json: opts.json, zone: opts.zone }, (s) =>
        process.stdout.write(s + '\n'),
      );
    });

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
