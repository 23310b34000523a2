// Restarts of a real shard process: a clean stop keeps every message, and a kill -9 in durable
// mode keeps every publish that was acknowledged.

import { call, startShard } from '../helpers/shard';
import { tempDir, waitFor } from '../helpers/process';

const L = '/sluice/lease';

/** Reads the channel empty through the lease API, finishing everything; returns bodies by id. */
async function drain(url: (p: string) => string, topic: string, channel: string): Promise<{ ids: Map<string, string>; deliveries: number }> {
  const ids = new Map<string, string>();
  let deliveries = 0;
  for (;;) {
    const got = (await call(url(`${L}/pull?topic=${topic}&channel=${channel}&max=5000&lease_ms=60000`), 'POST')).json().messages as any[];
    if (got.length === 0) break;
    deliveries += got.length;
    for (const m of got) ids.set(m.id, Buffer.from(m.body, 'base64').toString());
    const fin = await call(url(`${L}/finish?topic=${topic}&channel=${channel}`), 'POST', JSON.stringify({ leases: got.map((m) => ({ id: m.id, token: m.token })) }));
    expect(fin.json().results.every((r: any) => r.status === 'OK')).toBe(true);
  }
  return { ids, deliveries };
}

describe('shard restart', () => {
  it('keeps 100k messages across a clean restart with mem-queue-size 1000', async () => {
    const dir = tempDir();
    const args = ['--mem-queue-size', '1000', '--max-bytes-per-file', String(4 * 1024 * 1024)];
    let shard = await startShard(args, dir.path);
    try {
      await call(shard.url('/topic/create?topic=big'), 'POST');
      await call(shard.url('/channel/create?topic=big&channel=c'), 'POST');
      const N = 100_000;
      const BATCH = 1000;
      for (let i = 0; i < N; i += BATCH) {
        const lines = [];
        for (let j = i; j < i + BATCH; j++) lines.push(`msg-${j}`);
        expect((await call(shard.url('/mpub?topic=big'), 'POST', lines.join('\n'))).text).toBe('OK');
      }
      // some of them in flight and some deferred when the shard stops
      const inFlight = (await call(shard.url(`${L}/pull?topic=big&channel=c&max=100&lease_ms=600000`), 'POST')).json().messages;
      expect(inFlight).toHaveLength(100);
      const before = (await call(shard.url('/stats?format=json&topic=big'))).json().topics[0].channels[0];
      expect(before).toMatchObject({ depth: N - 100, in_flight_count: 100 });
      expect(before.backend_depth).toBeGreaterThan(90_000);

      expect(await shard.stop()).toBe(0);
      shard = await startShard(args, dir.path);
      const after = (await call(shard.url('/stats?format=json&topic=big'))).json().topics[0].channels[0];
      expect(after).toMatchObject({ depth: N - 100, in_flight_count: 100 });
      // the lease holder can still finish what it held before the restart
      const fin = await call(shard.url(`${L}/finish?topic=big&channel=c`), 'POST', JSON.stringify({ leases: inFlight.map((m: any) => ({ id: m.id, token: m.token })) }));
      expect(fin.json().results.every((r: any) => r.status === 'OK')).toBe(true);

      const { ids, deliveries } = await drain(shard.url, 'big', 'c');
      expect(ids.size).toBe(N - 100);
      expect(deliveries).toBe(N - 100); // nothing delivered twice
      const bodies = new Set([...ids.values(), ...inFlight.map((m: any) => Buffer.from(m.body, 'base64').toString())]);
      expect(bodies.size).toBe(N);
      for (let j = 0; j < N; j += 9973) expect(bodies.has(`msg-${j}`)).toBe(true);
    } finally {
      await shard.stop();
      dir.remove();
    }
  });

  it('keeps paused flags and deferred messages with their due times across a clean restart', async () => {
    const dir = tempDir();
    let shard = await startShard([], dir.path);
    try {
      await call(shard.url('/topic/create?topic=pz'), 'POST');
      await call(shard.url('/channel/create?topic=pz&channel=c'), 'POST');
      await call(shard.url('/channel/create?topic=pz&channel=p'), 'POST');
      await call(shard.url('/channel/pause?topic=pz&channel=p'), 'POST');
      await call(shard.url('/topic/create?topic=tp'), 'POST');
      await call(shard.url('/topic/pause?topic=tp'), 'POST');
      const deferredAt = Date.now();
      expect((await call(shard.url('/pub?topic=pz&defer=3000'), 'POST', 'later')).text).toBe('OK');
      expect(await shard.stop()).toBe(0);

      shard = await startShard([], dir.path);
      const s = (await call(shard.url('/stats?format=json'))).json();
      const pz = s.topics.find((t: any) => t.topic_name === 'pz');
      expect(s.topics.find((t: any) => t.topic_name === 'tp').paused).toBe(true);
      expect(pz.channels.map((c: any) => [c.channel_name, c.paused, c.deferred_count])).toEqual([
        ['c', false, 1],
        ['p', true, 1],
      ]);
      // not early: nothing to pull until the original due time has passed
      const early = (await call(shard.url(`${L}/pull?topic=pz&channel=c`), 'POST')).json().messages;
      if (Date.now() - deferredAt < 2900) expect(early).toEqual([]);
      const got = (await call(shard.url(`${L}/pull?topic=pz&channel=c&wait_ms=5000`), 'POST')).json().messages;
      expect(Date.now() - deferredAt).toBeGreaterThanOrEqual(2900);
      expect(Buffer.from(got[0].body, 'base64').toString()).toBe('later');
    } finally {
      await shard.stop();
      dir.remove();
    }
  });

  it('remembers idempotency keys across a clean restart, and forgets them after kill -9', async () => {
    const dir = tempDir();
    let shard = await startShard([], dir.path);
    try {
      const pub = async (key: string, body: string) => (await call(shard.url(`/sluice/pub?topic=idem&idempotency_key=${key}`), 'POST', body)).json() as { id: string; duplicate: boolean };
      const first = await pub('delivery-1', 'one');
      expect(await shard.stop()).toBe(0);

      shard = await startShard([], dir.path);
      // a webhook sender retrying across the restart gets the first message's id, and no second copy
      expect(await pub('delivery-1', 'one again')).toEqual({ id: first.id, duplicate: true });
      const other = await pub('delivery-2', 'two');
      expect(other.duplicate).toBe(false);
      const depth = (await call(shard.url('/stats?format=json&topic=idem'))).json().topics[0].depth;
      expect(depth).toBe(2);

      // a crash saves nothing: the key is forgotten (documented in docs/guarantees.md)
      await shard.kill9();
      shard = await startShard([], dir.path);
      expect((await pub('delivery-2', 'two again')).duplicate).toBe(false);
    } finally {
      await shard.stop();
      dir.remove();
    }
  });

  it('keeps every acknowledged publish across kill -9 with --mem-queue-size 0 --sync-every 1', async () => {
    const dir = tempDir();
    const args = ['--mem-queue-size', '0', '--sync-every', '1'];
    let shard = await startShard(args, dir.path);
    try {
      await call(shard.url('/topic/create?topic=dur'), 'POST');
      await call(shard.url('/channel/create?topic=dur&channel=c'), 'POST');
      const acked: string[] = [];
      for (let i = 0; i < 300; i++) {
        const body = `d-${i}`;
        if ((await call(shard.url('/pub?topic=dur'), 'POST', body)).text === 'OK') acked.push(body);
      }
      await shard.kill9();
      shard = await startShard(args, dir.path);
      const { ids } = await drain(shard.url, 'dur', 'c');
      const got = new Set(ids.values());
      expect(acked.filter((b) => !got.has(b))).toEqual([]);
    } finally {
      await shard.stop();
      dir.remove();
    }
  });

  it('brings back 500 in-flight and 100 deferred messages after kill -9 in durable mode, deferred not early', async () => {
    const dir = tempDir();
    const args = ['--mem-queue-size', '0', '--sync-every', '1'];
    let shard = await startShard(args, dir.path);
    try {
      await call(shard.url('/topic/create?topic=j'), 'POST');
      await call(shard.url('/channel/create?topic=j&channel=c'), 'POST');
      const lines = Array.from({ length: 1000 }, (_, i) => `now-${i}`);
      expect((await call(shard.url('/mpub?topic=j'), 'POST', lines.join('\n'))).text).toBe('OK');
      const deferredAt = Date.now();
      for (let i = 0; i < 100; i++) expect((await call(shard.url(`/pub?topic=j&defer=4000`), 'POST', `later-${i}`)).text).toBe('OK');
      const inFlight = (await call(shard.url(`${L}/pull?topic=j&channel=c&max=500&lease_ms=600000`), 'POST')).json().messages;
      expect(inFlight).toHaveLength(500);
      await shard.kill9();

      shard = await startShard(args, dir.path);
      const ch = (await call(shard.url('/stats?format=json&topic=j'))).json().topics[0].channels[0];
      expect(ch.deferred_count).toBe(100);
      const early = await drain(shard.url, 'j', 'c');
      const seen = new Set(early.ids.values());
      for (const line of lines) expect(seen.has(line)).toBe(true);
      if (Date.now() - deferredAt < 3900) expect([...seen].some((s) => s.startsWith('later-'))).toBe(false);
      // they come due over the time it took to publish them: collect until all 100 are back
      const laterBodies = new Set<string>();
      let firstAt = 0;
      await waitFor(async () => {
        const got = (await call(shard.url(`${L}/pull?topic=j&channel=c&max=100&wait_ms=1000`), 'POST')).json().messages;
        if (got.length && !firstAt) firstAt = Date.now();
        for (const m of got) laterBodies.add(Buffer.from(m.body, 'base64').toString());
        return laterBodies.size === 100;
      }, 15000, 'all deferred messages');
      expect(firstAt - deferredAt).toBeGreaterThanOrEqual(3900);
      expect(laterBodies.size).toBe(100);
    } finally {
      await shard.stop();
      dir.remove();
    }
  });
});
