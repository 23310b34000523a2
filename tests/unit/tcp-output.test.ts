// The output buffer of a connection: exact frames, one write per flush, a flush before the
// client's output_buffer_size would be passed, and no byte overwritten while a write holds it.

import { Writable } from 'node:stream';
import { FrameWriter } from '../../shard/tcp/output';
import { errorFrame, messageFrameLength, responseFrame, writeMessageFrame } from '../../wire/nsq-v2';
import type { WireMessage } from '../../wire/message';

/**
 * A Writable that records chunks by reference (as a compression stream may keep them); with
 * `hold`, each write stays pending until release(), as a socket's write the kernel has not taken.
 */
class Sink extends Writable {
  readonly chunks: Buffer[] = [];
  private pending: (() => void)[] = [];
  constructor(private readonly hold = false) {
    super({ highWaterMark: 1 << 30 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk);
    if (this.hold) this.pending.push(cb);
    else cb();
  }
  release(): void {
    while (this.pending.length > 0) this.pending.shift()!();
  }
  /** What the chunks hold now (a chunk overwritten after write() shows here). */
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const msg = (i: number, size = 100): WireMessage => ({ timestamp: 1_700_000_000_000_000_000 + i, attempts: 1, id: `${i}`.padStart(16, '0'), body: Buffer.alloc(size, i & 0xff) });

function frameOf(m: WireMessage): Buffer {
  const b = Buffer.alloc(messageFrameLength(m.body.length));
  writeMessageFrame(b, 0, m);
  return b;
}

describe('FrameWriter', () => {
  it('encodes frames exactly and writes everything buffered in one write per flush', () => {
    const sink = new Sink();
    const w = new FrameWriter(sink, 16 * 1024);
    w.response('OK');
    w.error('E_INVALID oops');
    w.message(msg(1));
    expect(sink.chunks).toHaveLength(0);
    expect(w.flush()).toBe(true);
    expect(sink.chunks).toHaveLength(1);
    expect(sink.bytes()).toEqual(Buffer.concat([responseFrame('OK'), errorFrame('E_INVALID', 'oops'), frameOf(msg(1))]));
    w.flush(); // nothing buffered: no write
    expect(sink.chunks).toHaveLength(1);
  });

  it('flushes before output_buffer_size would be passed; size 1 writes every message at once', () => {
    const sink = new Sink();
    const w = new FrameWriter(sink, 300);
    for (let i = 0; i < 5; i++) w.message(msg(i)); // 134-byte frames: two fit under 300
    expect(sink.chunks.map((c) => c.length)).toEqual([268, 268]);
    w.flush();
    expect(sink.bytes()).toEqual(Buffer.concat([0, 1, 2, 3, 4].map((i) => frameOf(msg(i)))));
    const one = new Sink();
    const unbuffered = new FrameWriter(one, 1);
    for (let i = 0; i < 3; i++) unbuffered.message(msg(i));
    expect(one.chunks).toHaveLength(3);
  });

  it('never overwrites bytes a pending write still holds, and reuses the buffer once it is free', () => {
    const sink = new Sink(true);
    const w = new FrameWriter(sink, 16 * 1024);
    const expected: Buffer[] = [];
    for (let i = 0; i < 2000; i++) {
      const m = msg(i, 150);
      w.message(m);
      expected.push(frameOf(m));
      if (i % 7 === 6) w.flush();
    }
    w.flush();
    sink.release();
    expect(sink.bytes()).toEqual(Buffer.concat(expected));
    // a socket whose writes complete at once frees the bytes: the same buffer is reused
    const free = new Sink();
    const r = new FrameWriter(free, 16 * 1024, true);
    r.message(msg(1));
    r.flush();
    r.message(msg(2));
    r.flush();
    expect(free.chunks[0].buffer).toBe(free.chunks[1].buffer);
    expect(free.chunks[0].byteOffset).toBe(free.chunks[1].byteOffset);
    // …but not while a write still holds them, even on a socket
    const held = new Sink(true);
    const h = new FrameWriter(held, 16 * 1024, true);
    const frames: Buffer[] = [];
    for (let i = 0; i < 500; i++) {
      h.message(msg(i, 150));
      frames.push(frameOf(msg(i, 150)));
      h.flush();
    }
    held.release();
    expect(held.bytes()).toEqual(Buffer.concat(frames));
  });

  it('writes a frame larger than its buffer on its own, after what was buffered', () => {
    const sink = new Sink();
    const w = new FrameWriter(sink, 16 * 1024);
    w.response('OK');
    const big = msg(7, 200_000);
    w.message(big);
    w.flush();
    expect(sink.bytes()).toEqual(Buffer.concat([responseFrame('OK'), frameOf(big)]));
  });
});
