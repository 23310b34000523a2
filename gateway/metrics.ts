// Prometheus /metrics for a gateway (prom-client, one registry per gateway): everything is read
// from running totals at scrape time, so publishing pays nothing for it beyond adding to them.

import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { totalCounter } from '../runtime/metrics';
import { HttpRequestCounts, registerHttpMetrics } from './http-metrics';
import type { Publisher } from './publish';
import type { BreakerState } from './shards';
import type { Topology } from './topology';

export interface MetricsSources {
  publisher: Publisher;
  topology: Topology;
  breakerState(address: string): BreakerState;
  /** Requests per route, method and status, and their latency (counted by app.ts's hook). */
  requests: HttpRequestCounts;
}

export function createGatewayMetrics(s: MetricsSources, processMetrics = true): Registry {
  const registry = new Registry();
  if (processMetrics) collectDefaultMetrics({ register: registry, prefix: 'sluice_gateway_' });
  registerHttpMetrics(registry, s.requests);
  const c = s.publisher.counts;
  totalCounter(registry, 'sluice_gateway_published_messages_total', 'Messages a shard acknowledged through this gateway (duplicates included)', () => c.published);
  totalCounter(registry, 'sluice_gateway_shard_calls_total', 'Publish calls to shards (coalesced single publishes share one)', () => c.shardCalls);
  totalCounter(registry, 'sluice_gateway_shard_call_failures_total', 'Shard calls that failed for a reason other than a 4xx (their messages went to another shard)', () => c.shardCallFailures);
  totalCounter(registry, 'sluice_gateway_ambiguous_failures_total', 'Failed shard calls that may have stored their messages first (a retry may have duplicated them)', () => c.ambiguousFailures);
  new Gauge({
    name: 'sluice_gateway_pending_publishes',
    help: 'Single publishes waiting for a shard call',
    registers: [registry],
    collect() {
      this.set(s.publisher.pendingCount);
    },
  });
  new Gauge({
    name: 'sluice_gateway_shard_breaker_open',
    help: '1 when the shard’s circuit breaker is open, 0.5 half-open, 0 closed',
    labelNames: ['shard'],
    registers: [registry],
    collect() {
      this.reset();
      for (const n of s.topology.nodes()) {
        const st = s.breakerState(n);
        this.set({ shard: n }, st === 'open' ? 1 : st === 'half_open' ? 0.5 : 0);
      }
    },
  });
  new Gauge({
    name: 'sluice_gateway_lookup_up',
    help: '1 when the lookup’s last poll succeeded',
    labelNames: ['lookup'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [l, ok] of Object.entries(s.topology.lookups())) this.set({ lookup: l }, ok ? 1 : 0);
    },
  });
  return registry;
}
