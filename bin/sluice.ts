#!/usr/bin/env node
// The one CLI: picks a subcommand, builds its config from flags and environment, runs it,
// and turns SIGTERM/SIGINT (or the death of a supervising parent) into a clean shutdown. The only file that touches `process`.

import { ConfigError, helpText, parseConfig } from '../runtime/config';
import { createLogger } from '../runtime/logger';
import type { Program } from '../runtime/program';

const PROGRAMS: Record<string, () => Program> = {
  dev: () => require('../dev/main').program,
  shard: () => require('../shard/main').program,
  lookup: () => require('../lookup/main').program,
  gateway: () => require('../gateway/main').program,
  tail: () => require('../tools/tail').program(process),
  pub: () => require('../tools/pub').program(process),
  stat: () => require('../tools/stat').program(process),
  'to-http': () => require('../tools/to-http').program(process),
  'to-file': () => require('../tools/to-file').program(process),
};

function usage(): string {
  return [
    'Usage: sluice <command> [flags]',
    '',
    'Commands:',
    ...Object.keys(PROGRAMS).map((name) => `  ${name}`),
    '',
    'Run `sluice <command> --help` for the flags of a command.',
    '',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 1;
  }
  const load = PROGRAMS[name];
  if (!load) {
    process.stderr.write(`sluice: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const program = load();
  let parsed;
  try {
    parsed = parseConfig(program.flags, rest, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sluice ${name}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (parsed.help) {
    process.stdout.write(helpText(name, program.summary, program.flags));
    return 0;
  }
  const config = parsed.config as Record<string, unknown>;
  const logger = createLogger(name, typeof config.logLevel === 'string' ? config.logLevel : 'info');
  let service;
  try {
    service = await program.run(parsed.config, logger, parsed.args);
  } catch (err) {
    logger.error('failed to start', { error: err instanceof Error ? err.message : String(err) });
    return 1;
  }
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info('shutting down', { signal });
      service.close().then(resolve, (err: unknown) => {
        logger.error('error during shutdown', { error: err instanceof Error ? err.message : String(err) });
        resolve();
      });
    };
    // `on`, not `once`: a second signal (Ctrl-C reaches a whole process group, and `sluice dev`
    // also signals its children) must not kill a process that is still persisting its state.
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // Started by a supervisor over an IPC channel (`sluice dev` does this): the channel closes
    // when that parent dies, even by SIGKILL, so the children never outlive it.
    if (process.channel) {
      process.on('disconnect', () => stop('parent exited'));
      process.channel.unref();
    }
  });
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    // Let winston drain before exiting.
    setImmediate(() => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`sluice: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
