// A connection's output buffer: frames are encoded straight into one reusable Buffer and handed
// to the transport with one write per flush. nsqd does the same with a bufio.Writer sized by the
// client's output_buffer_size; when to flush is the connection's decision (see connection.ts).

import { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { WireMessage } from '../../wire/message';
import {
  FRAME_HEADER_LENGTH,
  messageFrameLength,
  writeErrorFrame,
  writeMessageFrame,
  writeResponseFrame,
} from '../../wire/nsq-v2';

const MIN_CAPACITY = 32 * 1024;

/**
 * Invariant: bytes [start, off) are encoded but not yet written; bytes before `start` may still be
 * held by the transport, so they are never overwritten. A socket whose write completed at once
 * (writableLength 0: the kernel has the bytes) frees them, and the buffer is rewound and reused.
 * Any other Writable (a compression stream) may keep a written chunk by reference after its
 * callback, so there later frames always go after it, and a fresh buffer is taken when full.
 */
export class FrameWriter {
  private buf: Buffer;
  private start = 0;
  private off = 0;
  private reuse: boolean;
  /** Frames to the transport since the connection started (for tests and stats). */
  writes = 0;

  constructor(private out: Writable, private limit: number, reuse = out instanceof Socket) {
    this.buf = Buffer.allocUnsafe(Math.max(MIN_CAPACITY, 2 * limit));
    this.reuse = reuse;
  }

  /** Bytes encoded and not yet written. */
  get buffered(): number {
    return this.off - this.start;
  }

  /** The client's output_buffer_size: a flush happens before the buffer would grow past it. */
  setLimit(limit: number): void {
    this.limit = limit;
    if (this.buf.length < 2 * limit && this.buffered === 0) {
      this.buf = Buffer.allocUnsafe(Math.max(MIN_CAPACITY, 2 * limit));
      this.start = this.off = 0;
    }
  }

  /** Swaps the transport (after IDENTIFY negotiated TLS or compression); flush first. */
  setOutput(out: Writable, reuse = out instanceof Socket): void {
    this.out = out;
    this.reuse = reuse;
    this.buf = Buffer.allocUnsafe(this.buf.length);
    this.start = this.off = 0;
  }

  get output(): Writable {
    return this.out;
  }

  message(m: WireMessage): void {
    const len = messageFrameLength(m.body.length);
    if (!this.room(len)) {
      // Larger than the whole buffer (bodies up to --max-msg-size): its own buffer, written at once.
      const big = Buffer.allocUnsafe(len);
      writeMessageFrame(big, 0, m);
      this.writes++;
      this.out.write(big);
      return;
    }
    this.off = writeMessageFrame(this.buf, this.off, m);
    if (this.buffered >= this.limit) this.flush();
  }

  response(data: string | Buffer): void {
    this.frame(0, data);
  }

  error(data: string): void {
    this.frame(1, data);
  }

  private frame(type: 0 | 1, data: string | Buffer): void {
    const len = FRAME_HEADER_LENGTH + (typeof data === 'string' ? Buffer.byteLength(data) : data.length);
    if (!this.room(len)) {
      const big = Buffer.allocUnsafe(len);
      if (type === 0) writeResponseFrame(big, 0, data);
      else writeErrorFrame(big, 0, data);
      this.writes++;
      this.out.write(big);
      return;
    }
    this.off = type === 0 ? writeResponseFrame(this.buf, this.off, data) : writeErrorFrame(this.buf, this.off, data);
  }

  /** Makes room for `len` more bytes, flushing what is buffered if the limit would be passed. */
  private room(len: number): boolean {
    if (this.buffered > 0 && this.buffered + len > this.limit) this.flush();
    if (this.off + len <= this.buf.length) return true;
    if (this.buffered > 0) this.flush();
    if (this.reuse && this.out.writableLength === 0) this.start = this.off = 0;
    if (len > this.buf.length) return false;
    if (this.off + len > this.buf.length) {
      this.buf = Buffer.allocUnsafe(this.buf.length); // the old one is still held by a write
      this.start = this.off = 0;
    }
    return true;
  }

  /** Writes everything buffered in one write. Returns false if the transport asks to wait (backpressure). */
  flush(): boolean {
    if (this.off === this.start) return true;
    const chunk = this.buf.subarray(this.start, this.off);
    this.writes++;
    const ok = this.out.write(chunk);
    if (this.reuse && this.out.writableLength === 0) this.start = this.off = 0;
    else this.start = this.off;
    return ok;
  }
}
