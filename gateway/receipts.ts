// Receipts: what an HTTP consumer hands back to ack, requeue or touch a message. A receipt names
// the shard, topic, channel, message id and lease token, and carries an HMAC-SHA256 made with a
// secret every gateway shares, so any gateway can settle it and nobody can aim one at another host.
//
// Layout (then base64url, no padding — URL-safe, so it works in a query string and as an SSE id):
//   [1B version|flags][1B len][shard][1B len][topic][1B len][channel][id: 8B packed or 1B len+text]
//   [1B len][token][16B MAC]
// The MAC is the first 16 bytes of HMAC-SHA256(secret, "sluice-receipt\0" + everything before it),
// compared in constant time. Secrets are a list: the first signs, any verifies (rotation).

import * as crypto from 'node:crypto';
import { createHash, createHmac } from 'node:crypto';
import { isValidName } from '../wire/names';

export interface ReceiptFields {
  /** host:port of the shard that leased the message (as the lookups name it). */
  shard: string;
  topic: string;
  channel: string;
  /** The message id (16 hex characters from a shard). */
  id: string;
  /** The lease token of this one delivery. */
  token: string;
}

export type ReceiptProblem = 'malformed' | 'bad_signature';

const VERSION = 1;
const FLAG_PACKED_ID = 0x80;
const MAC_BYTES = 16;
const DOMAIN = Buffer.from('sluice-receipt\u0000', 'latin1');
const HEX16 = /^[0-9a-f]{16}$/;
const B64URL = /^[A-Za-z0-9_-]+$/;
/** Longest receipt text accepted (5 fields of at most 255 bytes, base64url). */
export const MAX_RECEIPT_LENGTH = 1800;

/**
 * Node's one-shot hash (20.12+). Asked for a latin1 string rather than a Buffer it costs a third
 * of a Hash object per call (a Buffer result is several times slower), which matters at one MAC
 * per message delivered and one per receipt settled.
 */
const oneShot = (crypto as unknown as { hash?: (alg: string, data: Buffer, enc: 'latin1') => string }).hash;

/** Where a receipt's bytes start in the work buffer: after the inner key pad and the domain. */
const PAD = 64;
const BASE = PAD + DOMAIN.length;
/** Room for the longest receipt (MAX_RECEIPT_LENGTH base64url characters) and then some. */
const WORK_BYTES = BASE + 1536;

const B64URL_VALUE = new Uint8Array(128);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('').forEach((c, i) => (B64URL_VALUE[c.charCodeAt(0)] = i));

/** HMAC-SHA256 (RFC 2104) with the key's pads computed once, on one-shot hashes where Node has them. */
class HmacSha256 {
  readonly inner: Buffer;
  /** opad key followed by room for the inner hash; reused (JavaScript runs one MAC at a time). */
  private readonly outer: Buffer;

  constructor(private readonly key: Buffer) {
    const k = Buffer.alloc(64);
    (key.length > 64 ? createHash('sha256').update(key).digest() : key).copy(k);
    this.inner = Buffer.alloc(64);
    this.outer = Buffer.alloc(64 + 32);
    for (let i = 0; i < 64; i++) {
      this.inner[i] = k[i] ^ 0x36;
      this.outer[i] = k[i] ^ 0x5c;
    }
  }

  /**
   * The MAC of `msg[PAD, end)` as a latin1 string (one character per byte, 32 of them). `msg`
   * has room for the inner pad before PAD; `view` is msg[0, end).
   */
  macOf(msg: Buffer, view: Buffer, end: number): string {
    if (!oneShot) return createHmac('sha256', this.key).update(msg.subarray(PAD, end)).digest('binary');
    this.inner.copy(msg, 0);
    this.outer.write(oneShot('sha256', view, 'latin1'), 64, 'latin1');
    return oneShot('sha256', this.outer, 'latin1');
  }
}

interface PrefixNames {
  /** [len][shard][len][topic][len][channel] as in the receipt. */
  bytes: Buffer;
  shard: string;
  topic: string;
  channel: string;
  valid: boolean;
}

export class ReceiptSigner {
  private readonly keys: HmacSha256[];
  /**
   * Receipts are built and read here, after room for a key's inner pad and the MAC domain, so the
   * MAC is one hash over one buffer: nothing is concatenated or allocated per receipt but the text.
   */
  private readonly work = Buffer.alloc(WORK_BYTES);
  /** Views work[0, n), made once per length (receipts of a channel all have the same length). */
  private readonly views: (Buffer | undefined)[] = [];
  /** The names of the last receipt verified: acks of one batch name the same channel. */
  private lastNames: PrefixNames | null = null;

  /** `secrets[0]` signs; every one of them verifies. */
  constructor(secrets: readonly string[]) {
    if (secrets.length === 0) throw new Error('a receipt signer needs at least one secret');
    this.keys = secrets.map((s) => new HmacSha256(Buffer.from(s, 'utf8')));
    DOMAIN.copy(this.work, PAD);
  }

  /** The MAC (latin1, first MAC_BYTES characters count) of the receipt bytes in work[BASE, end). */
  private mac(key: HmacSha256, end: number): string {
    const view = (this.views[end] ??= this.work.subarray(0, end));
    return key.macOf(this.work, view, end);
  }

  /** [len][shard][len][topic][len][channel], the same for every receipt of a channel: built once. */
  private readonly prefixes = new Map<string, Buffer>();

  /** The last prefix used: deliveries come in runs of one channel, so most signs skip the map. */
  private last: { shard: string; topic: string; channel: string; prefix: Buffer } = { shard: '', topic: '', channel: '', prefix: Buffer.alloc(0) };

  private prefix(shard: string, topic: string, channel: string): Buffer {
    const l = this.last;
    if (l.shard === shard && l.topic === topic && l.channel === channel && l.prefix.length > 0) return l.prefix;
    const p = this.prefixFor(shard, topic, channel);
    this.last = { shard, topic, channel, prefix: p };
    return p;
  }

  private prefixFor(shard: string, topic: string, channel: string): Buffer {
    const key = shard + '\u0000' + topic + '\u0000' + channel;
    let p = this.prefixes.get(key);
    if (!p) {
      const parts = [shard, topic, channel].map((x) => Buffer.from(x, 'utf8'));
      for (const b of parts) if (b.length > 255) throw new RangeError('receipt field longer than 255 bytes');
      p = Buffer.concat(parts.flatMap((b) => [Buffer.from([b.length]), b]));
      if (this.prefixes.size >= 10_000) this.prefixes.clear();
      this.prefixes.set(key, p);
    }
    return p;
  }

  sign(f: ReceiptFields): string {
    const prefix = this.prefix(f.shard, f.topic, f.channel);
    const packed = HEX16.test(f.id);
    const w = this.work;
    let o = BASE;
    w[o++] = VERSION | (packed ? FLAG_PACKED_ID : 0);
    o += prefix.copy(w, o);
    if (packed) o += w.write(f.id, o, 'hex');
    else o = writeShort(w, o, f.id);
    o = writeShort(w, o, f.token);
    w.write(this.mac(this.keys[0], o), o, MAC_BYTES, 'latin1');
    return w.toString('base64url', BASE, o + MAC_BYTES);
  }

  /** The fields of a receipt this cluster signed, or what is wrong with it. */
  verify(receipt: string): ReceiptFields | ReceiptProblem {
    if (typeof receipt !== 'string' || receipt.length < 8 || receipt.length > MAX_RECEIPT_LENGTH || !B64URL.test(receipt)) return 'malformed';
    // Only the canonical text of a receipt: trailing bits or characters the decoder would ignore do not make another valid one.
    const rem = receipt.length % 4;
    if (rem === 1) return 'malformed';
    if (rem !== 0 && (B64URL_VALUE[receipt.charCodeAt(receipt.length - 1)] & (rem === 2 ? 0x0f : 0x03)) !== 0) return 'malformed';
    const w = this.work;
    const n = w.write(receipt, BASE, 'base64url');
    if (n < 1 + MAC_BYTES) return 'malformed';
    const end = BASE + n - MAC_BYTES;
    if ((w[BASE] & 0x7f) !== VERSION) return 'malformed';
    // The three names: [len][shard][len][topic][len][channel].
    let o = BASE + 1;
    for (let k = 0; k < 3; k++) {
      if (o >= end) return 'malformed';
      o += 1 + w[o];
    }
    if (o > end) return 'malformed';
    const names = this.namesOf(BASE + 1, o);
    let id: string;
    if (w[BASE] & FLAG_PACKED_ID) {
      if (o + 8 > end) return 'malformed';
      id = w.toString('hex', o, o + 8);
      o += 8;
    } else {
      if (o >= end || o + 1 + w[o] > end) return 'malformed';
      id = w.toString('utf8', o + 1, o + 1 + w[o]);
      o += 1 + w[o];
    }
    if (o >= end || o + 1 + w[o] !== end) return 'malformed';
    const token = w.toString('utf8', o + 1, end);
    let ok = false;
    // Every key is tried, whether or not one already matched (constant time in the key that did).
    for (const k of this.keys) {
      const mac = this.mac(k, end);
      let diff = 0;
      for (let i = 0; i < MAC_BYTES; i++) diff |= mac.charCodeAt(i) ^ w[end + i];
      if (diff === 0) ok = true;
    }
    if (!ok) return 'bad_signature';
    // Signed by us, so these hold; checked anyway because a leaked secret must not widen the API.
    if (!names.valid || id === '' || token === '') return 'malformed';
    return { shard: names.shard, topic: names.topic, channel: names.channel, id, token };
  }

  /** The names in work[from, to), decoded once for a run of receipts of the same channel. */
  private namesOf(from: number, to: number): PrefixNames {
    const last = this.lastNames;
    if (last && last.bytes.length === to - from && this.work.compare(last.bytes, 0, last.bytes.length, from, to) === 0) return last;
    const w = this.work;
    const bytes = Buffer.from(w.subarray(from, to));
    let o = 0;
    const take = () => {
      const s = bytes.toString('utf8', o + 1, o + 1 + bytes[o]);
      o += 1 + bytes[o];
      return s;
    };
    const shard = take();
    const topic = take();
    const channel = take();
    const names = { bytes, shard, topic, channel, valid: isValidName(topic) && isValidName(channel) && shard !== '' };
    this.lastNames = names;
    return names;
  }
}

/** [1B len][UTF-8 text] at `o`; the offset after it. */
function writeShort(w: Buffer, o: number, s: string): number {
  const n = w.write(s, o + 1, 'utf8');
  if (n > 255 || Buffer.byteLength(s, 'utf8') !== n) throw new RangeError('receipt field longer than 255 bytes');
  w[o] = n;
  return o + 1 + n;
}
