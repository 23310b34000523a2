// Process-level durability faults on a real shard: kill -9 under publish load, SIGTERM with
// messages everywhere, the default mode's loss bound, and damaged files on disk.

import fs from 'node:fs';
import path from 'node:path';
import { call, startShard, ShardProcess } from '../helpers/shard';
import { tempDir, waitFor } from '../helpers/process';
import { DurabilityChecker, drainInto } from '../helpers/durability';

const DURABLE = ['--mem-queue-size', '0', '--sync-every', '1'];

async function channelStats(s: ShardProcess, topic: string): Promise<any> {
  return (await call(s.url(`/stats?format=json&topic=${topic}`))).json().topics[0].channels[0];
}

async function createChannel(s: ShardProcess, topic: string): Promise<void> {
  expect((await call(s.url(`/topic/create?topic=${topic}`), 'POST')).status).toBe(200);
  expect((await call(s.url(`/channel/create?topic=${topic}&channel=c`), 'POST')).status).toBe(200);
}

/** Publishes unique bodies from `workers` concurrent loops until `stop()` says so. */
function publishLoad(s: ShardProcess, topic: string, checker: DurabilityChecker, workers: number, maxEach: number) {
  let stopped = false;
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; i < maxEach && !stopped; i++) {
      const body = `w${w}-${i}`;
      checker.attempt(body);
      try {
        const r = await call(s.url(`/pub?topic=${topic}`), 'POST', body);
        if (r.status === 200 && r.text === 'OK') checker.ack(body);
      } catch {
        return; // the shard died under us: this publish may or may not have landed
      }
    }
  });
  return { stop: () => (stopped = true), done: Promise.all(loops) };
}

describe('shard durability faults', () => {
  it('kill -9 under publish load in durable mode loses no acknowledged publish', async () => {
    const dir = tempDir();
    let shard = await startShard(DURABLE, dir.path);
    try {
      await createChannel(shard, 'dur');
      const checker = new DurabilityChecker();
      const load = publishLoad(shard, 'dur', checker, 8, 5000);
      const deadline = Date.now() + 5000;
      while (checker.ackedCount < 1500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await shard.kill9(); // publishes are still in flight here
      load.stop();
      await load.done;
      expect(checker.ackedCount).toBeGreaterThan(100);

      shard = await startShard(DURABLE, dir.path);
      await drainInto(shard.url, 'dur', 'c', checker);
      const rep = checker.report();
      expect(rep.lost).toEqual([]);
      expect(rep.unexpected).toEqual([]);
      expect(rep.neverSeen.length).toBeLessThanOrEqual(8); // at most one in flight per publisher
    } finally {
      await shard.stop();
      dir.remove();
    }
  });

  it('SIGTERM with messages in memory, in flight and deferred: same depth, defer times kept, exit within 10 s', async () => {
    const dir = tempDir();
    const args = ['--mem-queue-size', '1000'];
    let shard = await startShard(args, dir.path);
    try {
      await createChannel(shard, 'st');
      const lines = Array.from({ length: 2000 }, (_, i) => `m${i}`); // 1000 in memory, 1000 on disk
      expect((await call(shard.url('/mpub?topic=st'), 'POST', lines.join('\n'))).text).toBe('OK');
      const deferredAt = Date.now();
      for (let i = 0; i < 20; i++) expect((await call(shard.url('/pub?topic=st&defer=2500'), 'POST', `d${i}`)).status).toBe(200);
      const held = (await call(shard.url('/sluice/lease/pull?topic=st&channel=c&max=50&lease_ms=600000'), 'POST')).json().messages;
      expect(held).toHaveLength(50);
      const before = await channelStats(shard, 'st');
      expect(before).toMatchObject({ depth: 1950, in_flight_count: 50, deferred_count: 20 });

      const t0 = Date.now();
      expect(await shard.stop('SIGTERM')).toBe(0);
      expect(Date.now() - t0).toBeLessThan(10_000);

      shard = await startShard(args, dir.path);
      const after = await channelStats(shard, 'st');
      expect(after).toMatchObject({ depth: 1950, in_flight_count: 50, deferred_count: 20 });
      // deferred messages are not due early: nothing deferred comes out before their due time
      const checker = new DurabilityChecker();
      for (const l of lines) checker.attempt(l);
      for (let i = 0; i < 20; i++) checker.attempt(`d${i}`);
      await drainInto(shard.url, 'st', 'c', checker);
      const early = checker.report();
      expect(early.delivered).toBe(1950);
      expect(Date.now()).toBeLessThan(deferredAt + 2500); // so the next line means something
      expect(early.neverSeen.filter((b) => b.startsWith('d'))).toHaveLength(20);
      // the deferred ones come out once due, not before: their due times were kept
      await new Promise((r) => setTimeout(r, Math.max(0, deferredAt + 2500 - Date.now())));
      await waitFor(async () => {
        await drainInto(shard.url, 'st', 'c', checker);
        return checker.report().delivered === 1970;
      }, 5000, 'the deferred messages to come due');
      const rep = checker.report();
      expect(rep.neverSeen.filter((b) => !/^m\d+$/.test(b)).length).toBe(0);
      expect(rep.neverSeen.length).toBe(50); // exactly the ones still leased from before the stop
      expect(rep.duplicated).toEqual([]);
    } finally {
      await shard.stop();
      dir.remove();
    }
  });

  it('default mode: kill -9 loses at most what the memory queues held', async () => {
    const dir = tempDir();
    const MEM = 100;
    const args = ['--mem-queue-size', String(MEM)];
    let shard = await startShard(args, dir.path);
    try {
      await createChannel(shard, 'dm');
      const checker = new DurabilityChecker();
      const N = 1000;
      for (let i = 0; i < N; i += 100) {
        const batch = Array.from({ length: 100 }, (_, j) => `b${i + j}`);
        batch.forEach((b) => checker.attempt(b));
        expect((await call(shard.url('/mpub?topic=dm'), 'POST', batch.join('\n'))).text).toBe('OK');
        batch.forEach((b) => checker.ack(b));
      }
      await shard.kill9();
      shard = await startShard(args, dir.path);
      await drainInto(shard.url, 'dm', 'c', checker);
      const rep = checker.report();
      // README: lost are messages held only in memory, up to --mem-queue-size per topic and channel
      expect(rep.lost.length).toBeLessThanOrEqual(2 * MEM);
      expect(rep.acked - rep.lost.length).toBeGreaterThanOrEqual(N - 2 * MEM);
      expect(rep.unexpected).toEqual([]);
    } finally {
      await shard.stop();
      dir.remove();
    }
  });

  it('a bit flip and a truncated tail are skipped, counted, kept as .bad, and nothing else is lost', async () => {
    const dir = tempDir();
    const args = [...DURABLE, '--max-bytes-per-file', '2048'];
    let shard = await startShard(args, dir.path);
    try {
      await createChannel(shard, 'cr');
      const N = 300;
      for (let i = 0; i < N; i += 50) {
        const batch = Array.from({ length: 50 }, (_, j) => `rec-${String(i + j).padStart(4, '0')}`);
        expect((await call(shard.url('/mpub?topic=cr'), 'POST', batch.join('\n'))).text).toBe('OK');
      }
      expect(await shard.stop()).toBe(0);
      const segs = fs.readdirSync(dir.path).filter((f) => f.startsWith('cr:c.diskqueue.') && /\d{6}\.dat$/.test(f)).sort();
      expect(segs.length).toBeGreaterThan(3);
      const sizes = new Map(segs.map((f) => [f, fs.statSync(path.join(dir.path, f)).size]));
      // flip a bit in the middle of the first segment, truncate the last one mid-record
      const first = path.join(dir.path, segs[0]);
      const buf = fs.readFileSync(first);
      buf[Math.floor(buf.length / 2)] ^= 0x10;
      fs.writeFileSync(first, buf);
      const last = path.join(dir.path, segs[segs.length - 1]);
      fs.truncateSync(last, sizes.get(segs[segs.length - 1])! - 5);
      const untouched = segs.slice(1, -1).map((f) => [f, fs.readFileSync(path.join(dir.path, f))] as const);

      shard = await startShard(args, dir.path);
      // files in the middle were not rewritten at open
      for (const [f, data] of untouched) expect(fs.readFileSync(path.join(dir.path, f)).equals(data)).toBe(true);
      const checker = new DurabilityChecker();
      for (let i = 0; i < N; i++) checker.attempt(`rec-${String(i).padStart(4, '0')}`);
      await drainInto(shard.url, 'cr', 'c', checker);
      const rep = checker.report();
      expect(rep.unexpected).toEqual([]);
      // only the damaged records: one around the flip (resync may cost a neighbour), one at the tail
      expect(rep.neverSeen.length).toBeGreaterThanOrEqual(2);
      expect(rep.neverSeen.length).toBeLessThanOrEqual(4);
      const ch = await channelStats(shard, 'cr');
      expect(ch.corrupt_count).toBeGreaterThanOrEqual(1);
      expect(ch.depth).toBe(0);
      // a read segment is retired (here: kept as .bad) at the disk queue's next sync (--sync-timeout)
      await waitFor(() => fs.readdirSync(dir.path).some((f) => f.startsWith(`${segs[0]}.bad`)), 5000, 'the damaged segment kept as .bad');
      // a health answer still comes back, and the shard keeps accepting publishes
      expect((await call(shard.url('/ping'))).status).toBe(200);
      expect((await call(shard.url('/pub?topic=cr'), 'POST', 'after')).text).toBe('OK');
    } finally {
      await shard.stop();
      dir.remove();
    }
  });

  it('unreadable queue metadata: the shard starts, recounts from the segments and keeps every record', async () => {
    const dir = tempDir();
    let shard = await startShard(DURABLE, dir.path);
    try {
      await createChannel(shard, 'gm');
      const bodies = Array.from({ length: 40 }, (_, i) => `g${i}`);
      expect((await call(shard.url('/mpub?topic=gm'), 'POST', bodies.join('\n'))).text).toBe('OK');
      expect(await shard.stop()).toBe(0);
      fs.writeFileSync(path.join(dir.path, 'gm:c.diskqueue.meta.dat'), Buffer.from('garbage\0\xff\n1,2\n', 'latin1'));

      shard = await startShard(DURABLE, dir.path);
      expect(shard.logs.some((l) => l.message === 'corrupt record skipped' && /metadata/.test(String(l.reason)))).toBe(true);
      expect((await channelStats(shard, 'gm')).depth).toBe(40);
      const checker = new DurabilityChecker();
      for (const b of bodies) {
        checker.attempt(b);
        checker.ack(b);
      }
      await drainInto(shard.url, 'gm', 'c', checker);
      expect(checker.report()).toMatchObject({ lost: [], unexpected: [], duplicated: [] });
    } finally {
      await shard.stop();
      dir.remove();
    }
  });

  it('stale queue metadata: the shard scans forward and brings back every record (at least once)', async () => {
    const dir = tempDir();
    let shard = await startShard(DURABLE, dir.path);
    try {
      await createChannel(shard, 'sm');
      const first = Array.from({ length: 50 }, (_, i) => `a${i}`);
      expect((await call(shard.url('/mpub?topic=sm'), 'POST', first.join('\n'))).text).toBe('OK');
      expect(await shard.stop()).toBe(0);
      const meta = path.join(dir.path, 'sm:c.diskqueue.meta.dat');
      const stale = fs.readFileSync(meta);

      shard = await startShard(DURABLE, dir.path);
      const second = Array.from({ length: 50 }, (_, i) => `b${i}`);
      expect((await call(shard.url('/mpub?topic=sm'), 'POST', second.join('\n'))).text).toBe('OK');
      await shard.kill9();
      fs.writeFileSync(meta, stale); // metadata from before the second batch

      shard = await startShard(DURABLE, dir.path);
      const checker = new DurabilityChecker();
      for (const b of [...first, ...second]) {
        checker.attempt(b);
        checker.ack(b);
      }
      await drainInto(shard.url, 'sm', 'c', checker);
      const rep = checker.report();
      expect(rep.lost).toEqual([]);
      expect(rep.unexpected).toEqual([]);
    } finally {
      await shard.stop();
      dir.remove();
    }
  });
});
