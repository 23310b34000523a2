// DiskQueue beyond the BackendQueue contract: file layout, segment rolling, restarts, crashes,
// damaged data and metadata, the fsync policy, and a model-based property test.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { DiskQueue, DiskQueueOptions } from '../../shard/engine/disk-queue';

interface Corruption {
  file: string;
  offset: number;
  reason: string;
}

const dirs: string[] = [];
afterEach(() => {
  jest.restoreAllMocks();
  jest.useRealTimers();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A fresh directory and options; `reports` collects what onCorrupt was told. */
function setup(over: Partial<DiskQueueOptions> = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-dq-'));
  dirs.push(dir);
  const reports: Corruption[] = [];
  const opts: DiskQueueOptions = {
    dataPath: dir,
    name: 'orders',
    maxBytesPerFile: 100 << 20,
    maxRecordSize: 1 << 20,
    syncEvery: 2500,
    syncTimeoutMs: 0,
    onCorrupt: (c) => reports.push(c),
    ...over,
  };
  const seg = (n: number, name = opts.name) => path.join(dir, `${name}.diskqueue.${String(n).padStart(6, '0')}.dat`);
  const meta = path.join(dir, `${opts.name}.diskqueue.meta.dat`);
  return { dir, opts, reports, seg, meta, open: () => DiskQueue.open(opts) };
}

/** Record i: `size` bytes starting with i, so a test can tell which record it got back. */
function rec(i: number, size = 100): Buffer {
  const b = Buffer.alloc(size, (i * 13) & 0xff);
  if (size >= 4) b.writeUInt32BE(i, 0);
  return b;
}
const FRAME = 8 + 100;

function putRange(q: DiskQueue, from: number, to: number, size = 100): void {
  for (let i = from; i < to; i++) q.put(rec(i, size));
}

function readIds(q: DiskQueue, max = Infinity): number[] {
  const out: number[] = [];
  while (out.length < max) {
    const r = q.readNext();
    if (r === null) break;
    out.push(r.readUInt32BE(0));
  }
  return out;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, k) => from + k);
}

function segmentNames(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => /\.diskqueue\.\d+\.dat$/.test(f)).sort();
}

function patch(file: string, offset: number, bytes: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, bytes, 0, bytes.length, offset);
  fs.closeSync(fd);
}

describe('file layout', () => {
  it('frames records as [length BE][crc32 BE][data] in nsqd-named segments with nsqd-style metadata', () => {
    const s = setup({ name: 'orders:archive' });
    const q = s.open();
    q.put(Buffer.from('hello'));
    q.put(Buffer.from([1, 2, 3]));
    q.close();
    const frame = (d: Buffer) => {
      const h = Buffer.alloc(8);
      h.writeUInt32BE(d.length, 0);
      h.writeUInt32BE(crc32(d), 4);
      return Buffer.concat([h, d]);
    };
    const expected = Buffer.concat([frame(Buffer.from('hello')), frame(Buffer.from([1, 2, 3]))]);
    expect(fs.readFileSync(path.join(s.dir, 'orders:archive.diskqueue.000000.dat')).equals(expected)).toBe(true);
    expect(fs.readFileSync(path.join(s.dir, 'orders:archive.diskqueue.meta.dat'), 'utf8')).toBe('2\n0,0\n0,24\n');
  });

  it('rolls before a record would pass maxBytesPerFile and deletes segments once read', () => {
    const s = setup({ maxBytesPerFile: 1000 });
    const q = s.open();
    putRange(q, 0, 100);
    q.flush();
    const names = segmentNames(s.dir);
    expect(names).toEqual(range(0, 12).map((n) => path.basename(s.seg(n))));
    for (const n of range(0, 11)) expect(fs.statSync(s.seg(n)).size).toBe(9 * FRAME); // 9 × 108 ≤ 1000 < 10 × 108
    expect(fs.statSync(s.seg(11)).size).toBe(FRAME);

    expect(readIds(q, 46)).toEqual(range(0, 46)); // the 46th read moves past segment 4
    q.flush(true); // read segments go at the next sync, once the metadata has moved past them
    expect(segmentNames(s.dir)).toEqual(range(5, 12).map((n) => path.basename(s.seg(n))));
    expect(fs.readFileSync(s.meta, 'utf8')).toBe('54\n5,108\n11,108\n'); // moved past before deleting
    expect(readIds(q)).toEqual(range(46, 100));
    q.flush(true);
    expect(segmentNames(s.dir)).toEqual([path.basename(s.seg(11))]); // the write segment stays
    expect(q.depth()).toBe(0);
    q.close();
  });

  it('gives a record larger than maxBytesPerFile a segment of its own', () => {
    const s = setup({ maxBytesPerFile: 1000, maxRecordSize: 5000 });
    const q = s.open();
    q.put(rec(0));
    q.put(rec(1, 3000));
    q.put(rec(2));
    q.flush();
    expect(range(0, 3).map((n) => fs.statSync(s.seg(n)).size)).toEqual([FRAME, 3008, FRAME]);
    expect(readIds(q)).toEqual([0, 1, 2]);
    q.close();
  });

  it('rejects empty and oversized records, and use after close', () => {
    const q = setup({ maxRecordSize: 10 }).open();
    expect(() => q.put(Buffer.alloc(0))).toThrow(RangeError);
    expect(() => q.put(Buffer.alloc(11))).toThrow(RangeError);
    q.put(Buffer.alloc(10));
    q.close();
    expect(() => q.put(Buffer.alloc(1))).toThrow(/closed/);
    expect(() => q.readNext()).toThrow(/closed/);
  });
});

describe('restarts and crashes', () => {
  it('keeps depth and order across close/open over many segments', () => {
    const s = setup({ maxBytesPerFile: 1000 });
    let q = s.open();
    putRange(q, 0, 500);
    q.flush();
    expect(readIds(q, 123)).toEqual(range(0, 123));
    q.close();
    q = s.open();
    expect(q.depth()).toBe(377);
    expect(readIds(q, 100)).toEqual(range(123, 223));
    putRange(q, 500, 550);
    q.close();
    q = s.open();
    expect(q.depth()).toBe(327);
    expect(readIds(q)).toEqual(range(223, 550));
    expect(q.stats()).toEqual({ depth: 0, corrupt: 0 });
    q.close();
  });

  it('loses nothing flushed with fsync when the process dies without close', () => {
    const s = setup({ maxBytesPerFile: 1000 });
    const q = s.open();
    putRange(q, 0, 300);
    q.flush(true);
    q.abandonForTest();
    const q2 = s.open();
    expect(q2.depth()).toBe(300);
    expect(readIds(q2)).toEqual(range(0, 300));
    q2.close();
  });

  it('redelivers records read after the last metadata save (at least once), not those before', () => {
    const s = setup();
    const q = s.open();
    putRange(q, 0, 100);
    q.flush(true);
    readIds(q, 30);
    q.flush(true); // persists the read position
    readIds(q, 20);
    q.abandonForTest();
    const q2 = s.open();
    expect(q2.depth()).toBe(70);
    expect(readIds(q2)).toEqual(range(30, 100));
    q2.close();
  });

  it('finds records written after the last metadata save, in the same and in later segments', () => {
    const s = setup({ maxBytesPerFile: 1000, syncEvery: 1_000_000 });
    const q = s.open();
    putRange(q, 0, 5);
    q.flush(true);
    putRange(q, 5, 45); // rolls into segments 1..4; metadata still says segment 0
    q.flush();
    q.abandonForTest();
    expect(fs.readFileSync(s.meta, 'utf8')).toBe(`5\n0,0\n0,${5 * FRAME}\n`);
    const q2 = s.open();
    expect(q2.depth()).toBe(45);
    expect(readIds(q2)).toEqual(range(0, 45));
    q2.close();
  });

  it('does not count or append after a torn write found at open, and keeps the damaged segment', () => {
    const s = setup();
    const q = s.open();
    putRange(q, 0, 10);
    q.flush(true);
    q.abandonForTest();
    fs.appendFileSync(s.seg(0), Buffer.concat([Buffer.from([0, 0, 0, 100]), Buffer.alloc(20, 7)])); // half a frame
    const damaged = fs.readFileSync(s.seg(0));

    const q2 = s.open();
    expect(q2.depth()).toBe(10);
    putRange(q2, 10, 15);
    q2.flush();
    expect(fs.readFileSync(s.seg(0)).equals(damaged)).toBe(true); // new records went elsewhere
    expect(fs.statSync(s.seg(1)).size).toBe(5 * FRAME);
    for (let i = 0; i < 15; i++) {
      expect(q2.readNext()?.readUInt32BE(0)).toBe(i);
      expect(q2.depth()).toBe(14 - i);
    }
    expect(q2.readNext()).toBeNull();
    expect(q2.stats()).toEqual({ depth: 0, corrupt: 1 });
    expect(s.reports).toEqual([{ file: s.seg(0), offset: 10 * FRAME, reason: 'record runs past end of file' }]);
    q2.flush(true); // a read segment is retired at the next sync
    expect(fs.readFileSync(s.seg(0) + '.bad').equals(damaged)).toBe(true); // kept for inspection, not deleted
    q2.close();
  });

  it('comes back after a restart with the same uncounted damage still unread', () => {
    const s = setup();
    const q = s.open();
    putRange(q, 0, 3);
    q.close();
    fs.appendFileSync(s.seg(0), Buffer.from([0, 0, 0, 100, 1, 2]));
    const q2 = s.open();
    putRange(q2, 3, 5);
    q2.close();
    const q3 = s.open();
    const depths = [q3.depth()];
    const ids: number[] = [];
    for (let r = q3.readNext(); r !== null; r = q3.readNext()) {
      ids.push(r.readUInt32BE(0));
      depths.push(q3.depth());
    }
    expect(ids).toEqual(range(0, 5));
    expect(depths).toEqual([5, 4, 3, 2, 1, 0]); // skipping the never-counted tail did not lower depth
    expect(q3.stats()).toEqual({ depth: 0, corrupt: 1 });
    q3.close();
  });
});

describe('damaged records', () => {
  /** 21 records of 100 bytes in segment 0, closed cleanly. */
  function written(over: Partial<DiskQueueOptions> = {}) {
    const s = setup(over);
    const q = s.open();
    putRange(q, 0, 21);
    q.close();
    return s;
  }

  it('skips a record whose data has a flipped byte and keeps every other record, depth exact', () => {
    const s = written();
    const at = 10 * FRAME + 8 + 50;
    patch(s.seg(0), at, Buffer.from([fs.readFileSync(s.seg(0))[at] ^ 0x01]));
    const q = s.open();
    expect(q.depth()).toBe(21);
    expect(readIds(q, 10)).toEqual(range(0, 10));
    expect(q.depth()).toBe(11);
    expect(q.readNext()?.readUInt32BE(0)).toBe(11);
    expect(q.depth()).toBe(9);
    expect(readIds(q)).toEqual(range(12, 21));
    expect(q.stats()).toEqual({ depth: 0, corrupt: 1 });
    expect(s.reports).toEqual([{ file: s.seg(0), offset: 10 * FRAME, reason: 'crc mismatch' }]);
    q.close();
  });

  it.each([
    ['impossible length', 0xfffffff0, 'length exceeds maxRecordSize'],
    ['zero length', 0, 'empty record'],
    ['plausible wrong length', 105, 'crc mismatch'],
    ['short length', 2, 'crc mismatch'],
    ['length past end of file', 5000, 'record runs past end of file'],
  ])('resynchronises after a corrupt length field (%s) and finds every later record', (_, len, reason) => {
    const s = written();
    const b = Buffer.alloc(4);
    b.writeUInt32BE(len);
    patch(s.seg(0), 10 * FRAME, b);
    const q = s.open();
    expect(readIds(q)).toEqual([...range(0, 10), ...range(11, 21)]);
    expect(q.stats()).toEqual({ depth: 0, corrupt: 1 });
    expect(s.reports).toEqual([{ file: s.seg(0), offset: 10 * FRAME, reason }]);
    q.close();
  });

  it('resynchronises past a stretch of garbage spanning several records', () => {
    const s = written();
    patch(s.seg(0), 5 * FRAME + 3, Buffer.alloc(3 * FRAME, 0x5a));
    const q = s.open();
    expect(readIds(q)).toEqual([...range(0, 5), ...range(9, 21)]);
    expect(q.stats()).toEqual({ depth: 0, corrupt: 1 }); // overcounted depth ends at the catch-up
    q.close();
  });

  it.each([
    ['inside the last record', 21 * FRAME - 50, range(0, 20), 'record runs past end of file'],
    ['inside a middle header', 12 * FRAME + 3, range(0, 12), 'truncated header'],
  ])('survives a segment truncated %s: earlier records intact, the tail counted', (_, size, ids, reason) => {
    const s = written();
    fs.truncateSync(s.seg(0), size);
    const truncated = fs.readFileSync(s.seg(0));
    const q = s.open();
    expect(s.reports).toEqual([{ file: s.meta, offset: 0, reason: 'write segment shorter than the metadata says; recounting from the segments' }]);
    expect(q.depth()).toBe(ids.length);
    q.put(rec(100)); // goes to a new segment, not after the partial record
    const got = readIds(q);
    expect(got).toEqual([...ids, 100]);
    expect(q.stats()).toEqual({ depth: 0, corrupt: 1 });
    expect(s.reports[1]).toEqual({ file: s.seg(0), offset: ids.length * FRAME, reason });
    q.flush(true); // a read segment is retired at the next sync
    expect(fs.readFileSync(s.seg(0) + '.bad').equals(truncated)).toBe(true);
    q.close();
  });

  it('throws real I/O errors out of readNext and recovers when they stop', () => {
    const s = written();
    const q = s.open();
    jest.spyOn(fs, 'readSync').mockImplementationOnce(() => {
      throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    });
    expect(() => q.readNext()).toThrow(/EIO/);
    expect(readIds(q)).toEqual(range(0, 21));
    expect(q.stats().corrupt).toBe(0);
    q.close();
  });
});

describe('damaged metadata', () => {
  it.each([
    ['garbage', Buffer.from('\0\xffnot metadata at all')],
    ['empty', Buffer.alloc(0)],
    ['read position after the write position', Buffer.from('5\n9,0\n1,0\n')],
    ['missing', null],
  ])('rebuilds from the segments when the metadata is %s, deleting nothing', (_, content) => {
    const s = setup({ maxBytesPerFile: 1000 });
    const q = s.open();
    putRange(q, 0, 50);
    q.flush();
    readIds(q, 12); // segment 0 deleted; 3 records of segment 1 read
    q.close();
    const before = segmentNames(s.dir);
    if (content === null) fs.rmSync(s.meta);
    else fs.writeFileSync(s.meta, content);

    const q2 = s.open();
    expect(s.reports).toHaveLength(1);
    expect(s.reports[0]).toMatchObject({ file: s.meta, offset: 0 });
    expect(segmentNames(s.dir)).toEqual(before);
    expect(q2.depth()).toBe(41);
    expect(readIds(q2)).toEqual(range(9, 50)); // 9..11 come again: at least once
    q2.close();
  });

  it('recounts when the metadata names a segment that is gone', () => {
    const s = setup({ maxBytesPerFile: 1000 });
    const q = s.open();
    putRange(q, 0, 40);
    q.close();
    fs.rmSync(s.seg(1));
    const q2 = s.open();
    expect(q2.depth()).toBe(31);
    expect(readIds(q2)).toEqual([...range(0, 9), ...range(18, 40)]);
    expect(s.reports.map((r) => r.reason)).toEqual(['segment 1 missing; recounting from the segments', 'segment missing']);
    q2.close();
  });
});

describe('sync policy', () => {
  /** How many times the write segment `n` was fsynced, told apart from the metadata's fsyncs by fd. */
  function segmentFsyncs(s: ReturnType<typeof setup>, n: number, open: jest.SpyInstance, fsync: jest.SpyInstance): number {
    const fds = open.mock.calls.flatMap((c: unknown[], k: number) => (c[0] === s.seg(n) ? [open.mock.results[k].value as number] : []));
    return fsync.mock.calls.filter((c: unknown[]) => fds.includes(c[0] as number)).length;
  }

  it.each([
    [1, [1, 2, 3, 4, 5, 6], 6],
    [3, [0, 0, 1, 1, 1, 2], 2],
    [1000, [0, 0, 0, 0, 0, 0], 1],
  ])('with syncEvery=%i fsyncs the segment and persists metadata per the policy', (syncEvery, expected, afterForce) => {
    const s = setup({ syncEvery });
    const open = jest.spyOn(fs, 'openSync');
    const fsync = jest.spyOn(fs, 'fsyncSync');
    const q = s.open();
    const counts: number[] = [];
    for (let i = 0; i < 6; i++) {
      q.put(rec(i));
      q.flush();
      counts.push(segmentFsyncs(s, 0, open, fsync));
      if (counts[i] > (counts[i - 1] ?? 0)) expect(fs.readFileSync(s.meta, 'utf8')).toBe(`${i + 1}\n0,0\n0,${(i + 1) * FRAME}\n`);
    }
    expect(counts).toEqual(expected);
    q.flush(true); // fsyncs only if something is not yet synced
    expect(segmentFsyncs(s, 0, open, fsync)).toBe(afterForce);
    q.close();
  });

  it('fsyncs and persists metadata every syncTimeoutMs while dirty, and stops its timer on close', () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate'] });
    const s = setup({ syncEvery: 1_000_000, syncTimeoutMs: 2000 });
    const q = s.open();
    q.put(rec(0));
    q.put(rec(1));
    q.flush();
    jest.advanceTimersByTime(1999);
    expect(fs.existsSync(s.meta)).toBe(false);
    jest.advanceTimersByTime(1);
    expect(fs.readFileSync(s.meta, 'utf8')).toBe(`2\n0,0\n0,${2 * FRAME}\n`);
    q.readNext(); // a read is worth persisting too: it narrows redelivery after a crash
    jest.advanceTimersByTime(2000);
    expect(fs.readFileSync(s.meta, 'utf8')).toBe(`1\n0,${FRAME}\n0,${2 * FRAME}\n`);
    q.put(rec(2));
    expect(jest.getTimerCount()).toBe(1);
    q.close();
    expect(jest.getTimerCount()).toBe(0);
  });

  it('throws a failed background sync from the next flush, then carries on', () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate'] });
    const s = setup({ syncEvery: 1_000_000, syncTimeoutMs: 100 });
    const q = s.open();
    q.put(rec(0));
    q.flush();
    jest.spyOn(fs, 'fsyncSync').mockImplementationOnce(() => {
      throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    });
    jest.advanceTimersByTime(100);
    expect(() => q.flush()).toThrow(/EIO/);
    q.flush(true);
    expect(fs.readFileSync(s.meta, 'utf8')).toBe(`1\n0,0\n0,${FRAME}\n`);
    q.close();
  });
});

describe('empty and delete', () => {
  it('empty() removes the segments, persists depth 0 and stays usable', () => {
    const s = setup({ maxBytesPerFile: 1000 });
    let q = s.open();
    putRange(q, 0, 30);
    q.flush();
    readIds(q, 5);
    q.empty();
    expect(segmentNames(s.dir)).toEqual([]);
    expect(q.depth()).toBe(0);
    q.abandonForTest();
    q = s.open();
    expect(q.depth()).toBe(0);
    expect(q.readNext()).toBeNull();
    q.put(rec(7));
    expect(readIds(q)).toEqual([7]);
    q.close();
  });

  it("delete() removes every file of the queue and no other queue's", () => {
    const s = setup();
    const other = DiskQueue.open({ ...s.opts, name: 'orders:archive' });
    other.put(rec(1));
    other.close();
    const q = s.open();
    putRange(q, 0, 3);
    q.close();
    DiskQueue.open(s.opts).delete();
    expect(fs.readdirSync(s.dir).sort()).toEqual(['orders:archive.diskqueue.000000.dat', 'orders:archive.diskqueue.meta.dat']);
    const again = DiskQueue.open({ ...s.opts, name: 'orders:archive' });
    expect(readIds(again)).toEqual([1]);
    again.close();
  });
});

describe('model-based', () => {
  /** Every frame of every segment, parsed independently of the queue: where it lies and whose it is. */
  function frames(dir: string): { file: string; start: number; end: number; id: number }[] {
    return segmentNames(dir).flatMap((f) => {
      const b = fs.readFileSync(path.join(dir, f));
      const out = [];
      for (let p = 0; p < b.length; p += 8 + b.readUInt32BE(p)) out.push({ file: f, start: p, end: p + 8 + b.readUInt32BE(p), id: b.readUInt32BE(p + 8) });
      return out;
    });
  }

  it('after random byte damage, returns exactly the untouched records in order and never throws', () => {
    const damage = fc.array(fc.record({ at: fc.nat(), flip: fc.integer({ min: 1, max: 255 }), len: fc.integer({ min: 1, max: 12 }) }), { minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 4, max: 200 }), { minLength: 1, maxLength: 60 }), damage, (sizes, hits) => {
        const s = setup({ maxBytesPerFile: 1500, maxRecordSize: 200 });
        const q = s.open();
        sizes.forEach((size, i) => q.put(rec(i, size)));
        q.close();
        const all = frames(s.dir);
        const files = [...new Set(all.map((f) => f.file))];
        const touched = new Set<number>();
        for (const h of hits) {
          const file = files[h.at % files.length];
          const size = fs.statSync(path.join(s.dir, file)).size;
          const at = (h.at >> 3) % size;
          const b = fs.readFileSync(path.join(s.dir, file));
          for (let k = at; k < Math.min(size, at + h.len); k++) b[k] ^= h.flip;
          fs.writeFileSync(path.join(s.dir, file), b);
          for (const f of all) if (f.file === file && f.start < at + h.len && at < f.end) touched.add(f.id);
        }
        const q2 = s.open();
        expect(q2.depth()).toBe(sizes.length);
        const ids = readIds(q2);
        expect(ids).toEqual(all.map((f) => f.id).filter((id) => !touched.has(id)));
        const { corrupt } = q2.stats();
        expect(corrupt >= 1 && corrupt <= touched.size).toBe(touched.size > 0);
        expect(s.reports).toHaveLength(corrupt);
        expect(q2.depth()).toBe(0);
        q2.close();
      }),
      { numRuns: 100 },
    );
  });

  type Cmd =
    | { k: 'put'; n: number; size: number }
    | { k: 'flush'; force: boolean }
    | { k: 'read'; n: number }
    | { k: 'reopen' }
    | { k: 'crash' };

  const cmd: fc.Arbitrary<Cmd> = fc.oneof(
    fc.record({ k: fc.constant('put' as const), n: fc.integer({ min: 1, max: 20 }), size: fc.integer({ min: 1, max: 300 }) }),
    fc.record({ k: fc.constant('flush' as const), force: fc.boolean() }),
    fc.record({ k: fc.constant('read' as const), n: fc.integer({ min: 1, max: 25 }) }),
    fc.constant({ k: 'reopen' as const }),
    fc.constant({ k: 'crash' as const }),
  );

  it('random put/flush/read/reopen/crash sequences behave like an array', () => {
    fc.assert(
      fc.property(fc.array(cmd, { maxLength: 40 }), fc.constantFrom(150, 1000, 8000), fc.integer({ min: 1, max: 4 }), (cmds, maxBytesPerFile, syncEvery) => {
        const s = setup({ maxBytesPerFile, syncEvery, maxRecordSize: 300 });
        const model: Buffer[] = [];
        let q = s.open();
        let next = 0;
        try {
          for (const c of cmds) {
            if (c.k === 'put') {
              for (let i = 0; i < c.n; i++, next++) {
                const r = rec(next, c.size);
                q.put(r);
                model.push(r);
              }
            } else if (c.k === 'flush') q.flush(c.force);
            else if (c.k === 'read') {
              for (let i = 0; i < c.n; i++) {
                const want = model.shift() ?? null;
                const got = q.readNext();
                if (want === null ? got !== null : got === null || !got.equals(want)) throw new Error(`read ${i} after ${JSON.stringify(c)}`);
              }
            } else if (c.k === 'reopen') {
              q.close();
              q = s.open();
            } else {
              q.flush(true); // a crash right after a forced flush must lose nothing
              q.abandonForTest();
              q = s.open();
            }
            expect(q.depth()).toBe(model.length);
          }
          expect(q.stats().corrupt).toBe(0);
          expect(s.reports).toEqual([]);
        } finally {
          q.close();
        }
      }),
      { numRuns: 150 },
    );
  });
});
