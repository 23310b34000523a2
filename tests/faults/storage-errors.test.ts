// Storage failures inside one process (fs.writeSync made to fail as a full disk does): a publish
// is refused (PUB_FAILED), never acknowledged; the periodic scan survives and health reports it;
// a short journal write leaves no torn frame that would hide later records.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine, EngineError } from '../../shard/engine/engine';
import { FileStore } from '../../shard/engine/file-store';
import { FileJournal, parseJournal } from '../../shard/engine/journal';
import { Message } from '../../shard/engine/message';

const enospc = (): NodeJS.ErrnoException => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });

function durableEngine(dir: string): Engine {
  const store = new FileStore({ dataPath: dir, maxBytesPerFile: 1 << 20, maxMsgSize: 1 << 20, syncEvery: 1, syncTimeoutMs: 0, journal: true });
  return new Engine({ memQueueSize: 0 }, { store, schedule: (fn) => fn() });
}

describe('storage errors', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-storage-'));
  });
  afterEach(() => {
    jest.restoreAllMocks();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a full disk refuses publishes with PUB_FAILED, the scan survives, health recovers, acknowledged messages survive a crash', () => {
    const errors: Error[] = [];
    const store = new FileStore({ dataPath: dir, maxBytesPerFile: 1 << 20, maxMsgSize: 1 << 20, syncEvery: 1, syncTimeoutMs: 0, journal: true });
    const e1 = new Engine({ memQueueSize: 0 }, { store, schedule: (fn) => fn(), onStorageError: (err) => errors.push(err) });
    e1.channel('t', 'c');
    const acked = ['a', 'b', 'c'].map((s) => (e1.publish('t', Buffer.from(s)), s));
    expect(e1.health()).toBe('OK');

    const spy = jest.spyOn(fs, 'writeSync').mockImplementation(() => {
      throw enospc();
    });
    for (let i = 0; i < 5; i++) {
      let thrown: unknown;
      try {
        e1.publish('t', Buffer.from(`refused${i}`));
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(EngineError);
      expect((thrown as EngineError).code).toBe('PUB_FAILED');
    }
    expect(() => e1.publishMany('t', [Buffer.from('x'), Buffer.from('y')])).toThrow(EngineError);
    expect(() => e1.tick()).not.toThrow();
    expect(e1.health()).toMatch(/^NOK - ENOSPC/);
    expect(errors).toHaveLength(1); // reported once per episode, not per call

    spy.mockRestore();
    e1.tick(); // buffered writes go out; storage works again
    expect(e1.health()).toBe('OK');
    e1.publish('t', Buffer.from('after'));
    acked.push('after');
    // crash: e1 is abandoned without close()

    const e2 = durableEngine(dir);
    const bodies: string[] = [];
    for (let m; (m = e2.findChannel('t', 'c')!['queue'].take()); ) bodies.push(m.body.toString());
    for (const a of acked) expect(bodies).toContain(a);
    // refused publishes may have landed (their records were buffered), but nothing else did
    for (const b of bodies) expect(acked.includes(b) || /^refused\d$/.test(b) || b === 'x' || b === 'y').toBe(true);
    e2.close();
  });

  it('a short journal write (disk filling up) is cut back, so later records are not hidden behind a torn frame', () => {
    const j = new FileJournal({ dataPath: dir, queueName: 't:c', syncEvery: 1 });
    const msg = (i: number) => new Message(`${i}`.padStart(16, '0'), Buffer.from(`body${i}`), Date.now() * 1e6);
    j.take(msg(1), 'in_flight', 0);
    j.commit(() => undefined);
    j.take(msg(2), 'in_flight', 0);
    j.take(msg(3), 'deferred', Date.now() + 60_000);
    const real = fs.writeSync;
    let calls = 0;
    jest.spyOn(fs, 'writeSync').mockImplementation(((fd: number, buf: Buffer, off: number, len: number) => {
      if (calls++ === 0) return (real as (fd: number, b: Buffer, o: number, l: number) => number)(fd, buf, off, Math.floor(len / 2)); // short write
      throw enospc();
    }) as unknown as typeof fs.writeSync);
    expect(() => j.commit(() => undefined)).toThrow(/ENOSPC/);
    jest.restoreAllMocks();
    // space is back: the batch is written again, whole
    j.take(msg(4), 'in_flight', 0);
    j.commit(() => undefined);
    const live = parseJournal(fs.readFileSync(path.join(dir, 't:c.journal.dat'))).map((e) => e.message.body.toString());
    expect(live.sort()).toEqual(['body1', 'body2', 'body3', 'body4']);
    j.close();
  });
});
