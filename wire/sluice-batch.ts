// The batch frame of the shard's publish extension (POST /sluice/mpub): like nsqd's binary /mpub,
// but each message also carries its own defer and idempotency key. Pure bytes ↔ values.
//
//   [4B count] then per message: [4B defer_ms][2B key_len][key (UTF-8)][4B body_len][body]
//
// key_len 0 means no idempotency key; defer_ms 0 means publish now.

export interface BatchMessage {
  body: Buffer;
  deferMs: number;
  idempotencyKey?: string;
}

/** Longest idempotency key, in bytes (shared by the gateway's validation and the shard's). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 200;

export class BatchFrameError extends Error {
  constructor(readonly code: 'BAD_BODY' | 'BAD_MESSAGE' | 'MSG_TOO_BIG', readonly index = -1) {
    super(code);
  }
}

export function encodedBatchLength(msgs: readonly BatchMessage[]): number {
  let n = 4;
  for (const m of msgs) n += 10 + (m.idempotencyKey ? Buffer.byteLength(m.idempotencyKey) : 0) + m.body.length;
  return n;
}

export function encodeBatch(msgs: readonly BatchMessage[]): Buffer {
  const buf = Buffer.allocUnsafe(encodedBatchLength(msgs));
  buf.writeUInt32BE(msgs.length, 0);
  let off = 4;
  for (const m of msgs) {
    buf.writeUInt32BE(m.deferMs, off);
    const keyLen = m.idempotencyKey ? buf.write(m.idempotencyKey, off + 6, 'utf8') : 0;
    buf.writeUInt16BE(keyLen, off + 4);
    off += 6 + keyLen;
    buf.writeUInt32BE(m.body.length, off);
    m.body.copy(buf, off + 4);
    off += 4 + m.body.length;
  }
  return buf;
}

/** Parses a frame; bodies are views into `buf`. Throws BatchFrameError naming the bad message. */
export function decodeBatch(buf: Buffer, maxMsgSize: number): BatchMessage[] {
  if (buf.length < 4) throw new BatchFrameError('BAD_BODY');
  const count = buf.readUInt32BE(0);
  if (count === 0) throw new BatchFrameError('BAD_BODY');
  const out: BatchMessage[] = [];
  let off = 4;
  for (let i = 0; i < count; i++) {
    if (off + 6 > buf.length) throw new BatchFrameError('BAD_MESSAGE', i);
    const deferMs = buf.readUInt32BE(off);
    const keyLen = buf.readUInt16BE(off + 4);
    off += 6;
    if (keyLen > MAX_IDEMPOTENCY_KEY_LENGTH || off + keyLen + 4 > buf.length) throw new BatchFrameError('BAD_MESSAGE', i);
    const idempotencyKey = keyLen > 0 ? buf.toString('utf8', off, off + keyLen) : undefined;
    off += keyLen;
    const size = buf.readUInt32BE(off);
    off += 4;
    if (size === 0) throw new BatchFrameError('BAD_MESSAGE', i);
    if (size > maxMsgSize) throw new BatchFrameError('MSG_TOO_BIG', i);
    if (off + size > buf.length) throw new BatchFrameError('BAD_MESSAGE', i);
    out.push({ body: buf.subarray(off, off + size), deferMs, idempotencyKey });
    off += size;
  }
  if (off !== buf.length) throw new BatchFrameError('BAD_BODY');
  return out;
}
