// `sluice pub`: publishes stdin to a topic, one message per line (like to_nsq), in MPUB batches
// spread over the topic's shards — or, with --gateway, in POST /v1/topics/{t}/batch requests to a
// gateway — optionally limited to --rate messages a second. A batch whose connection drops is sent
// again (so a message may arrive twice: at least once, as NSQ).

import { ClientError, errorText, GatewayCallError } from '../client/errors';
import { GatewayProducer } from '../client/gateway-producer';
import { lookupNodes, lookupTopic } from '../client/lookup';
import { Producer } from '../client/producer';
import type { Publisher } from '../client/source';
import { ConfigError, flag, parseHostPort } from '../runtime/config';
import type { Logger } from '../runtime/logger';
import { defineProgram, type Program } from '../runtime/program';
import { commonFlags, finishOnce, gatewayFlags, gatewayTarget, Progress, requireTopic, type ToolIO, type GatewayTarget } from './common';
import { LineSplitter, RateLimiter } from './pacing';

const flags = {
  topic: flag.string('', 'topic to publish to (required)'),
  lookupdHttpAddress: flag.list([], 'lookup HTTP address: publish to the shards holding the topic, or to every shard if none does yet (repeatable)'),
  nsqdTcpAddress: flag.list([], 'shard TCP address to publish to (repeatable); batches go to each in turn'),
  rate: flag.int(0, 'most messages per second (0: as fast as possible)', 0),
  batchSize: flag.int(200, 'most messages per MPUB or gateway batch (1: one PUB per message)', 1, 100_000),
  inFlight: flag.int(4, 'batches awaiting their answer at once', 1, 1000),
  maxMsgSize: flag.int(1_048_576, 'longest line published; longer ones are skipped and counted', 1),
  retries: flag.int(5, 'times a batch is sent again after its connection dropped (with --gateway also after a 502-504; a 429 is always retried after its Retry-After)', 0),
  ...gatewayFlags,
  maxBatchBytes: flag.int(4 * 1_048_576, 'with --gateway: largest request body; a larger batch goes as several requests (keep under the gateway\'s --max-body-size)', 1024),
  ...commonFlags,
};

const QUEUE_HIGH = 20_000; // stop reading stdin above this many queued lines, resume below half

export function program(io: ToolIO): Program<typeof flags> {
  return defineProgram({
    summary: 'Publishes standard input to a topic, one message per line, in MPUB batches over the topic’s shards, or in batches through a gateway (--gateway).',
    flags,
    async run(config, logger, args) {
      if (args.length > 0) throw new ConfigError(`unexpected argument "${args[0]}"`);
      const topic = requireTopic(config.topic);
      const gw = gatewayTarget(config, config.lookupdHttpAddress.length + config.nsqdTcpAddress.length > 0, '--lookupd-http-address or --nsqd-tcp-address');
      const producers: Publisher[] = gw ? [gatewayProducer(gw, config, topic, logger)] : await tcpProducers(config, topic, logger);

      const progress = new Progress(logger, ['published'], config.progressInterval);
      const limiter = new RateLimiter(config.rate, performance.now());
      const splitter = new LineSplitter(config.maxMsgSize);
      const queue: Buffer[] = [];
      let head = 0; // queue[head..] are waiting
      let pending = 0;
      let next = 0;
      let eof = false;
      let paused = false;
      let timer: NodeJS.Timeout | null = null;
      let failed = false;
      let stopping = false;

      const close = async (): Promise<void> => {
        stopping = eof = true;
        io.stdin.pause();
        if (timer) clearTimeout(timer);
        if (queue.length > head) logger.warn('stopped before publishing every line read', { unpublished: queue.length - head });
        await Promise.all(producers.map((p) => p.close()));
        if (splitter.tooLong > 0) logger.warn('skipped lines longer than --max-msg-size', { count: splitter.tooLong });
        progress.final();
      };
      const finish = finishOnce(io, logger, close);

      const send = (batch: Buffer[], attempt: number): void => {
        pending++;
        const producer = producers[next++ % producers.length];
        const p = batch.length === 1 && !gw ? producer.publish(topic, batch[0]) : producer.publishMany(topic, batch);
        p.then(
          () => {
            pending--;
            progress.add('published', batch.length);
            pump();
          },
          (err: unknown) => {
            pending--;
            const code = err instanceof ClientError ? err.code : '';
            if (stopping) return;
            // (a GatewayProducer has already retried what was worth retrying)
            if (!gw && (code === 'CONNECTION_CLOSED' || code === 'CONNECT_FAILED') && attempt <= config.retries && !failed) {
              logger.warn('batch not acknowledged, sending it again', { attempt, error: errorText(err) });
              send(batch, attempt + 1);
              return;
            }
            failed = true;
            logger.error('publish failed', {
              error: errorText(err),
              nsq_code: err instanceof ClientError ? err.nsqCode || undefined : undefined,
              status: err instanceof GatewayCallError ? err.status : undefined,
              api_code: err instanceof GatewayCallError ? err.apiCode || undefined : undefined,
            });
            void finish(1);
          },
        );
      };

      const pump = (): void => {
        if (failed || stopping) return;
        while (head < queue.length && pending < config.inFlight && timer === null) {
          const want = Math.min(queue.length - head, config.batchSize);
          const { n, waitMs } = limiter.take(want, performance.now());
          if (n === 0) {
            timer = setTimeout(() => {
              timer = null;
              pump();
            }, waitMs);
            break;
          }
          send(queue.slice(head, head + n), 1);
          head += n;
        }
        if (head > 4096 && head * 2 > queue.length) {
          queue.splice(0, head);
          head = 0;
        }
        if (paused && queue.length - head < QUEUE_HIGH / 2) {
          paused = false;
          io.stdin.resume();
        }
        if (eof && head === queue.length && pending === 0) void finish(0);
      };

      io.stdin.on('data', (chunk: Buffer | string) => {
        if (eof) return;
        for (const line of splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)) queue.push(line);
        if (queue.length - head > QUEUE_HIGH && !paused) {
          paused = true;
          io.stdin.pause();
        }
        pump();
      });
      io.stdin.on('end', () => {
        if (eof) return;
        for (const line of splitter.end()) queue.push(line);
        eof = true;
        pump();
      });
      io.stdin.resume();
      return { close: () => finish(0) };
    },
  });
}

/** One producer for the gateway; each resend is logged (the key is in a header, never in a log line). */
function gatewayProducer(gw: GatewayTarget, config: { retries: number; maxBatchBytes: number; inFlight: number }, topic: string, logger: Logger): Publisher {
  const producer = new GatewayProducer({
    gatewayUrl: gw.url,
    token: gw.token || undefined,
    retries: config.retries,
    maxBatchBytes: config.maxBatchBytes,
    connections: config.inFlight,
    userAgent: 'sluice-pub',
    onRetry: (err, attempt, waitMs) => logger.warn('batch not accepted, sending it again', { attempt, wait_ms: waitMs, error: errorText(err) }),
  });
  logger.info('publishing', { topic, gateway: producer.address });
  return producer;
}

async function tcpProducers(config: { lookupdHttpAddress: string[]; nsqdTcpAddress: string[] }, topic: string, logger: Logger): Promise<Publisher[]> {
  const addresses = await targets(config.lookupdHttpAddress, config.nsqdTcpAddress, topic, logger);
  const producers = addresses.map((a) => new Producer(a, { userAgent: 'sluice-pub' }));
  await Promise.all(producers.map((p) => p.connect()));
  logger.info('publishing', { topic, shards: addresses });
  return producers;
}

/** The shards to publish to: the given ones, else those holding the topic, else every shard the lookups know. */
async function targets(lookups: string[], nodes: string[], topic: string, logger: Logger): Promise<string[]> {
  for (const a of nodes) parseHostPort(a);
  if (nodes.length > 0) return nodes;
  if (lookups.length === 0) throw new ConfigError('give --lookupd-http-address or --nsqd-tcp-address');
  for (const ask of [() => lookupTopic(lookups, topic), () => lookupNodes(lookups)]) {
    const found = await ask();
    for (const err of found.errors) logger.warn('lookup failed', { error: err.message });
    if (found.nodes.length > 0) return found.nodes.map((n) => n.tcpAddress);
  }
  throw new Error('no shard found through the lookups');
}
