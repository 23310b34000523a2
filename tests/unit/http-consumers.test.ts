// The shard's registry of the gateways' HTTP consumers, on a fake clock: full reports replace,
// deltas apply only on the version the shard holds, heartbeats keep entries alive, entries expire
// after their TTL, an empty report clears at once, deleted channels and topics drop their entries;
// and the report's validation names the field at fault.

import { HttpConsumerRegistry, MAX_ENTRIES, MAX_GATEWAYS } from '../../shard/http/http-consumers';
import { ConsumerReport, isProblem, parseConsumerReport, ReportedChannel, ReportProblem } from '../../wire/consumer-report';

const gw = (id: string) => ({ id, address: `127.0.0.1:${id.length + 4000}` });
const ch = (channel: string, streams: number, long_polls = 0, in_flight = 0, topic = 'orders'): ReportedChannel => ({ topic, channel, streams, long_polls, in_flight, held: 0 });

function setup() {
  let t = 1000;
  const reg = new HttpConsumerRegistry(() => t);
  return { reg, advance: (ms: number) => (t += ms) };
}

function full(id: string, version: number, channels: ReportedChannel[], ttl_ms = 3000): ConsumerReport {
  return { gateway: gw(id), ttl_ms, version, channels };
}

function delta(id: string, base: number, version: number, changes: ReportedChannel[], ttl_ms = 3000): ConsumerReport {
  return { gateway: gw(id), ttl_ms, version, base, changes };
}

describe('HttpConsumerRegistry', () => {
  it('lists a full report per channel, one entry per gateway, sorted by gateway id', () => {
    const { reg, advance } = setup();
    expect(reg.apply(full('gw-b', 1, [ch('billing', 2, 1, 5)]))).toBe('OK');
    expect(reg.apply(full('gw-a', 7, [ch('billing', 0, 3), ch('audit', 1)]))).toBe('OK');
    advance(250);
    expect(reg.channel('orders', 'billing')).toEqual([
      { gateway_id: 'gw-a', gateway_address: '127.0.0.1:4004', streams: 0, long_polls: 3, in_flight: 0, held: 0, age_ms: 250 },
      { gateway_id: 'gw-b', gateway_address: '127.0.0.1:4004', streams: 2, long_polls: 1, in_flight: 5, held: 0, age_ms: 250 },
    ]);
    expect(reg.channel('orders', 'audit').map((e) => e.gateway_id)).toEqual(['gw-a']);
    expect(reg.channel('orders', 'nobody')).toEqual([]);
    expect(reg.channel('other', 'billing')).toEqual([]);
  });

  it('replaces what it held for a gateway on each full report', () => {
    const { reg } = setup();
    reg.apply(full('gw', 1, [ch('billing', 2), ch('audit', 1)]));
    reg.apply(full('gw', 2, [ch('billing', 5)]));
    expect(reg.channel('orders', 'billing').map((e) => e.streams)).toEqual([5]);
    expect(reg.channel('orders', 'audit')).toEqual([]);
  });

  it('applies a delta only on the version it holds; all-zero counts remove a channel', () => {
    const { reg } = setup();
    reg.apply(full('gw', 10, [ch('billing', 2), ch('audit', 1)]));
    expect(reg.apply(delta('gw', 10, 11, [ch('billing', 3, 1), ch('audit', 0)]))).toBe('OK');
    expect(reg.channel('orders', 'billing').map((e) => [e.streams, e.long_polls])).toEqual([[3, 1]]);
    expect(reg.channel('orders', 'audit')).toEqual([]);
    // a stale base (a lost answer, a restarted shard) is refused, and nothing changes
    expect(reg.apply(delta('gw', 10, 12, [ch('billing', 9)]))).toBe('REPORT_UNKNOWN');
    expect(reg.apply(delta('unknown', 1, 1, []))).toBe('REPORT_UNKNOWN');
    expect(reg.channel('orders', 'billing').map((e) => e.streams)).toEqual([3]);
  });

  it('keeps entries for ttl_ms after the last report or heartbeat, then drops them', () => {
    const { reg, advance } = setup();
    reg.apply(full('gw', 1, [ch('billing', 1)], 3000));
    advance(2500);
    expect(reg.channel('orders', 'billing')).toHaveLength(1);
    // the heartbeat: an empty delta on the version held
    expect(reg.apply(delta('gw', 1, 1, [], 3000))).toBe('OK');
    advance(2500);
    expect(reg.channel('orders', 'billing')).toHaveLength(1);
    advance(500);
    expect(reg.channel('orders', 'billing')).toEqual([]);
    expect(reg.gatewayCount).toBe(0);
    // expired: a delta is refused, so the gateway resends in full
    expect(reg.apply(delta('gw', 1, 1, []))).toBe('REPORT_UNKNOWN');
  });

  it('forgets a gateway at once on an empty full report', () => {
    const { reg } = setup();
    reg.apply(full('gw', 1, [ch('billing', 1)]));
    reg.apply(full('other', 1, [ch('billing', 1)]));
    expect(reg.apply(full('gw', 2, []))).toBe('OK');
    expect(reg.channel('orders', 'billing').map((e) => e.gateway_id)).toEqual(['other']);
    expect(reg.gatewayCount).toBe(1);
    expect(reg.apply(delta('gw', 2, 2, []))).toBe('REPORT_UNKNOWN');
  });

  it('drops a deleted channel’s or topic’s entries, and asks the gateway for a full report next', () => {
    const { reg } = setup();
    reg.apply(full('gw', 1, [ch('billing', 1), ch('audit', 2), ch('x', 1, 0, 0, 'events')]));
    reg.channelDeleted('orders', 'billing');
    expect(reg.channel('orders', 'billing')).toEqual([]);
    expect(reg.channel('orders', 'audit')).toHaveLength(1);
    expect(reg.apply(delta('gw', 1, 2, [ch('audit', 3)]))).toBe('REPORT_UNKNOWN');
    expect(reg.apply(full('gw', 2, [ch('audit', 3), ch('x', 1, 0, 0, 'events')]))).toBe('OK');
    reg.topicDeleted('orders');
    expect(reg.channel('orders', 'audit')).toEqual([]);
    expect(reg.channel('events', 'x')).toHaveLength(1);
  });

  it('refuses new gateways beyond its bound, but still takes reports from the ones it holds', () => {
    const { reg } = setup();
    for (let i = 0; i < MAX_GATEWAYS; i++) expect(reg.apply(full(`gw${i}`, 1, [ch('billing', 1)]))).toBe('OK');
    expect(reg.apply(full('one-too-many', 1, [ch('billing', 1)]))).toBe('TOO_MANY_GATEWAYS');
    expect(reg.apply(full('gw0', 2, [ch('billing', 4)]))).toBe('OK');
    expect(reg.channel('orders', 'billing')).toHaveLength(MAX_GATEWAYS);
  });
  it('refuses a report that would take it past MAX_ENTRIES channel entries, changing nothing, and counts removals back', () => {
    const { reg } = setup();
    const many = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ch(`${prefix}${i}`, 1));
    const per = 40_000; // under one report's 50,000-channel limit
    const gateways = MAX_ENTRIES / per;
    for (let i = 0; i < gateways; i++) expect(reg.apply(full(`gw${i}`, 1, many('c', per)))).toBe('OK');
    // full: one channel more anywhere is refused, and the table is as it was
    expect(reg.apply(full('extra', 1, [ch('x', 1)]))).toBe('TOO_MANY_ENTRIES');
    expect(reg.channel('orders', 'x')).toEqual([]);
    expect(reg.apply(full('gw0', 2, many('c', per + 1)))).toBe('TOO_MANY_ENTRIES');
    expect(reg.channel('orders', 'c0')).toHaveLength(gateways);
    // a gateway may replace its own report with one of the same size, or shrink it…
    expect(reg.apply(full('gw0', 3, many('d', per)))).toBe('OK');
    expect(reg.apply(full('gw1', 2, many('c', 10)))).toBe('OK');
    // …and what it gave up is free for others again
    expect(reg.apply(full('extra', 1, [ch('x', 1)]))).toBe('OK');
    expect(reg.channel('orders', 'x')).toHaveLength(1);
  });
});

describe('parseConsumerReport', () => {
  const good = { gateway: { id: 'host:4180', address: '127.0.0.1:4180' }, ttl_ms: 15000, version: 3, channels: [{ topic: 'orders', channel: 'billing', streams: 1, long_polls: 2, in_flight: 3, held: 4 }] };
  const problem = (doc: unknown): ReportProblem => {
    const r = parseConsumerReport(doc);
    if (!isProblem(r)) throw new Error(`accepted: ${JSON.stringify(doc)}`);
    return r;
  };

  it('accepts a full report and a delta', () => {
    expect(parseConsumerReport(good)).toEqual(good);
    const d = { gateway: good.gateway, ttl_ms: 1000, version: 4, base: 3, changes: [] };
    expect(parseConsumerReport(d)).toEqual(d);
    // a missing `held` reads as 0; unknown fields are ignored
    const r = parseConsumerReport({ ...good, extra: true, channels: [{ topic: 'a', channel: 'b#ephemeral', streams: 0, long_polls: 1, in_flight: 0 }] });
    expect(isProblem(r) ? r : (r as { channels: ReportedChannel[] }).channels).toEqual([{ topic: 'a', channel: 'b#ephemeral', streams: 0, long_polls: 1, in_flight: 0, held: 0 }]);
  });

  const bad: [unknown, string][] = [
    [null, ''],
    [[], ''],
    [{ ...good, gateway: 'x' }, 'gateway'],
    [{ ...good, gateway: { id: '', address: '' } }, 'gateway.id'],
    [{ ...good, gateway: { id: 'has space', address: '' } }, 'gateway.id'],
    [{ ...good, gateway: { id: 'x'.repeat(129), address: '' } }, 'gateway.id'],
    [{ ...good, gateway: { id: 'ok' } }, 'gateway.address'],
    [{ ...good, ttl_ms: 50 }, 'ttl_ms'],
    [{ ...good, ttl_ms: '15000' }, 'ttl_ms'],
    [{ ...good, ttl_ms: 10 * 60_000 + 1 }, 'ttl_ms'],
    [{ ...good, version: -1 }, 'version'],
    [{ ...good, version: 1.5 }, 'version'],
    [{ ...good, channels: {} }, 'channels'],
    [{ ...good, base: 2, changes: [] }, 'channels'],
    [{ gateway: good.gateway, ttl_ms: 1000, version: 1 }, 'channels'],
    [{ gateway: good.gateway, ttl_ms: 1000, version: 1, changes: [] }, 'base'],
    [{ ...good, channels: [7] }, 'channels[0]'],
    [{ ...good, channels: [{ ...good.channels[0], topic: 'bad name' }] }, 'channels[0].topic'],
    [{ ...good, channels: [{ ...good.channels[0], channel: 'x'.repeat(65) }] }, 'channels[0].channel'],
    [{ ...good, channels: [good.channels[0], { ...good.channels[0], streams: -1 }] }, 'channels[1].streams'],
    [{ ...good, channels: [{ ...good.channels[0], long_polls: null }] }, 'channels[0].long_polls'],
    [{ ...good, channels: [{ ...good.channels[0], in_flight: '3' }] }, 'channels[0].in_flight'],
    [{ ...good, channels: [good.channels[0], good.channels[0]] }, 'channels[1]'],
  ];
  it.each(bad.map(([doc, field]) => [field, doc] as const))('refuses a report, naming the field %j (case %#)', (field, doc) => {
    const p = problem(doc);
    expect(p.field).toBe(field);
    expect(p.detail.length).toBeGreaterThan(3);
  });

  it('bounds the number of channels', () => {
    const channels = Array.from({ length: 50_001 }, (_, i) => ({ topic: 't', channel: `c${i}`, streams: 1, long_polls: 0, in_flight: 0 }));
    expect(problem({ ...good, channels }).field).toBe('channels');
  });
});
