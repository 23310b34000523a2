// /stats in nsqd's two shapes: the JSON document (nsqd's field names, so nsqadmin and
// nsq_stat can read it) and the plain-text summary nsqd prints by default.

import type { Engine } from '../engine/engine';
import type { HttpConsumerStats } from '../../wire/nsqd-stats';

export interface ShardIdentity {
  version: string;
  broadcast_address: string;
  hostname: string;
  http_port: number;
  tcp_port: number;
  start_time: number;
  /** Sluice's extension: present only on our shards, so a gateway can tell them from a stock nsqd. */
  sluice: { version: string; lease_api: string };
}

export interface StatsOptions {
  topic: string;
  channel: string;
  includeClients: boolean;
  includeMem: boolean;
}

const NO_LATENCY = { count: 0, percentiles: null };

export interface StatsDocument {
  version: string;
  health: string;
  start_time: number;
  topics: Record<string, unknown>[];
  memory?: Record<string, number>;
  producers: Record<string, unknown>[];
}

/** A channel's HTTP consumers as the gateways reported them (none when not given). */
export type HttpConsumersOf = (topic: string, channel: string) => HttpConsumerStats[];

export function nsqdStats(engine: Engine, id: ShardIdentity, health: string, o: StatsOptions, producers: Record<string, unknown>[], httpConsumers: HttpConsumersOf = () => []): StatsDocument {
  const topics: Record<string, unknown>[] = [];
  const names = [...engine.topics.keys()].sort();
  for (const name of names) {
    if (o.topic && name !== o.topic) continue;
    const t = engine.topics.get(name)!;
    const ts = t.stats(o.topic && o.channel ? o.channel : undefined);
    const channels = ts.channels
      .sort((a, b) => a.channel_name.localeCompare(b.channel_name))
      .map((cs) => {
        const clients = o.includeClients ? t.channels.get(cs.channel_name)!.clientStats() : [];
        // One entry per gateway, listed even without include_clients: the count alone cannot be
        // summed over shards, since a gateway reports the same consumers to every shard of the topic.
        const http = httpConsumers(name, cs.channel_name);
        const http_consumer_count = http.reduce((n, e) => n + e.streams + e.long_polls, 0);
        return { ...cs, clients, http_consumers: http, http_consumer_count, e2e_processing_latency: NO_LATENCY };
      });
    topics.push({ ...ts, channels, e2e_processing_latency: NO_LATENCY });
  }
  const doc: StatsDocument = { version: id.version, health, start_time: id.start_time, topics, producers: o.includeClients ? producers : [] };
  if (o.includeMem) {
    const m = process.memoryUsage();
    doc.memory = {
      heap_objects: 0,
      heap_idle_bytes: Math.max(0, m.heapTotal - m.heapUsed),
      heap_in_use_bytes: m.heapUsed,
      heap_released_bytes: 0,
      gc_pause_usec_100: 0,
      gc_pause_usec_99: 0,
      gc_pause_usec_95: 0,
      next_gc_bytes: m.heapTotal,
      gc_total_runs: 0,
      rss_bytes: m.rss,
    };
  }
  return doc;
}

function pad(v: string | number, n: number): string {
  return String(v).padEnd(n);
}

function uptime(startSec: number): string {
  let s = Math.max(0, Math.floor(Date.now() / 1000 - startSec));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}

/** The plain-text /stats answer, laid out like nsqd's. */
export function statsText(doc: StatsDocument): string {
  const lines = [`nsqd v${doc.version} (sluice)`, `start_time ${new Date(doc.start_time * 1000).toISOString()}`, `uptime ${uptime(doc.start_time)}`];
  if (doc.topics.length === 0) return lines.join('\n') + '\n\nNO_TOPICS\n';
  lines.push('', `Health: ${doc.health}`);
  for (const t of doc.topics as Array<Record<string, never>>) {
    lines.push('');
    lines.push(`${t.paused ? '*P ' : '   '}[${pad(t.topic_name, 15)}] depth: ${pad(t.depth, 5)} be-depth: ${pad(t.backend_depth, 5)} msgs: ${pad(t.message_count, 8)} e2e%: `);
    for (const c of t.channels as Array<Record<string, never>>) {
      lines.push(
        `${c.paused ? '   *P ' : '      '}[${pad(c.channel_name, 25)}] depth: ${pad(c.depth, 5)} be-depth: ${pad(c.backend_depth, 5)} inflt: ${pad(c.in_flight_count, 4)} def: ${pad(c.deferred_count, 4)} re-q: ${pad(c.requeue_count, 5)} timeout: ${pad(c.timeout_count, 5)} msgs: ${pad(c.message_count, 8)} e2e%: `,
      );
      for (const g of (c.http_consumers ?? []) as Array<Record<string, never>>) {
        lines.push(`        [http ${pad(`${g.gateway_id}`, 21)}] streams: ${pad(g.streams, 4)} long-polls: ${pad(g.long_polls, 4)} inflt: ${pad(g.in_flight, 4)} held: ${g.held}`);
      }
      for (const cl of c.clients as Array<Record<string, never>>) {
        lines.push(
          `        [${cl.version} ${pad(`${cl.hostname}:${String(cl.remote_address).split(':').pop()}`, 21)}] state: ${cl.state} inflt: ${pad(cl.in_flight_count, 4)} rdy: ${pad(cl.ready_count, 4)} fin: ${pad(cl.finish_count, 8)} re-q: ${pad(cl.requeue_count, 8)} msgs: ${pad(cl.message_count, 8)} connected: ${uptime(Math.floor(Number(cl.connect_ts)))}`,
        );
      }
    }
  }
  return lines.join('\n') + '\n';
}
