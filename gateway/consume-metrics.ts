// Prometheus metrics of the consuming side, read from running totals at scrape time (nothing on
// the delivery path): what was handed out, settled, given back; streams and groups open; and per
// shard how many pull-many long-polls were made — the figure that shows the gateway↔shard work
// grows with messages and demand changes, not with idle subscribers.

import { Counter, Gauge, Registry } from 'prom-client';
import { totalCounter } from '../runtime/metrics';
import type { Consumption } from './consume';


export function registerConsumeMetrics(registry: Registry, c: Consumption): void {
  totalCounter(registry, 'sluice_gateway_consume_delivered_messages_total', 'Messages handed to HTTP consumers (long-poll answers and SSE events), each with a receipt', () => c.counts.delivered);
  totalCounter(registry, 'sluice_gateway_consume_settled_total', 'Receipts acked, requeued or touched successfully through this gateway', () => c.counts.settled);
  totalCounter(registry, 'sluice_gateway_consume_released_messages_total', 'Leased messages nobody here took in time, given back to their shard (not counted as an attempt)', () => c.counts.released);
  totalCounter(registry, 'sluice_gateway_consume_requeued_on_close_total', 'Unacked messages requeued at once because their SSE stream closed', () => c.counts.requeuedOnClose);
  totalCounter(registry, 'sluice_gateway_consume_settle_calls_total', 'Settle calls to shards (coalesced: many receipts share one call)', () => c.settler.counts.calls);
  new Gauge({
    name: 'sluice_gateway_consume_streams',
    help: 'SSE streams open',
    registers: [registry],
    collect() {
      this.set(c.subscriptionCount);
    },
  });
  new Gauge({
    name: 'sluice_gateway_consume_groups',
    help: 'Channels (per lease length) with local subscribers or recently used',
    registers: [registry],
    collect() {
      this.set(c.groupCount);
    },
  });
  const perShard = (name: string, help: string, key: 'polls' | 'restarts' | 'failures' | 'messages') => {
    const last = new Map<string, number>();
    new Counter({
      name,
      help,
      labelNames: ['shard'],
      registers: [registry],
      collect() {
        for (const [shard, h] of Object.entries(c.hubCounts())) {
          const d = h[key] - (last.get(shard) ?? 0);
          if (d > 0) this.inc({ shard }, d);
          last.set(shard, h[key]);
        }
      },
    });
  };
  perShard('sluice_gateway_consume_shard_polls_total', 'pull-many long-polls made to the shard (at most one outstanding per shard)', 'polls');
  perShard('sluice_gateway_consume_shard_poll_restarts_total', 'Outstanding long-polls cut short because a channel it did not cover got demand', 'restarts');
  perShard('sluice_gateway_consume_shard_poll_failures_total', 'Long-polls to the shard that failed (retried with backoff)', 'failures');
  perShard('sluice_gateway_consume_shard_messages_total', 'Messages leased from the shard', 'messages');
}
