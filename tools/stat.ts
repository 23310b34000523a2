// `sluice stat`: a topic's (or one channel's) depth, rates and counters summed over its shards
// at intervals, read from each shard's HTTP /stats — or, with --gateway, from the gateway's admin
// API, which sums them over the shards itself — in nsq_stat's columns.

import { getJson, lookupTopic } from '../client/lookup';
import { errorText, GatewayCallError } from '../client/errors';
import { GatewayHttp } from '../client/gateway-http';
import { ConfigError, flag, parseHostPort } from '../runtime/config';
import { defineProgram, type Program } from '../runtime/program';
import { channelCounters, parseStats, type NsqdChannelCounts } from '../wire/nsqd-stats';
import { commonFlags, finishOnce, gatewayFlags, gatewayTarget, parseCount, requireTopic, validName, shortFlags, type GatewayTarget, type ToolIO } from './common';

const flags = {
  topic: flag.string('', 'topic to watch (required)'),
  channel: flag.string('', 'channel to watch (default: the topic itself, with its channels’ counters summed)'),
  lookupdHttpAddress: flag.list([], 'lookup HTTP address to find the topic’s shards through, asked at every interval (repeatable)'),
  nsqdHttpAddress: flag.list([], 'shard HTTP address to read /stats from (repeatable)'),
  interval: flag.duration(2_000, 'time between rows'),
  count: flag.int(0, 'stop after this many rows (0: never); also -n N', 0),
  httpTimeout: flag.duration(2_000, 'timeout of each /stats and /lookup request (with --gateway, of each admin API request)'),
  gateway: flag.string('', 'gateway base URL (http:// or https://): read the sums from its admin API (GET /v1/admin/topics/{topic}) instead of the shards'),
  gatewayToken: { ...gatewayFlags.gatewayToken, help: gatewayFlags.gatewayToken.help + '; needs the stats (read-only) or admin scope' },
  logLevel: commonFlags.logLevel,
};

/** One sample summed over the shards. */
export interface Sample {
  depth: number;
  memoryDepth: number;
  backendDepth: number;
  inFlight: number;
  deferred: number;
  requeued: number;
  timedOut: number;
  messages: number;
  clients: number;
}

const ZERO: Sample = { depth: 0, memoryDepth: 0, backendDepth: 0, inFlight: 0, deferred: 0, requeued: 0, timedOut: 0, messages: 0, clients: 0 };

type Rec = Record<string, unknown>;
const rec = (v: unknown): Rec => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Rec) : {});
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const list = (v: unknown): Rec[] => (Array.isArray(v) ? v.map(rec) : []);

type Counts = Omit<NsqdChannelCounts, 'channel_name' | 'paused'>;

function channelSample(c: Counts): Sample {
  return {
    depth: c.depth,
    memoryDepth: c.depth - c.backend_depth,
    backendDepth: c.backend_depth,
    inFlight: c.in_flight_count,
    deferred: c.deferred_count,
    requeued: c.requeue_count,
    timedOut: c.timeout_count,
    messages: c.message_count,
    clients: c.client_count,
  };
}


export function addSamples(a: Sample, b: Sample): Sample {
  const out = { ...a };
  for (const k of Object.keys(out) as (keyof Sample)[]) out[k] += b[k];
  return out;
}

/** The topic's (or channel's) sample from one shard's /stats?format=json document; throws if it is not one. */
export function sampleFromStats(doc: unknown, topic: string, channel: string): Sample {
  const t = parseStats(doc).topics.find((x) => x.topic_name === topic);
  if (!t) return ZERO;
  if (channel !== '') {
    const c = t.channels.find((x) => x.channel_name === channel);
    return c ? channelSample(c) : ZERO;
  }
  const summed = t.channels.map(channelSample).reduce(addSamples, ZERO);
  return { ...summed, depth: t.depth, memoryDepth: t.depth - t.backend_depth, backendDepth: t.backend_depth, messages: t.message_count };
}

/**
 * The sample from the gateway admin API's GET /v1/admin/topics/{topic} answer, whose topic and
 * channels are already summed over the shards: the channel's, or the topic's own depth and
 * message count with its channels' other counters summed (as from the shards directly).
 */
export function sampleFromAdminTopic(doc: unknown, channel: string): Sample {
  const t = rec(rec(doc).topic);
  const channels = list(t.channels);
  if (channel !== '') {
    const c = channels.find((x) => x.name === channel);
    return c ? channelSample(channelCounters(c)) : ZERO;
  }
  const summed = channels.map((c) => channelSample(channelCounters(c))).reduce(addSamples, ZERO);
  const depth = num(t.depth);
  const backend = num(t.backend_depth);
  return { ...summed, depth, memoryDepth: depth - backend, backendDepth: backend, messages: num(t.message_count) };
}

export const HEADER =
  '------rate------+----------------depth----------------+--------------metadata---------------\n' +
  `${'ingress'.padStart(7)} ${'egress'.padStart(7)} | ${'total'.padStart(7)} ${'mem'.padStart(7)} ${'disk'.padStart(7)} ${'inflt'.padStart(5)} ${'def'.padStart(5)} | ${'req'.padStart(7)} ${'t-o'.padStart(7)} ${'msgs'.padStart(12)} ${'clients'.padStart(7)}\n`;

/** nsq_stat's row; ingress and egress are per second since `prev` ("-" on the first row). */
export function formatRow(cur: Sample, prev: Sample | null, seconds: number): string {
  const rate = (n: number): string => (prev === null ? '-' : String(Math.trunc(n / Math.max(seconds, 1e-3))));
  const ingress = prev === null ? 0 : cur.messages - prev.messages;
  const egress = prev === null ? 0 : ingress - (cur.depth - prev.depth);
  const p = (v: number | string, w: number): string => String(v).padStart(w);
  return (
    `${p(rate(ingress), 7)} ${p(rate(egress), 7)} | ${p(cur.depth, 7)} ${p(cur.memoryDepth, 7)} ${p(cur.backendDepth, 7)} ${p(cur.inFlight, 5)} ${p(cur.deferred, 5)} | ` +
    `${p(cur.requeued, 7)} ${p(cur.timedOut, 7)} ${p(cur.messages, 12)} ${p(cur.clients, 7)}\n`
  );
}

function httpBase(address: string): string {
  return /^https?:\/\//i.test(address) ? address.replace(/\/+$/, '') : `http://${address}`;
}

function isRefusal(err: unknown): err is GatewayCallError {
  return err instanceof GatewayCallError && (err.status === 400 || err.status === 401 || err.status === 403);
}

/** Samples from the gateway's admin API (a topic not known yet reads as zeros, as from the shards). */
function adminSampler(gw: GatewayTarget, topic: string, channel: string, timeoutMs: number): { sample(): Promise<Sample>; close(): Promise<void> } {
  const http = new GatewayHttp({ url: gw.url, token: gw.token || undefined, connections: 1, userAgent: 'sluice-stat' });
  const path = `/v1/admin/topics/${encodeURIComponent(topic)}`;
  return {
    async sample() {
      try {
        return sampleFromAdminTopic(JSON.parse((await http.call('GET', path, { timeoutMs })).text) as unknown, channel);
      } catch (err) {
        if (err instanceof GatewayCallError && err.apiCode === 'TOPIC_NOT_FOUND') return ZERO;
        throw err;
      }
    },
    close: () => http.close(),
  };
}

export function program(io: ToolIO): Program<typeof flags> {
  return defineProgram({
    summary: 'Prints a topic’s or channel’s depth, rates and counters summed over its shards at intervals (like nsq_stat), read from the shards or from a gateway’s admin API (--gateway).',
    flags,
    async run(config, logger, args) {
      const short = shortFlags(args, { '-n': 'count' });
      const count = short.count !== undefined ? parseCount(short.count, '-n') : config.count;
      const topic = requireTopic(config.topic);
      if (config.channel !== '') validName(config.channel, 'channel');
      const gw = gatewayTarget(config, config.lookupdHttpAddress.length + config.nsqdHttpAddress.length > 0, '--lookupd-http-address or --nsqd-http-address');
      for (const a of config.nsqdHttpAddress) if (!/^https?:\/\//i.test(a)) parseHostPort(a);
      if (config.interval <= 0) throw new ConfigError('--interval must be positive');
      const admin = gw ? adminSampler(gw, topic, config.channel, config.httpTimeout) : null;

      const shards = async (): Promise<string[]> => {
        const found = new Set(config.nsqdHttpAddress.map(httpBase));
        if (config.lookupdHttpAddress.length > 0) {
          const d = await lookupTopic(config.lookupdHttpAddress, topic, config.httpTimeout);
          for (const err of d.errors) logger.warn('lookup failed', { error: err.message });
          for (const n of d.nodes) found.add(`http://${n.httpAddress}`);
        }
        return [...found];
      };
      const query = `/stats?format=json&topic=${encodeURIComponent(topic)}${config.channel ? `&channel=${encodeURIComponent(config.channel)}` : ''}&include_clients=false`;
      const fromShards = async (): Promise<Sample> => {
        const samples = await Promise.all(
          (await shards()).map((base) =>
            getJson(base + query, config.httpTimeout).then(
              (doc) => sampleFromStats(doc, topic, config.channel),
              (err: unknown) => {
                logger.warn('stats unavailable', { shard: base, error: errorText(err) });
                return ZERO;
              },
            ),
          ),
        );
        return samples.reduce(addSamples, ZERO);
      };

      let timer: NodeJS.Timeout | null = null;
      let stopped = false;
      const sample = admin ? admin.sample : fromShards;
      const finish = finishOnce(io, logger, async () => {
        stopped = true;
        if (timer) clearTimeout(timer);
        await admin?.close();
      });
      let prev: Sample | null = null;
      let prevAt = 0;
      let rows = 0;
      const tick = async (): Promise<void> => {
        timer = null;
        const at = performance.now();
        let cur: Sample;
        try {
          cur = await sample();
        } catch (err) {
          if (isRefusal(err)) {
            // a wrong key or a missing stats scope will not fix itself
            logger.error('the gateway refused the request', { status: err.status, api_code: err.apiCode || undefined, error: errorText(err) });
            void finish(1);
            return;
          }
          logger.warn('sample failed', { error: errorText(err) });
          cur = prev ?? ZERO;
        }
        if (stopped) return;
        if (rows % 25 === 0) io.stdout.write(HEADER);
        io.stdout.write(formatRow(cur, prev, (at - prevAt) / 1000));
        prev = cur;
        prevAt = at;
        rows++;
        if (count > 0 && rows >= count) void finish(0);
        else timer = setTimeout(() => void tick(), Math.max(0, config.interval - (performance.now() - at)));
      };
      logger.info('watching', { topic, channel: config.channel || undefined, gateway: admin ? gw?.url : undefined });
      void tick();
      return { close: () => finish(0) };
    },
  });
}
