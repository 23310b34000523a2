// nsqd's /stats?format=json document as the admin and `sluice stat` read it from any shard (Sluice's
// or a real nsqd): the fields they use, each checked before it is trusted (anything malformed reads
// as 0 or ''). Sluice's own shards add fields (see shard/engine/channel.ts ChannelStats), among
// them each channel's HTTP consumers as the gateways report them (absent on a stock nsqd: read as none).

/** A channel's counters as nsqd reports them. */
export interface NsqdChannelCounts {
  channel_name: string;
  depth: number;
  backend_depth: number;
  in_flight_count: number;
  deferred_count: number;
  message_count: number;
  requeue_count: number;
  timeout_count: number;
  client_count: number;
  paused: boolean;
}

/** Sluice's extension: one gateway's HTTP consumers of a channel, as that gateway last reported them to the shard. */
export interface HttpConsumerStats {
  gateway_id: string;
  gateway_address: string;
  /** Open SSE streams. */
  streams: number;
  /** Long-polls waiting. */
  long_polls: number;
  /** Delivered to the gateway's streams, not settled yet. */
  in_flight: number;
  /** Leased by the gateway, waiting there for a subscriber. */
  held: number;
  /** ms since the shard last heard from the gateway. */
  age_ms: number;
}

export interface ShardChannelStats extends NsqdChannelCounts {
  clients: Record<string, unknown>[];
  /** Sluice's extension (empty from a stock nsqd). */
  http_consumers: HttpConsumerStats[];
  /** Streams plus long-polls over every gateway of `http_consumers`. */
  http_consumer_count: number;
}

export interface ShardTopicStats {
  topic_name: string;
  depth: number;
  backend_depth: number;
  message_count: number;
  paused: boolean;
  channels: ShardChannelStats[];
}

export interface ShardStats {
  version: string;
  health: string;
  start_time: number;
  topics: ShardTopicStats[];
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

function httpConsumers(v: unknown): HttpConsumerStats[] {
  if (!Array.isArray(v)) return [];
  const out: HttpConsumerStats[] = [];
  for (const raw of v as unknown[]) {
    const e = (raw ?? {}) as Record<string, unknown>;
    if (typeof e.gateway_id !== 'string' || e.gateway_id === '') continue;
    out.push({ gateway_id: e.gateway_id, gateway_address: str(e.gateway_address), streams: num(e.streams), long_polls: num(e.long_polls), in_flight: num(e.in_flight), held: num(e.held), age_ms: num(e.age_ms) });
  }
  return out;
}

/** A channel's counters read leniently from any object with nsqd's field names (missing or malformed: 0). */
export function channelCounters(c: Record<string, unknown>): Omit<NsqdChannelCounts, 'channel_name' | 'paused'> {
  return {
    depth: num(c.depth),
    backend_depth: num(c.backend_depth),
    in_flight_count: num(c.in_flight_count),
    deferred_count: num(c.deferred_count),
    message_count: num(c.message_count),
    requeue_count: num(c.requeue_count),
    timeout_count: num(c.timeout_count),
    client_count: num(c.client_count),
  };
}

/** nsqd's /stats?format=json document → the fields used here (nsqd < 1.0 wrapped it in "data"). */
export function parseStats(doc: unknown): ShardStats {
  const top = (doc ?? {}) as Record<string, unknown>;
  const d = (typeof top.data === 'object' && top.data !== null && !Array.isArray(top.topics) ? top.data : top) as Record<string, unknown>;
  if (!Array.isArray(d.topics)) throw new Error('stats: no topics array');
  const topics: ShardTopicStats[] = [];
  for (const raw of d.topics as unknown[]) {
    const t = (raw ?? {}) as Record<string, unknown>;
    if (typeof t.topic_name !== 'string') continue;
    const channels: ShardChannelStats[] = [];
    for (const rc of Array.isArray(t.channels) ? (t.channels as unknown[]) : []) {
      const c = (rc ?? {}) as Record<string, unknown>;
      if (typeof c.channel_name !== 'string') continue;
      const http = httpConsumers(c.http_consumers);
      channels.push({
        channel_name: c.channel_name,
        ...channelCounters(c),
        client_count: Array.isArray(c.clients) && c.clients.length > 0 ? c.clients.length : num(c.client_count),
        paused: c.paused === true,
        clients: Array.isArray(c.clients) ? (c.clients as unknown[]).filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null) : [],
        http_consumers: http,
        http_consumer_count: http.length > 0 ? http.reduce((n, e) => n + e.streams + e.long_polls, 0) : num(c.http_consumer_count),
      });
    }
    topics.push({ topic_name: t.topic_name, depth: num(t.depth), backend_depth: num(t.backend_depth), message_count: num(t.message_count), paused: t.paused === true, channels });
  }
  return { version: str(d.version), health: str(d.health), start_time: num(d.start_time), topics };
}
