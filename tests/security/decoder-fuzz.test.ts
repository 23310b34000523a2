// Property tests over the two push-based decoders a stranger can reach over TCP: protocol V2
// (shard) and lookup V1 (lookup). Mutated frames must only ever yield valid commands or NSQ
// errors, never throw, and the decoders must not retain more than their documented bounds.

import fc from 'fast-check';
import { CommandDecoder, MAX_LINE_LENGTH as V2_MAX_LINE, type DecodedItem as V2Item } from '../../wire/nsq-v2';
import { LookupV1Decoder, MAX_IDENTIFY_BODY, MAX_LINE_LENGTH as V1_MAX_LINE, type DecodedItem as V1Item } from '../../wire/lookup-v1';
import { isValidName } from '../../wire/names';

const LIMITS = { maxMsgSize: 1024, maxBodySize: 4096, maxReqTimeoutMs: 3_600_000 };
// Frames per property run and runs per decoder: 2 decoders × RUNS × FRAMES ≈ 1,000,000 frames.
const FRAMES = 100;
const RUNS = 5000;

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
const sized = (body: Buffer): Buffer => Buffer.concat([u32(body.length), body]);
const line = (s: string): Buffer => Buffer.from(s + '\n', 'latin1');
const ID = '0123456789abcdef';

const V2_SEEDS: Buffer[] = [
  line('NOP'),
  line('CLS'),
  line('RDY 10'),
  line(`FIN ${ID}`),
  line(`REQ ${ID} 1000`),
  line(`TOUCH ${ID}`),
  line('SUB orders c1'),
  line('SUB orders#ephemeral c#ephemeral'),
  Buffer.concat([line('PUB orders'), sized(Buffer.from('hello'))]),
  Buffer.concat([line('DPUB orders 500'), sized(Buffer.from('later'))]),
  Buffer.concat([line('MPUB orders'), sized(Buffer.concat([u32(2), sized(Buffer.from('a')), sized(Buffer.from('bb'))]))]),
  Buffer.concat([line('IDENTIFY'), sized(Buffer.from('{"client_id":"x","heartbeat_interval":1000}'))]),
  Buffer.concat([line('AUTH'), sized(Buffer.from('secret'))]),
];

const V1_SEEDS: Buffer[] = [
  line('PING'),
  line('REGISTER orders'),
  line('REGISTER orders c1'),
  line('UNREGISTER orders c1'),
  Buffer.concat([line('IDENTIFY'), sized(Buffer.from('{"broadcast_address":"127.0.0.1","tcp_port":4150,"http_port":4151,"version":"1.3.0"}'))]),
];

/** One mutation: [kind, position fraction, value]. Applied in order to a copy of a seed frame. */
type Mutation = [number, number, number];
const mutationArb = fc.tuple(fc.integer({ min: 0, max: 6 }), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), fc.integer({ min: 0, max: 0xffffffff }));
const frameArb = fc.tuple(fc.nat(), fc.array(mutationArb, { maxLength: 3 }), fc.nat({ max: 64 }));

const SPECIAL = [0x00, 0x0a, 0x20, 0xff, 0x7f, 0x23];

function mutate(seed: Buffer, muts: Mutation[]): Buffer {
  let b = Buffer.from(seed);
  for (const [kind, frac, v] of muts) {
    const at = Math.floor(frac * Math.max(1, b.length));
    switch (kind) {
      case 0: // bit flip
        if (b.length > 0) b[at % b.length] ^= 1 << (v & 7);
        break;
      case 1: // random byte
        if (b.length > 0) b[at % b.length] = v & 0xff;
        break;
      case 2: // special byte (newline, NUL, space, 0xff, '#')
        if (b.length > 0) b[at % b.length] = SPECIAL[v % SPECIAL.length];
        break;
      case 3: // truncate
        b = b.subarray(0, at);
        break;
      case 4: // insert bytes
        b = Buffer.concat([b.subarray(0, at), Buffer.alloc(1 + (v % 7), v & 0xff), b.subarray(at)]);
        break;
      case 5: // overwrite a 32-bit field with a hostile length
        if (b.length >= 4) b.writeUInt32BE([v, 0xffffffff, 0x7fffffff, 0x80000000, 0, LIMITS.maxBodySize + 1][v % 6] >>> 0, Math.min(at, b.length - 4));
        break;
      default: // duplicate a stretch
        b = Buffer.concat([b, b.subarray(at)]);
    }
  }
  return b;
}

// plain checks, not expect(): they run for every decoded item
const NSQ_CODE = /^E_[A-Z_]+$/;

function checkV2(item: V2Item): void {
  if (item.type === 'error') {
    if (!NSQ_CODE.test(item.code) || typeof item.text !== 'string' || typeof item.fatal !== 'boolean') throw new Error(`bad error ${JSON.stringify(item)}`);
    return;
  }
  switch (item.type) {
    case 'SUB':
      if (!isValidName(item.topic) || !isValidName(item.channel)) throw new Error(`SUB with a bad name ${JSON.stringify(item)}`);
      return;
    case 'PUB':
    case 'DPUB':
      if (!isValidName(item.topic)) throw new Error(`bad topic ${item.topic}`);
      if (item.body.length === 0 || item.body.length > LIMITS.maxMsgSize) throw new Error(`${item.type} body of ${item.body.length}`);
      if (item.type === 'DPUB' && !(Number.isSafeInteger(item.deferMs) && item.deferMs >= 0 && item.deferMs <= LIMITS.maxReqTimeoutMs)) throw new Error(`defer ${item.deferMs}`);
      return;
    case 'MPUB':
      if (!isValidName(item.topic) || item.bodies.length === 0) throw new Error('bad MPUB');
      for (const body of item.bodies) if (body.length === 0 || body.length > LIMITS.maxMsgSize) throw new Error(`MPUB body of ${body.length}`);
      return;
    case 'IDENTIFY':
    case 'AUTH':
      if (item.body.length > LIMITS.maxBodySize) throw new Error(`${item.type} body of ${item.body.length}`);
      return;
    case 'RDY':
      if (!Number.isSafeInteger(item.count) || item.count < 0) throw new Error(`RDY ${item.count}`);
      return;
    case 'FIN':
    case 'TOUCH':
    case 'REQ':
      if (typeof item.id !== 'string') throw new Error('bad id');
      if (item.type === 'REQ' && !(Number.isSafeInteger(item.timeoutMs) && item.timeoutMs >= 0)) throw new Error(`REQ ${item.timeoutMs}`);
      return;
    case 'CLS':
    case 'NOP':
      return;
    default:
      throw new Error(`unknown item ${JSON.stringify(item)}`);
  }
}

function checkV1(item: V1Item): void {
  if (item.type === 'error') {
    if (!NSQ_CODE.test(item.error.code)) throw new Error(`bad error ${JSON.stringify(item)}`);
    return;
  }
  const c = item.command;
  if (!['PING', 'REGISTER', 'UNREGISTER', 'IDENTIFY'].includes(c.name)) throw new Error(`unknown command ${c.name}`);
  if (!Array.isArray(c.params)) throw new Error('params');
  if (c.name === 'IDENTIFY' && c.body.length > MAX_IDENTIFY_BODY) throw new Error(`IDENTIFY body of ${c.body.length}`);
}

/**
 * Feeds the frames as one stream split at `split` byte boundaries; a new decoder replaces one
 * that halted. Returns the number of frames fed and the largest retained buffer seen.
 */
function runStream<T>(
  frames: [number, Mutation[], number][],
  seeds: Buffer[],
  make: () => { push(b: Buffer): T[]; retained(): number; halted(): boolean },
  check: (item: T) => void,
): number {
  let d = make();
  let maxRetained = 0;
  for (const [seedIndex, muts, split] of frames) {
    const frame = mutate(seeds[seedIndex % seeds.length], muts);
    const cut = split === 0 ? frame.length : Math.min(split, frame.length);
    const parts = [frame.subarray(0, cut), frame.subarray(cut)];
    for (const part of parts) {
      if (part.length === 0) continue;
      for (const item of d.push(part)) check(item);
      maxRetained = Math.max(maxRetained, d.retained());
    }
    if (d.halted()) d = make();
  }
  return maxRetained;
}

describe('decoder fuzzing', () => {
  it(`protocol V2: ${RUNS * FRAMES} mutated frames yield only valid commands or NSQ errors, bounded buffers`, () => {
    let frames = 0;
    let worst = 0;
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: FRAMES, maxLength: FRAMES }), (list) => {
        frames += list.length;
        const retained = runStream<V2Item>(
          list,
          V2_SEEDS,
          () => {
            const dec = new CommandDecoder(LIMITS);
            return { push: (b) => dec.push(b), retained: () => dec.retainedBytes, halted: () => dec.halted };
          },
          checkV2,
        );
        worst = Math.max(worst, retained);
        // a line, or one body of the largest allowed size (plus its size field)
        expect(retained).toBeLessThanOrEqual(V2_MAX_LINE + LIMITS.maxBodySize + 4);
      }),
      { numRuns: RUNS, seed: 8_2026 },
    );
    expect(frames).toBe(RUNS * FRAMES);
  });

  it(`lookup V1: ${RUNS * FRAMES} mutated frames yield only valid commands or NSQ errors, bounded buffers`, () => {
    let frames = 0;
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: FRAMES, maxLength: FRAMES }), (list) => {
        frames += list.length;
        // the magic comes first on a fresh connection; the first frame is fed after it
        const retained = runStream<V1Item>(
          list,
          V1_SEEDS,
          () => {
            const dec = new LookupV1Decoder({ expectMagic: false });
            let halted = false;
            return {
              push: (b) => {
                const out = dec.push(b);
                if (out.some((i) => i.type === 'error')) halted = true;
                return out;
              },
              // the decoder keeps at most one unfinished line or IDENTIFY body
              retained: () => dec.retainedBytes,
              halted: () => halted,
            };
          },
          checkV1,
        );
        // one unfinished line or IDENTIFY body, in a buffer at most 4× its size (wire/byte-queue.ts)
        expect(retained).toBeLessThanOrEqual(4 * (Math.max(V1_MAX_LINE, MAX_IDENTIFY_BODY) + 4));
      }),
      { numRuns: RUNS, seed: 8_2027 },
    );
    expect(frames).toBe(RUNS * FRAMES);
  });

  it('retained heap stays bounded after a long hostile stream', () => {
    const dec = new CommandDecoder(LIMITS);
    if (global.gc) global.gc();
    const before = process.memoryUsage().heapUsed;
    let d = dec;
    const rnd = fc.sample(fc.tuple(fc.nat(), fc.array(mutationArb, { maxLength: 3 })), { numRuns: 20_000, seed: 42 });
    for (const [s, m] of rnd) {
      d.push(mutate(V2_SEEDS[s % V2_SEEDS.length], m));
      if (d.halted) d = new CommandDecoder(LIMITS);
    }
    expect(d.retainedBytes).toBeLessThanOrEqual(V2_MAX_LINE + LIMITS.maxBodySize + 4);
    if (global.gc) global.gc();
    // generous: no leak proportional to the 20k frames pushed
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 * 1024 * 1024);
  });
});
