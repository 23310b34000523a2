// The binary pull-many answer (wire/lease-batch.ts): what goes in comes out, bodies are views of
// the frame, and anything malformed — cut short, mutated, extended — is refused with a
// LeaseBatchError, never another exception, a hang or a huge allocation.

import fc from 'fast-check';
import {
  decodeLeaseBatch,
  encodedLeaseBatchLength,
  encodeLeaseBatch,
  LeaseBatchError,
  LEASE_BATCH_VERSION,
  type LeaseBatchPull,
  type PullToEncode,
} from '../../wire/lease-batch';

const hexId = fc.array(fc.constantFrom(...'0123456789abcdef'), { minLength: 16, maxLength: 16 }).map((a) => a.join(''));
const shortText = (max: number) => fc.string({ unit: 'grapheme', minLength: 1, maxLength: max }).filter((s) => Buffer.byteLength(s) <= 255);
const leaseArb = fc.record(
  {
    id: hexId,
    token: shortText(40),
    attempts: fc.integer({ min: 0, max: 0xffffffff }),
    timestamp: fc.double({ noNaN: true, noDefaultInfinity: true }),
    body: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    leaseMs: fc.integer({ min: 0, max: 0xffffffff }),
  },
  { requiredKeys: ['id', 'token', 'attempts', 'timestamp', 'body'] },
);
const pullArb = fc.record({
  topic: shortText(64),
  channel: shortText(64),
  leaseMs: fc.integer({ min: 0, max: 0xffffffff }),
  messages: fc.array(leaseArb, { maxLength: 8 }),
});
const pullsArb = fc.array(pullArb, { maxLength: 5 });

/** What decoding should give: every message with its own lease or its pull's; bodies as hex to compare bytes. */
function expected(pulls: PullToEncode[]) {
  return pulls.map((p) => ({
    topic: p.topic,
    channel: p.channel,
    messages: p.messages.map((m) => ({ id: m.id, token: m.token, attempts: m.attempts, timestamp: m.timestamp, leaseMs: m.leaseMs ?? p.leaseMs, body: m.body.toString('hex') })),
  }));
}
function plain(pulls: LeaseBatchPull[]) {
  return pulls.map((p) => ({ ...p, messages: p.messages.map((m) => ({ ...m, body: m.body.toString('hex') })) }));
}

/** Decodes, and returns the error class name if it throws. */
function attempt(buf: Buffer): LeaseBatchPull[] | string {
  try {
    return decodeLeaseBatch(buf);
  } catch (err) {
    return err instanceof LeaseBatchError ? 'LeaseBatchError' : `other: ${String(err)}`;
  }
}

const ONE: PullToEncode[] = [
  {
    topic: 'orders',
    channel: 'c1',
    leaseMs: 60_000,
    messages: [
      { id: '0123456789abcdef', token: 'tok-1', attempts: 1, timestamp: 1_795_000_000_123_456_800, body: Buffer.from([0, 0xff, 0xfe, 0x0a, 0x22]) },
      { id: 'fedcba9876543210', token: 'tok-2', attempts: 70_000, timestamp: 1.5, body: Buffer.alloc(0), leaseMs: 5 },
    ],
  },
  { topic: 'orders', channel: 'empty', leaseMs: 1000, messages: [] },
];

describe('lease batch frame', () => {
  it('round-trips every field, sized exactly, with bodies as views of the frame', () => {
    fc.assert(
      fc.property(pullsArb, (pulls) => {
        const frame = encodeLeaseBatch(pulls);
        expect(frame.length).toBe(encodedLeaseBatchLength(pulls));
        expect(frame[0]).toBe(LEASE_BATCH_VERSION);
        const got = decodeLeaseBatch(frame);
        expect(plain(got)).toEqual(expected(pulls));
        for (const p of got) for (const m of p.messages) expect(m.body.buffer).toBe(frame.buffer);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps attempts above 65535, exact timestamps and binary bodies', () => {
    const [p] = decodeLeaseBatch(encodeLeaseBatch(ONE));
    expect(p.messages[0]).toMatchObject({ attempts: 1, timestamp: 1_795_000_000_123_456_800, leaseMs: 60_000 });
    expect(p.messages[0].body.equals(Buffer.from([0, 0xff, 0xfe, 0x0a, 0x22]))).toBe(true);
    expect(p.messages[1]).toMatchObject({ attempts: 70_000, timestamp: 1.5, leaseMs: 5 });
    expect(p.messages[1].body.length).toBe(0);
  });

  it('decodes from a Uint8Array that is not a Buffer', () => {
    const frame = encodeLeaseBatch(ONE);
    const u8 = new Uint8Array(frame.length + 3).subarray(3);
    u8.set(frame);
    expect(plain(decodeLeaseBatch(u8))).toEqual(expected(ONE));
  });

  it('refuses every truncation of a frame', () => {
    fc.assert(
      fc.property(pullsArb.filter((p) => p.length > 0), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (pulls, frac) => {
        const frame = encodeLeaseBatch(pulls);
        const cut = Math.floor(frac * frame.length);
        expect(attempt(frame.subarray(0, cut))).toBe('LeaseBatchError');
      }),
      { numRuns: 1000 },
    );
    const frame = encodeLeaseBatch(ONE);
    for (let cut = 0; cut < frame.length; cut++) expect(attempt(frame.subarray(0, cut))).toBe('LeaseBatchError');
  });

  it('refuses trailing bytes, another version, empty names and tokens, non-hex ids', () => {
    const frame = encodeLeaseBatch(ONE);
    const err = (b: Buffer) => {
      try {
        decodeLeaseBatch(b);
      } catch (e) {
        expect(e).toBeInstanceOf(LeaseBatchError);
        return (e as LeaseBatchError).problem;
      }
      return 'decoded';
    };
    expect(err(Buffer.concat([frame, Buffer.from([0])]))).toBe('TRAILING_BYTES');
    const v2 = Buffer.from(frame);
    v2[0] = 2;
    expect(err(v2)).toBe('BAD_VERSION');
    // Offsets in ONE: head 5; pull 0: [1]"orders"[1]"c1"[4] = 16 bytes → first message at 21.
    const firstMsg = 5 + 1 + 6 + 1 + 2 + 4;
    const upper = Buffer.from(frame);
    upper[firstMsg] = 'A'.charCodeAt(0);
    expect(err(upper)).toBe('BAD_ID');
    const noTopic = Buffer.from(frame);
    noTopic[5] = 0;
    expect(err(noTopic)).toBe('BAD_FIELD');
    const noToken = Buffer.from(frame);
    noToken[firstMsg + 32] = 0;
    expect(err(noToken)).toBe('BAD_FIELD');
    const nanTime = Buffer.from(frame);
    nanTime.writeDoubleBE(NaN, firstMsg + 20);
    expect(err(nanTime)).toBe('BAD_FIELD');
  });

  it('refuses huge counts before allocating for them', () => {
    const head = Buffer.from([LEASE_BATCH_VERSION, 0xff, 0xff, 0xff, 0xff]);
    expect(attempt(head)).toBe('LeaseBatchError');
    const frame = encodeLeaseBatch([{ topic: 't', channel: 'c', leaseMs: 1, messages: [] }]);
    frame.writeUInt32BE(0xffffffff, frame.length - 4);
    expect(attempt(frame)).toBe('LeaseBatchError');
    const bigBody = encodeLeaseBatch(ONE);
    bigBody.writeUInt32BE(0xfffffff0, 21 + 33 + 5);
    expect(attempt(bigBody)).toBe('LeaseBatchError');
  });

  it('mutated frames decode to something well-formed or throw LeaseBatchError, nothing else', () => {
    const mutation = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.integer({ min: 0, max: 255 }));
    fc.assert(
      fc.property(pullsArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (pulls, muts) => {
        let b = Buffer.from(encodeLeaseBatch(pulls));
        for (const [kind, frac, v] of muts) {
          const at = Math.floor(frac * b.length);
          if (kind === 0 && b.length > 0) b[at] ^= 1 << (v & 7);
          else if (kind === 1 && b.length > 0) b[at] = v;
          else if (kind === 2) b = Buffer.concat([b.subarray(0, at), Buffer.from([v]), b.subarray(at)]);
          else b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
        }
        const out = attempt(b);
        if (typeof out === 'string') return expect(out).toBe('LeaseBatchError');
        for (const p of out) {
          for (const m of p.messages) {
            expect(m.id).toMatch(/^[0-9a-f]{16}$/);
            expect(m.token.length).toBeGreaterThan(0);
            expect(Number.isFinite(m.timestamp)).toBe(true);
            expect(m.body.buffer).toBe(b.buffer);
            expect(m.body.byteOffset + m.body.length).toBeLessThanOrEqual(b.byteOffset + b.length);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('the encoder refuses what the frame cannot carry', () => {
    const base = ONE[0].messages[0];
    const enc = (m: Partial<typeof base>, p: Partial<PullToEncode> = {}) => () => encodeLeaseBatch([{ topic: 't', channel: 'c', leaseMs: 1, ...p, messages: [{ ...base, ...m }] }]);
    expect(enc({ id: 'short' })).toThrow(RangeError);
    expect(enc({ id: '0123456789ABCDEF' })).toThrow(RangeError);
    expect(enc({ id: '0123456789abcdeé' })).toThrow(RangeError);
    expect(enc({ token: '' })).toThrow(RangeError);
    expect(enc({ token: 'x'.repeat(256) })).toThrow(RangeError);
    expect(enc({ attempts: -1 })).toThrow(RangeError);
    expect(enc({ attempts: 2 ** 32 })).toThrow(RangeError);
    expect(enc({ timestamp: NaN })).toThrow(RangeError);
    expect(enc({}, { leaseMs: 1.5 })).toThrow(RangeError);
    expect(enc({}, { topic: 'x'.repeat(256) })).toThrow(RangeError);
    expect(enc({})).not.toThrow();
  });
});
