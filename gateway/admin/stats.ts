// The admin view of a cluster, built from every shard's nsqd-style /stats (pure: no I/O). Shard
// documents are checked field by field before they are trusted, then merged per topic and channel
// with the per-shard rows kept; rates come from message_count deltas between polls. HTTP consumers
// are merged per gateway, not summed over shards: a gateway reports the same streams and
// long-polls to every shard of the topic it pulls from.

import type { HttpConsumerStats, ShardStats } from '../../wire/nsqd-stats';

export interface ShardResult {
  address: string;
  stats: ShardStats | null;
  /** Why stats is null: an error code (BREAKER_OPEN, TIMEOUT, SHARD_HTTP_500, …). */
  error?: string;
  breaker: string;
  ms: number;
}

const CHANNEL_COUNTS = ['depth', 'backend_depth', 'in_flight_count', 'deferred_count', 'message_count', 'requeue_count', 'timeout_count', 'client_count'] as const;
type ChannelCounts = Record<(typeof CHANNEL_COUNTS)[number], number>;

export interface ChannelOnShard extends ChannelCounts {
  shard: string;
  paused: boolean;
  clients?: Record<string, unknown>[];
  /** Streams plus long-polls the gateways reported to this shard. */
  http_consumer_count: number;
}

/** One gateway's HTTP consumers of a channel, merged over the shards it reported them to. */
export interface GatewayConsumers extends HttpConsumerStats {
  /** The shards holding a report from it for this channel (the counts and age_ms are from the freshest). */
  shards: string[];
}

export interface ChannelView extends ChannelCounts {
  name: string;
  /** True when every shard holding it has it paused; `paused_shards` says where it is. */
  paused: boolean;
  paused_shards: string[];
  /** Messages per second into this channel, summed over shards (null until two polls exist). */
  rate: number | null;
  shards: ChannelOnShard[];
  /** Streams plus long-polls over every gateway (each gateway once, however many shards it reported to). */
  http_consumer_count: number;
  /** Per gateway, sorted by id. */
  http_consumers: GatewayConsumers[];
}

export interface TopicOnShard {
  shard: string;
  depth: number;
  backend_depth: number;
  message_count: number;
  paused: boolean;
  channel_count: number;
}

export interface TopicView {
  name: string;
  depth: number;
  backend_depth: number;
  message_count: number;
  /** The topic's own depth plus every channel's: what is waiting anywhere for this topic. */
  total_depth: number;
  in_flight_count: number;
  paused: boolean;
  paused_shards: string[];
  rate: number | null;
  shards: TopicOnShard[];
  channels: ChannelView[];
}

export interface ShardSummary {
  address: string;
  ok: boolean;
  error?: string;
  breaker: string;
  ms: number;
  version?: string;
  health?: string;
  start_time?: number;
  topic_count?: number;
}

export interface ClusterSnapshot {
  /** Wall-clock ms when the collection finished. */
  at: number;
  shards: ShardSummary[];
  topics: TopicView[];
}

const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Merges every shard's stats into one cluster view, sorted by name. Rates are left null. */
export function aggregate(results: readonly ShardResult[], at: number): ClusterSnapshot {
  const topics = new Map<string, TopicView>();
  const shards: ShardSummary[] = [];
  for (const r of results) {
    if (!r.stats) {
      shards.push({ address: r.address, ok: false, error: r.error ?? 'UNAVAILABLE', breaker: r.breaker, ms: r.ms });
      continue;
    }
    shards.push({ address: r.address, ok: true, breaker: r.breaker, ms: r.ms, version: r.stats.version, health: r.stats.health, start_time: r.stats.start_time, topic_count: r.stats.topics.length });
    for (const t of r.stats.topics) {
      let tv = topics.get(t.topic_name);
      if (!tv) {
        tv = { name: t.topic_name, depth: 0, backend_depth: 0, message_count: 0, total_depth: 0, in_flight_count: 0, paused: false, paused_shards: [], rate: null, shards: [], channels: [] };
        topics.set(t.topic_name, tv);
      }
      tv.depth += t.depth;
      tv.backend_depth += t.backend_depth;
      tv.message_count += t.message_count;
      tv.total_depth += t.depth;
      if (t.paused) tv.paused_shards.push(r.address);
      tv.shards.push({ shard: r.address, depth: t.depth, backend_depth: t.backend_depth, message_count: t.message_count, paused: t.paused, channel_count: t.channels.length });
      for (const c of t.channels) {
        let cv = tv.channels.find((x) => x.name === c.channel_name);
        if (!cv) {
          cv = { name: c.channel_name, paused: false, paused_shards: [], rate: null, shards: [], depth: 0, backend_depth: 0, in_flight_count: 0, deferred_count: 0, message_count: 0, requeue_count: 0, timeout_count: 0, client_count: 0, http_consumer_count: 0, http_consumers: [] };
          tv.channels.push(cv);
        }
        const row: ChannelOnShard = { shard: r.address, paused: c.paused, depth: 0, backend_depth: 0, in_flight_count: 0, deferred_count: 0, message_count: 0, requeue_count: 0, timeout_count: 0, client_count: 0, http_consumer_count: c.http_consumer_count };
        for (const k of CHANNEL_COUNTS) {
          row[k] = c[k];
          cv[k] += c[k];
        }
        if (c.clients.length > 0) row.clients = c.clients;
        for (const e of c.http_consumers) mergeGateway(cv.http_consumers, e, r.address);
        if (c.paused) cv.paused_shards.push(r.address);
        cv.shards.push(row);
        tv.total_depth += c.depth;
        tv.in_flight_count += c.in_flight_count;
      }
    }
  }
  for (const tv of topics.values()) {
    tv.paused = tv.paused_shards.length > 0 && tv.paused_shards.length === tv.shards.length;
    for (const cv of tv.channels) {
      cv.paused = cv.paused_shards.length > 0 && cv.paused_shards.length === cv.shards.length;
      cv.http_consumers.sort((a, b) => (a.gateway_id < b.gateway_id ? -1 : a.gateway_id > b.gateway_id ? 1 : 0));
      cv.http_consumer_count = cv.http_consumers.reduce((n, g) => n + g.streams + g.long_polls, 0);
    }
    tv.channels.sort(byName);
  }
  shards.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  return { at, shards, topics: [...topics.values()].sort(byName) };
}

/**
 * Adds one shard's entry for a gateway. The gateway sends every shard of the topic the same local
 * counts, so they are not added up: the freshest report wins (the others are at most one report
 * interval older), and the shards it came through are listed.
 */
function mergeGateway(list: GatewayConsumers[], e: HttpConsumerStats, shard: string): void {
  const g = list.find((x) => x.gateway_id === e.gateway_id);
  if (!g) {
    list.push({ gateway_id: e.gateway_id, gateway_address: e.gateway_address, streams: e.streams, long_polls: e.long_polls, in_flight: e.in_flight, held: e.held, age_ms: e.age_ms, shards: [shard] });
    return;
  }
  g.shards.push(shard);
  if (e.age_ms < g.age_ms) Object.assign(g, { gateway_address: e.gateway_address, streams: e.streams, long_polls: e.long_polls, in_flight: e.in_flight, held: e.held, age_ms: e.age_ms });
}

/**
 * Message rates from message_count deltas, per shard (a counter that goes down — a restart, a
 * deleted and recreated topic — counts as a fresh start, never as a negative rate).
 */
export class Rates {
  private prev = new Map<string, { count: number; at: number }>();

  /** Fills `rate` in place; `now` is a monotonic clock in ms. */
  apply(s: ClusterSnapshot, now: number): void {
    const next = new Map<string, { count: number; at: number }>();
    const rateOf = (key: string, count: number): number | null => {
      next.set(key, { count, at: now });
      const p = this.prev.get(key);
      if (!p || now <= p.at) return null;
      return (count >= p.count ? count - p.count : count) / ((now - p.at) / 1000);
    };
    for (const t of s.topics) {
      t.rate = sumRates(t.shards.map((r) => rateOf(`${r.shard}\u0000${t.name}`, r.message_count)));
      for (const c of t.channels) c.rate = sumRates(c.shards.map((r) => rateOf(`${r.shard}\u0000${t.name}\u0000${c.name}`, r.message_count)));
    }
    this.prev = next;
  }
}

function sumRates(parts: (number | null)[]): number | null {
  let sum = 0;
  let any = false;
  for (const p of parts) if (p !== null) (sum += p), (any = true);
  return any ? Math.round(sum * 100) / 100 : null;
}

/** [wall ms, rate, depth] */
export type Point = [number, number | null, number];

/** The last `windowMs` of rate and depth per topic and per topic/channel, for the charts. */
export class History {
  readonly topics = new Map<string, Point[]>();
  readonly channels = new Map<string, Point[]>();

  constructor(private readonly windowMs: number) {}

  record(s: ClusterSnapshot): void {
    const seen = new Set<string>();
    const push = (m: Map<string, Point[]>, key: string, p: Point) => {
      seen.add(key);
      let list = m.get(key);
      if (!list) m.set(key, (list = []));
      list.push(p);
      while (list.length > 0 && list[0][0] < s.at - this.windowMs) list.shift();
    };
    for (const t of s.topics) {
      push(this.topics, t.name, [s.at, t.rate, t.total_depth]);
      for (const c of t.channels) push(this.channels, `${t.name}/${c.name}`, [s.at, c.rate, c.depth]);
    }
    // Series of topics and channels that are gone are dropped once their last point is too old.
    for (const m of [this.topics, this.channels])
      for (const [k, list] of m) if (!seen.has(k) && (list.length === 0 || list[list.length - 1][0] < s.at - this.windowMs)) m.delete(k);
  }

  toJSON(): { topics: Record<string, Point[]>; channels: Record<string, Point[]> } {
    return { topics: Object.fromEntries(this.topics), channels: Object.fromEntries(this.channels) };
  }
}
