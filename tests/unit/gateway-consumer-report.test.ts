// The gateway's consumer reports against in-memory shards and a recording sender: counts per
// shard and channel from the real consuming core (SSE streams, long-poll-like waiters, unacked
// messages), a full report first and then deltas (an empty one is the heartbeat), a full resend
// when the shard lost track, one clearing report when consumers are gone and then silence, a
// shard without the route asked only now and then, and the clearing reports sent on close.

import type { ServerResponse } from 'node:http';
import { ConsumerReporter, countConsumers, diffCounts } from '../../gateway/consumer-report';
import { Consumption, DEFAULT_CONSUME_OPTIONS } from '../../gateway/consume';
import type { Lease, Waiter } from '../../gateway/consumers';
import { SseStream } from '../../gateway/sse';
import { Topology } from '../../gateway/topology';
import { silentLogger } from '../../runtime/logger';
import type { ConsumerReport, ReportedChannel } from '../../wire/consumer-report';
import { FakeShard } from '../helpers/fake-lease-client';
import { waitFor } from '../helpers/process';

/** A waiting subscriber that is not a stream (what a long-poll is to the group). */
class PollLike implements Waiter {
  free(): number {
    return 1;
  }
  take(_l: Lease[]): void {}
}

class FakeRes {
  out = '';
  writableEnded = false;
  socket = null;
  private handlers = new Map<string, (() => void)[]>();
  writeHead(): this {
    return this;
  }
  write(s: string): boolean {
    this.out += s;
    return true;
  }
  on(ev: string, f: () => void): this {
    (this.handlers.get(ev) ?? this.handlers.set(ev, []).get(ev)!).push(f);
    return this;
  }
  once(ev: string, f: () => void): this {
    return this.on(ev, f);
  }
  end(): void {
    this.writableEnded = true;
    for (const f of this.handlers.get('close') ?? []) f();
  }
}

let svc: Consumption | undefined;
afterEach(async () => {
  await svc?.close();
  svc = undefined;
});

function setup() {
  const shards = new Map([new FakeShard('s1:1'), new FakeShard('s2:1')].map((s) => [s.address, s]));
  const topology = new Topology({ lookups: [], staticShards: [...shards.keys()], pollIntervalMs: 1000, timeoutMs: 1000 }, silentLogger());
  svc = new Consumption({ ...DEFAULT_CONSUME_OPTIONS, receiptSecrets: ['unit-test-secret-0123456789'] }, { topology, logger: silentLogger(), clientFor: (a) => shards.get(a)! });
  svc.start();
  const sent: { shard: string; report: ConsumerReport }[] = [];
  const answers: number[] = [];
  const known = new Set(shards.keys());
  const c = svc;
  const reporter = new ConsumerReporter(
    { intervalMs: 0, ttlMs: 0, timeoutMs: 1000 },
    {
      groups: () => c.activeGroups(),
      shards: () => [...known],
      identity: () => ({ id: 'gw-test', address: '127.0.0.1:4180' }),
      send: async (shard, body) => {
        sent.push({ shard, report: JSON.parse(body) as ConsumerReport });
        return { status: answers.shift() ?? 200, text: '' };
      },
      logger: silentLogger(),
    },
  );
  const openStream = (topic: string, channel: string) => {
    const res = new FakeRes();
    const stream = new SseStream(c, c.group(topic, channel, 30_000), res as unknown as ServerResponse, 5, 'json');
    stream.open(1000);
    return { res, stream };
  };
  return { svc: c, shards, reporter, sent, answers, known, openStream };
}

const counts = (streams: number, long_polls: number, in_flight = 0, topic = 't', channel = 'c'): ReportedChannel => ({ topic, channel, streams, long_polls, in_flight, held: 0 });

describe('consumer reports', () => {
  it('count streams, waiting long-polls and unacked messages per shard of the topic, channels of several lease lengths added up', async () => {
    const { svc, shards, openStream } = setup();
    const a = openStream('t', 'c');
    const b = openStream('t', 'c');
    shards.get('s1:1')!.publish('t', 'c', 'one');
    shards.get('s2:1')!.publish('t', 'c', 'two');
    await waitFor(() => a.stream.unacked + b.stream.unacked === 2, 5000, 'both messages on the streams');
    // waiting subscribers that are not streams, one in a group of another lease length
    svc.group('t', 'c', 60_000).add(new PollLike());
    svc.group('t', 'other', 30_000).add(new PollLike());
    const per = countConsumers(svc.activeGroups());
    expect([...per.keys()].sort()).toEqual(['s1:1', 's2:1']);
    for (const shard of per.values()) {
      expect(shard.get('t\u0000c')).toEqual(counts(2, 1, 2));
      expect(shard.get('t\u0000other')).toEqual(counts(0, 1, 0, 't', 'other'));
    }
    // a closed stream is no longer counted, nor what it held (requeued on close)
    const held = a.stream.unacked;
    a.res.end();
    await a.stream.close();
    expect(countConsumers(svc.activeGroups()).get('s1:1')!.get('t\u0000c')).toEqual(counts(1, 1, 2 - held));
  });

  it('diffs counts: changed and new entries, removed ones as zeros', () => {
    const before = new Map([['t\u0000a', counts(1, 0, 0, 't', 'a')], ['t\u0000b', counts(2, 0, 0, 't', 'b')]]);
    const now = new Map([['t\u0000a', counts(1, 0, 0, 't', 'a')], ['t\u0000c', counts(0, 3, 0, 't', 'c')]]);
    expect(diffCounts(before, now)).toEqual([counts(0, 3, 0, 't', 'c'), counts(0, 0, 0, 't', 'b')]);
    expect(diffCounts(now, now)).toEqual([]);
  });

  it('sends a full report, then deltas and heartbeats; resends in full when the shard lost track', async () => {
    const { reporter, sent, answers, openStream } = setup();
    await reporter.tick();
    expect(sent).toEqual([]); // no consumers, nothing ever reported: nothing to say
    const s = openStream('t', 'c');
    await reporter.tick();
    expect(sent.map((x) => x.shard).sort()).toEqual(['s1:1', 's2:1']);
    const first = sent.find((x) => x.shard === 's1:1')!.report;
    expect(first).toEqual({ gateway: { id: 'gw-test', address: '127.0.0.1:4180' }, ttl_ms: 1000, version: first.version, channels: [counts(1, 0)] });

    sent.length = 0;
    await reporter.tick();
    const heartbeat = sent.find((x) => x.shard === 's1:1')!.report;
    expect(heartbeat).toEqual({ gateway: first.gateway, ttl_ms: 1000, version: first.version, base: first.version, changes: [] });

    sent.length = 0;
    openStream('t', 'c');
    await reporter.tick();
    const d = sent.find((x) => x.shard === 's1:1')!.report;
    expect(d).toEqual({ gateway: first.gateway, ttl_ms: 1000, version: first.version + 1, base: first.version, changes: [counts(2, 0)] });

    // the shard restarted: 409 on the delta, then a full report in the same round
    sent.length = 0;
    answers.push(409);
    openStream('t', 'c2');
    await reporter.tick();
    const toFirst = sent.filter((x) => x.shard === sent[0].shard).map((x) => x.report);
    expect(toFirst).toHaveLength(2);
    expect('changes' in toFirst[0]).toBe(true);
    expect(toFirst[1]).toMatchObject({ channels: [counts(2, 0), counts(1, 0, 0, 't', 'c2')] });

    // a failed request (a 500) is followed by a full report next round, not a delta
    sent.length = 0;
    answers.push(500, 500);
    await reporter.tick();
    sent.length = 0;
    await reporter.tick();
    expect(sent.every((x) => 'channels' in x.report)).toBe(true);
    s.res.end();
  });

  it('clears once when the consumers are gone, then stays quiet; clears every shard on close', async () => {
    const { reporter, sent, openStream } = setup();
    const s = openStream('t', 'c');
    await reporter.tick();
    sent.length = 0;
    s.res.end();
    await s.stream.close();
    await reporter.tick();
    expect(sent.map((x) => x.report)).toEqual([expect.objectContaining({ channels: [] }), expect.objectContaining({ channels: [] })]);
    sent.length = 0;
    await reporter.tick();
    await reporter.tick();
    expect(sent).toEqual([]);

    openStream('t', 'c');
    await reporter.tick();
    expect(sent).toHaveLength(2);
    sent.length = 0;
    await reporter.close();
    expect(sent.map((x) => [x.shard, x.report]).sort()).toEqual([
      ['s1:1', expect.objectContaining({ channels: [] })],
      ['s2:1', expect.objectContaining({ channels: [] })],
    ]);
  });

  it('asks a shard without the report route (404, a stock nsqd) again only every 12 rounds', async () => {
    const { reporter, sent, answers, openStream } = setup();
    openStream('t', 'c');
    answers.push(404, 404);
    await reporter.tick();
    expect(sent).toHaveLength(2);
    sent.length = 0;
    for (let i = 0; i < 12; i++) await reporter.tick();
    expect(sent).toEqual([]);
    await reporter.tick();
    expect(sent.map((x) => 'channels' in x.report)).toEqual([true, true]);
  });

  it('leaves a shard the lookups no longer name to its TTL', async () => {
    const { reporter, sent, known, openStream } = setup();
    openStream('t', 'c');
    await reporter.tick();
    sent.length = 0;
    known.delete('s2:1');
    await reporter.tick();
    expect(sent.map((x) => x.shard)).toEqual(['s1:1']);
  });
});
