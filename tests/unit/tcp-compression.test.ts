// The deflate and snappy upgrades: round trips of every size class, byte-by-byte decoding, the
// snappy framing format's checks, raw deflate with a sync flush per write, and interop with the
// streams nsqjs uses for the same upgrades (zlib raw deflate, snappystream).

import { randomBytes } from 'node:crypto';
import { PassThrough, type Readable, type Transform, type Writable } from 'node:stream';
import zlib from 'node:zlib';
import {
  SNAPPY_STREAM_IDENTIFIER,
  SnappyFrameDecoder,
  SnappyFrameEncoder,
  SnappyFrameError,
  compressStreams,
  crc32c,
  createCompression,
  maskedCrc32c,
  negotiateDeflateLevel,
} from '../../shard/tcp/compression';

// snappystream is nsqjs's own snappy implementation (it requires it for the snappy upgrade).
const { SnappyStream, UnsnappyStream } = require('snappystream') as {
  SnappyStream: new () => Transform;
  UnsnappyStream: new (verifyChecksums?: boolean) => Transform;
};
const nodeRsCrc = require('@node-rs/crc32') as { crc32c(b: Buffer): number };

const KiB = 1024;
const SIZES = [1, 2, 16, 17, 100, 4 * KiB, 65535, 65536, 65537, 3 * 65536, 200_000, 1024 * KiB + 7];

/** Compressible (text-like) and incompressible (random) data of one size. */
function samples(size: number): Buffer[] {
  const text = Buffer.alloc(size);
  const phrase = Buffer.from('PUB orders 0123456789 {"id":42,"status":"paid"}\n');
  for (let i = 0; i < size; i++) text[i] = phrase[i % phrase.length] ^ (i % 97 === 0 ? 1 : 0);
  return [text, randomBytes(size)];
}

/** Everything `stream` emits until it has emitted `length` bytes. */
function readBytes(stream: Readable, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    if (length === 0) return resolve(Buffer.alloc(0));
    const onData = (b: Buffer): void => {
      chunks.push(b);
      got += b.length;
      if (got >= length) {
        stream.removeListener('data', onData);
        stream.removeListener('error', reject);
        stream.pause();
        resolve(Buffer.concat(chunks));
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
    stream.resume(); // a 'data' listener alone does not restart a stream paused by an earlier call

  });
}

/** Writes to `w` and collects everything `r` emits until it ends. */
async function endToEnd(w: Writable, r: Readable, writes: Buffer[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    r.on('data', (b: Buffer) => chunks.push(b));
    r.once('end', resolve);
    r.once('error', reject);
  });
  for (const b of writes) w.write(b);
  w.end();
  await done;
  return Buffer.concat(chunks);
}

function snappyDecodeAll(stream: Buffer, step = stream.length): Buffer {
  const out: Buffer[] = [];
  const d = new SnappyFrameDecoder((b) => out.push(Buffer.from(b)));
  for (let i = 0; i < stream.length; i += step) d.push(stream.subarray(i, i + step));
  expect(d.idle).toBe(true);
  return Buffer.concat(out);
}

/** Buffer equality without jest's element-by-element diff, which is very slow on megabytes. */
function expectSame(actual: Buffer, expected: Buffer): void {
  if (actual.equals(expected)) return;
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  throw new Error(`buffers differ: lengths ${actual.length} and ${expected.length}, first difference at byte ${i}`);
}

/** A chunk of the framing format built by hand. */
function chunk(type: number, body: Buffer): Buffer {
  const h = Buffer.from([type, body.length & 0xff, (body.length >> 8) & 0xff, body.length >> 16]);
  return Buffer.concat([h, body]);
}

function uncompressedChunk(data: Buffer, crc = maskedCrc32c(data)): Buffer {
  const c = Buffer.alloc(4);
  c.writeUInt32LE(crc);
  return chunk(0x01, Buffer.concat([c, data]));
}

function snappyError(fn: () => void): SnappyFrameError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SnappyFrameError);
    return err as SnappyFrameError;
  }
  throw new Error('expected a SnappyFrameError');
}

describe('CRC-32C', () => {
  test('known vectors', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa); // RFC 3720 B.4
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  test('agrees with @node-rs/crc32 on every length and offset', () => {
    const data = randomBytes(300);
    for (let len = 0; len < 40; len++) {
      for (const start of [0, 1, 3, 7]) {
        const part = data.subarray(start, start + len);
        expect(crc32c(data, start, start + len)).toBe(nodeRsCrc.crc32c(part));
      }
    }
    const big = randomBytes(100_003);
    expect(crc32c(big)).toBe(nodeRsCrc.crc32c(big));
  });

  test('masking matches the framing format definition', () => {
    const data = Buffer.from('sNaPpY');
    const c = crc32c(data);
    expect(maskedCrc32c(data)).toBe(((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0);
  });
});

describe('deflate level negotiation (nsqd v1.3 IDENTIFY)', () => {
  test.each([
    [0, 6, 6], // no level asked: 6
    [-1, 6, 6],
    [1, 6, 1],
    [9, 6, 6], // capped at --max-deflate-level
    [9, 9, 9],
    [20, 9, 9],
    [0, 3, 3], // the default 6 is capped too
  ])('asked %i with max %i → %i', (asked, max, level) => {
    expect(negotiateDeflateLevel(asked, max)).toBe(level);
  });
});

describe('snappy framing', () => {
  test.each(SIZES)('round trip of %i bytes, whole and byte by byte (small) or in odd pieces', (size) => {
    for (const data of samples(size)) {
      const framed = new SnappyFrameEncoder().encode(data);
      expect(framed.subarray(0, 10)).toEqual(SNAPPY_STREAM_IDENTIFIER);
      expectSame(snappyDecodeAll(framed), data);
      expectSame(snappyDecodeAll(framed, size <= 4 * KiB ? 1 : 4093), data);
    }
  });

  test('no chunk carries more than 64 KiB, and compression is used only where it pays', () => {
    const [text, random] = samples(3 * 65536 + 5);
    for (const [data, type] of [
      [text, 0x00],
      [random, 0x01],
    ] as const) {
      const framed = new SnappyFrameEncoder().encode(data);
      let pos = 10;
      const types: number[] = [];
      const lengths: number[] = [];
      while (pos < framed.length) {
        types.push(framed[pos]);
        lengths.push(framed.readUIntLE(pos + 1, 3));
        pos += 4 + framed.readUIntLE(pos + 1, 3);
      }
      // the 5-byte tail is too short to compress, as in golang/snappy
      expect(types).toEqual([type, type, type, 0x01]);
      expect(lengths[3]).toBe(4 + 5);
      if (type === 0x01) expect(lengths).toEqual([65540, 65540, 65540, 9]);
      else expect(Math.max(...lengths)).toBeLessThan(65536);
    }
    // golang/snappy sends short writes uncompressed
    expect(new SnappyFrameEncoder().encode(Buffer.from('OK'))[10]).toBe(0x01);
  });

  test('the stream identifier is sent once, before the first data; empty writes send nothing', () => {
    const enc = new SnappyFrameEncoder();
    expect(enc.encode(Buffer.alloc(0))).toHaveLength(0);
    const first = enc.encode(Buffer.from('a'));
    const second = enc.encode(Buffer.from('b'));
    expect(first.subarray(0, 10)).toEqual(SNAPPY_STREAM_IDENTIFIER);
    expect(second[0]).toBe(0x01);
    expect(second).toHaveLength(4 + 4 + 1);
    expect(snappyDecodeAll(Buffer.concat([first, enc.encode(Buffer.alloc(0)), second]))).toEqual(Buffer.from('ab'));
  });

  test('many chunks in one push, and one byte per push', () => {
    const enc = new SnappyFrameEncoder();
    const writes = Array.from({ length: 50 }, (_, i) => Buffer.from(`message ${i} `.repeat(i + 1)));
    const stream = Buffer.concat(writes.map((w) => enc.encode(w)));
    expectSame(snappyDecodeAll(stream), Buffer.concat(writes));
    expectSame(snappyDecodeAll(stream, 1), Buffer.concat(writes));
  });

  test('a fixture from snappystream (nsqjs) decodes', () => {
    const fixture = Buffer.from('ff060000734e61507059000f00008a1fb154171468656c6c6f20420600', 'hex');
    expect(snappyDecodeAll(fixture).toString()).toBe('hello hello hello hello');
    expect(snappyDecodeAll(fixture, 1).toString()).toBe('hello hello hello hello');
  });

  test('padding and reserved skippable chunks are skipped, even when split', () => {
    const data = Buffer.from('after the skippable chunks');
    const stream = Buffer.concat([
      SNAPPY_STREAM_IDENTIFIER,
      chunk(0xfe, Buffer.alloc(300)),
      chunk(0x80, Buffer.from('reserved')),
      uncompressedChunk(data),
      SNAPPY_STREAM_IDENTIFIER, // may be repeated (e.g. concatenated streams)
      chunk(0xfd, Buffer.alloc(0)),
    ]);
    expect(snappyDecodeAll(stream)).toEqual(data);
    expect(snappyDecodeAll(stream, 1)).toEqual(data);
  });

  test('a bad checksum is rejected, whole or split', () => {
    const data = Buffer.from('some payload worth checking');
    const bad = Buffer.concat([SNAPPY_STREAM_IDENTIFIER, uncompressedChunk(data, (maskedCrc32c(data) ^ 1) >>> 0)]);
    expect(snappyError(() => snappyDecodeAll(bad)).code).toBe('E_SNAPPY_CORRUPT');
    expect(snappyError(() => snappyDecodeAll(bad, 1)).code).toBe('E_SNAPPY_CORRUPT');
    // a flipped byte inside compressed data: corrupt block or checksum mismatch
    const framed = new SnappyFrameEncoder().encode(samples(5000)[0]);
    framed[framed.length - 20] ^= 0x55;
    expect(snappyError(() => snappyDecodeAll(framed)).code).toBe('E_SNAPPY_CORRUPT');
  });

  test('unskippable reserved chunks are unsupported; a stream must start with its identifier', () => {
    const withReserved = Buffer.concat([SNAPPY_STREAM_IDENTIFIER, chunk(0x02, Buffer.from('?'))]);
    expect(snappyError(() => snappyDecodeAll(withReserved)).code).toBe('E_SNAPPY_UNSUPPORTED');
    expect(snappyError(() => snappyDecodeAll(uncompressedChunk(Buffer.from('x')))).code).toBe('E_SNAPPY_CORRUPT');
    const badMagic = Buffer.from(SNAPPY_STREAM_IDENTIFIER);
    badMagic[9] = 0x79;
    expect(snappyError(() => snappyDecodeAll(badMagic)).code).toBe('E_SNAPPY_CORRUPT');
    expect(snappyError(() => snappyDecodeAll(chunk(0xff, Buffer.from('sNaPpYY')))).code).toBe('E_SNAPPY_CORRUPT');
  });

  test('oversize chunks are rejected from their header, before any body is buffered', () => {
    const d = new SnappyFrameDecoder(() => {});
    d.push(SNAPPY_STREAM_IDENTIFIER);
    const header = (type: number, len: number): Buffer => Buffer.from([type, len & 0xff, (len >> 8) & 0xff, len >> 16]);
    expect(snappyError(() => new SnappyFrameDecoder(() => {}).push(Buffer.concat([SNAPPY_STREAM_IDENTIFIER, header(0x01, 65541)]))).code).toBe(
      'E_SNAPPY_CORRUPT',
    );
    expect(snappyError(() => new SnappyFrameDecoder(() => {}).push(Buffer.concat([SNAPPY_STREAM_IDENTIFIER, header(0x00, 0xffffff)]))).code).toBe(
      'E_SNAPPY_CORRUPT',
    );
    expect(snappyError(() => new SnappyFrameDecoder(() => {}).push(Buffer.concat([SNAPPY_STREAM_IDENTIFIER, header(0x00, 3)]))).code).toBe(
      'E_SNAPPY_CORRUPT',
    );
    // the largest legal uncompressed chunk is fine
    expectSame(snappyDecodeAll(Buffer.concat([SNAPPY_STREAM_IDENTIFIER, uncompressedChunk(Buffer.alloc(65536, 7))])), Buffer.alloc(65536, 7));
  });

  test('a compressed chunk that inflates past 64 KiB is corrupt', () => {
    const snappyBlock = require('snappyjs') as { compress(b: Buffer): Buffer };
    const big = Buffer.alloc(65537, 1);
    const block = snappyBlock.compress(big);
    const c = Buffer.alloc(4);
    c.writeUInt32LE(maskedCrc32c(big));
    const stream = Buffer.concat([SNAPPY_STREAM_IDENTIFIER, chunk(0x00, Buffer.concat([c, block]))]);
    expect(snappyError(() => snappyDecodeAll(stream)).code).toBe('E_SNAPPY_CORRUPT');
  });
});

describe('snappy streams', () => {
  test('encoder → decoder carries every write, including empty ones and > 64 KiB ones', async () => {
    const { encoder, decoder } = createCompression('snappy');
    encoder.pipe(decoder);
    const writes = [Buffer.alloc(0), ...SIZES.flatMap(samples), Buffer.alloc(0), Buffer.from('end')];
    expectSame(await endToEnd(encoder, decoder, writes), Buffer.concat(writes));
  });

  test('each write is emitted at once, as one buffer', async () => {
    const { encoder, decoder } = createCompression('snappy');
    const pushed: Buffer[] = [];
    encoder.on('data', (b: Buffer) => {
      pushed.push(b);
      decoder.write(b);
    });
    for (const size of [5, 70_000]) {
      const data = samples(size)[0];
      const got = readBytes(decoder, size);
      encoder.write(data);
      expectSame(await got, data);
    }
    expect(pushed).toHaveLength(2);
  });

  test('the decoder stream emits an error for a bad checksum', async () => {
    const { decoder } = createCompression('snappy');
    const data = Buffer.from('tampered');
    const failed = new Promise<Error>((resolve) => decoder.once('error', resolve));
    decoder.write(Buffer.concat([SNAPPY_STREAM_IDENTIFIER, uncompressedChunk(data, 12345)]));
    const err = await failed;
    expect(err).toBeInstanceOf(SnappyFrameError);
    expect((err as SnappyFrameError).code).toBe('E_SNAPPY_CORRUPT');
  });

  test('the decoder stream reports a stream that ends inside a chunk', async () => {
    const { decoder } = createCompression('snappy');
    const failed = new Promise<Error>((resolve) => decoder.once('error', resolve));
    decoder.resume();
    decoder.end(Buffer.concat([SNAPPY_STREAM_IDENTIFIER, uncompressedChunk(Buffer.from('cut short')).subarray(0, 9)]));
    expect((await failed as SnappyFrameError).code).toBe('E_SNAPPY_CORRUPT');
  });

  test('interop: what snappystream (nsqjs) sends decodes with ours, and ours with it (checksums verified)', async () => {
    const writes = [Buffer.from('IDENTIFY\n'), ...[10, 65536, 150_000].flatMap(samples)];
    const theirs = new SnappyStream();
    const { decoder } = createCompression('snappy');
    theirs.pipe(decoder);
    expectSame(await endToEnd(theirs, decoder, writes), Buffer.concat(writes));

    const { encoder } = createCompression('snappy');
    const unsnappy = new UnsnappyStream(true);
    encoder.pipe(unsnappy);
    expectSame(await endToEnd(encoder, unsnappy, writes), Buffer.concat(writes));
  });
});

describe('deflate streams', () => {
  test('the output is raw deflate (no zlib header) and inflates with zlib.inflateRawSync', async () => {
    const { encoder } = createCompression('deflate', 6);
    const data = samples(100_000)[0];
    const out = await endToEnd(encoder, encoder, [data]);
    expectSame(zlib.inflateRawSync(out), data);
    expect(() => zlib.inflateSync(out)).toThrow();
  });

  test('each write is sync-flushed: what has been sent so far always inflates to everything written', async () => {
    const { encoder } = createCompression('deflate', 1);
    const sent: Buffer[] = [];
    encoder.on('data', (b: Buffer) => sent.push(b));
    let written = Buffer.alloc(0);
    for (const data of [Buffer.from('OK'), samples(3000)[0], Buffer.alloc(0), samples(70_000)[1], Buffer.from('x')]) {
      written = Buffer.concat([written, data]);
      await new Promise<void>((resolve) => encoder.write(data, () => setImmediate(resolve)));
      const soFar = Buffer.concat(sent);
      expect(soFar.subarray(-4)).toEqual(Buffer.from([0x00, 0x00, 0xff, 0xff])); // the sync flush marker
      expectSame(zlib.inflateRawSync(soFar, { finishFlush: zlib.constants.Z_SYNC_FLUSH }), written);
    }
  });

  test.each([1, 6, 9])('round trip at level %i of every size, including empty writes', async (level) => {
    const { encoder, decoder } = createCompression('deflate', level);
    encoder.pipe(decoder);
    const writes = [Buffer.alloc(0), ...SIZES.flatMap(samples), Buffer.alloc(0)];
    expectSame(await endToEnd(encoder, decoder, writes), Buffer.concat(writes));
  });

  test('a batch reaches the peer without waiting for more data', async () => {
    const { encoder, decoder } = createCompression('deflate');
    encoder.pipe(decoder);
    for (const size of [2, 600, 80_000]) {
      const data = samples(size)[0];
      const got = readBytes(decoder, size);
      encoder.write(data);
      expectSame(await got, data);
    }
  });

  test('the decoder takes its input one byte at a time', async () => {
    const data = samples(20_000)[0];
    const wire = zlib.deflateRawSync(data, { level: 9 });
    const { decoder } = createCompression('deflate');
    const got = readBytes(decoder, data.length);
    for (let i = 0; i < wire.length; i++) decoder.write(wire.subarray(i, i + 1));
    expectSame(await got, data);
  });

  test('ending the decoder mid-stream (the peer just closed) is not an error', async () => {
    const { encoder, decoder } = createCompression('deflate');
    encoder.write(Buffer.from('last words'));
    const wire = await readBytes(encoder, 1);
    expect(await endToEnd(decoder, decoder, [wire])).toEqual(Buffer.from('last words'));
  });

  test('levels outside 1-9 are refused', () => {
    expect(() => createCompression('deflate', 0)).toThrow(RangeError);
    expect(() => createCompression('deflate', 10)).toThrow(RangeError);
    expect(() => createCompression('deflate', 2.5)).toThrow(RangeError);
  });

  test('interop: nsqjs-style raw deflate streams (zlib, Z_SYNC_FLUSH) both ways', async () => {
    const writes = [Buffer.from('SUB orders archive\n'), ...[10, 100_000].flatMap(samples)];
    // nsqjs's startDeflate(level): createDeflateRaw({level, flush: Z_SYNC_FLUSH}) / createInflateRaw({flush: Z_SYNC_FLUSH})
    const theirDeflate = zlib.createDeflateRaw({ level: 6, flush: zlib.constants.Z_SYNC_FLUSH });
    const { decoder } = createCompression('deflate');
    theirDeflate.pipe(decoder);
    const received = readBytes(decoder, Buffer.concat(writes).length);
    for (const w of writes) theirDeflate.write(w);
    expectSame(await received, Buffer.concat(writes));

    const { encoder } = createCompression('deflate', 6);
    const theirInflate = zlib.createInflateRaw({ flush: zlib.constants.Z_SYNC_FLUSH });
    encoder.pipe(theirInflate);
    const back = readBytes(theirInflate, Buffer.concat(writes).length);
    for (const w of writes) encoder.write(w);
    expectSame(await back, Buffer.concat(writes));
  });
});

describe('compressStreams (the connection seam)', () => {
  test.each(['snappy', 'deflate'] as const)('%s: plain bytes in and out over a compressed pair of streams', async (kind) => {
    // client → server and server → client, each a PassThrough standing in for the socket
    const up = new PassThrough();
    const down = new PassThrough();
    const server = compressStreams({ input: up, output: down }, kind, 6);
    const client = createCompression(kind, 6);
    client.encoder.pipe(up);
    down.pipe(client.decoder);

    const request = Buffer.from('PUB orders\n' + 'x'.repeat(1000));
    const atServer = readBytes(server.input, request.length);
    client.encoder.write(request);
    expectSame(await atServer, request);

    const reply = Buffer.from('OK'.repeat(50_000));
    const atClient = readBytes(client.decoder, reply.length);
    server.output.write(reply);
    expectSame(await atClient, reply);
  });

  test('leftover input already read off the socket is decoded first', async () => {
    const client = createCompression('snappy');
    const first = readBytes(client.encoder, 1);
    client.encoder.write(Buffer.from('NOP\n'));
    const leftover = await first;
    const up = new PassThrough();
    const server = compressStreams({ input: up, output: new PassThrough() }, 'snappy', undefined, leftover);
    const got = readBytes(server.input, 4 + 4);
    up.write(new SnappyFrameEncoder().encode(Buffer.from('XXXX')).subarray(10));
    expect((await got).toString()).toBe('NOP\nXXXX');
  });
});
