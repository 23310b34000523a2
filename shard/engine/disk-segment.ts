// One segment file of the disk queue: the record frame [4B length BE][4B crc32 of data BE][data],
// a reader that validates frames through a reusable read-ahead window and finds the next valid
// frame after damage, and the file operations the queue needs (sizes, removal, quarantine, fsync).

import fs from 'node:fs';
import { crc32 } from 'node:zlib';

/** Bytes of a frame before its data. */
export const HEADER = 8;
const READ_AHEAD = 1 << 20;
// frameAt() returns a record length (> 0) or -(index + 1) into this list.
const DAMAGE = ['truncated header', 'empty record', 'length exceeds maxRecordSize', 'record runs past end of file', 'crc mismatch', 'short read'];
const [TRUNCATED_HEADER, EMPTY, TOO_LONG, PAST_END, CRC_MISMATCH, SHORT_READ] = DAMAGE.map((_, i) => -(i + 1));

/** Writes the frame of `record` into `buf` at `at` (HEADER + record.length bytes). */
export function writeFrame(buf: Buffer, at: number, record: Uint8Array): void {
  buf.writeUInt32BE(record.length, at);
  buf.writeUInt32BE(crc32(record), at + 4);
  buf.set(record, at + HEADER);
}

/** Why a frame was refused, for a negative code from frameAt(). */
export function damageReason(code: number): string {
  return DAMAGE[-code - 1];
}

/** Reads and validates frames of one segment through a reusable read-ahead window. */
export class SegmentReader {
  private chunk: Buffer | null = null;
  private chunkStart = 0;
  private chunkLen = 0;
  private fd = -1;
  /** How far a reload reads ahead; widened while resynchronising. */
  private lookahead = READ_AHEAD;
  /** Bytes of the segment that may be read; shrinks if the file turns out shorter. */
  end = 0;

  constructor(private readonly maxRecordSize: number) {}

  attach(fd: number, end: number): void {
    this.fd = fd;
    this.end = end;
    this.chunkLen = 0;
  }

  /** Drops the window so an idle queue holds no read buffer. */
  release(): void {
    this.chunk = null;
    this.chunkLen = 0;
  }

  /** Length of the valid record at `pos`, or a negative DAMAGE code. */
  frameAt(pos: number): number {
    if (this.end - pos < HEADER) return TRUNCATED_HEADER;
    let o = this.window(pos, HEADER);
    if (o < 0) return SHORT_READ;
    const len = (this.chunk as Buffer).readUInt32BE(o);
    if (len === 0) return EMPTY;
    if (len > this.maxRecordSize) return TOO_LONG;
    if (pos + HEADER + len > this.end) return PAST_END;
    o = this.window(pos, HEADER + len);
    if (o < 0) return SHORT_READ;
    const c = this.chunk as Buffer;
    return crc32(c.subarray(o + HEADER, o + HEADER + len)) === c.readUInt32BE(o + 4) ? len : CRC_MISMATCH;
  }

  /** A fresh copy of the data of the frame at `pos`, which frameAt() just validated. */
  copyData(pos: number, len: number): Buffer {
    const o = this.window(pos, HEADER + len) + HEADER;
    const out = Buffer.allocUnsafe(len);
    (this.chunk as Buffer).copy(out, 0, o, o + len);
    if ((this.chunk as Buffer).length > READ_AHEAD) this.release(); // an outsized record grew it
    return out;
  }

  /** The first offset ≥ `from` holding a valid frame, or `end`: scanning byte by byte is slow but
   * only happens after damage, and it is what lets the records behind a damaged one survive. */
  resync(from: number): number {
    // Room for two maximal frames, so candidates claiming large lengths do not reload per byte.
    this.lookahead = Math.max(READ_AHEAD, 2 * (HEADER + this.maxRecordSize));
    let p = from;
    while (this.end - p > HEADER && this.frameAt(p) < 0) p++;
    this.lookahead = READ_AHEAD;
    if (this.chunk !== null && this.chunk.length > READ_AHEAD) this.release();
    return this.end - p > HEADER ? p : this.end;
  }

  /** Offset of `pos` in the window after making it cover [pos, pos+n), or -1 if the file is short. */
  private window(pos: number, n: number): number {
    if (pos >= this.chunkStart && pos + n <= this.chunkStart + this.chunkLen) return pos - this.chunkStart;
    const want = Math.min(Math.max(n, this.lookahead), this.end - pos);
    if (this.chunk === null || this.chunk.length < want) this.chunk = Buffer.allocUnsafe(Math.max(want, READ_AHEAD));
    let got = 0;
    while (got < want) {
      const k = fs.readSync(this.fd, this.chunk, got, want - got, pos + got);
      if (k === 0) break;
      got += k;
    }
    this.chunkStart = pos;
    this.chunkLen = got;
    if (got >= n) return 0;
    this.end = pos + got;
    return -1;
  }
}

/** Size in bytes, or -1 when the file does not exist. */
export function fileSize(p: string): number {
  return fs.statSync(p, { throwIfNoEntry: false })?.size ?? -1;
}

export function removeQuietly(p: string): void {
  fs.rmSync(p, { force: true });
}

/** Keeps a damaged segment for an engineer to inspect, never replacing an earlier one. */
export function keepAsBad(p: string): void {
  let target = `${p}.bad`;
  for (let i = 2; fs.existsSync(target); i++) target = `${p}.bad-${i}`;
  fs.renameSync(p, target);
}

/** Makes a rename durable; some platforms cannot fsync a directory, which we accept. */
export function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // EISDIR/EPERM on platforms without directory fsync: the rename is still atomic.
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}
