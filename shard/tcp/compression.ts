// The compression upgrades IDENTIFY negotiates (deflate or snappy) as byte streams:
// socket → decoder → the connection reads plain bytes; the connection writes → encoder → socket.

import { Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import zlib from 'node:zlib';

/**
 * snappyjs (pure JS, no dependencies) does the raw snappy *block* format; the framing format
 * nsqd speaks on the wire (golang/snappy's Reader/Writer) is done here.
 */
const snappyBlock = require('snappyjs') as {
  compress(input: Buffer): Buffer;
  /** Throws when the input is not valid snappy or decodes to more than `maxLength` bytes. */
  uncompress(input: Buffer, maxLength?: number): Buffer;
};

export type CompressionKind = 'deflate' | 'snappy';

export interface Compression {
  /** Plain bytes in (what the connection writes), compressed bytes out (to the socket). */
  encoder: Transform;
  /** Compressed bytes in (from the socket), plain bytes out (what the connection reads). */
  decoder: Transform;
}

/** nsqd's --max-deflate-level default; also the level nsqd uses when a client asks for none. */
export const DEFAULT_DEFLATE_LEVEL = 6;

/**
 * The deflate level nsqd v1.3 grants in IDENTIFY (protocol_v2.go): the client's deflate_level if
 * it sent one > 0, else 6, capped at --max-deflate-level (which nsqd requires to be 1–9).
 * IDENTIFY's response carries this as deflate_level even when deflate itself is off.
 */
export function negotiateDeflateLevel(requested: number, maxDeflateLevel: number): number {
  const level = requested > 0 ? requested : DEFAULT_DEFLATE_LEVEL;
  return Math.min(level, maxDeflateLevel);
}

export function createCompression(kind: CompressionKind, level: number = DEFAULT_DEFLATE_LEVEL): Compression {
  if (kind === 'snappy') return { encoder: new SnappyEncodeStream(), decoder: new SnappyDecodeStream() };
  if (!Number.isInteger(level) || level < 1 || level > 9) throw new RangeError(`deflate level ${level} is not in 1-9`);
  return {
    // nsqd uses Go's compress/flate: raw deflate, no zlib header or trailer. It flushes the flate
    // writer every time it flushes its buffered writer, so each write batch is followed by a sync
    // flush (the 00 00 ff ff marker) and the peer can decode it at once. The default flush flag
    // does the same here for every chunk written to the stream.
    encoder: zlib.createDeflateRaw({ level, flush: zlib.constants.Z_SYNC_FLUSH }),
    // A deflate stream on a connection never ends properly (the peer just closes), so ending the
    // decoder must not report "unexpected end of file".
    decoder: zlib.createInflateRaw({ flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  };
}

/** A connection's byte streams (structurally transport.ts's Transport). */
export interface ByteStreams {
  readonly input: Readable;
  readonly output: Writable;
}

/**
 * Wraps a connection's current streams (the socket, or the TLS socket after a TLS upgrade) in
 * compression, for the `Upgrades.snappy` / `Upgrades.deflate` seam: the returned input yields
 * plain bytes read from `t.input`, the returned output compresses onto `t.output`. `leftover`
 * is any compressed input already read off `t.input` (nsqd drops it; pass nothing to do the
 * same). Listen for 'error' on both returned streams: a corrupt stream errors the input, and
 * the connection should then close as nsqd does (a read error: no error frame).
 */
export function compressStreams(t: ByteStreams, kind: CompressionKind, level?: number, leftover?: Buffer): { input: Transform; output: Transform } {
  const { encoder, decoder } = createCompression(kind, level);
  if (leftover && leftover.length > 0) decoder.write(leftover);
  t.input.pipe(decoder);
  encoder.pipe(t.output);
  return { input: decoder, output: encoder };
}

// ---- snappy framing format (https://github.com/google/snappy/blob/main/framing_format.txt) ----

const CHUNK_COMPRESSED = 0x00;
const CHUNK_UNCOMPRESSED = 0x01;
const CHUNK_STREAM_IDENTIFIER = 0xff;
/** The stream identifier chunk: type ff, length 6, "sNaPpY". */
export const SNAPPY_STREAM_IDENTIFIER = Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);
const STREAM_MAGIC = SNAPPY_STREAM_IDENTIFIER.subarray(4);

const CHUNK_HEADER = 4;
const CHECKSUM = 4;
/** Uncompressed bytes per data chunk, at most (the spec's and golang/snappy's limit). */
export const SNAPPY_MAX_BLOCK = 65536;
/** snappy.MaxEncodedLen(65536): the largest valid compressed block. */
const MAX_ENCODED_BLOCK = 32 + SNAPPY_MAX_BLOCK + Math.floor(SNAPPY_MAX_BLOCK / 6);
/** golang/snappy sends anything shorter than this as an uncompressed chunk. */
const MIN_COMPRESSIBLE = 17;

export type SnappyErrorCode = 'E_SNAPPY_CORRUPT' | 'E_SNAPPY_UNSUPPORTED';

/** A broken snappy stream. nsqd closes the connection on it (a read error, no error frame). */
export class SnappyFrameError extends Error {
  constructor(readonly code: SnappyErrorCode, message: string) {
    super(message);
    this.name = 'SnappyFrameError';
  }
}

const corrupt = (why: string): SnappyFrameError => new SnappyFrameError('E_SNAPPY_CORRUPT', 'snappy: corrupt input: ' + why);

// CRC-32C (Castagnoli), reflected polynomial 0x82f63b78, slicing-by-8 tables.
const CRC_TABLE = ((): Uint32Array => {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c;
  }
  for (let i = 0; i < 256; i++) {
    for (let s = 1; s < 8; s++) t[s * 256 + i] = (t[(s - 1) * 256 + i] >>> 8) ^ t[t[(s - 1) * 256 + i] & 0xff];
  }
  return t;
})();

/** CRC-32C of buf[start, end). */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  const t = CRC_TABLE;
  let crc = 0xffffffff;
  let i = start;
  for (const stop = end - 7; i < stop; i += 8) {
    const a = crc ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24));
    crc =
      t[1792 + (a & 0xff)] ^
      t[1536 + ((a >>> 8) & 0xff)] ^
      t[1280 + ((a >>> 16) & 0xff)] ^
      t[1024 + (a >>> 24)] ^
      t[768 + buf[i + 4]] ^
      t[512 + buf[i + 5]] ^
      t[256 + buf[i + 6]] ^
      t[buf[i + 7]];
  }
  for (; i < end; i++) crc = t[(crc ^ buf[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The framing format stores CRCs rotated and offset, so a CRC of CRC-bearing data is not degenerate. */
export function maskedCrc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  const c = crc32c(buf, start, end);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/**
 * Encodes each write as golang/snappy's Writer does: the stream identifier before the first
 * data, then one chunk per ≤64 KiB piece, compressed unless that saves less than 1/8.
 * An empty write produces nothing.
 */
export class SnappyFrameEncoder {
  private wroteIdentifier = false;

  encode(data: Buffer): Buffer {
    const n = data.length;
    if (n === 0) return EMPTY;
    // Bodies are kept until the output's size is known, so the whole write leaves as one buffer
    // (one socket write). One piece (≤ 64 KiB) is the common case.
    const pieces = Math.ceil(n / SNAPPY_MAX_BLOCK);
    const bodies = new Array<Buffer | null>(pieces);
    let total = this.wroteIdentifier ? 0 : SNAPPY_STREAM_IDENTIFIER.length;
    for (let p = 0, off = 0; p < pieces; p++, off += SNAPPY_MAX_BLOCK) {
      const end = Math.min(off + SNAPPY_MAX_BLOCK, n);
      const compressed = compressPiece(data, off, end);
      bodies[p] = compressed;
      total += CHUNK_HEADER + CHECKSUM + (compressed ? compressed.length : end - off);
    }
    const out = Buffer.allocUnsafe(total);
    let pos = 0;
    if (!this.wroteIdentifier) {
      pos += SNAPPY_STREAM_IDENTIFIER.copy(out, 0);
      this.wroteIdentifier = true;
    }
    for (let p = 0, off = 0; p < pieces; p++, off += SNAPPY_MAX_BLOCK) {
      const end = Math.min(off + SNAPPY_MAX_BLOCK, n);
      const compressed = bodies[p];
      const len = CHECKSUM + (compressed ? compressed.length : end - off);
      out[pos] = compressed ? CHUNK_COMPRESSED : CHUNK_UNCOMPRESSED;
      out[pos + 1] = len & 0xff;
      out[pos + 2] = (len >>> 8) & 0xff;
      out[pos + 3] = len >>> 16;
      out.writeUInt32LE(maskedCrc32c(data, off, end), pos + CHUNK_HEADER);
      pos += CHUNK_HEADER + CHECKSUM;
      pos += compressed ? compressed.copy(out, pos) : data.copy(out, pos, off, end);
    }
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

/** data[off, end) as a compressed block, or null if it should go uncompressed (as golang/snappy decides). */
function compressPiece(data: Buffer, off: number, end: number): Buffer | null {
  const len = end - off;
  if (len < MIN_COMPRESSIBLE) return null;
  const compressed = snappyBlock.compress(data.subarray(off, end));
  return compressed.length >= len - (len >>> 3) ? null : compressed;
}

/**
 * Push-based decoder of the snappy framing format: accepts the stream cut anywhere, hands each
 * data chunk's bytes to `onData`, throws SnappyFrameError on anything golang/snappy's Reader
 * rejects. Chunk lengths are checked from the header, before any body is buffered; skippable
 * chunks are skipped without buffering.
 */
export class SnappyFrameDecoder {
  private readonly header = Buffer.alloc(CHUNK_HEADER);
  private headerFill = 0;
  /** The type of the chunk whose body is being read, or -1 while reading a header. */
  private chunkType = -1;
  private chunkLen = 0;
  /** Holds a body that arrived in pieces; null while none is in progress. */
  private body: Buffer | null = null;
  private bodyFill = 0;
  private skip = 0;
  private sawIdentifier = false;

  constructor(private readonly onData: (data: Buffer) => void) {}

  /** True between chunks: nothing is buffered or owed. */
  get idle(): boolean {
    return this.chunkType < 0 && this.headerFill === 0 && this.skip === 0;
  }

  push(chunk: Buffer): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, end - pos);
        this.skip -= n;
        pos += n;
      } else if (this.chunkType < 0) {
        pos = this.readHeader(chunk, pos);
      } else if (this.body === null && end - pos >= this.chunkLen) {
        // The whole body is in this chunk: decode it in place.
        const bodyEnd = pos + this.chunkLen;
        this.chunkDone(chunk.subarray(pos, bodyEnd));
        pos = bodyEnd;
      } else {
        if (this.body === null) {
          this.body = Buffer.allocUnsafe(this.chunkLen);
          this.bodyFill = 0;
        }
        const n = Math.min(this.chunkLen - this.bodyFill, end - pos);
        chunk.copy(this.body, this.bodyFill, pos, pos + n);
        this.bodyFill += n;
        pos += n;
        if (this.bodyFill === this.chunkLen) {
          const body = this.body;
          this.body = null;
          this.chunkDone(body);
        }
      }
    }
  }

  private readHeader(chunk: Buffer, pos: number): number {
    const h = this.header;
    while (this.headerFill < CHUNK_HEADER && pos < chunk.length) h[this.headerFill++] = chunk[pos++];
    if (this.headerFill < CHUNK_HEADER) return pos;
    this.headerFill = 0;
    const type = h[0];
    const len = h[1] | (h[2] << 8) | (h[3] << 16);
    if (!this.sawIdentifier && type !== CHUNK_STREAM_IDENTIFIER) throw corrupt('stream does not start with the stream identifier');
    switch (type) {
      case CHUNK_STREAM_IDENTIFIER:
        if (len !== STREAM_MAGIC.length) throw corrupt(`stream identifier of length ${len}`);
        break;
      case CHUNK_COMPRESSED:
        if (len < CHECKSUM || len > CHECKSUM + MAX_ENCODED_BLOCK) throw corrupt(`compressed chunk of length ${len}`);
        break;
      case CHUNK_UNCOMPRESSED:
        if (len < CHECKSUM || len > CHECKSUM + SNAPPY_MAX_BLOCK) throw corrupt(`uncompressed chunk of length ${len}`);
        break;
      default:
        // 0x02–0x7f: reserved unskippable; 0x80–0xfd: reserved skippable; 0xfe: padding.
        if (type < 0x80) throw new SnappyFrameError('E_SNAPPY_UNSUPPORTED', `snappy: unsupported input: chunk type 0x${type.toString(16)}`);
        this.skip = len;
        return pos;
    }
    // Every body left to read is at least 4 bytes long (checked above).
    this.chunkType = type;
    this.chunkLen = len;
    return pos;
  }

  private chunkDone(body: Buffer): void {
    const type = this.chunkType;
    this.chunkType = -1;
    if (type === CHUNK_STREAM_IDENTIFIER) {
      if (!body.equals(STREAM_MAGIC)) throw corrupt('bad stream identifier');
      this.sawIdentifier = true;
      return;
    }
    const expected = body.readUInt32LE(0);
    let data: Buffer;
    if (type === CHUNK_COMPRESSED) {
      try {
        data = snappyBlock.uncompress(body.subarray(CHECKSUM), SNAPPY_MAX_BLOCK);
      } catch (err) {
        throw corrupt((err as Error).message);
      }
    } else {
      data = body.subarray(CHECKSUM);
    }
    if (maskedCrc32c(data) !== expected) throw corrupt('checksum mismatch');
    if (data.length > 0) this.onData(data);
  }
}

class SnappyEncodeStream extends Transform {
  private readonly frames = new SnappyFrameEncoder();

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const out = this.frames.encode(chunk);
    if (out.length > 0) this.push(out);
    callback();
  }
}

class SnappyDecodeStream extends Transform {
  private readonly frames = new SnappyFrameDecoder((data) => this.push(data));

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.frames.push(chunk);
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    callback(this.frames.idle ? undefined : corrupt('stream ends inside a chunk'));
  }
}
