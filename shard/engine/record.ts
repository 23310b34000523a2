// How a queued message is stored in a backend record: [1B version][8B deferUntil wall ms, double]
// followed by the message layout of wire/message.ts. One scratch buffer is reused for encoding.

import { MESSAGE_HEADER_LENGTH, readMessage, writeMessage } from '../../wire/message';
import { Message } from './message';

const RECORD_VERSION = 1;
export const RECORD_OVERHEAD = 1 + 8 + MESSAGE_HEADER_LENGTH;

let scratch = Buffer.allocUnsafe(64 * 1024);

/** Encodes `m` into a shared scratch buffer; the view is valid until the next call. */
export function encodeRecord(m: Message): Buffer {
  const len = RECORD_OVERHEAD + m.body.length;
  if (len > scratch.length) scratch = Buffer.allocUnsafe(Math.max(len, scratch.length * 2));
  scratch[0] = RECORD_VERSION;
  scratch.writeDoubleBE(m.deferUntil, 1);
  writeMessage(scratch, 9, m);
  return scratch.subarray(0, len);
}

/** Decodes a record; returns null for a record this version cannot read. */
export function decodeRecord(buf: Buffer): Message | null {
  if (buf.length < RECORD_OVERHEAD || buf[0] !== RECORD_VERSION) return null;
  const w = readMessage(buf, 9);
  const m = new Message(w.id, w.body, w.timestamp);
  m.attempts = w.attempts;
  m.deferUntil = buf.readDoubleBE(1);
  return m;
}
