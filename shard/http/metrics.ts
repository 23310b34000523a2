// Prometheus /metrics for a shard (prom-client): topic and channel gauges read from the engine at
// scrape time, counters derived from the engine's running totals, end-to-end latency, process.

import { collectDefaultMetrics, Counter, Gauge, Metric, Registry } from 'prom-client';
import { LATENCY_BUCKETS_S } from '../engine/latency';
import type { Channel, ChannelStats } from '../engine/channel';
import type { Engine } from '../engine/engine';
import type { Topic } from '../engine/topic';
import type { Router } from './router';

type ChannelLabels = 'topic' | 'channel';

/** Increments a counter to match a running total that may restart (a channel deleted and re-created). */
function follow(counter: Counter<string>, last: Map<string, number>, key: string, labels: Record<string, string>, total: number): void {
  const prev = last.get(key) ?? 0;
  const delta = total >= prev ? total - prev : total;
  if (delta > 0) counter.inc(labels, delta);
  last.set(key, total);
}

/** HTTP consumers as the gateways reported them for a channel (shard/http/http-consumers.ts). */
export type HttpConsumersOfChannel = (topic: string, channel: string) => readonly { streams: number; long_polls: number }[];

export function createShardMetrics(engine: Engine, httpConsumers: HttpConsumersOfChannel = () => []): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'sluice_shard_' });

  const topicGauge = (name: string, help: string, read: (t: Topic) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['topic'],
      registers: [registry],
      collect() {
        this.reset();
        for (const t of engine.topics.values()) this.set({ topic: t.name }, read(t));
      },
    });
  topicGauge('sluice_topic_depth', 'Messages waiting in the topic itself (no channel yet, or paused)', (t) => t.depth());
  topicGauge('sluice_topic_paused', '1 when the topic is paused', (t) => (t.paused ? 1 : 0));

  const channelGauge = (name: string, help: string, read: (topic: string, ch: Channel) => number) =>
    new Gauge<ChannelLabels>({
      name,
      help,
      labelNames: ['topic', 'channel'],
      registers: [registry],
      collect() {
        this.reset();
        for (const t of engine.topics.values()) for (const ch of t.channels.values()) this.set({ topic: t.name, channel: ch.name }, read(t.name, ch));
      },
    });
  const statGauges: [string, string, (s: ChannelStats) => number][] = [
    ['sluice_channel_depth', 'Messages ready for delivery (memory and disk)', (s) => s.depth],
    ['sluice_channel_backend_depth', 'Messages ready for delivery that are on disk', (s) => s.backend_depth],
    ['sluice_channel_in_flight', 'Messages delivered and not yet finished', (s) => s.in_flight_count],
    ['sluice_channel_deferred', 'Messages waiting for their delay to pass', (s) => s.deferred_count],
    ['sluice_channel_clients', 'TCP consumers of the channel', (s) => s.client_count],
    ['sluice_channel_paused', '1 when the channel is paused', (s) => (s.paused ? 1 : 0)],
  ];
  for (const [name, help, read] of statGauges) channelGauge(name, help, (_, ch) => read(ch.stats()));
  // What the gateways last reported for each channel (summed over gateways; expired reports are gone).
  const reported = (topic: string, ch: Channel, key: 'streams' | 'long_polls') => httpConsumers(topic, ch.name).reduce((a, c) => a + c[key], 0);
  channelGauge('sluice_channel_http_streams', 'SSE streams open on the channel through gateways (as they last reported)', (t, ch) => reported(t, ch, 'streams'));
  channelGauge('sluice_channel_http_long_polls', 'Long-polls waiting on the channel in gateways (as they last reported)', (t, ch) => reported(t, ch, 'long_polls'));

  // Counters follow the engine's running totals, brought up to date as each is scraped.
  const seen = new Map<string, number>();
  new Counter({
    name: 'sluice_topic_messages_total',
    help: 'Messages published to the topic',
    labelNames: ['topic'],
    registers: [registry],
    collect() {
      for (const t of engine.topics.values()) follow(this, seen, `m ${t.name}`, { topic: t.name }, t.messageCount);
    },
  });
  const channelTotals: [string, string, (s: ChannelStats) => number][] = [
    ['sluice_channel_messages_total', 'Messages that reached the channel', (s) => s.message_count],
    ['sluice_channel_requeued_total', 'Messages requeued by consumers', (s) => s.requeue_count],
    ['sluice_channel_timed_out_total', 'In-flight messages that timed out', (s) => s.timeout_count],
  ];
  for (const [name, help, read] of channelTotals) {
    new Counter<ChannelLabels>({
      name,
      help,
      labelNames: ['topic', 'channel'],
      registers: [registry],
      collect() {
        for (const t of engine.topics.values())
          for (const ch of t.channels.values()) follow(this, seen, `${name} ${t.name}:${ch.name}`, { topic: t.name, channel: ch.name }, read(ch.stats()));
      },
    });
  }

  // Each channel counts its own latency buckets (cheap per FIN); they are read out when scraped.
  const latencyName = 'sluice_message_e2e_latency_seconds';
  const latencyMetric = {
    name: latencyName,
    help: 'Time from publish to finish',
    type: 'histogram',
    reset() {},
    async get() {
      const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
      for (const t of engine.topics.values()) {
        for (const ch of t.channels.values()) {
          const h = ch.latency;
          const labels = { topic: t.name, channel: ch.name };
          h.cumulative().forEach((value, i) => {
            const le = i < LATENCY_BUCKETS_S.length ? LATENCY_BUCKETS_S[i] : '+Inf';
            values.push({ metricName: `${latencyName}_bucket`, labels: { ...labels, le }, value });
          });
          values.push({ metricName: `${latencyName}_sum`, labels, value: h.sum });
          values.push({ metricName: `${latencyName}_count`, labels, value: h.count });
        }
      }
      return { name: latencyName, help: this.help, type: this.type, values, aggregator: 'sum' };
    },
  };
  registry.registerMetric(latencyMetric as unknown as Metric);
  return registry;
}

export function registerMetricsRoute(router: Router, registry: Registry): void {
  router.on('GET', '/metrics', async (r) => {
    const text = await registry.metrics();
    r.res.writeHead(200, { 'Content-Type': registry.contentType, 'Content-Length': Buffer.byteLength(text) });
    r.res.end(text);
    return null;
  });
}
