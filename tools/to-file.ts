// `sluice to-file`: persists a channel to rotating files (like nsq_to_file), one message per line.
// A message is finished only after an fsync that covers it, so stopping or crashing loses nothing:
// what was not yet on disk is delivered again (and may then appear twice).

import { mkdirSync } from 'node:fs';
import os from 'node:os';
import { errorText } from '../client/errors';
import { ConfigError, flag } from '../runtime/config';
import { defineProgram, type Program } from '../runtime/program';
import { commonFlags, discoveryFlags, finishOnce, gatewayFlags, openSource, Progress, requireTopic, validName, watch, type ToolIO } from './common';
import { Archiver, FileSink } from './file-sink';

const flags = {
  topic: flag.string('', 'topic to persist (required)'),
  channel: flag.string('nsq_to_file', 'channel to consume'),
  outputDir: flag.string('/tmp', 'directory for the files (created if missing)'),
  rotateBytes: flag.int(0, 'start a new file once this many bytes (before gzip) are in one (0: never)', 0),
  rotateInterval: flag.duration(0, 'start a new file once the current one is this old (0: never)'),
  gzip: flag.bool(false, 'gzip the files (each sync writes a complete gzip member)'),
  gzipLevel: flag.int(6, 'gzip compression level', 1, 9),
  syncInterval: flag.duration(2_000, 'fsync (and finish what it covers) at least this often; also when half of --max-in-flight is waiting'),
  maxInFlight: flag.int(200, 'messages in flight at once over all shards', 1),
  hostIdentifier: flag.string(os.hostname().split('.')[0], 'part of every file name: <topic>.<host-identifier>.<time>.<seq>.log'),
  ...discoveryFlags,
  ...gatewayFlags,
  ...commonFlags,
};

export function program(io: ToolIO): Program<typeof flags> {
  return defineProgram({
    summary: 'Persists a channel to rotating files, one message per line; each message is finished only once an fsync covers it. Consumes from the shards or through a gateway (--gateway).',
    flags,
    async run(config, logger, args) {
      if (args.length > 0) throw new ConfigError(`unexpected argument "${args[0]}"`);
      const topic = requireTopic(config.topic);
      validName(config.channel, 'channel');
      if (/[/\\\0]/.test(config.hostIdentifier)) throw new ConfigError('--host-identifier may not contain path separators');
      if (config.syncInterval <= 0) throw new ConfigError('--sync-interval must be positive');
      mkdirSync(config.outputDir, { recursive: true });

      const sink = new FileSink({
        dir: config.outputDir,
        prefix: `${topic}.${config.hostIdentifier}`,
        gzip: config.gzip,
        gzipLevel: config.gzipLevel,
        rotateBytes: config.rotateBytes,
        rotateIntervalMs: config.rotateInterval,
      });
      const progress = new Progress(logger, ['written'], config.progressInterval);
      const archiver = new Archiver(sink, Math.max(1, Math.ceil(config.maxInFlight / 2)), {
        written: (n) => progress.add('written', n),
        failed: (err, n) => logger.error('write failed; messages requeued', { error: errorText(err), messages: n }),
      });
      const consumer = openSource(config, { topic, channel: config.channel, maxInFlight: config.maxInFlight, userAgent: 'sluice-to-file' });
      watch(consumer, logger).on('message', (m) => archiver.add(m));
      let timer: NodeJS.Timeout | null = setInterval(() => void archiver.flush(), config.syncInterval);

      const close = async (): Promise<void> => {
        if (timer) clearInterval(timer);
        timer = null;
        // CLS, then keep syncing until every message in flight is on disk and finished
        const closing = consumer.close();
        const drain = setInterval(() => void archiver.flush(), 50);
        await closing;
        clearInterval(drain);
        await archiver.close();
        logger.info('files written', { files: sink.created.length, last: sink.created.at(-1) });
        progress.final();
      };
      const finish = finishOnce(io, logger, close);
      await consumer.start();
      logger.info('writing', { topic, channel: config.channel, dir: config.outputDir });
      return { close: () => finish(0) };
    },
  });
}
