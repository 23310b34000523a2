// `sluice tail`: prints a topic's messages as they arrive, one per line, like nsq_tail — from an
// #ephemeral channel by default, so tailing takes nothing from the topic's real consumers.

import { randomInt } from 'node:crypto';
import type { Message } from '../client/message';
import { ConfigError, flag } from '../runtime/config';
import { defineProgram, type Program, type Service } from '../runtime/program';
import { commonFlags, discoveryFlags, finishOnce, gatewayFlags, openSource, parseCount, Progress, shortFlags, validName, watch, type ToolIO } from './common';

const flags = {
  topic: flag.list([], 'topic to print (repeatable)'),
  channel: flag.string('', 'channel to read (empty: tail<6 digits>#ephemeral, which vanishes when tail stops)'),
  count: flag.int(0, 'stop after printing this many messages (0: never); also -n N', 0),
  printTopic: flag.bool(false, 'print "<topic> | " before each message'),
  maxInFlight: flag.int(200, 'messages in flight at once over all shards', 1),
  ...discoveryFlags,
  ...gatewayFlags,
  ...commonFlags,
};

export function program(io: ToolIO): Program<typeof flags> {
  return defineProgram({
    summary: 'Prints the messages of one or more topics to stdout as they arrive, one per line (like nsq_tail), from the shards (--lookupd-http-address, --nsqd-tcp-address) or through a gateway (--gateway).',
    flags,
    async run(config, logger, args) {
      const short = shortFlags(args, { '-n': 'count' });
      const count = short.count !== undefined ? parseCount(short.count, '-n') : config.count;
      if (config.topic.length === 0) throw new ConfigError('--topic is required');
      const channel = config.channel || `tail${String(randomInt(1_000_000)).padStart(6, '0')}#ephemeral`;
      validName(channel, 'channel');
      for (const t of config.topic) validName(t, 'topic');

      const progress = new Progress(logger, ['messages'], config.progressInterval);
      const consumers = config.topic.map((topic) =>
        openSource(config, { topic, channel, maxInFlight: count > 0 ? Math.min(count, config.maxInFlight) : config.maxInFlight, userAgent: 'sluice-tail' }),
      );
      const close = async (): Promise<void> => {
        await Promise.all(consumers.map((c) => c.close()));
        progress.final();
      };
      const finish = finishOnce(io, logger, close);
      const out = new CorkedLines(io.stdout);
      let printed = 0;
      const print = (m: Message): void => {
        if (count > 0 && printed >= count) {
          m.requeue(0, false); // past the count: give it back (it matters on a named channel)
          return;
        }
        // no copy of the body: separate writes, corked so a tick's worth leaves in one writev
        out.write(m.body, config.printTopic ? `${m.topic} | ` : '');
        m.finish();
        printed++;
        progress.add('messages');
        if (count > 0 && printed === count) void finish(0);
      };
      io.stdout.on('error', () => void finish(0)); // e.g. EPIPE when piped into `head`
      for (const c of consumers) watch(c, logger).on('message', print);
      await Promise.all(consumers.map((c) => c.start()));
      logger.info('tailing', { topics: config.topic, channel });
      const service: Service = { close };
      return service;
    },
  });
}

const NL = Buffer.from('\n');

/** Lines written to a stream corked until the end of the tick, so many leave in one writev. */
class CorkedLines {
  private corked = false;
  private readonly stream: NodeJS.WritableStream & { cork?: () => void; uncork?: () => void };
  private readonly uncork = (): void => {
    this.corked = false;
    this.stream.uncork?.();
  };

  constructor(stream: NodeJS.WritableStream) {
    this.stream = stream;
  }

  write(body: Buffer, prefix: string): void {
    if (!this.corked && this.stream.cork) {
      this.corked = true;
      this.stream.cork();
      process.nextTick(this.uncork);
    }
    if (prefix !== '') this.stream.write(prefix);
    this.stream.write(body);
    this.stream.write(NL);
  }
}
