// Durable mode (--mem-queue-size 0): a crash (no clean close) loses neither in-flight nor
// deferred messages, because each channel journals them on disk.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine } from '../../shard/engine/engine';
import { FileStore } from '../../shard/engine/file-store';
import { parseJournal } from '../../shard/engine/journal';

function durableEngine(dir: string): Engine {
  const store = new FileStore({ dataPath: dir, maxBytesPerFile: 1 << 20, maxMsgSize: 1 << 20, syncEvery: 1, syncTimeoutMs: 0, journal: true });
  return new Engine({ memQueueSize: 0 }, { store, schedule: (fn) => setImmediate(fn) });
}

const b = (s: string) => Buffer.from(s);

describe('durable mode: crash journal', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-journal-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('brings back in-flight and deferred messages after a crash, deferred not early', async () => {
    const e1 = durableEngine(dir);
    e1.channel('t', 'c');
    for (let i = 0; i < 10; i++) e1.publish('t', b(`m${i}`));
    e1.publish('t', b('dpub'), 60_000);
    const leased = await e1.pull('t', 'c', { max: 6, leaseMs: 60_000, waitMs: 0 });
    expect(leased).toHaveLength(6);
    expect(e1.finishLease('t', 'c', leased[0].id, leased[0].token)).toBe('ok');
    expect(e1.requeueLease('t', 'c', leased[1].id, leased[1].token, 30_000)).toBe('ok');
    expect(e1.findChannel('t', 'c')!.stats()).toMatchObject({ depth: 4, in_flight_count: 4, deferred_count: 2 });
    // crash: e1 is abandoned without close()

    const e2 = durableEngine(dir);
    const ch = e2.findChannel('t', 'c')!;
    expect(ch.stats().deferred_count).toBe(2);
    const ready = await e2.pull('t', 'c', { max: 100, leaseMs: 60_000, waitMs: 0 });
    const bodies = new Set(ready.map((m) => m.body.toString()));
    // everything but the finished one and the two deferred is ready again (duplicates allowed)
    for (let i = 2; i < 10; i++) expect(bodies.has(`m${i}`)).toBe(true);
    expect(bodies.has('dpub')).toBe(false);
    expect(bodies.has('m1')).toBe(false);
    // the deferred ones are still deferred: a requeue with delay, and the deferred publish
    expect(ch.stats().deferred_count).toBe(2);
    e2.close();
  });

  it('a clean close leaves no journal behind, and the saved state is used instead', async () => {
    const e1 = durableEngine(dir);
    e1.channel('t', 'c');
    e1.publish('t', b('x'), 60_000);
    e1.close();
    expect(fs.existsSync(path.join(dir, 't:c.journal.dat'))).toBe(false);
    const e2 = durableEngine(dir);
    expect(e2.findChannel('t', 'c')!.stats().deferred_count).toBe(1);
    e2.close();
  });

  it('the journal is matched by sequence, and a torn tail is ignored', async () => {
    const e1 = durableEngine(dir);
    e1.channel('t', 'c');
    e1.publish('t', b('a'));
    e1.publish('t', b('b'));
    const [a, bb] = await e1.pull('t', 'c', { max: 2, leaseMs: 60_000, waitMs: 0 });
    e1.finishLease('t', 'c', a.id, a.token);
    const file = path.join(dir, 't:c.journal.dat');
    const bytes = fs.readFileSync(file);
    expect(parseJournal(bytes).map((e) => e.message.body.toString())).toEqual(['b']);
    fs.appendFileSync(file, bytes.subarray(0, 7)); // a torn partial frame
    expect(parseJournal(fs.readFileSync(file)).map((e) => e.message.id)).toEqual([bb.id]);
  });
  it('writes a published batch to a channel in a few syscalls, not one per message, and keeps it across a crash', () => {
    const e1 = durableEngine(dir);
    e1.channel('t', 'c');
    const writes = jest.spyOn(fs, 'writeSync');
    try {
      e1.publishMany('t', Array.from({ length: 100 }, (_, i) => b(`m${i}`)));
      // one write-out of the channel's disk queue (and its metadata), whatever the batch size
      expect(writes.mock.calls.length).toBeLessThan(10);
    } finally {
      writes.mockRestore();
    }
    // crash: e1 is abandoned without close(); acknowledged means handed to the OS
    const e2 = durableEngine(dir);
    expect(e2.findChannel('t', 'c')!.stats().depth).toBe(100);
    e2.close();
  });
});
