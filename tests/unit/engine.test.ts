import { Engine } from '../../shard/engine/engine';
import { FakeClock } from '../../shard/engine/clock';
import { MemoryStore } from '../../shard/engine/store';
import type { Consumer } from '../../shard/engine/channel';
import type { Message } from '../../shard/engine/message';
import type { EngineOptions } from '../../shard/engine/context';

/** A connection-like consumer with a RDY count, recording what it receives. */
class TestConsumer implements Consumer {
  inFlightCount = 0;
  got: Message[] = [];
  gone = false;
  constructor(readonly id: number, public rdy = 100, readonly msgTimeoutMs = 1000) {}
  capacity(): number {
    return this.rdy - this.inFlightCount;
  }
  deliver(m: Message): void {
    this.got.push(m);
  }
  channelGone(): void {
    this.gone = true;
  }
  bodies(): string[] {
    return this.got.map((m) => m.body.toString());
  }
}

function setup(opts: Partial<EngineOptions> = {}, store = new MemoryStore(), clock = new FakeClock()) {
  const queued: (() => void)[] = [];
  const engine = new Engine(opts, { store, clock, schedule: (fn) => queued.push(fn) });
  const runScheduled = () => {
    while (queued.length) queued.shift()!();
  };
  return { engine, store, clock, runScheduled };
}

const b = (s: string) => Buffer.from(s);

describe('engine: topics and channels', () => {
  it('copies every message to every channel; consumers of one channel share its messages', () => {
    const { engine } = setup();
    const a1 = new TestConsumer(1);
    const a2 = new TestConsumer(2);
    const c1 = new TestConsumer(3);
    engine.channel('t', 'a').addConsumer(a1);
    engine.channel('t', 'a').addConsumer(a2);
    engine.channel('t', 'c').addConsumer(c1);
    for (let i = 0; i < 10; i++) engine.publish('t', b(`m${i}`));
    expect(a1.got.length + a2.got.length).toBe(10);
    expect(a1.got.length).toBe(5); // round-robin
    expect(new Set([...a1.bodies(), ...a2.bodies()]).size).toBe(10);
    expect(c1.bodies()).toEqual([...Array(10)].map((_, i) => `m${i}`));
    // each channel holds its own Message object, sharing the body
    const a1first = a1.got[0];
    const same = c1.got.find((m) => m.id === a1first.id)!;
    expect(same).not.toBe(a1first);
    expect(same.body).toBe(a1first.body);
  });

  it('a topic with no channels buffers until the first channel appears', () => {
    const { engine, runScheduled } = setup();
    for (let i = 0; i < 5; i++) engine.publish('t', b(`m${i}`));
    expect(engine.topic('t').depth()).toBe(5);
    const c = new TestConsumer(1);
    engine.channel('t', 'ch').addConsumer(c);
    runScheduled();
    expect(c.bodies()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(engine.topic('t').depth()).toBe(0);
  });

  it('rejects invalid names', () => {
    const { engine } = setup();
    expect(() => engine.publish('bad name', b('x'))).toThrow('INVALID_TOPIC');
    expect(() => engine.channel('t', 'a/b')).toThrow('INVALID_CHANNEL');
  });
});

describe('engine: in flight', () => {
  it('keeps a message in flight until FIN, counting attempts', () => {
    const { engine } = setup();
    const c = new TestConsumer(1, 1);
    const ch = engine.channel('t', 'c');
    ch.addConsumer(c);
    engine.publish('t', b('a'));
    engine.publish('t', b('b'));
    expect(c.bodies()).toEqual(['a']); // RDY 1
    expect(c.got[0].attempts).toBe(1);
    expect(ch.stats().in_flight_count).toBe(1);
    expect(ch.finish(c.got[0].id, 1)).toBe('ok');
    expect(c.bodies()).toEqual(['a', 'b']);
    expect(ch.finish(c.got[0].id, 1)).toBe('not_in_flight');
    expect(ch.finish(c.got[1].id, 99)).toBe('not_owner');
  });

  it('times out after msg timeout and redelivers with attempts+1; touch extends', () => {
    const { engine, clock } = setup();
    const c = new TestConsumer(1, 10, 1000);
    const ch = engine.channel('t', 'c');
    ch.addConsumer(c);
    engine.publish('t', b('a'));
    engine.publish('t', b('b'));
    clock.advance(800);
    expect(ch.touch(c.got[0].id, 1)).toBe('ok'); // a now due at 1800
    clock.advance(300); // t=1100: b times out, a does not
    engine.tick();
    expect(ch.stats().timeout_count).toBe(1);
    expect(c.got.length).toBe(3);
    expect(c.got[2].body.toString()).toBe('b');
    expect(c.got[2].attempts).toBe(2);
    clock.advance(800);
    engine.tick();
    expect(ch.stats().timeout_count).toBe(2); // a, at its touched deadline; the redelivered b not yet
  });

  it('touch never extends past --max-msg-timeout', () => {
    const { engine, clock } = setup({ maxMsgTimeoutMs: 1500 });
    const c = new TestConsumer(1, 10, 1000);
    const ch = engine.channel('t', 'c');
    ch.addConsumer(c);
    engine.publish('t', b('a'));
    clock.advance(900);
    ch.touch(c.got[0].id, 1);
    clock.advance(601);
    engine.tick();
    expect(ch.stats().timeout_count).toBe(1);
  });

  it('requeue now and with a delay', () => {
    const { engine, clock } = setup();
    const c = new TestConsumer(1, 10, 60_000);
    const ch = engine.channel('t', 'c');
    ch.addConsumer(c);
    engine.publish('t', b('a'));
    engine.publish('t', b('b'));
    expect(ch.requeue(c.got[0].id, 1, 0)).toBe('ok');
    expect(c.bodies()).toEqual(['a', 'b', 'a']);
    expect(ch.requeue(c.got[1].id, 1, 5000)).toBe('ok');
    expect(ch.stats().deferred_count).toBe(1);
    clock.advance(4999);
    engine.tick();
    expect(c.got.length).toBe(3);
    clock.advance(1);
    engine.tick();
    expect(c.bodies()).toEqual(['a', 'b', 'a', 'b']);
    expect(c.got[3].attempts).toBe(2);
    expect(ch.stats().requeue_count).toBe(2);
  });

  it('a deferred publish is delivered only when due', () => {
    const { engine, clock } = setup();
    const c = new TestConsumer(1, 10, 60_000);
    engine.channel('t', 'c').addConsumer(c);
    engine.publish('t', b('later'), 2000);
    engine.publish('t', b('now'));
    expect(c.bodies()).toEqual(['now']);
    clock.advance(1999);
    engine.tick();
    expect(c.bodies()).toEqual(['now']);
    clock.advance(1);
    engine.tick();
    expect(c.bodies()).toEqual(['now', 'later']);
  });

  it('a consumer that leaves gets its in-flight messages requeued at once', () => {
    const { engine } = setup();
    const c1 = new TestConsumer(1, 5);
    const c2 = new TestConsumer(2, 0);
    const ch = engine.channel('t', 'c');
    ch.addConsumer(c1);
    ch.addConsumer(c2);
    for (let i = 0; i < 3; i++) engine.publish('t', b(`m${i}`));
    expect(c1.got.length).toBe(3);
    c2.rdy = 10;
    ch.removeConsumer(c1);
    ch.pump();
    expect(c2.bodies().sort()).toEqual(['m0', 'm1', 'm2']);
    expect(c2.got.every((m) => m.attempts === 2)).toBe(true);
  });

  it('timeouts follow the monotonic clock, not wall-clock steps', () => {
    const { engine, clock } = setup();
    const c = new TestConsumer(1, 10, 1000);
    const ch = engine.channel('t', 'c');
    ch.addConsumer(c);
    engine.publish('t', b('a'));
    clock.stepWall(3_600_000);
    engine.tick();
    expect(ch.stats().timeout_count).toBe(0);
    expect(ch.stats().in_flight_count).toBe(1);
  });

  it.each([
    ['forward', 3_600_000],
    ['backward', -3_600_000],
  ])('a deferred publish waiting in a paused topic keeps its due time when the wall clock steps %s', (_dir, step) => {
    const { engine, clock, runScheduled } = setup();
    const c = new TestConsumer(1, 10, 60_000);
    engine.channel('t', 'c').addConsumer(c);
    engine.topic('t').pause();
    engine.publish('t', b('later'), 2000);
    clock.stepWall(step);
    clock.advance(500);
    engine.topic('t').unpause();
    runScheduled();
    engine.tick();
    expect(c.bodies()).toEqual([]);
    clock.advance(1499);
    engine.tick();
    expect(c.bodies()).toEqual([]);
    clock.advance(1);
    engine.tick();
    expect(c.bodies()).toEqual(['later']);
  });

  it('a deferred publish read back from a topic\'s disk queue waits no longer than its delay after the wall clock steps back', () => {
    const { engine, clock, runScheduled } = setup({ memQueueSize: 0 });
    const c = new TestConsumer(1, 10, 60_000);
    engine.channel('t', 'c').addConsumer(c);
    engine.topic('t').pause();
    engine.publish('t', b('later'), 2000);
    clock.stepWall(-3_600_000);
    engine.topic('t').unpause();
    runScheduled();
    engine.tick();
    expect(c.bodies()).toEqual([]);
    clock.advance(2000);
    engine.tick();
    expect(c.bodies()).toEqual(['later']);
  });
});

describe('engine: pause, empty, delete', () => {
  it('a paused channel keeps messages; unpause delivers them; other channels are unaffected', () => {
    const { engine } = setup();
    const p = new TestConsumer(1);
    const o = new TestConsumer(2);
    engine.channel('t', 'p').addConsumer(p);
    engine.channel('t', 'o').addConsumer(o);
    engine.channel('t', 'p').pause();
    engine.publish('t', b('x'));
    expect(p.got.length).toBe(0);
    expect(o.got.length).toBe(1);
    expect(engine.channel('t', 'p').depth()).toBe(1);
    engine.channel('t', 'p').unpause();
    expect(p.bodies()).toEqual(['x']);
  });

  it('a paused topic buffers and forwards on unpause', () => {
    const { engine, runScheduled } = setup();
    const c = new TestConsumer(1);
    engine.channel('t', 'c').addConsumer(c);
    engine.topic('t').pause();
    engine.publish('t', b('x'));
    runScheduled();
    expect(c.got.length).toBe(0);
    engine.topic('t').unpause();
    runScheduled();
    expect(c.bodies()).toEqual(['x']);
  });

  it('empty drops queued, in-flight and deferred messages', () => {
    const { engine } = setup();
    const c = new TestConsumer(1, 1);
    const ch = engine.channel('t', 'c');
    ch.addConsumer(c);
    engine.publish('t', b('a'));
    engine.publish('t', b('b'));
    engine.publish('t', b('c'), 1000);
    ch.empty();
    expect(ch.stats()).toMatchObject({ depth: 0, in_flight_count: 0, deferred_count: 0 });
    engine.publish('t', b('d'));
    expect(c.bodies()).toEqual(['a', 'd']); // its capacity came back
  });

  it('delete removes the channel and tells its consumers', () => {
    const { engine, store } = setup();
    const c = new TestConsumer(1);
    engine.channel('t', 'c').addConsumer(c);
    expect(engine.deleteChannel('t', 'c')).toBe(true);
    expect(c.gone).toBe(true);
    expect(engine.findChannel('t', 'c')).toBeUndefined();
    expect(store.metadata!.topics[0].channels).toEqual([]);
    expect(engine.deleteTopic('t')).toBe(true);
    expect(store.metadata!.topics).toEqual([]);
  });
});

describe('engine: #ephemeral', () => {
  it('drops the excess instead of touching disk, and vanishes with its last consumer', () => {
    const { engine, store } = setup({ memQueueSize: 3 });
    const ch = engine.channel('t', 'e#ephemeral');
    for (let i = 0; i < 5; i++) engine.publish('t', b(`m${i}`));
    expect(ch.stats()).toMatchObject({ depth: 3, dropped_count: 2, backend_depth: 0 });
    expect(store.backends.has('t:e#ephemeral')).toBe(false);
    const c = new TestConsumer(1);
    ch.addConsumer(c);
    ch.removeConsumer(c);
    expect(engine.findChannel('t', 'e#ephemeral')).toBeUndefined();
    expect(store.metadata!.topics[0].channels).toEqual([]);
  });

  it('an ephemeral topic goes when its last channel goes', () => {
    const { engine } = setup();
    const c = new TestConsumer(1);
    engine.channel('x#ephemeral', 'c').addConsumer(c);
    engine.findChannel('x#ephemeral', 'c')!.removeConsumer(c);
    expect(engine.deleteChannel('x#ephemeral', 'c')).toBe(true);
    expect(engine.findTopic('x#ephemeral')).toBeUndefined();
  });

  it('an ephemeral channel used through leases lives while leased and for a grace period', async () => {
    const { engine, clock } = setup({ ephemeralLeaseGraceMs: 1000 });
    engine.channel('t', 'e#ephemeral');
    engine.publish('t', b('a'));
    const [m] = await engine.pull('t', 'e#ephemeral', { max: 1, leaseMs: 5000, waitMs: 0 });
    clock.advance(2000);
    engine.tick();
    expect(engine.findChannel('t', 'e#ephemeral')).toBeDefined(); // lease still in flight
    expect(engine.finishLease('t', 'e#ephemeral', m.id, m.token)).toBe('ok');
    clock.advance(1000);
    engine.tick();
    expect(engine.findChannel('t', 'e#ephemeral')).toBeUndefined();
  });
});

describe('engine: disk overflow', () => {
  it('keeps order across memory → disk → memory', () => {
    const { engine, store } = setup({ memQueueSize: 10 });
    const ch = engine.channel('t', 'c');
    for (let i = 0; i < 35; i++) engine.publish('t', b(`m${i}`));
    expect(ch.stats()).toMatchObject({ depth: 35, backend_depth: 25 });
    expect(store.backends.get('t:c')!.depth()).toBe(25);
    const c = new TestConsumer(1, 20);
    ch.addConsumer(c);
    // more arrive while the disk still holds a backlog: they queue behind it
    for (let i = 35; i < 40; i++) engine.publish('t', b(`m${i}`));
    for (const m of [...c.got]) ch.finish(m.id, 1);
    for (const m of [...c.got.slice(20)]) ch.finish(m.id, 1);
    expect(c.bodies()).toEqual([...Array(40)].map((_, i) => `m${i}`));
    // once drained, memory is used again
    engine.publish('t', b('after'));
    expect(ch.stats().backend_depth).toBe(0);
  });

  it('mem-queue-size 0 sends everything through the backend', () => {
    const { engine, store } = setup({ memQueueSize: 0 });
    engine.channel('t', 'c');
    engine.publish('t', b('a'));
    expect(store.backends.get('t:c')!.depth()).toBe(1);
    const c = new TestConsumer(1);
    engine.findChannel('t', 'c')!.addConsumer(c);
    expect(c.bodies()).toEqual(['a']);
  });
});

describe('engine: leases', () => {
  it('pulls up to max messages, each with its own token', async () => {
    const { engine } = setup();
    engine.channel('t', 'c');
    for (let i = 0; i < 3; i++) engine.publish('t', b(`m${i}`));
    const first = await engine.pull('t', 'c', { max: 2, leaseMs: 1000, waitMs: 0 });
    expect(first.map((m) => m.body.toString())).toEqual(['m0', 'm1']);
    expect(first[0].token).not.toBe(first[1].token);
    expect(first.every((m) => m.attempts === 1)).toBe(true);
    const rest = await engine.pull('t', 'c', { max: 10, leaseMs: 1000, waitMs: 0 });
    expect(rest.map((m) => m.body.toString())).toEqual(['m2']);
    expect(engine.findChannel('t', 'c')!.stats().in_flight_count).toBe(3);
  });

  it('long-poll returns as soon as a message arrives, and empty after the wait', async () => {
    const { engine } = setup({}, new MemoryStore(), new FakeClock());
    engine.channel('t', 'c');
    const p = engine.pull('t', 'c', { max: 10, leaseMs: 1000, waitMs: 5000 });
    engine.publish('t', b('a'));
    engine.publish('t', b('b'));
    expect((await p).map((m) => m.body.toString())).toEqual(['a', 'b']);
    const t0 = Date.now();
    expect(await engine.pull('t', 'c', { max: 1, leaseMs: 1000, waitMs: 50 })).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
  });

  it('token checks: stale tokens refused, expiry redelivers', async () => {
    const { engine, clock } = setup();
    engine.channel('t', 'c');
    engine.publish('t', b('a'));
    const [m1] = await engine.pull('t', 'c', { max: 1, leaseMs: 1000, waitMs: 0 });
    const token1 = m1.token;
    expect(engine.touchLease('t', 'c', m1.id, token1, 2000)).toBe('ok');
    expect(engine.leaseRemaining('t', 'c', m1.id)).toBe(2000);
    clock.advance(2001);
    engine.tick();
    const [m2] = await engine.pull('t', 'c', { max: 1, leaseMs: 1000, waitMs: 0 });
    expect(m2.id).toBe(m1.id);
    expect(m2.attempts).toBe(2);
    expect(engine.finishLease('t', 'c', m1.id, token1)).toBe('stale');
    expect(engine.requeueLease('t', 'c', m1.id, 'bogus', 0)).toBe('stale');
    expect(engine.finishLease('t', 'c', m2.id, m2.token)).toBe('ok');
    expect(engine.finishLease('t', 'c', m2.id, m2.token)).toBe('not_in_flight');
    expect(engine.finishLease('t', 'nope', m2.id, m2.token)).toBe('not_in_flight');
  });

  it('leases and connections share one channel', async () => {
    const { engine } = setup();
    const c = new TestConsumer(1, 2);
    engine.channel('t', 'c').addConsumer(c);
    for (let i = 0; i < 4; i++) engine.publish('t', b(`m${i}`));
    const leased = await engine.pull('t', 'c', { max: 10, leaseMs: 1000, waitMs: 0 });
    expect(c.got.length).toBe(2);
    expect(leased.length).toBe(2);
    expect(new Set([...c.bodies(), ...leased.map((m) => m.body.toString())]).size).toBe(4);
  });

  it('an abandoned long-poll requeues what it was handed', async () => {
    const { engine } = setup();
    engine.channel('t', 'c');
    const ac = new AbortController();
    const p = engine.pull('t', 'c', { max: 5, leaseMs: 60_000, waitMs: 5000, signal: ac.signal });
    ac.abort();
    expect(await p).toEqual([]);
    engine.publish('t', b('a'));
    expect(engine.findChannel('t', 'c')!.stats()).toMatchObject({ depth: 1, in_flight_count: 0 });
  });
});

describe('engine: restart', () => {
  it('restores topics, channels, paused flags, queued, in-flight leases and deferred with due times', async () => {
    const store = new MemoryStore();
    const clock = new FakeClock();
    const { engine } = setup({ memQueueSize: 5 }, store, clock);
    engine.channel('t', 'c');
    engine.channel('t', 'p').pause();
    engine.topic('u').pause();
    for (let i = 0; i < 12; i++) engine.publish('t', b(`m${i}`));
    engine.publish('u', b('u0'));
    engine.publish('t', b('deferred'), 10_000);
    const leased = await engine.pull('t', 'c', { max: 2, leaseMs: 30_000, waitMs: 0 });
    const tcp = new TestConsumer(7, 1);
    engine.findChannel('t', 'c')!.addConsumer(tcp); // its message is saved as ready
    engine.close();

    clock.advance(5_000);
    const { engine: again } = setup({ memQueueSize: 5 }, store, clock);
    const c = again.findChannel('t', 'c')!;
    const p = again.findChannel('t', 'p')!;
    expect(p.paused).toBe(true);
    expect(again.findTopic('u')!.paused).toBe(true);
    expect(again.findTopic('u')!.depth()).toBe(1);
    expect(c.stats()).toMatchObject({ depth: 10, in_flight_count: 2, deferred_count: 1 });
    expect(p.stats()).toMatchObject({ depth: 12, deferred_count: 1 });
    // a lease holder can still settle after the restart
    expect(again.finishLease('t', 'c', leased[0].id, leased[0].token)).toBe('ok');
    expect(again.leaseRemaining('t', 'c', leased[1].id)).toBe(25_000);
    // deferred is not early: 5 s had passed of its 10 s
    clock.advance(4_999);
    again.tick();
    expect(c.stats().deferred_count).toBe(1);
    clock.advance(1);
    again.tick();
    expect(c.stats().deferred_count).toBe(0);
    // everything comes out, in order for the ready part
    const got = await again.pull('t', 'c', { max: 100, leaseMs: 1000, waitMs: 0 });
    const bodies = got.map((m) => m.body.toString());
    expect(bodies).toContain('deferred');
    expect(bodies.filter((s) => s.startsWith('m')).length).toBe(10);
  });
});

describe('engine: cluster hooks', () => {
  it('tells listeners about topics and channels appearing and going', () => {
    const { engine } = setup();
    const events: string[] = [];
    engine.addListener({
      topicCreated: (t) => events.push(`+${t}`),
      topicDeleted: (t) => events.push(`-${t}`),
      channelCreated: (t, c) => events.push(`+${t}/${c}`),
      channelDeleted: (t, c) => events.push(`-${t}/${c}`),
    });
    engine.channel('t', 'c');
    engine.deleteChannel('t', 'c');
    engine.deleteTopic('t');
    expect(events).toEqual(['+t', '+t/c', '-t/c', '-t']);
  });

  it('a new topic holds its messages until the channels it has elsewhere exist', async () => {
    let answer: (names: string[]) => void = () => undefined;
    const store = new MemoryStore();
    const queued: (() => void)[] = [];
    const engine = new Engine({}, { store, clock: new FakeClock(), schedule: (fn) => queued.push(fn), channelsElsewhere: () => new Promise((r) => (answer = r)) });
    engine.publish('t', b('first'));
    engine.channel('t', 'local');
    while (queued.length) queued.shift()!();
    expect(engine.findChannel('t', 'local')!.depth()).toBe(0); // still held
    answer(['remote', 'bad name']);
    await new Promise((r) => setImmediate(r));
    while (queued.length) queued.shift()!();
    expect(engine.findChannel('t', 'remote')!.depth()).toBe(1);
    expect(engine.findChannel('t', 'local')!.depth()).toBe(1);
    expect(engine.findTopic('t')!.channels.size).toBe(2);
  });
});

describe('engine: #ephemeral created without consumers', () => {
  it('stays until a consumer has come and gone', () => {
    const { engine, clock } = setup({ ephemeralLeaseGraceMs: 10 });
    engine.channel('t', 'e#ephemeral');
    clock.advance(1000);
    engine.tick();
    expect(engine.findChannel('t', 'e#ephemeral')).toBeDefined();
    const c = new TestConsumer(1);
    engine.findChannel('t', 'e#ephemeral')!.addConsumer(c);
    engine.findChannel('t', 'e#ephemeral')!.removeConsumer(c);
    expect(engine.findChannel('t', 'e#ephemeral')).toBeUndefined();
  });
});

describe('engine: max attempts and dead letters', () => {
  it('sends a message past max attempts to <topic>.dead with how it got there, instead of delivering it again', () => {
    const { engine, clock, store } = setup();
    const ch = engine.channel('orders', 'billing');
    ch.configure(2, '');
    const dead = new TestConsumer(9, 10, 60_000);
    engine.channel('orders.dead', 'inspect').addConsumer(dead);
    const c = new TestConsumer(1, 10, 1000);
    ch.addConsumer(c);
    engine.publish('orders', b('{"n":1}'));
    engine.publish('orders', b('\x00binary'));
    for (const m of [...c.got]) ch.requeue(m.id, 1, 0); // attempt 1 fails
    expect(c.got.length).toBe(4);
    clock.advance(1000);
    engine.tick(); // attempt 2 times out → dead-lettered, not delivered a 3rd time
    expect(c.got.length).toBe(4);
    expect(ch.stats()).toMatchObject({ depth: 0, in_flight_count: 0, dead_lettered_count: 2, max_attempts: 2, dead_letter_topic: 'orders.dead' });
    const envelopes = dead.got.map((m) => JSON.parse(m.body.toString()));
    expect(envelopes[0]).toMatchObject({
      dead_letter: { reason: 'max_attempts_exceeded', topic: 'orders', channel: 'billing', attempts: 2, max_attempts: 2 },
      body: { n: 1 },
    });
    expect(Buffer.from(envelopes[1].body_base64, 'base64').toString()).toBe('\x00binary');
    expect(envelopes[1].body).toBeNull();
    // the setting survives a restart
    engine.close();
    const again = new Engine({}, { store, clock });
    expect(again.findChannel('orders', 'billing')!.stats().max_attempts).toBe(2);
  });
});

describe('engine: one pull across many channels', () => {
  it('answers as soon as any channel has something, leaving the others untouched', async () => {
    const { engine } = setup();
    engine.channel('a', 'c');
    engine.channel('b', 'c');
    const p = engine.pullMany(
      [
        { topic: 'a', channel: 'c', max: 5, leaseMs: 1000 },
        { topic: 'b', channel: 'c', max: 5, leaseMs: 1000 },
      ],
      5000,
    );
    engine.publish('b', b('x'));
    engine.publish('b', b('y'));
    const [fromA, fromB] = await p;
    expect(fromA).toEqual([]);
    expect(fromB.map((m) => m.body.toString())).toEqual(['x', 'y']);
    // nothing is left registered: a later publish to a stays queued
    engine.publish('a', b('z'));
    expect(engine.findChannel('a', 'c')!.stats()).toMatchObject({ depth: 1, in_flight_count: 0 });
  });

  it('takes what is ready from every channel at once', async () => {
    const { engine } = setup();
    engine.channel('a', 'c');
    engine.channel('b', 'c');
    engine.publish('a', b('1'));
    engine.publish('b', b('2'));
    const got = await engine.pullMany(
      [
        { topic: 'a', channel: 'c', max: 5, leaseMs: 1000 },
        { topic: 'b', channel: 'c', max: 5, leaseMs: 1000 },
      ],
      0,
    );
    expect(got.map((g) => g.map((m) => m.body.toString()))).toEqual([['1'], ['2']]);
  });
});
