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
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
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

/** HMAC-SHA256 (RFC 2104) with the key's pads computed once, on one-shot hashes where Node has them. */
class HmacSha256 {
  private readonly inner: Buffer;
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

  /** The first `n` bytes of the MAC of `a` followed by `b`, written into `out` at `at`. */
  digestInto(a: Buffer, b: Buffer, out: Buffer, at: number, n: number): void {
    if (!oneShot) {
      createHmac('sha256', this.key).update(a).update(b).digest().copy(out, at, 0, n);
      return;
    }
    this.outer.write(oneShot('sha256', Buffer.concat([this.inner, a, b]), 'latin1'), 64, 'latin1');
    out.write(oneShot('sha256', this.outer, 'latin1').slice(0, n), at, 'latin1');
  }
}

export class ReceiptSigner {
  private readonly keys: HmacSha256[];

  /** `secrets[0]` signs; every one of them verifies. */
  constructor(secrets: readonly string[]) {
    if (secrets.length === 0) throw new Error('a receipt signer needs at least one secret');
    this.keys = secrets.map((s) => new HmacSha256(Buffer.from(s, 'utf8')));
  }

  private readonly scratch = Buffer.alloc(MAC_BYTES);

  /** The MAC of payload[0, end) with `key` (into `out` at `at`, or a scratch buffer). */
  private mac(key: HmacSha256, payload: Buffer, end: number, out = this.scratch, at = 0): Buffer {
    key.digestInto(DOMAIN, payload.subarray(0, end), out, at, MAC_BYTES);
    return out;
  }

  /** [len][shard][len][topic][len][channel], the same for every receipt of a channel: built once. */
  private readonly prefixes = new Map<string, Buffer>();

  private prefix(shard: string, topic: string, channel: string): Buffer {
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
    const idLen = packed ? 8 : Buffer.byteLength(f.id, 'utf8');
    const tokenLen = Buffer.byteLength(f.token, 'utf8');
    if (idLen > 255 || tokenLen > 255) throw new RangeError('receipt field longer than 255 bytes');
    const size = 1 + prefix.length + (packed ? 8 : 1 + idLen) + 1 + tokenLen;
    const out = Buffer.allocUnsafe(size + MAC_BYTES);
    out[0] = VERSION | (packed ? FLAG_PACKED_ID : 0);
    let o = 1 + prefix.copy(out, 1);
    if (packed) o += out.write(f.id, o, 'hex');
    else {
      out[o++] = idLen;
      o += out.write(f.id, o, 'utf8');
    }
    out[o++] = tokenLen;
    o += out.write(f.token, o, 'utf8');
    this.mac(this.keys[0], out, o, out, o);
    return out.toString('base64url');
  }

  /** The fields of a receipt this cluster signed, or what is wrong with it. */
  verify(receipt: string): ReceiptFields | ReceiptProblem {
    if (typeof receipt !== 'string' || receipt.length < 8 || receipt.length > MAX_RECEIPT_LENGTH || !B64URL.test(receipt)) return 'malformed';
    const raw = Buffer.from(receipt, 'base64url');
    // Only the canonical text of a receipt: trailing bits or characters the decoder would ignore do not make another valid one.
    if (raw.length < 1 + MAC_BYTES || raw.toString('base64url') !== receipt) return 'malformed';
    const end = raw.length - MAC_BYTES;
    const head = raw[0];
    if ((head & 0x7f) !== VERSION) return 'malformed';
    let o = 1;
    const take = (): string | null => {
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
    if (head & FLAG_PACKED_ID) {
      if (o + 8 > end) return 'malformed';
      id = raw.toString('hex', o, o + 8);
      o += 8;
    } else id = take();
    const token = take();
    if (shard === null || topic === null || channel === null || id === null || token === null || o !== end) return 'malformed';
    const given = raw.subarray(end);
    let ok = false;
    // Every key is tried, whether or not one already matched (constant time in the key that did).
    for (const k of this.keys) if (timingSafeEqual(this.mac(k, raw, end), given)) ok = true;
    if (!ok) return 'bad_signature';
    // Signed by us, so these hold; checked anyway because a leaked secret must not widen the API.
    if (!isValidName(topic) || !isValidName(channel) || shard === '' || id === '' || token === '') return 'malformed';
    return { shard, topic, channel, id, token };
  }
}
