// Message ids (nsqd-style GUIDs rendered as 16 hex ASCII bytes) and the message layout
// shared by the TCP frame and the disk queue: [8B timestamp ns][2B attempts][16B id][body].

export const MESSAGE_ID_LENGTH = 16;
export const MESSAGE_HEADER_LENGTH = 8 + 2 + MESSAGE_ID_LENGTH;

/** The fields every encoded message carries. */
export interface WireMessage {
  /** Nanoseconds since the Unix epoch, as a double (exact to ~256 ns, enough for a timestamp). */
  timestamp: number;
  attempts: number;
  /** 16 ASCII hex characters. */
  id: string;
  body: Buffer;
}

const TWO_32 = 4294967296;
// nsqd's GUID epoch (ms): the id is (ms - epoch) << 22 | workerId << 12 | sequence.
const GUID_EPOCH_MS = 1288834974657;

/**
 * Makes ids unique per shard: a millisecond clock, a 10-bit worker id and a 12-bit sequence.
 * When the sequence runs out within one millisecond, the generator borrows the next millisecond,
 * so ids never repeat and never block, even if the wall clock steps back.
 */
export class IdGenerator {
  private lastMs = 0;
  private seq = 0;
  private hiMs = -1;
  private hiHex = '';

  constructor(private readonly workerId: number, private readonly nowMs: () => number = Date.now) {
    if (!Number.isInteger(workerId) || workerId < 0 || workerId > 1023) throw new RangeError('workerId must be 0..1023');
  }

  next(): string {
    let ms = this.nowMs() - GUID_EPOCH_MS;
    if (ms <= this.lastMs) {
      ms = this.lastMs;
      this.seq++;
      if (this.seq > 4095) {
        ms = ++this.lastMs;
        this.seq = 0;
      }
    } else {
      this.lastMs = ms;
      this.seq = 0;
    }
    const hiMs = Math.floor(ms / 1024);
    if (hiMs !== this.hiMs) {
      this.hiMs = hiMs;
      this.hiHex = hiMs.toString(16).padStart(8, '0');
    }
    const lo = (ms % 1024) * 4194304 + this.workerId * 4096 + this.seq;
    return this.hiHex + lo.toString(16).padStart(8, '0');
  }
}

export function isValidMessageId(id: string): boolean {
  return id.length === MESSAGE_ID_LENGTH && /^[\x21-\x7e]{16}$/.test(id);
}

/** Writes the message at `offset` (the buffer must have room); returns the offset after it. */
export function writeMessage(buf: Buffer, offset: number, m: WireMessage): number {
  const hi = Math.floor(m.timestamp / TWO_32);
  buf.writeUInt32BE(hi >>> 0, offset);
  buf.writeUInt32BE(m.timestamp - hi * TWO_32, offset + 4);
  buf.writeUInt16BE(m.attempts > 0xffff ? 0xffff : m.attempts, offset + 8);
  buf.write(m.id, offset + 10, MESSAGE_ID_LENGTH, 'latin1');
  m.body.copy(buf, offset + MESSAGE_HEADER_LENGTH);
  return offset + MESSAGE_HEADER_LENGTH + m.body.length;
}

export function encodedMessageLength(m: WireMessage): number {
  return MESSAGE_HEADER_LENGTH + m.body.length;
}

/** Reads a message laid out as above; the body is a view into `buf`, not a copy. */
export function readMessage(buf: Buffer, offset = 0, end = buf.length): WireMessage {
  if (end - offset < MESSAGE_HEADER_LENGTH) throw new RangeError('message shorter than its header');
  return {
    timestamp: buf.readUInt32BE(offset) * TWO_32 + buf.readUInt32BE(offset + 4),
    attempts: buf.readUInt16BE(offset + 8),
    id: buf.toString('latin1', offset + 10, offset + MESSAGE_HEADER_LENGTH),
    body: buf.subarray(offset + MESSAGE_HEADER_LENGTH, end),
  };
}
