// The contract every BackendQueue implementation must pass (as aedes does for its persistence
// backends): FIFO order, exact bytes, depth, flush visibility, ownership of buffers, empty(), reopen.

import type { BackendQueue } from '../../shard/engine/backend';

export interface BackendHarness {
  queue: BackendQueue;
  /** Opens the same storage again after the current queue was closed (a clean restart). */
  reopen?: () => BackendQueue;
  cleanup(): void;
}

const SIZES = [1, 2, 7, 8, 9, 100, 200, 1000, 4096, 65536];

/** Record `i`: its index in the first bytes (when it fits), then bytes that depend on i and position. */
export function contractRecord(i: number): Buffer {
  const size = i % 97 === 0 ? 65536 : SIZES[i % (SIZES.length - 1)];
  const b = Buffer.allocUnsafe(size);
  for (let k = 0; k < size; k++) b[k] = (i * 31 + k * 7 + (k >> 8)) & 0xff;
  if (size >= 4) b.writeUInt32BE(i, 0);
  return b;
}

/** Buffer.equals instead of toEqual: jest's deep equality walks a 64 KiB Buffer key by key. */
function expectSame(actual: Buffer | null, expected: Buffer | undefined, what: string): void {
  if (expected === undefined) return expect(actual).toBeNull();
  if (actual === null || !actual.equals(expected)) throw new Error(`${what}: got ${actual?.length ?? 'null'} bytes, expected ${expected.length}`);
}

export function backendContract(name: string, make: () => BackendHarness): void {
  describe(`BackendQueue contract: ${name}`, () => {
    let h: BackendHarness;
    let q: BackendQueue;

    beforeEach(() => {
      h = make();
      q = h.queue;
    });
    afterEach(() => {
      q.close();
      h.cleanup();
    });

    it('starts empty', () => {
      expect(q.depth()).toBe(0);
      expect(q.readNext()).toBeNull();
      expect(q.stats()).toEqual({ depth: 0, corrupt: 0 });
    });

    it('returns 10k records of varied sizes (1 B to 64 KiB) in FIFO order with exact bytes', () => {
      const n = 10_000;
      for (let i = 0; i < n; i++) q.put(contractRecord(i));
      q.flush();
      expect(q.depth()).toBe(n);
      for (let i = 0; i < n; i++) expectSame(q.readNext(), contractRecord(i), `record ${i}`);
      expect(q.readNext()).toBeNull();
      expect(q.depth()).toBe(0);
    });

    it('tracks depth through puts and reads', () => {
      for (let i = 0; i < 50; i++) q.put(contractRecord(i));
      expect(q.depth()).toBe(50);
      expect(q.stats().depth).toBe(50);
      q.flush();
      for (let i = 0; i < 20; i++) q.readNext();
      expect(q.depth()).toBe(30);
      expect(q.stats()).toEqual({ depth: 30, corrupt: 0 });
    });

    it('returns records put but not yet flushed, in order', () => {
      q.put(Buffer.from('a'));
      q.put(Buffer.from('bb'));
      expect(q.readNext()).toEqual(Buffer.from('a'));
      q.put(Buffer.from('ccc'));
      expect(q.readNext()).toEqual(Buffer.from('bb'));
      expect(q.readNext()).toEqual(Buffer.from('ccc'));
      expect(q.readNext()).toBeNull();
    });

    it('returns records after flush, including those flushed before and after a read', () => {
      q.put(Buffer.from('one'));
      q.flush();
      expect(q.readNext()).toEqual(Buffer.from('one'));
      q.put(Buffer.from('two'));
      q.flush(true);
      q.put(Buffer.from('three'));
      expect(q.readNext()).toEqual(Buffer.from('two'));
      expect(q.readNext()).toEqual(Buffer.from('three'));
      expect(q.readNext()).toBeNull();
    });

    it('keeps FIFO order when puts and reads interleave', () => {
      const model: Buffer[] = [];
      let next = 0;
      for (let round = 0; round < 300; round++) {
        for (let k = 0; k < (round % 7) + 1; k++) {
          const r = contractRecord(next++);
          q.put(r);
          model.push(r);
        }
        if (round % 5 === 0) q.flush();
        for (let k = 0; k < round % 5; k++) expectSame(q.readNext(), model.shift(), `round ${round}`);
        expect(q.depth()).toBe(model.length);
      }
      while (model.length) expectSame(q.readNext(), model.shift(), 'drain');
      expect(q.readNext()).toBeNull();
    });

    it('round-trips every byte value and bytes that look like frame headers', () => {
      const all = Buffer.alloc(256);
      for (let i = 0; i < 256; i++) all[i] = i;
      const records = [all, Buffer.alloc(9), Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0]), Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.from('\r\n\0')];
      for (const r of records) q.put(r);
      q.flush();
      for (const r of records) expect(q.readNext()).toEqual(r);
    });

    it('copies on put and hands out buffers the caller owns', () => {
      const scratch = Buffer.from('first');
      q.put(scratch);
      scratch.write('XXXXX'); // the engine reuses one scratch buffer for every record
      q.put(Buffer.from('second'));
      q.flush();
      const a = q.readNext();
      expect(a).toEqual(Buffer.from('first'));
      a?.fill(0);
      expect(q.readNext()).toEqual(Buffer.from('second'));
      expect(a).toEqual(Buffer.alloc(5));
    });

    it('accepts a Uint8Array view into a larger buffer', () => {
      const big = Buffer.from('..payload..');
      q.put(new Uint8Array(big.buffer, big.byteOffset + 2, 7));
      expect(q.readNext()).toEqual(Buffer.from('payload'));
    });

    it('empty() drops everything and leaves the queue usable', () => {
      for (let i = 0; i < 100; i++) q.put(contractRecord(i));
      q.flush();
      q.readNext();
      q.put(Buffer.from('unflushed'));
      q.empty();
      expect(q.depth()).toBe(0);
      expect(q.readNext()).toBeNull();
      q.put(Buffer.from('after'));
      expect(q.depth()).toBe(1);
      expect(q.readNext()).toEqual(Buffer.from('after'));
      expect(q.depth()).toBe(0);
    });

    it('keeps records and depth across close and reopen', () => {
      if (!h.reopen) return;
      for (let i = 0; i < 500; i++) q.put(contractRecord(i));
      q.flush();
      for (let i = 0; i < 100; i++) q.readNext();
      q.put(contractRecord(500)); // not flushed: close must persist it
      q.close();
      q = h.reopen();
      expect(q.depth()).toBe(401);
      for (let i = 100; i <= 500; i++) expectSame(q.readNext(), contractRecord(i), `record ${i}`);
      expect(q.readNext()).toBeNull();
      expect(q.depth()).toBe(0);
    });
  });
}
