// The gateway's consuming core against in-memory shards: one outstanding pull-many per shard for
// every channel with demand (none per idle subscriber), prompt restarts for new demand, fair
// dispatch, surplus handed on then given back uncounted, SSE credit (acks, expiry, acks through
// another gateway, backpressure), requeue on close, and receipts refused before any shard is called.

import type { ServerResponse } from 'node:http';
import { Consumption, DEFAULT_CONSUME_OPTIONS, ConsumeOptions } from '../../gateway/consume';
import type { Group, Lease, Waiter } from '../../gateway/consumers';
import { ReceiptSigner } from '../../gateway/receipts';
import { SseStream } from '../../gateway/sse';
import { Topology } from '../../gateway/topology';
import { silentLogger } from '../../runtime/logger';
import { waitFor } from '../helpers/process';
import { FakeShard } from '../helpers/fake-lease-client';

const SECRET = 'unit-test-secret-0123456789';

function setup(over: Partial<ConsumeOptions> = {}) {
  const shards = new Map([new FakeShard('s1:1'), new FakeShard('s2:1')].map((s) => [s.address, s]));
  const topology = new Topology({ lookups: [], staticShards: [...shards.keys()], pollIntervalMs: 1000, timeoutMs: 1000 }, silentLogger());
  const svc = new Consumption(
    { ...DEFAULT_CONSUME_OPTIONS, receiptSecrets: [SECRET], holdMs: 100, reconcileMs: 50, ...over, hub: { ...DEFAULT_CONSUME_OPTIONS.hub, restartDelayMs: 2, ...over.hub } },
    { topology, logger: silentLogger(), clientFor: (a) => shards.get(a)! },
  );
  svc.start();
  const [s1, s2] = [...shards.values()];
  return { svc, s1, s2, shards };
}

/** A subscriber with a fixed credit that records what it took. */
class TestWaiter implements Waiter {
  readonly got: Lease[] = [];
  constructor(public credit: number) {}
  free(): number {
    return Math.max(0, this.credit - this.got.length);
  }
  take(leases: Lease[]): void {
    this.got.push(...leases);
  }
}

/** Just enough of a ServerResponse for an SSE stream. */
class FakeRes {
  out = '';
  full = false;
  writableEnded = false;
  socket = null;
  private handlers = new Map<string, (() => void)[]>();
  writeHead(): this {
    return this;
  }
  write(s: string): boolean {
    this.out += s;
    return !this.full;
  }
  on(ev: string, f: () => void): this {
    (this.handlers.get(ev) ?? this.handlers.set(ev, []).get(ev)!).push(f);
    return this;
  }
  once(ev: string, f: () => void): this {
    const g = () => {
      this.handlers.set(ev, (this.handlers.get(ev) ?? []).filter((x) => x !== g));
      f();
    };
    return this.on(ev, g);
  }
  emit(ev: string): void {
    for (const f of [...(this.handlers.get(ev) ?? [])]) f();
  }
  end(): void {
    this.writableEnded = true;
    this.emit('close');
  }
  receipts(): string[] {
    return [...this.out.matchAll(/^id: (.+)$/gm)].map((m) => m[1]);
  }
  messages(): { id: string; attempts: number; receipt: string; body: unknown }[] {
    return [...this.out.matchAll(/^data: (.+)$/gm)].map((m) => JSON.parse(m[1]));
  }
}

function openStream(svc: Consumption, g: Group, maxInFlight: number): { res: FakeRes; stream: SseStream } {
  const res = new FakeRes();
  const stream = new SseStream(svc, g, res as unknown as ServerResponse, maxInFlight, 'json');
  stream.open(1000);
  return { res, stream };
}

const tick = () => new Promise((r) => setTimeout(r, 10));
let current: Consumption | undefined;
afterEach(async () => {
  await current?.close();
  current = undefined;
});

describe('shard hubs', () => {
  it('ask each shard once for every channel with demand, and idle subscribers cost nothing more', async () => {
    const { svc, s1, s2 } = setup();
    current = svc;
    const waiters = [];
    for (let i = 0; i < 50; i++) {
      const w = new TestWaiter(3);
      waiters.push(w);
      svc.group('t', `c${i}`, 30_000).add(w);
    }
    await tick();
    await new Promise((r) => setTimeout(r, 200));
    for (const s of [s1, s2]) {
      expect(s.polls).toHaveLength(1);
      expect(s.polls[0].pulls).toHaveLength(50);
      expect(s.polls[0].pulls.every((p) => p.max === 3 && p.leaseMs === 30_000)).toBe(true);
    }
  });

  it('restarts the outstanding poll promptly for a channel it does not cover, and not for one it does', async () => {
    const { svc, s1 } = setup();
    current = svc;
    svc.group('t', 'a', 30_000).add(new TestWaiter(1));
    await tick();
    expect(s1.polls).toHaveLength(1);
    svc.group('t', 'a', 30_000).add(new TestWaiter(1)); // covered: no restart
    await tick();
    expect(s1.polls).toHaveLength(1);
    const w = new TestWaiter(1);
    svc.group('t', 'b', 30_000).add(w);
    await waitFor(() => s1.polls.length === 2, 1000, 'the restarted poll');
    expect(s1.polls[0].aborted).toBe(true);
    expect(s1.polls[1].pulls.map((p) => p.channel).sort()).toEqual(['a', 'b']);
    s1.publish('t', 'b', 'for b');
    await waitFor(() => w.got.length === 1, 1000, 'delivery on the new channel');
  });

  it('a busy channel does not make the hub resend the idle ones: they wait in their own (cold) poll', async () => {
    const { svc, s1 } = setup();
    current = svc;
    for (let i = 0; i < 300; i++) svc.group('t', `idle${i}`, 30_000).add(new TestWaiter(1));
    const busy = new TestWaiter(1000);
    svc.group('t', 'busy', 30_000).add(busy);
    await waitFor(() => s1.polls.length >= 1, 1000, 'the first poll');
    for (let i = 0; i < 40; i++) {
      s1.publish('t', 'busy', `m${i}`);
      await waitFor(() => busy.got.filter((l) => l.shard === 's1:1').length === i + 1, 1000, `message ${i}`);
    }
    const entries = s1.polls.reduce((n, p) => n + p.pulls.length, 0);
    // One resend of the idle channels when "busy" turned hot, not one per message.
    expect(entries).toBeLessThan(301 * 3 + 40 * 2);
    expect(s1.polls.filter((p) => p.pulls.length === 1 && p.pulls[0].channel === 'busy').length).toBeGreaterThanOrEqual(35);
    // and an idle channel still gets its message
    const idle7 = svc.group('t', 'idle7', 30_000).waiters[0] as TestWaiter;
    s1.publish('t', 'idle7', 'late');
    await waitFor(() => idle7.got.length === 1, 2000, 'the idle channel served');
  });

  it('splits idle channels into cold lanes: a new subscriber restarts only its own lane', async () => {
    const { svc, s1 } = setup({ hub: { ...DEFAULT_CONSUME_OPTIONS.hub, coldLaneSize: 100 } });
    current = svc;
    for (let i = 0; i < 250; i++) svc.group('t', `tab${i}`, 30_000).add(new TestWaiter(1));
    await waitFor(() => s1.polls.length === 3, 1000, 'three cold lanes');
    expect(s1.polls.map((p) => p.pulls.length).sort((a, b) => a - b)).toEqual([50, 100, 100]);
    const late = new TestWaiter(1);
    svc.group('t', 'late', 30_000).add(late);
    await waitFor(() => s1.polls.length === 4, 1000, 'one restart');
    expect(s1.polls[3].pulls.length).toBe(51);
    s1.publish('t', 'late', 'hello');
    await waitFor(() => late.got.length === 1, 1000, 'delivery to the late subscriber');
  });

  it('deals messages round-robin over the subscribers with credit', async () => {
    const { svc, s1 } = setup();
    current = svc;
    for (let i = 0; i < 12; i++) s1.publish('t', 'c', `m${i}`);
    const g = svc.group('t', 'c', 30_000);
    const ws = [new TestWaiter(4), new TestWaiter(4), new TestWaiter(4)];
    for (const w of ws) g.add(w);
    await waitFor(() => ws.every((w) => w.got.length === 4), 1000, 'every waiter served');
    const seen = ws.flatMap((w) => w.got.map((l) => l.msg.body.toString()));
    expect(new Set(seen).size).toBe(12);
  });

  it('serves a subscriber from every shard: what one shard over-delivers goes to the next subscriber first', async () => {
    const { svc, s1, s2 } = setup();
    current = svc;
    const g = svc.group('t', 'c', 30_000);
    const first = new TestWaiter(1);
    g.add(first);
    // Both shards are asked for the subscriber's whole credit...
    await waitFor(() => s1.polls.length === 1 && s2.polls.length === 1, 1000, 'a poll on each shard');
    s1.publish('t', 'c', 'from s1');
    s2.publish('t', 'c', 'from s2');
    // ...so both answer: one message is delivered, the other waits here for the next subscriber.
    await waitFor(() => first.got.length === 1 && g.surplus.length === 1, 1000, 'one delivered, one held');
    const pollsBefore = s1.polls.length + s2.polls.length;
    const second = new TestWaiter(1);
    g.add(second);
    expect(second.got).toHaveLength(1); // at once, from the surplus
    expect(new Set([first.got[0].shard, second.got[0].shard])).toEqual(new Set(['s1:1', 's2:1']));
    await tick();
    expect(s1.polls.length + s2.polls.length).toBe(pollsBefore);
  });

  it('gives back what nobody takes within the hold, without counting an attempt', async () => {
    const { svc, s1, s2 } = setup({ holdMs: 50 });
    current = svc;
    const g = svc.group('t', 'c', 30_000);
    const w = new TestWaiter(1);
    g.add(w);
    await waitFor(() => s1.polls.length === 1 && s2.polls.length === 1, 1000, 'a poll on each shard');
    s1.publish('t', 'c', 'x');
    s2.publish('t', 'c', 'y');
    await waitFor(() => w.got.length === 1, 1000, 'delivery');
    await waitFor(() => [...s1.settles, ...s2.settles].some((s) => s.op === 'requeue'), 1000, 'the surplus to go back');
    const back = [...s1.settles, ...s2.settles].find((s) => s.op === 'requeue')!;
    expect(back.items[0]).toMatchObject({ delayMs: 0, undelivered: true });
    expect(g.surplus).toHaveLength(0);
    // and it is delivered again as attempt 1
    const again = new TestWaiter(1);
    g.add(again);
    await waitFor(() => again.got.length === 1, 1000, 'redelivery');
    expect(again.got[0].msg.attempts).toBe(1);
  });

  it('backs off and retries a shard that is down, while the other shard delivers', async () => {
    const { svc, s1, s2 } = setup();
    current = svc;
    s1.down = true;
    s2.publish('t', 'c', 'up');
    const w = new TestWaiter(5);
    svc.group('t', 'c', 30_000).add(w);
    await waitFor(() => w.got.length === 1, 1000, 'delivery from the healthy shard');
    await waitFor(() => s1.polls.length >= 2, 2000, 'a retry');
    s1.down = false;
    s1.publish('t', 'c', 'back');
    await waitFor(() => w.got.length === 2, 3000, 'delivery once the shard is back');
  });
});

describe('SSE streams', () => {
  it('send only while fewer than max_in_flight are unacked; an ack through this gateway returns credit', async () => {
    const { svc, s1 } = setup();
    current = svc;
    for (let i = 0; i < 5; i++) s1.publish('t', 'c', JSON.stringify({ i }));
    const { res } = openStream(svc, svc.group('t', 'c', 30_000), 2);
    await waitFor(() => res.receipts().length === 2, 1000, 'two events');
    await tick();
    expect(res.receipts()).toHaveLength(2);
    expect(res.messages()[0]).toMatchObject({ attempts: 1, body: { i: 0 } });
    const [r] = await svc.settle('finish', [{ receipt: res.receipts()[0] }], () => true);
    expect(r.status).toBe('OK');
    await waitFor(() => res.receipts().length === 3, 1000, 'a third event after the ack');
  });

  it('keep no body of what they delivered (bodies are views of the shard\'s whole answer buffer)', async () => {
    const { svc, s1 } = setup();
    current = svc;
    for (let i = 0; i < 3; i++) s1.publish('t', 'c', JSON.stringify({ i }));
    const { res, stream } = openStream(svc, svc.group('t', 'c', 30_000), 10);
    await waitFor(() => res.receipts().length === 3, 1000, 'three events');
    expect(res.messages().map((m) => m.body)).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
    const held = [...(stream as unknown as { inFlight: Map<string, { msg: { body: Buffer } }> }).inFlight.values()];
    expect(held).toHaveLength(3);
    expect(held.every((l) => l.msg.body.length === 0)).toBe(true);
  });

  it('get credit back when a lease ends, and when a message was acked through another gateway', async () => {
    const { svc, s1 } = setup({ reconcileMs: 30 });
    current = svc;
    for (let i = 0; i < 4; i++) s1.publish('t', 'c', `m${i}`);
    const g = svc.group('t', 'c', 300);
    const { res } = openStream(svc, g, 1);
    await waitFor(() => res.receipts().length === 1, 1000, 'first event');
    // Acked elsewhere: the shard no longer has it; the full stream asks and finds out.
    s1.finishElsewhere(res.messages()[0].id);
    await waitFor(() => res.receipts().length === 2, 2000, 'credit back after reconciling');
    expect(s1.settles.some((s) => s.op === 'status')).toBe(true);
    // Not acked at all: its lease ends and the stream gets credit back.
    await waitFor(() => res.receipts().length >= 3, 3000, 'credit back after the lease ended');
  });

  it('honour backpressure: nothing more is written until the socket drains', async () => {
    const { svc, s1 } = setup();
    current = svc;
    for (let i = 0; i < 6; i++) s1.publish('t', 'c', `m${i}`);
    const g = svc.group('t', 'c', 30_000);
    const res = new FakeRes();
    res.full = true;
    new SseStream(svc, g, res as unknown as ServerResponse, 100, 'json').open(1000);
    await waitFor(() => res.receipts().length > 0, 1000, 'a first batch');
    const n = res.receipts().length;
    s1.publish('t', 'c', 'more');
    await new Promise((r) => setTimeout(r, 50));
    expect(res.receipts().length).toBe(n);
    res.full = false;
    res.emit('drain');
    await waitFor(() => res.receipts().length === 7, 1000, 'the rest after drain');
  });

  it('requeue what they hold at once when they close (as an attempt), and stop taking', async () => {
    const { svc, s1 } = setup();
    current = svc;
    for (let i = 0; i < 3; i++) s1.publish('t', 'c', `m${i}`);
    const g = svc.group('t', 'c', 60_000);
    const { res } = openStream(svc, g, 10);
    await waitFor(() => res.receipts().length === 3, 1000, 'three events');
    res.emit('close');
    await waitFor(() => s1.depth('t', 'c') === 3, 1000, 'all three back in the queue');
    // Requeued as attempts (the consumer saw them). The hub's poll may take them once more before it
    // stops asking for a channel nobody here wants; those go straight back, not counted.
    const req = s1.settles.filter((s) => s.op === 'requeue').flatMap((s) => s.items);
    expect(req.filter((i) => !i.undelivered)).toHaveLength(3);
    expect(req.every((i) => i.delayMs === 0)).toBe(true);
    expect(s1.queues.get('t/c')!.map((m) => m.attempts)).toEqual([1, 1, 1]);
    expect(g.waiters).toHaveLength(0);
    expect(g.surplus).toHaveLength(0);
  });
});

describe('settling by receipt', () => {
  it('refuses forged receipts and receipts naming an unknown shard without calling any shard', async () => {
    const { svc, s1, s2 } = setup();
    current = svc;
    const foreign = new ReceiptSigner(['some-other-cluster-secret']).sign({ shard: 's1:1', topic: 't', channel: 'c', id: '0000000000000001', token: 't1' });
    const unknownShard = new ReceiptSigner([SECRET]).sign({ shard: '169.254.169.254:80', topic: 't', channel: 'c', id: '0000000000000001', token: 't1' });
    const results = await svc.settle('finish', [{ receipt: foreign }, { receipt: unknownShard }, { receipt: 'garbage' }], () => true);
    expect(results.map((r) => r.status)).toEqual(['RECEIPT_INVALID', 'SHARD_UNKNOWN', 'RECEIPT_INVALID']);
    expect(s1.settles.length + s2.settles.length).toBe(0);
  });

  it('reports a stale receipt and leaves the newer delivery alone; checks the scope per receipt', async () => {
    const { svc, s1 } = setup();
    current = svc;
    s1.publish('t', 'c', 'once');
    const g = svc.group('t', 'c', 30_000);
    const w1 = new TestWaiter(1);
    g.add(w1);
    await waitFor(() => w1.got.length === 1, 1000, 'first delivery');
    const old = svc.receiptFor(g, w1.got[0]);
    expect((await svc.settle('requeue', [{ receipt: old }], () => true))[0].status).toBe('OK');
    const w2 = new TestWaiter(1);
    g.add(w2);
    await waitFor(() => w2.got.length === 1, 1000, 'second delivery');
    expect(w2.got[0].msg.attempts).toBe(2);
    const fresh = svc.receiptFor(g, w2.got[0]);
    expect((await svc.settle('finish', [{ receipt: old }], () => true))[0].status).toBe('RECEIPT_STALE');
    expect((await svc.settle('finish', [{ receipt: fresh }], (f) => f.channel !== 'c'))[0].status).toBe('FORBIDDEN');
    expect((await svc.settle('touch', [{ receipt: fresh, leaseMs: 5000 }], () => true))[0]).toMatchObject({ status: 'OK', leaseMs: 5000 });
    expect((await svc.settle('finish', [{ receipt: fresh }], () => true))[0].status).toBe('OK');
    expect((await svc.settle('finish', [{ receipt: fresh }], () => true))[0].status).toBe('NOT_IN_FLIGHT');
  });
});
