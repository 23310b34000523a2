// Wall-clock jumps at process level: a real shard runs under Debian's libfaketime, whose offset
// the test rewrites mid-run (FAKETIME_TIMESTAMP_FILE, FAKETIME_NO_CACHE=1) to step the shard's
// wall clock hours forward and back, as NTP or an operator might. CLOCK_MONOTONIC is left alone
// (FAKETIME_DONT_FAKE_MONOTONIC=1), as a real step leaves it. Proves that in-flight timeouts and
// deferred due times follow the monotonic clock: a forward jump times nothing out early, a
// backward jump leaves nothing stuck. Fails, never skips, when libfaketime is missing.

import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cmd, RawClient } from '../helpers/nsq-raw';
import { Running, startProgram, tempDir, waitFor } from '../helpers/process';
import { call } from '../helpers/shard';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const HOUR = 3_600_000;

interface Leased {
  id: string;
  token: string;
  attempts: number;
  timestamp: number;
  body: string;
}

interface ChannelStats {
  depth: number;
  in_flight_count: number;
  deferred_count: number;
  timeout_count: number;
}

describe('wall-clock jumps under libfaketime (real shard process)', () => {
  const dir = tempDir();
  const rcFile = path.join(dir.path, 'faketime.rc');
  /** Default settings. */
  let shard: Running;
  /** Durable mode (--mem-queue-size 0): everything a topic buffers goes through its disk queue. */
  let durable: Running;
  /** The shard the helpers below talk to. */
  let http = '';

  const url = (p: string) => `http://${http}${p}`;
  const use = (s: Running) => (http = s.addresses.http);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  async function publish(topic: string, body: string, deferMs = 0): Promise<void> {
    const r = await call(url(`/pub?topic=${topic}${deferMs > 0 ? `&defer=${deferMs}` : ''}`), 'POST', body);
    expect([r.status, r.text]).toEqual([200, 'OK']);
  }

  async function pull(topic: string, channel: string, query: string): Promise<Leased[]> {
    const r = await call(url(`/sluice/lease/pull?topic=${topic}&channel=${channel}&${query}`), 'POST');
    expect(r.status).toBe(200);
    return (r.json().messages as Leased[]).map((m) => ({ ...m, body: Buffer.from(m.body, 'base64').toString() }));
  }

  async function finish(topic: string, channel: string, leases: Leased[]): Promise<string[]> {
    const r = await call(url(`/sluice/lease/finish?topic=${topic}&channel=${channel}`), 'POST', JSON.stringify({ leases: leases.map(({ id, token }) => ({ id, token })) }), { 'content-type': 'application/json' });
    expect(r.status).toBe(200);
    return (r.json().results as { status: string }[]).map((x) => x.status);
  }

  async function stats(topic: string, channel: string): Promise<ChannelStats> {
    const doc = (await call(url(`/stats?format=json&topic=${topic}&channel=${channel}`))).json();
    const ch = doc.topics?.[0]?.channels?.find((c: { channel_name: string }) => c.channel_name === channel);
    if (!ch) throw new Error(`no channel ${topic}/${channel} in /stats`);
    return ch as ChannelStats;
  }

  /** The shard's wall clock now, read from the timestamp it gives a fresh message. */
  async function shardWallMs(): Promise<number> {
    await publish('clock_probe', 'probe');
    const [m] = await pull('clock_probe', 'probe', 'max=1&wait_ms=2000');
    expect(await finish('clock_probe', 'probe', [m])).toEqual(['OK']);
    return m.timestamp / 1e6;
  }

  /** Steps both shards' wall clock to real time + `hours`, and waits until each runs on it. */
  async function setClock(hours: number): Promise<void> {
    const current = http;
    writeFileSync(rcFile, `${hours >= 0 ? '+' : ''}${hours}h\n`);
    for (const s of [shard, durable]) {
      use(s);
      await waitFor(async () => Math.abs((await shardWallMs()) - (Date.now() + hours * HOUR)) < 60_000, 5000, `the shard's wall clock at ${hours} h`);
    }
    http = current;
  }

  const start = (dataDir: string, args: string[] = []) =>
    startProgram(['shard', '--http-address', '127.0.0.1:0', '--tcp-address', '127.0.0.1:0', '--data-path', path.join(dir.path, dataDir), '--max-msg-timeout', '1h', ...args], {
      env: { LD_PRELOAD: LIBFAKETIME, FAKETIME_TIMESTAMP_FILE: rcFile, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
    });

  beforeAll(async () => {
    if (!existsSync(LIBFAKETIME)) {
      throw new Error(`${LIBFAKETIME} is missing: this test needs Debian's libfaketime (apt-get install -y faketime; .ci/run installs it)`);
    }
    writeFileSync(rcFile, '+0\n');
    [shard, durable] = await Promise.all([start('default'), start('durable', ['--mem-queue-size', '0'])]);
    // the preload took: the shards' clocks follow the file, this process's does not
    await setClock(3);
    use(shard);
    expect(Math.abs(Date.now() - (await shardWallMs()) + 3 * HOUR)).toBeLessThan(60_000);
  });

  beforeEach(() => use(shard));

  afterAll(async () => {
    // a clean exit lets libfaketime remove its shared memory segment
    await Promise.all([shard?.stop(), durable?.stop()]);
    dir.remove();
  });

  it('a forward jump of hours times out nothing that has a long timeout: leases and TCP deliveries stay in flight and can be finished', async () => {
    await setClock(0);
    const topic = 'fwd_inflight';
    // TCP: a consumer with a 10-minute msg_timeout holds three messages
    const c = await RawClient.connect(shard.addresses.tcp);
    try {
      expect((await c.identify({ msg_timeout: 600_000 })).type).toBe('response');
      c.write(cmd(`SUB ${topic} tcp`));
      expect(await c.response()).toBe('OK');
      // a lease holder with a 10-minute lease holds three more (the channel exists first)
      await pull(topic, 'lease', 'max=1&wait_ms=0');
      for (let i = 0; i < 3; i++) await publish(topic, `m${i}`);
      c.write(cmd('RDY 10'));
      const delivered = [await c.message(), await c.message(), await c.message()];
      const leased = await pull(topic, 'lease', 'max=10&wait_ms=2000&lease_ms=600000');
      expect(leased).toHaveLength(3);

      await setClock(6); // six hours later, as far as the wall clock says
      await sleep(1000); // ten scans of the in-flight queues
      expect(await stats(topic, 'tcp')).toMatchObject({ in_flight_count: 3, timeout_count: 0, depth: 0 });
      expect(await stats(topic, 'lease')).toMatchObject({ in_flight_count: 3, timeout_count: 0, depth: 0 });

      for (const m of delivered) c.write(cmd(`FIN ${m.id}`));
      expect(await finish(topic, 'lease', leased)).toEqual(['OK', 'OK', 'OK']);
      await waitFor(async () => (await stats(topic, 'tcp')).in_flight_count === 0, 5000, 'the FINs');
      expect(await stats(topic, 'tcp')).toMatchObject({ in_flight_count: 0, timeout_count: 0, depth: 0 });
      expect(await stats(topic, 'lease')).toMatchObject({ in_flight_count: 0, timeout_count: 0, depth: 0 });
      expect(c.frames.filter((f) => f.type === 'error')).toEqual([]);
      expect(c.isClosed).toBe(false);
    } finally {
      c.close();
    }
  });

  it('after a backward jump of hours a short timeout still fires on schedule: nothing is stuck in flight', async () => {
    await setClock(6);
    const topic = 'back_timeout';
    await pull(topic, 'c', 'max=1&wait_ms=0');
    await publish(topic, 'short');
    const [first] = await pull(topic, 'c', 'max=1&wait_ms=2000&lease_ms=1500');
    const leasedAt = Date.now();
    await setClock(-6); // twelve hours back
    await waitFor(async () => (await stats(topic, 'c')).timeout_count === 1, 6000, 'the 1.5 s lease to time out');
    const after = Date.now() - leasedAt;
    expect(after).toBeGreaterThanOrEqual(1400);
    expect(after).toBeLessThan(4000);
    expect(await stats(topic, 'c')).toMatchObject({ in_flight_count: 0, depth: 1 });
    const [again] = await pull(topic, 'c', 'max=1&wait_ms=2000');
    expect([again.id, again.attempts]).toEqual([first.id, 2]);
    expect(await finish(topic, 'c', [first])).toEqual(['STALE_LEASE']);
    expect(await finish(topic, 'c', [again])).toEqual(['OK']);
  });

  /** Publishes with `deferMs`, steps the clock by `jumpHours`, and returns when (ms after publishing) the message could be pulled. */
  async function deferredDelay(topic: string, deferMs: number, fromHours: number, toHours: number, pausedTopic: boolean): Promise<number> {
    await setClock(fromHours);
    await pull(topic, 'c', 'max=1&wait_ms=0'); // the channel exists
    if (pausedTopic) expect((await call(url(`/topic/pause?topic=${topic}`), 'POST')).status).toBe(200);
    const publishedAt = Date.now();
    await publish(topic, 'later', deferMs);
    await setClock(toHours);
    // a paused topic keeps the message in its own queue until unpaused: then it reaches the channel
    if (pausedTopic) expect((await call(url(`/topic/unpause?topic=${topic}`), 'POST')).status).toBe(200);
    const got = await pull(topic, 'c', `max=1&wait_ms=${deferMs + 5000}`);
    const delay = Date.now() - publishedAt;
    expect(got.map((m) => m.body)).toEqual(['later']);
    expect(await finish(topic, 'c', got)).toEqual(['OK']);
    expect(await stats(topic, 'c')).toMatchObject({ in_flight_count: 0, deferred_count: 0, depth: 0 });
    return delay;
  }

  it('a deferred message does not fire early on a forward jump of hours', async () => {
    expect(await deferredDelay('fwd_defer', 2500, 0, 8, false)).toBeGreaterThanOrEqual(2400);
  });

  it('a deferred message is not stuck after a backward jump of hours', async () => {
    const delay = await deferredDelay('back_defer', 2500, 4, -4, false);
    expect(delay).toBeGreaterThanOrEqual(2400);
    expect(delay).toBeLessThan(5000);
  });

  it('a deferred message waiting in a paused topic does not fire early on a forward jump', async () => {
    expect(await deferredDelay('fwd_defer_paused', 2500, 0, 8, true)).toBeGreaterThanOrEqual(2400);
  });

  it('a deferred message waiting in a paused topic is not stuck after a backward jump', async () => {
    const delay = await deferredDelay('back_defer_paused', 2500, 4, -4, true);
    expect(delay).toBeGreaterThanOrEqual(2400);
    expect(delay).toBeLessThan(5000);
  });

  it('durable mode: a deferred message read back from a paused topic\'s disk queue is at most its own delay late after a backward jump', async () => {
    use(durable);
    // Only its wall-clock due time survives the disk queue; a clock stepped back 8 h would hold
    // it for 8 h, so that due time is trusted for no longer than the delay asked for.
    const delay = await deferredDelay('back_defer_disk', 2500, 4, -4, true);
    expect(delay).toBeGreaterThanOrEqual(2400);
    expect(delay).toBeLessThan(2 * 2500 + 2000);
  });
});
