// The binary answer of the shard's pull-many (POST /sluice/lease/pull-many with
// `Accept: application/x-sluice-leases`): the same fields as the JSON answer, without JSON or
// base64, so the gateway reads each body as a view of the response instead of decoding it.
// Pure bytes ↔ values.
//
//   [1B version = 1][4B pull count]
//   per pull:    [1B topic_len][topic][1B channel_len][channel][4B message count]
//   per message: [16B id][4B attempts][8B timestamp][4B lease_ms][1B token_len][token][4B body_len][body]
//
// Integers are unsigned big-endian. The id is the message's 16 lowercase hex ASCII characters as
// a shard makes them; the timestamp (ns since the epoch) is an IEEE-754 double, which is exactly
// the number the shard holds and the JSON answer shows; names and token are UTF-8.

export const LEASE_BATCH_TYPE = 'application/x-sluice-leases';
export const LEASE_BATCH_VERSION = 1;

export interface LeaseBatchMessage {
  /** 16 lowercase hex characters. */
  id: string;
  token: string;
  attempts: number;
  /** Nanoseconds since the Unix epoch. */
  timestamp: number;
  /** The lease the shard granted, in ms from when it answered. */
  leaseMs: number;
  body: Buffer;
}

export interface LeaseBatchPull {
  topic: string;
  channel: string;
  messages: LeaseBatchMessage[];
}

/** A message to encode: a shard's own message object will do (its lease then comes from the pull). */
export interface LeaseToEncode {
  id: string;
  token: string;
  attempts: number;
  timestamp: number;
  body: Buffer;
  leaseMs?: number;
}

export interface PullToEncode {
  topic: string;
  channel: string;
  /** The lease of every message of the pull that does not name its own. */
  leaseMs: number;
  messages: readonly LeaseToEncode[];
}

/** What a malformed frame breaks; `offset` is where decoding stopped. */
export type LeaseBatchProblem = 'TRUNCATED' | 'BAD_VERSION' | 'BAD_ID' | 'BAD_FIELD' | 'TRAILING_BYTES';

export class LeaseBatchError extends Error {
  constructor(readonly problem: LeaseBatchProblem, readonly offset: number) {
    super(`malformed lease batch: ${problem} at byte ${offset}`);
    this.name = 'LeaseBatchError';
  }
}

const HEAD = 1 + 4;
const PULL_FIXED = 1 + 1 + 4;
const ID_LENGTH = 16;
/** Everything of a message but its token and body. */
const MSG_FIXED = ID_LENGTH + 4 + 8 + 4 + 1 + 4;
const MAX_U32 = 0xffffffff;
const MAX_SHORT = 255;

const HEX = new Uint8Array(256);
for (const c of '0123456789abcdef') HEX[c.charCodeAt(0)] = 1;

/** Exact size of the frame for these pulls. Throws RangeError for a value the format cannot carry. */
export function encodedLeaseBatchLength(pulls: readonly PullToEncode[]): number {
  let n = HEAD;
  for (const p of pulls) {
    const t = Buffer.byteLength(p.topic, 'utf8');
    const c = Buffer.byteLength(p.channel, 'utf8');
    if (t === 0 || c === 0 || t > MAX_SHORT || c > MAX_SHORT) throw new RangeError('topic and channel must be 1 to 255 bytes');
    n += PULL_FIXED + t + c;
    const msgs = p.messages;
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i];
      const tok = Buffer.byteLength(m.token, 'utf8');
      if (tok === 0 || tok > MAX_SHORT) throw new RangeError('token must be 1 to 255 bytes');
      n += MSG_FIXED + tok + m.body.length;
    }
  }
  return n;
}

function checkU32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > MAX_U32) throw new RangeError(`${what} out of range`);
  return v;
}

/** Writes the pulls into one buffer sized up front. Throws RangeError for a value the format cannot carry. */
export function encodeLeaseBatch(pulls: readonly PullToEncode[]): Buffer {
  const buf = Buffer.allocUnsafe(encodedLeaseBatchLength(pulls));
  buf[0] = LEASE_BATCH_VERSION;
  buf.writeUInt32BE(pulls.length, 1);
  let off = HEAD;
  for (const p of pulls) {
    off = writeShort(buf, off, p.topic);
    off = writeShort(buf, off, p.channel);
    const msgs = p.messages;
    const pullLease = checkU32(p.leaseMs, 'lease_ms');
    buf.writeUInt32BE(msgs.length, off);
    off += 4;
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i];
      const id = m.id;
      if (id.length !== ID_LENGTH) throw new RangeError('message id must be 16 characters');
      for (let k = 0; k < ID_LENGTH; k++) {
        const c = id.charCodeAt(k);
        if (c > 0xff || HEX[c] === 0) throw new RangeError('message id must be lowercase hex');
      }
      off += buf.write(id, off, ID_LENGTH, 'latin1');
      buf.writeUInt32BE(checkU32(m.attempts, 'attempts'), off);
      if (!Number.isFinite(m.timestamp)) throw new RangeError('timestamp must be a finite number');
      buf.writeDoubleBE(m.timestamp, off + 4);
      buf.writeUInt32BE(m.leaseMs === undefined ? pullLease : checkU32(m.leaseMs, 'lease_ms'), off + 12);
      off = writeShort(buf, off + 16, m.token);
      buf.writeUInt32BE(m.body.length, off);
      off += 4;
      off += m.body.copy(buf, off);
    }
  }
  return buf;
}

/** [1B len][UTF-8 text]; the length was checked when sizing. */
function writeShort(buf: Buffer, off: number, s: string): number {
  const n = buf.write(s, off + 1, 'utf8');
  buf[off] = n;
  return off + 1 + n;
}

/**
 * Parses a frame. Bodies are views into `buf` (no copies), so they live as long as any of them
 * does. Throws LeaseBatchError for anything that is not exactly one well-formed frame. Counts are
 * checked against the bytes left before anything is allocated for them, so a hostile count cannot
 * make it allocate or loop more than the input's size allows.
 */
export function decodeLeaseBatch(buf: Uint8Array): LeaseBatchPull[] {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const end = b.length;
  if (end < HEAD) throw new LeaseBatchError('TRUNCATED', 0);
  if (b[0] !== LEASE_BATCH_VERSION) throw new LeaseBatchError('BAD_VERSION', 0);
  const pullCount = b.readUInt32BE(1);
  let off = HEAD;
  if (pullCount > (end - off) / PULL_FIXED) throw new LeaseBatchError('TRUNCATED', off);
  const pulls = new Array<LeaseBatchPull>(pullCount);
  for (let p = 0; p < pullCount; p++) {
    if (off + 1 > end) throw new LeaseBatchError('TRUNCATED', off);
    const tl = b[off];
    if (tl === 0) throw new LeaseBatchError('BAD_FIELD', off);
    if (off + 1 + tl + 1 > end) throw new LeaseBatchError('TRUNCATED', off);
    const topic = b.toString('utf8', off + 1, off + 1 + tl);
    off += 1 + tl;
    const cl = b[off];
    if (cl === 0) throw new LeaseBatchError('BAD_FIELD', off);
    if (off + 1 + cl + 4 > end) throw new LeaseBatchError('TRUNCATED', off);
    const channel = b.toString('utf8', off + 1, off + 1 + cl);
    off += 1 + cl;
    const count = b.readUInt32BE(off);
    off += 4;
    if (count > (end - off) / MSG_FIXED) throw new LeaseBatchError('TRUNCATED', off);
    const messages = new Array<LeaseBatchMessage>(count);
    for (let i = 0; i < count; i++) {
      if (off + MSG_FIXED > end) throw new LeaseBatchError('TRUNCATED', off);
      for (let k = off; k < off + ID_LENGTH; k++) if (HEX[b[k]] === 0) throw new LeaseBatchError('BAD_ID', off);
      const id = b.toString('latin1', off, off + ID_LENGTH);
      const attempts = b.readUInt32BE(off + 16);
      const timestamp = b.readDoubleBE(off + 20);
      const leaseMs = b.readUInt32BE(off + 28);
      const tokLen = b[off + 32];
      if (tokLen === 0 || !Number.isFinite(timestamp)) throw new LeaseBatchError('BAD_FIELD', off);
      off += 33;
      if (off + tokLen + 4 > end) throw new LeaseBatchError('TRUNCATED', off);
      const token = b.toString('utf8', off, off + tokLen);
      off += tokLen;
      const size = b.readUInt32BE(off);
      off += 4;
      if (size > end - off) throw new LeaseBatchError('TRUNCATED', off);
      messages[i] = { id, token, attempts, timestamp, leaseMs, body: b.subarray(off, off + size) };
      off += size;
    }
    pulls[p] = { topic, channel, messages };
  }
  if (off !== end) throw new LeaseBatchError('TRAILING_BYTES', off);
  return pulls;
}
