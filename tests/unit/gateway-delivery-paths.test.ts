// The delivery path's shortcuts against plain reference versions of the same rules: receipts
// built and read in one reused buffer (with the names of the last channel remembered) must sign
// and judge exactly like HMAC-SHA256 over freshly built bytes, and the quick "cannot be JSON"
// test of a body must never change what is shown as JSON.

import { createHmac, timingSafeEqual } from 'node:crypto';
import fc from 'fast-check';
import { ReceiptFields, ReceiptSigner } from '../../gateway/receipts';
import { jsonText } from '../../gateway/render';
import { isValidName } from '../../wire/names';

// ---- reference receipts: the documented layout, built with Buffer.concat and createHmac ----

const DOMAIN = Buffer.from('sluice-receipt\u0000', 'latin1');
const short = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  if (b.length > 255) throw new RangeError('long');
  return Buffer.concat([Buffer.from([b.length]), b]);
};
const macOf = (secret: string, bytes: Buffer) => createHmac('sha256', secret).update(DOMAIN).update(bytes).digest().subarray(0, 16);

function refSign(secret: string, f: ReceiptFields): string {
  const packed = /^[0-9a-f]{16}$/.test(f.id);
  const body = Buffer.concat([
    Buffer.from([1 | (packed ? 0x80 : 0)]),
    short(f.shard),
    short(f.topic),
    short(f.channel),
    packed ? Buffer.from(f.id, 'hex') : short(f.id),
    short(f.token),
  ]);
  return Buffer.concat([body, macOf(secret, body)]).toString('base64url');
}

function refVerify(secrets: string[], receipt: string): ReceiptFields | string {
  if (receipt.length < 8 || receipt.length > 1800 || !/^[A-Za-z0-9_-]+$/.test(receipt)) return 'malformed';
  const raw = Buffer.from(receipt, 'base64url');
  if (raw.length < 17 || raw.toString('base64url') !== receipt) return 'malformed';
  const end = raw.length - 16;
  if ((raw[0] & 0x7f) !== 1) return 'malformed';
  let o = 1;
  const take = () => {
    if (o >= end) return null;
    const n = raw[o++];
    if (o + n > end) return null;
    const s = raw.toString('utf8', o, o + n);
    o += n;
    return s;
  };
  const shard = take();
  const topic = take();
  const channel = take();
  let id: string | null;
  if (raw[0] & 0x80) {
    if (o + 8 > end) return 'malformed';
    id = raw.toString('hex', o, o + 8);
    o += 8;
  } else id = take();
  const token = take();
  if (shard === null || topic === null || channel === null || id === null || token === null || o !== end) return 'malformed';
  if (!secrets.some((s) => timingSafeEqual(macOf(s, raw.subarray(0, end)), raw.subarray(end)))) return 'bad_signature';
  if (!isValidName(topic) || !isValidName(channel) || shard === '' || id === '' || token === '') return 'malformed';
  return { shard, topic, channel, id, token };
}

const name = fc.stringMatching(/^[a-z0-9._-]{1,20}(#ephemeral)?$/);
const fieldsArb: fc.Arbitrary<ReceiptFields> = fc.record({
  shard: fc.oneof(fc.constantFrom('127.0.0.1:4151', '10.0.0.2:4151'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 })),
  topic: fc.oneof(name, fc.constantFrom('bad topic', '')),
  channel: fc.oneof(name, fc.constant('é')),
  id: fc.oneof(fc.stringMatching(/^[0-9a-f]{16}$/), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 })),
  token: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
});
const SECRETS = ['first-secret-0123456789', 'second-secret'];

describe('receipts built in one reused buffer', () => {
  it('sign exactly as the reference layout and HMAC do, and verify what the reference signs', () => {
    const signer = new ReceiptSigner(SECRETS);
    fc.assert(
      fc.property(fieldsArb, (f) => {
        let ref: string;
        try {
          ref = refSign(SECRETS[0], f);
        } catch {
          expect(() => signer.sign(f)).toThrow(RangeError);
          return;
        }
        expect(signer.sign(f)).toBe(ref);
        expect(signer.verify(ref)).toEqual(refVerify(SECRETS, ref));
        expect(signer.verify(refSign(SECRETS[1], f))).toEqual(refVerify(SECRETS, refSign(SECRETS[1], f)));
      }),
      { numRuns: 2000 },
    );
  });

  it('judge mutated, truncated and foreign receipts as the reference does, in any order', () => {
    const signer = new ReceiptSigner(SECRETS);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const mutation = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.integer({ min: 0, max: 63 }));
    const receiptArb = fc.tuple(fieldsArb, fc.constantFrom(SECRETS[0], SECRETS[1], 'stranger'), fc.array(mutation, { maxLength: 3 })).map(([f, secret, muts]) => {
      let r: string;
      try {
        r = refSign(secret, f);
      } catch {
        return 'AAAAAAAAAAAA';
      }
      for (const [kind, frac, v] of muts) {
        const at = Math.floor(frac * r.length);
        if (kind === 0) r = r.slice(0, at) + alphabet[v] + r.slice(at + 1);
        else if (kind === 1) r = r.slice(0, at) + alphabet[v] + r.slice(at);
        else if (kind === 2) r = r.slice(0, at) + r.slice(at + 1);
        else r = r.slice(0, at);
      }
      return r;
    });
    fc.assert(
      fc.property(fc.array(receiptArb, { minLength: 1, maxLength: 6 }), (receipts) => {
        for (const r of receipts) expect(signer.verify(r)).toEqual(refVerify(SECRETS, r));
      }),
      { numRuns: 2000 },
    );
  });

  it('a forged receipt reusing a real one\'s names does not make them valid, nor spoil them', () => {
    const signer = new ReceiptSigner(SECRETS);
    const good: ReceiptFields = { shard: '127.0.0.1:4151', topic: 'orders', channel: 'c1', id: '0123456789abcdef', token: 't1' };
    const badNames: ReceiptFields = { ...good, topic: 'bad topic' };
    expect(signer.verify(refSign('stranger', good))).toBe('bad_signature');
    expect(signer.verify(signer.sign(good))).toEqual(good);
    // Names that fail validation, signed by us: malformed; the next valid receipt is unaffected.
    expect(signer.verify(refSign(SECRETS[0], badNames))).toBe('malformed');
    expect(signer.verify(refSign(SECRETS[0], badNames))).toBe('malformed');
    expect(signer.verify(signer.sign({ ...good, token: 't2' }))).toEqual({ ...good, token: 't2' });
  });
});

// ---- bodies shown as JSON ----

function refJsonText(body: Buffer): string | null {
  if (body.length === 0 || !'{["-0123456789tfn \t\r\n'.includes(String.fromCharCode(body[0]))) return null;
  const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let s: string;
  try {
    s = text.decode(body);
    JSON.parse(s);
  } catch {
    return null;
  }
  return s.replace(/[\r\n]/g, ' ');
}

describe('JSON bodies', () => {
  it('the quick end check never refuses a body that is JSON', () => {
    const jsonish = fc.oneof(
      fc.json().map((j) => Buffer.from(j)),
      fc.tuple(fc.json(), fc.constantFrom('', ' ', '\n', ' \r\n\t'), fc.constantFrom('', ' ', '\n')).map(([j, a, b]) => Buffer.from(a + j + b)),
      fc.tuple(fc.json(), fc.nat()).map(([j, n]) => Buffer.from(j).subarray(0, n % (j.length + 1))),
      fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
      fc.tuple(fc.constantFrom('{', '[', '"'), fc.uint8Array({ maxLength: 10 }), fc.constantFrom('}', ']', '"', '')).map(([a, m, z]) => Buffer.concat([Buffer.from(a), m, Buffer.from(z)])),
    );
    fc.assert(
      fc.property(jsonish, (body) => {
        expect(jsonText(body)).toBe(refJsonText(body));
      }),
      { numRuns: 5000 },
    );
    for (const s of ['{}', '[]', '""', '"a"', ' {"a":1} ', '\n[1]\n', '{"a":"}"', '[1', '"x', '{', '"', '[', '{"i":1,"pad":"xxxx']) expect(jsonText(Buffer.from(s))).toBe(refJsonText(Buffer.from(s)));
  });
});
