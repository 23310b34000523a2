// Micro-benchmark of the TCP protocol V2 codec: decoding PUB and MPUB streams, encoding message
// frames. Not run by tests; build, then `node dist/bench/codec.js`. Prints ops/s per case.

import { CommandDecoder, messageFrameLength, writeMessageFrame } from '../wire/nsq-v2';
import type { WireMessage } from '../wire/message';

const LIMITS = { maxMsgSize: 1048576, maxBodySize: 5242880 };
const BODY = Buffer.alloc(200, 0x61); // the DESIGN.md yardstick uses 200-byte messages

function sized(line: string, body: Buffer): Buffer {
  const head = Buffer.from(line, 'latin1');
  const out = Buffer.allocUnsafe(head.length + 4 + body.length);
  head.copy(out, 0);
  out.writeUInt32BE(body.length, head.length);
  body.copy(out, head.length + 4);
  return out;
}

function mpubBody(count: number): Buffer {
  const out = Buffer.allocUnsafe(4 + count * (4 + BODY.length));
  out.writeUInt32BE(count, 0);
  let off = 4;
  for (let i = 0; i < count; i++) {
    out.writeUInt32BE(BODY.length, off);
    BODY.copy(out, off + 4);
    off += 4 + BODY.length;
  }
  return out;
}

/** `frames` copies of one frame, cut into socket-sized chunks (frames straddle chunk edges). */
function chunked(frame: Buffer, frames: number, chunkSize: number): Buffer[] {
  const all = Buffer.allocUnsafe(frame.length * frames);
  for (let i = 0; i < frames; i++) frame.copy(all, i * frame.length);
  const chunks: Buffer[] = [];
  for (let off = 0; off < all.length; off += chunkSize) chunks.push(all.subarray(off, off + chunkSize));
  return chunks;
}

function decode(chunks: Buffer[], rounds: number): number {
  let n = 0;
  for (let r = 0; r < rounds; r++) {
    const d = new CommandDecoder(LIMITS);
    for (const chunk of chunks) {
      const items = d.push(chunk);
      for (const item of items) n += item.type === 'MPUB' ? item.bodies.length : 1;
    }
  }
  return n;
}

function encode(count: number): number {
  const out = Buffer.allocUnsafe(64 * 1024); // one socket write's worth, reused
  const msg: WireMessage = { timestamp: 1_700_000_000_000_000_000, attempts: 1, id: '0123456789abcdef', body: BODY };
  const frameLen = messageFrameLength(BODY.length);
  let off = 0;
  let written = 0;
  for (let i = 0; i < count; i++) {
    if (off + frameLen > out.length) {
      written += off;
      off = 0;
    }
    msg.attempts = (i & 7) + 1;
    off = writeMessageFrame(out, off, msg);
  }
  return written + off;
}

function measure(name: string, unit: string, run: () => number): void {
  run(); // warm up the JIT
  const t0 = process.hrtime.bigint();
  const ops = run();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const rate = Math.round(ops / seconds).toLocaleString('en-US');
  process.stdout.write(`${name.padEnd(44)} ${rate.padStart(12)} ${unit}/s  (${ops} in ${seconds.toFixed(3)} s)\n`);
}

const pub = sized('PUB bench_topic\n', BODY);
const pub64k = chunked(pub, 100_000, 64 * 1024);
const pubMtu = chunked(pub, 100_000, 1460);
const mpub = sized('MPUB bench_topic\n', mpubBody(200));
const mpub64k = chunked(mpub, 500, 64 * 1024);

measure('decode PUB 200 B, 64 KiB chunks', 'PUB', () => decode(pub64k, 10));
measure('decode PUB 200 B, 1460 B chunks', 'PUB', () => decode(pubMtu, 10));
measure('decode MPUB 200 × 200 B, 64 KiB chunks', 'msg', () => decode(mpub64k, 10));
measure('encode message frame 200 B', 'frame', () => {
  encode(1_000_000);
  return 1_000_000;
});
