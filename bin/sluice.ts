#!/usr/bin/env node
// The one CLI: picks a subcommand, builds its config from flags and environment, runs it,
// and turns SIGTERM/SIGINT (or the death of a supervising parent) into a clean shutdown. The only file that touches `process`.

import { ConfigError, helpText, parseConfig } from '../runtime/config';
import { createLogger } from '../runtime/logger';
import type { Program } from '../runtime/program';
import { SLUICE_VERSION } from '../runtime/version';

/** Each command: how to load it (only the one run is loaded) and one line for the command list. */
const PROGRAMS: Record<string, { load: () => Program; about: string }> = {
  dev: { load: () => require('../dev/main').program, about: 'a whole local cluster: one lookup, two shards, a gateway with the admin UI' },
  shard: { load: () => require('../shard/main').program, about: 'a storage and delivery node, nsqd-compatible (TCP protocol V2 + HTTP API)' },
  lookup: { load: () => require('../lookup/main').program, about: 'discovery, nsqlookupd-compatible' },
  gateway: { load: () => require('../gateway/main').program, about: 'the HTTP/JSON front door: publish, consume (long-poll, SSE), webhooks, admin UI' },
  tail: { load: () => require('../tools/tail').program(process), about: "print a topic's messages as they arrive" },
  pub: { load: () => require('../tools/pub').program(process), about: 'publish stdin lines' },
  stat: { load: () => require('../tools/stat').program(process), about: "a topic's or channel's depth and rates at intervals" },
  'to-http': { load: () => require('../tools/to-http').program(process), about: 'deliver a channel to HTTP endpoints' },
  'to-file': { load: () => require('../tools/to-file').program(process), about: 'persist a channel to rotating files' },
};

function usage(): string {
  const width = Math.max(...Object.keys(PROGRAMS).map((n) => n.length));
  return [
    'Usage: sluice <command> [flags]',
    '',
    'Commands:',
    ...Object.entries(PROGRAMS).map(([name, p]) => `  ${name.padEnd(width)}  ${p.about}`),
    '',
    'Run `sluice <command> --help` for the flags of a command, `sluice --version` for the version.',
    '',
  ].join('\n');
}

function version(): string {
  const { ENGINE_VERSION } = require('../shard/engine/engine') as { ENGINE_VERSION: string };
  return `sluice v${SLUICE_VERSION} (speaks nsqd v${ENGINE_VERSION}'s protocols; node ${process.version})\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 1;
  }
  if (name === '--version' || name === 'version' || rest.includes('--version')) {
    process.stdout.write(version());
    return 0;
  }
  const entry = PROGRAMS[name];
  if (!entry) {
    process.stderr.write(`sluice: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const program = entry.load();
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
