// The decoders' input buffer: it must hold exactly the unconsumed bytes whatever the chunking, never
// write into a caller's chunk, and grow geometrically so byte-at-a-time input stays linear.

import fc from 'fast-check';
import { ByteQueue } from '../../wire/byte-queue';
import { LookupV1Decoder, MAGIC_V1, encodeIdentify } from '../../wire/lookup-v1';

describe('ByteQueue', () => {
  it('holds exactly the unconsumed bytes for any sequence of appends, consumes and settles', () => {
    const op = fc.oneof(
      fc.record({ append: fc.uint8Array({ maxLength: 700 }) }),
      fc.record({ consume: fc.nat({ max: 900 }) }),
      fc.record({ settle: fc.constant(true) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const q = new ByteQueue();
        let model = Buffer.alloc(0);
        for (const o of ops) {
          if ('append' in o) {
            const chunk = Buffer.from(o.append);
            const before = Buffer.from(chunk);
            q.append(chunk);
            model = Buffer.concat([model, chunk]);
            if (!chunk.equals(before)) return false; // the caller's chunk is never written to
          } else if ('settle' in o) {
            q.settle();
          } else {
            q.consume(o.consume);
            model = model.subarray(Math.min(o.consume, model.length));
          }
          if (q.length !== model.length || !q.bytes.equals(model)) return false;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });

  it('does not copy into a chunk the caller handed over, even when more arrives later', () => {
    const q = new ByteQueue();
    const first = Buffer.from('abc');
    q.append(first);
    q.consume(1);
    q.append(Buffer.from('def'));
    expect(first.toString()).toBe('abc');
    expect(q.bytes.toString()).toBe('bcdef');
  });

  it('after settle() holds no reference to the caller\'s chunk and no outgrown buffer', () => {
    const q = new ByteQueue();
    const big = Buffer.alloc(1 << 20, 7);
    q.append(Buffer.from('x')); // something held, so the next append copies into an owned buffer
    q.append(big);
    q.consume((1 << 20) - 9); // ten bytes left of a 1 MiB buffer
    q.settle();
    expect(q.length).toBe(10);
    expect(q.retainedBytes).toBeLessThanOrEqual(64 * 1024);
    const chunk = Buffer.from('hello world');
    q.clear();
    q.append(chunk);
    q.consume(6);
    q.settle();
    chunk.fill(0); // the caller reuses its buffer
    expect(q.bytes.toString()).toBe('world');
  });

  it('allocates O(log n) buffers when fed one byte at a time (a trickling peer costs linear copying)', () => {
    const spy = jest.spyOn(Buffer, 'allocUnsafe');
    try {
      const q = new ByteQueue();
      for (let i = 0; i < 65_536; i++) q.append(Buffer.from([i & 0xff]));
      const allocations = spy.mock.calls.filter(([n]) => n >= 256).length;
      expect(q.length).toBe(65_536);
      expect(allocations).toBeLessThanOrEqual(12);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('lookup decoder fed a 64 KiB IDENTIFY one byte at a time', () => {
  it('decodes it with a logarithmic number of buffer allocations', () => {
    const body = { broadcast_address: 'x'.repeat(60_000), tcp_port: 4150, http_port: 4151, version: '1.3.0', hostname: 'h' };
    const stream = Buffer.concat([MAGIC_V1, encodeIdentify(body), Buffer.from('PING\n')]);
    const spy = jest.spyOn(Buffer, 'allocUnsafe');
    try {
      const d = new LookupV1Decoder();
      const names: string[] = [];
      for (const b of stream) for (const item of d.push(Buffer.from([b]))) names.push(item.type === 'command' ? item.command.name : item.error.code);
      expect(names).toEqual(['IDENTIFY', 'PING']);
      expect(spy.mock.calls.filter(([n]) => n >= 256).length).toBeLessThanOrEqual(14);
    } finally {
      spy.mockRestore();
    }
  });
});
