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

/** "000".."fff": the last three hex digits of an id are the 12-bit sequence. */
const HEX3: string[] = Array.from({ length: 4096 }, (_, i) => i.toString(16).padStart(3, '0'));

/**
 * Makes ids unique per shard: a millisecond clock, a 10-bit worker id and a 12-bit sequence.
 * When the sequence runs out within one millisecond, the generator borrows the next millisecond,
 * so ids never repeat and never block, even if the wall clock steps back.
 */
export class IdGenerator {
  private lastMs = 0;
  private seq = 0;
  /** The millisecond `prefix` was rendered for, and its first 13 hex digits (all but the sequence). */
  private prefixMs = -1;
  private prefix = '';

  constructor(private readonly workerId: number, private readonly nowMs: () => number = Date.now) {
    if (!Number.isInteger(workerId) || workerId < 0 || workerId > 1023) throw new RangeError('workerId must be 0..1023');
  }

  next(): string {
    return this.nextAt(this.nowMs());
  }

  /** The next id, given the wall clock (ms) the caller already read: a batch reads it once. */
  nextAt(wallMs: number): string {
    let ms = wallMs - GUID_EPOCH_MS;
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
    if (ms !== this.prefixMs) {
      // 64-bit id = ms << 22 | workerId << 12 | seq; as hex: ms / 1024 (8 digits), then
      // ms % 1024 and the worker id (5 digits), then the sequence (3 digits).
      this.prefixMs = ms;
      const hi = Math.floor(ms / 1024);
      this.prefix = hi.toString(16).padStart(8, '0') + ((ms % 1024) * 1024 + this.workerId).toString(16).padStart(5, '0');
    }
    return this.prefix + HEX3[this.seq];
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
