// The admin aggregator against fake shards on ephemeral ports: every viewer shares one poll loop
// (shard calls do not grow with viewers), a shard that never answers costs one deadline and is
// reported as TIMEOUT, and one whose breaker is open is not called at all. The loop stops when
// nobody watches.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../runtime/logger';
import { Topology } from '../../gateway/topology';
import { Aggregator } from '../../gateway/admin/aggregator';
import { AdminHttp, DEFAULT_ADMIN_HTTP_OPTIONS } from '../../gateway/admin/shard-http';
import { waitFor } from '../helpers/process';

interface Fake {
  address: string;
  statsCalls: number;
  server: http.Server;
}

async function fakeShard(answer: boolean): Promise<Fake> {
  const f: Fake = { address: '', statsCalls: 0, server: http.createServer() };
  f.server.on('request', (req, res) => {
    if (req.url?.startsWith('/stats')) f.statsCalls++;
    if (!answer) return; // hangs until the caller gives up
    const body = JSON.stringify({ version: '1.3.0', health: 'OK', start_time: 1, topics: [{ topic_name: 'orders', depth: 4, backend_depth: 0, message_count: 9, paused: false, channels: [] }], producers: [] });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((r) => f.server.listen(0, '127.0.0.1', r));
  f.address = `127.0.0.1:${(f.server.address() as AddressInfo).port}`;
  return f;
}

describe('admin aggregator', () => {
  const fakes: Fake[] = [];
  const closers: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
    for (const f of fakes.splice(0)) {
      f.server.closeAllConnections();
      await new Promise((r) => f.server.close(r));
    }
  });

  function setup(addresses: string[], publishBreakerOpen: (a: string) => boolean = () => false) {
    const topology = new Topology({ lookups: [], staticShards: addresses, pollIntervalMs: 1000, timeoutMs: 1000 }, silentLogger());
    const adminHttp = new AdminHttp({ ...DEFAULT_ADMIN_HTTP_OPTIONS, timeoutMs: 300 }, silentLogger(), publishBreakerOpen);
    const agg = new Aggregator(topology, adminHttp, { intervalMs: 100, historyMs: 60_000, idleStopMs: 0 }, silentLogger());
    closers.push(() => agg.close(), () => adminHttp.close());
    return agg;
  }

  it('polls each shard once per interval however many viewers watch, and stops when they leave', async () => {
    const shard = await fakeShard(true);
    fakes.push(shard);
    const agg = setup([shard.address]);
    const seen = [0, 0, 0];
    const stops = seen.map((_, i) => agg.watch(() => seen[i]++));
    await waitFor(() => seen.every((n) => n >= 5), 5000, 'five snapshots for every viewer');
    // three viewers, one loop: shard calls track ticks, not ticks × viewers
    expect(shard.statsCalls).toBeLessThanOrEqual(Math.max(...seen) + 1);
    expect(agg.latest?.topics[0]).toMatchObject({ name: 'orders', depth: 4, rate: 0 });
    expect(agg.history.topics.get('orders')!.length).toBeGreaterThanOrEqual(5);
    for (const stop of stops) stop();
    await new Promise((r) => setTimeout(r, 250));
    const after = shard.statsCalls;
    await new Promise((r) => setTimeout(r, 300));
    expect(shard.statsCalls).toBe(after);
  });

  it('reports a shard that never answers as TIMEOUT within the deadline, and skips one whose breaker is open', async () => {
    const good = await fakeShard(true);
    const hung = await fakeShard(false);
    const skipped = await fakeShard(true);
    fakes.push(good, hung, skipped);
    const agg = setup([good.address, hung.address, skipped.address], (a) => a === skipped.address);
    const started = Date.now();
    const s = await agg.collect();
    expect(Date.now() - started).toBeLessThan(1500);
    const byAddress = Object.fromEntries(s.shards.map((x) => [x.address, x]));
    expect(byAddress[good.address]).toMatchObject({ ok: true, health: 'OK' });
    expect(byAddress[hung.address]).toMatchObject({ ok: false, error: 'TIMEOUT' });
    expect(byAddress[skipped.address]).toMatchObject({ ok: false, error: 'BREAKER_OPEN', breaker: 'open' });
    expect(skipped.statsCalls).toBe(0);
    expect(s.topics[0]).toMatchObject({ name: 'orders', depth: 4 });
    expect(s.topics[0].shards).toHaveLength(1);
  });
});
