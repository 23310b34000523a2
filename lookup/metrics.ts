// Prometheus /metrics for a lookup: what it knows (nodes, topics, channels, tombstones), read from
// the registry at scrape time, plus process metrics.

import { collectDefaultMetrics, Gauge, Registry as PromRegistry } from 'prom-client';
import type { Registry } from './registry';

export function createLookupMetrics(registry: Registry): PromRegistry {
  const prom = new PromRegistry();
  collectDefaultMetrics({ register: prom, prefix: 'sluice_lookup_' });
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [prom],
      collect() {
        this.set(read());
      },
    });
  gauge('sluice_lookup_nodes', 'Shards (nodes) registered and not inactive', () => registry.nodes().length);
  gauge('sluice_lookup_topics', 'Topics known to this lookup', () => registry.topics().length);
  gauge('sluice_lookup_channels', 'Channels known to this lookup, over all topics', () =>
    registry.topics().reduce((n, t) => n + registry.channels(t).length, 0),
  );
  gauge('sluice_lookup_tombstones', 'Node/topic pairs currently tombstoned', () =>
    registry.nodes().reduce((n, v) => n + v.tombstones.filter(Boolean).length, 0),
  );
  return prom;
}
