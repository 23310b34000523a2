// `sluice to-http`: consumes a channel and delivers each message to HTTP endpoints (like
// nsq_to_http), --concurrency requests at a time. A failure (an error, a timeout or a non-2xx
// answer) requeues the message with an exponential delay; after --max-attempts deliveries it is
// finished and logged instead. Private, loopback and link-local targets are refused unless
// --allow-private-targets (see http-delivery.ts and target-policy.ts).

import http from 'node:http';
import https from 'node:https';
import { exponentialDelay } from '../client/backoff';
import { errorText } from '../client/errors';
import type { Message } from '../client/message';
import { ConfigError, flag } from '../runtime/config';
import { defineProgram, type Program } from '../runtime/program';
import { commonFlags, discoveryFlags, finishOnce, gatewayFlags, openSource, Progress, requireTopic, validName, watch, type ToolIO } from './common';
import { anyAddress, checkTarget, deliver, DeliveryError, guardedLookup, parseEndpointUrl, publicOnly, type DeliveryOptions, type Endpoint } from './http-delivery';

const flags = {
  topic: flag.string('', 'topic to consume (required)'),
  channel: flag.string('nsq_to_http', 'channel to consume'),
  post: flag.list([], 'URL to POST each message to, as the body (repeatable)'),
  get: flag.list([], 'URL to GET for each message; "%s" in it is replaced by the URL-encoded body (repeatable)'),
  mode: flag.string('round-robin', 'with several URLs: "round-robin" (each message to one of them, the next one on a retry) or "fanout" (to all of them)'),
  concurrency: flag.int(100, 'HTTP requests at once', 1, 10_000),
  maxInFlight: flag.int(200, 'messages in flight at once over all shards', 1),
  timeout: flag.duration(20_000, 'deadline of one delivery, redirects included'),
  maxAttempts: flag.int(5, 'deliveries of a message before it is finished and logged instead of requeued (0: no limit)', 0),
  backoff: flag.duration(1_000, 'requeue delay after the first failure; it doubles with each attempt'),
  maxBackoff: flag.duration(120_000, 'longest requeue delay'),
  contentType: flag.string('application/octet-stream', 'Content-Type of POST requests'),
  header: flag.list([], 'extra request header "Name: value" (repeatable)'),
  maxRedirects: flag.int(5, 'redirects followed (each target checked like the first)', 0, 20),
  allowPrivateTargets: flag.bool(false, 'allow loopback, private, link-local and unique-local targets'),
  ...discoveryFlags,
  ...gatewayFlags,
  ...commonFlags,
};

function parseHeaders(lines: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    const name = i < 0 ? '' : line.slice(0, i).trim();
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new ConfigError(`--header "${line}": want "Name: value"`);
    out[name.toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}

/** Endpoint indexes already served per message id in fanout mode, so a retry skips them (bounded, oldest dropped first). */
class FanoutMemory {
  private readonly done = new Map<string, Set<number>>();
  constructor(private readonly max: number) {}
  served(id: string): Set<number> {
    let s = this.done.get(id);
    if (!s) {
      s = new Set();
      this.done.set(id, s);
      if (this.done.size > this.max) this.done.delete(this.done.keys().next().value as string);
    }
    return s;
  }
  forget(id: string): void {
    this.done.delete(id);
  }
}

export function program(io: ToolIO): Program<typeof flags> {
  return defineProgram({
    summary: 'Delivers each message of a channel to HTTP endpoints (POST or GET), retrying failures with exponential backoff; consumes from the shards or through a gateway (--gateway).',
    flags,
    async run(config, logger, args) {
      if (args.length > 0) throw new ConfigError(`unexpected argument "${args[0]}"`);
      const topic = requireTopic(config.topic);
      validName(config.channel, 'channel');
      if (config.mode !== 'round-robin' && config.mode !== 'fanout') throw new ConfigError('--mode must be round-robin or fanout');
      const endpoints: Endpoint[] = [...config.post.map((url) => ({ method: 'POST' as const, url })), ...config.get.map((url) => ({ method: 'GET' as const, url }))];
      if (endpoints.length === 0) throw new ConfigError('give at least one --post or --get URL');
      const allowed = config.allowPrivateTargets ? anyAddress : publicOnly;
      for (const e of endpoints) {
        let url: URL;
        try {
          url = parseEndpointUrl(e.url.split('%s').join('x'));
        } catch (err) {
          throw new ConfigError(errorText(err));
        }
        try {
          await checkTarget(url, allowed);
        } catch (err) {
          if (err instanceof DeliveryError) throw new ConfigError(`refusing ${e.url}: ${err.message}`);
          logger.warn('could not resolve endpoint now; it will be checked at each connection', { url: e.url, error: errorText(err) });
        }
      }

      const agentOptions = { keepAlive: true, maxSockets: config.concurrency };
      const opts: DeliveryOptions = {
        timeoutMs: config.timeout,
        contentType: config.contentType,
        headers: { 'user-agent': 'sluice-to-http', ...parseHeaders(config.header) },
        allowed,
        maxRedirects: config.maxRedirects,
        agents: { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) },
      };
      const lookup = guardedLookup(allowed);
      const progress = new Progress(logger, ['delivered', 'failed', 'requeued', 'gave_up'], config.progressInterval);
      const fanout = new FanoutMemory(10 * config.maxInFlight);
      let rr = 0;

      /** Resolves when the message has been delivered (to one endpoint, or to all in fanout mode). */
      const attempt = async (m: Message): Promise<void> => {
        if (config.mode === 'round-robin') {
          await deliver(endpoints[rr++ % endpoints.length], m.body, opts, lookup);
          return;
        }
        const served = fanout.served(m.id);
        const results = await Promise.allSettled(
          endpoints.map(async (e, i) => {
            if (served.has(i)) return;
            await deliver(e, m.body, opts, lookup);
            served.add(i);
          }),
        );
        const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failure) throw failure.reason;
        fanout.forget(m.id);
      };

      const handle = async (m: Message): Promise<void> => {
        try {
          await attempt(m);
          m.finish();
          progress.add('delivered');
        } catch (err) {
          progress.add('failed');
          const code = err instanceof DeliveryError ? err.code : 'NETWORK';
          const status = err instanceof DeliveryError && err.status ? err.status : undefined;
          if (config.maxAttempts > 0 && m.attempts >= config.maxAttempts) {
            m.finish();
            fanout.forget(m.id);
            progress.add('gave_up');
            logger.error('giving up on a message', { id: m.id, attempts: m.attempts, code, status, error: errorText(err) });
            return;
          }
          logger.debug('delivery failed; requeued', { id: m.id, attempts: m.attempts, code, status, error: errorText(err) });
          m.requeue(exponentialDelay(m.attempts, config.backoff, config.maxBackoff));
          progress.add('requeued');
        }
      };

      const waiting: Message[] = [];
      let active = 0;
      let idle: (() => void) | null = null;
      const pump = (): void => {
        while (active < config.concurrency && waiting.length > 0) {
          active++;
          void handle(waiting.shift()!).finally(() => {
            active--;
            pump();
          });
        }
        if (active === 0 && waiting.length === 0) idle?.();
      };

      const consumer = openSource(config, {
        topic,
        channel: config.channel,
        maxInFlight: config.maxInFlight,
        maxAttempts: config.maxAttempts,
        backoffMultiplierMs: config.backoff,
        maxBackoffMs: config.maxBackoff,
        userAgent: 'sluice-to-http',
      });
      watch(consumer, logger);
      consumer.on('message', (m) => {
        waiting.push(m);
        pump();
      });
      consumer.on('discard', (m) => {
        progress.add('gave_up');
        logger.error('giving up on a message delivered too often', { id: m.id, attempts: m.attempts });
      });

      const close = async (): Promise<void> => {
        // no new requests: what has not started goes back at once; what has started may finish
        const closing = consumer.close();
        for (const m of waiting.splice(0)) m.requeue(0, false);
        if (active > 0) await new Promise<void>((resolve) => (idle = resolve));
        await closing;
        opts.agents.http.destroy();
        opts.agents.https.destroy();
        progress.final();
      };
      const finish = finishOnce(io, logger, close);
      await consumer.start();
      logger.info('delivering', { topic, channel: config.channel, endpoints: endpoints.length, mode: config.mode });
      return { close: () => finish(0) };
    },
  });
}
