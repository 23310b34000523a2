// The admin's pure core: nsqd /stats documents checked and merged per topic and channel across
// shards, rates from counter deltas (a counter that restarts is not a negative rate), and the
// chart history trimmed to its window.

import { aggregate, History, Rates, ShardResult } from '../../gateway/admin/stats';
import { parseStats } from '../../wire/nsqd-stats';

function shardDoc(topics: { name: string; depth: number; count: number; channels?: { name: string; depth: number; count: number; paused?: boolean; inFlight?: number }[] }[]): unknown {
  return {
    version: '1.3.0',
    health: 'OK',
    start_time: 1,
    topics: topics.map((t) => ({
      topic_name: t.name,
      depth: t.depth,
      backend_depth: 0,
      message_count: t.count,
      paused: false,
      channels: (t.channels ?? []).map((c) => ({ channel_name: c.name, depth: c.depth, backend_depth: 0, in_flight_count: c.inFlight ?? 0, deferred_count: 0, message_count: c.count, requeue_count: 0, timeout_count: 0, client_count: 0, clients: [], paused: c.paused ?? false })),
    })),
  };
}

const ok = (address: string, doc: unknown): ShardResult => ({ address, stats: parseStats(doc), breaker: 'closed', ms: 1 });

describe('admin stats', () => {
  it('merges topics and channels over shards, keeping each shard’s row', () => {
    const s = aggregate(
      [
        ok('b:2', shardDoc([{ name: 'orders', depth: 1, count: 10, channels: [{ name: 'billing', depth: 3, count: 9, paused: true, inFlight: 2 }] }])),
        ok('a:1', shardDoc([{ name: 'orders', depth: 2, count: 5, channels: [{ name: 'billing', depth: 4, count: 5 }, { name: 'audit', depth: 1, count: 5 }] }, { name: 'events', depth: 7, count: 7 }])),
        { address: 'c:3', stats: null, error: 'TIMEOUT', breaker: 'closed', ms: 1500 },
      ],
      1000,
    );
    expect(s.topics.map((t) => t.name)).toEqual(['events', 'orders']);
    const orders = s.topics[1];
    expect(orders).toMatchObject({ depth: 3, message_count: 15, total_depth: 3 + 7 + 1, in_flight_count: 2 });
    expect(orders.channels.map((c) => c.name)).toEqual(['audit', 'billing']);
    const billing = orders.channels[1];
    expect(billing).toMatchObject({ depth: 7, message_count: 14, paused: false, paused_shards: ['b:2'] });
    expect(billing.shards.map((r) => [r.shard, r.depth, r.paused])).toEqual([['b:2', 3, true], ['a:1', 4, false]]);
    expect(s.shards.map((x) => [x.address, x.ok, x.error])).toEqual([['a:1', true, undefined], ['b:2', true, undefined], ['c:3', false, 'TIMEOUT']]);
  });

  it('reads malformed fields as zero and refuses a document without topics', () => {
    expect(() => parseStats({ version: 'x' })).toThrow();
    const st = parseStats({ topics: [{ topic_name: 't', depth: 'lots', channels: [{ channel_name: 'c', depth: null }, { nope: 1 }] }, { depth: 3 }] });
    expect(st.topics).toHaveLength(1);
    expect(st.topics[0].depth).toBe(0);
    expect(st.topics[0].channels).toEqual([expect.objectContaining({ channel_name: 'c', depth: 0, paused: false })]);
  });

  it('merges HTTP consumers per gateway over shards (the freshest report wins, never summed) and reads a stock nsqd as having none', () => {
    const withHttp = (entries: unknown[], clients = 0) => {
      const doc = shardDoc([{ name: 'orders', depth: 0, count: 0, channels: [{ name: 'billing', depth: 0, count: 0 }] }]) as { topics: { channels: Record<string, unknown>[] }[] };
      Object.assign(doc.topics[0].channels[0], { http_consumers: entries, client_count: clients });
      return doc;
    };
    const a = { gateway_id: 'gw-a', gateway_address: '127.0.0.1:1', streams: 2, long_polls: 0, in_flight: 3, held: 0, age_ms: 900 };
    const aFresh = { ...a, streams: 1, in_flight: 1, age_ms: 100 };
    const b = { gateway_id: 'gw-b', gateway_address: '127.0.0.1:2', streams: 0, long_polls: 4, in_flight: 0, held: 2, age_ms: 50 };
    const s = aggregate([ok('s1:1', withHttp([a, b], 1)), ok('s2:1', withHttp([aFresh])), ok('s3:1', shardDoc([{ name: 'orders', depth: 0, count: 0, channels: [{ name: 'billing', depth: 0, count: 0 }] }]))], 0);
    const c = s.topics[0].channels[0];
    expect(c.http_consumers).toEqual([
      { gateway_id: 'gw-a', gateway_address: '127.0.0.1:1', streams: 1, long_polls: 0, in_flight: 1, held: 0, age_ms: 100, shards: ['s1:1', 's2:1'] },
      { gateway_id: 'gw-b', gateway_address: '127.0.0.1:2', streams: 0, long_polls: 4, in_flight: 0, held: 2, age_ms: 50, shards: ['s1:1'] },
    ]);
    expect(c.http_consumer_count).toBe(5); // gw-a's 1 stream once, gw-b's 4 long-polls
    expect(c.client_count).toBe(1);
    expect(c.shards.map((r) => [r.shard, r.http_consumer_count])).toEqual([['s1:1', 6], ['s2:1', 1], ['s3:1', 0]]);
    // malformed entries are skipped, malformed numbers read as 0
    const st = parseStats(withHttp([{ gateway_id: 7 }, { gateway_id: 'x', streams: 'many', long_polls: 2 }, null]));
    expect(st.topics[0].channels[0].http_consumers).toEqual([{ gateway_id: 'x', gateway_address: '', streams: 0, long_polls: 2, in_flight: 0, held: 0, age_ms: 0 }]);
    expect(st.topics[0].channels[0].http_consumer_count).toBe(2);
  });

  it('computes rates per shard from count deltas; a counter that went down starts afresh', () => {
    const rates = new Rates();
    const snap = (c1: number, c2: number) => aggregate([ok('a:1', shardDoc([{ name: 't', depth: 0, count: c1 }])), ok('b:2', shardDoc([{ name: 't', depth: 0, count: c2 }]))], 0);
    const first = snap(100, 50);
    rates.apply(first, 0);
    expect(first.topics[0].rate).toBeNull();
    const second = snap(120, 60);
    rates.apply(second, 2000);
    expect(second.topics[0].rate).toBe(15); // (20 + 10) / 2 s
    const third = snap(4, 70); // shard a restarted: its 4 messages count, not -116
    rates.apply(third, 4000);
    expect(third.topics[0].rate).toBe(7);
  });

  it('keeps history for its window and drops series of topics that are gone', () => {
    const hist = new History(10_000);
    const at = (t: number, topics: string[]) => {
      const s = aggregate([ok('a:1', shardDoc(topics.map((name) => ({ name, depth: t / 1000, count: 0, channels: [{ name: 'c', depth: 1, count: 0 }] }))))], t);
      hist.record(s);
    };
    at(0, ['x', 'y']);
    at(5000, ['x', 'y']);
    at(12_000, ['x']);
    expect(hist.topics.get('x')!.map((p) => p[0])).toEqual([5000, 12_000]);
    expect(hist.topics.get('y')!.map((p) => p[0])).toEqual([0, 5000]);
    expect(hist.channels.has('x/c')).toBe(true);
    at(16_000, ['x']);
    expect(hist.topics.has('y')).toBe(false);
    expect(hist.channels.has('y/c')).toBe(false);
    expect(Object.keys(hist.toJSON().topics)).toEqual(['x']);
  });
});
