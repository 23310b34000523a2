// Client side of NSQ TCP protocol V2: encoders for the commands a client sends, and a push-based
// decoder turning the server's [4B size][4B type][data] frames into responses, errors and messages.

import { MESSAGE_HEADER_LENGTH, MESSAGE_ID_LENGTH, readMessage, type WireMessage } from './message';
import { isValidName } from './names';
import { FRAME_ERROR, FRAME_HEADER_LENGTH, FRAME_MESSAGE, FRAME_RESPONSE, MAGIC_V2 } from './nsq-v2-frames';

export { CLOSE_WAIT, HEARTBEAT, MAGIC_V2, OK } from './nsq-v2-frames';

/**
 * Largest frame data the decoder accepts. nsqd's own limit is --max-msg-size (1 MiB by default)
 * for a message; this only guards against a corrupt or hostile length prefix.
 */
export const DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024;

/** The only errors after which nsqd keeps the connection (nsqd's ClientErr, not FatalClientErr). */
export const NON_FATAL_ERRORS: ReadonlySet<string> = new Set(['E_FIN_FAILED', 'E_REQ_FAILED', 'E_TOUCH_FAILED']);

export type ServerFrame =
  | { readonly type: 'response'; readonly text: string }
  | { readonly type: 'error'; readonly code: string; readonly text: string; readonly fatal: boolean }
  | { readonly type: 'message'; readonly message: WireMessage }
  /** The stream is not NSQ V2 (bad size or frame type); the decoder stops there. */
  | { readonly type: 'invalid'; readonly reason: string };

/** Splits an error frame's data ("E_CODE text") as nsqd writes it (errorData in nsq-v2-frames). */
export function parseErrorData(data: string): { code: string; text: string; fatal: boolean } {
  const sp = data.indexOf(' ');
  const code = sp < 0 ? data : data.slice(0, sp);
  return { code, text: sp < 0 ? '' : data.slice(sp + 1), fatal: !NON_FATAL_ERRORS.has(code) };
}

/**
 * Feed it socket chunks; it returns every complete frame. A frame that fits in the chunk is a
 * view of it (message bodies included, so never write to a chunk after pushing it); one that
 * straddles chunks is copied once into a buffer sized from its length prefix, which is checked
 * against `maxFrameSize` before anything is buffered.
 */
export class FrameDecoder {
  private readonly head = Buffer.alloc(FRAME_HEADER_LENGTH);
  private headHave = 0;
  private body: Buffer | null = null;
  private bodyHave = 0;
  private frameType = 0;
  private stopped = false;

  constructor(private readonly maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {}

  get halted(): boolean {
    return this.stopped;
  }

  /** Bytes of an unfinished frame held between pushes. */
  get bufferedBytes(): number {
    return this.headHave + this.bodyHave;
  }

  push(chunk: Buffer): ServerFrame[] {
    const out: ServerFrame[] = [];
    let pos = 0;
    const len = chunk.length;
    while (pos < len && !this.stopped) {
      if (this.body !== null) {
        const take = Math.min(this.body.length - this.bodyHave, len - pos);
        chunk.copy(this.body, this.bodyHave, pos, pos + take);
        this.bodyHave += take;
        pos += take;
        if (this.bodyHave === this.body.length) {
          const body = this.body;
          this.body = null;
          this.bodyHave = 0;
          this.emit(this.frameType, body, out);
        }
        continue;
      }
      if (this.headHave === 0 && len - pos >= FRAME_HEADER_LENGTH) {
        // fast path: the header, and usually the whole frame, is in this chunk
        const dataLen = this.checkHeader(chunk.readUInt32BE(pos), chunk.readUInt32BE(pos + 4), out);
        if (dataLen < 0) break;
        pos += FRAME_HEADER_LENGTH;
        if (len - pos >= dataLen) {
          this.emit(this.frameType, chunk.subarray(pos, pos + dataLen), out);
          pos += dataLen;
        } else this.body = Buffer.allocUnsafe(dataLen);
        continue;
      }
      const take = Math.min(FRAME_HEADER_LENGTH - this.headHave, len - pos);
      chunk.copy(this.head, this.headHave, pos, pos + take);
      this.headHave += take;
      pos += take;
      if (this.headHave < FRAME_HEADER_LENGTH) break;
      this.headHave = 0;
      const dataLen = this.checkHeader(this.head.readUInt32BE(0), this.head.readUInt32BE(4), out);
      if (dataLen < 0) break;
      if (dataLen === 0) this.emit(this.frameType, Buffer.alloc(0), out);
      else this.body = Buffer.allocUnsafe(dataLen);
    }
    return out;
  }

  // The data length of a valid header (and remembers its type), or -1 after reporting why not.
  private checkHeader(size: number, type: number, out: ServerFrame[]): number {
    let reason = '';
    if (size < 4) reason = `frame size ${size} too small`;
    else if (size - 4 > this.maxFrameSize) reason = `frame size ${size} exceeds ${this.maxFrameSize}`;
    else if (type !== FRAME_RESPONSE && type !== FRAME_ERROR && type !== FRAME_MESSAGE) reason = `unknown frame type ${type}`;
    else if (type === FRAME_MESSAGE && size - 4 < MESSAGE_HEADER_LENGTH) reason = `message frame of ${size - 4} bytes is shorter than its header`;
    if (reason !== '') {
      this.stopped = true;
      this.body = null;
      out.push({ type: 'invalid', reason });
      return -1;
    }
    this.frameType = type;
    return size - 4;
  }

  private emit(type: number, data: Buffer, out: ServerFrame[]): void {
    if (type === FRAME_MESSAGE) out.push({ type: 'message', message: readMessage(data) });
    else if (type === FRAME_RESPONSE) out.push({ type: 'response', text: data.toString('utf8') });
    else out.push({ type: 'error', ...parseErrorData(data.toString('utf8')) });
  }
}

// ---- command encoders: each returns the exact bytes to write ----

const NL = 0x0a;

function checkName(kind: 'topic' | 'channel', name: string): void {
  if (!isValidName(name)) throw new RangeError(`invalid ${kind} name ${JSON.stringify(name)}`);
}

function checkId(id: string): void {
  if (id.length !== MESSAGE_ID_LENGTH) throw new RangeError(`invalid message id ${JSON.stringify(id)}`);
}

function checkMs(what: string, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`${what} must be a non-negative integer of milliseconds`);
}

function line(text: string): Buffer {
  return Buffer.from(text + '\n', 'latin1');
}

/** A command line followed by [4B size][body]. */
function withBody(head: string, body: Buffer): Buffer {
  const headLen = head.length + 1;
  const out = Buffer.allocUnsafe(headLen + 4 + body.length);
  out.write(head, 0, 'latin1');
  out[headLen - 1] = NL;
  out.writeUInt32BE(body.length, headLen);
  body.copy(out, headLen + 4);
  return out;
}

const asBuffer = (b: Buffer | string): Buffer => (typeof b === 'string' ? Buffer.from(b, 'utf8') : b);

export const MAGIC_BYTES: Buffer = Buffer.from(MAGIC_V2, 'latin1');
export const NOP_BYTES: Buffer = line('NOP');
export const CLS_BYTES: Buffer = line('CLS');

export function encodeIdentify(data: Record<string, unknown>): Buffer {
  return withBody('IDENTIFY', Buffer.from(JSON.stringify(data), 'utf8'));
}

export function encodeAuth(secret: string): Buffer {
  return withBody('AUTH', Buffer.from(secret, 'utf8'));
}

export function encodeSub(topic: string, channel: string): Buffer {
  checkName('topic', topic);
  checkName('channel', channel);
  return line(`SUB ${topic} ${channel}`);
}

export function encodeRdy(count: number): Buffer {
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError('RDY count must be a non-negative integer');
  return line(`RDY ${count}`);
}

export function encodeFin(id: string): Buffer {
  checkId(id);
  return line(`FIN ${id}`);
}

export function encodeReq(id: string, delayMs: number): Buffer {
  checkId(id);
  checkMs('REQ delay', delayMs);
  return line(`REQ ${id} ${delayMs}`);
}

export function encodeTouch(id: string): Buffer {
  checkId(id);
  return line(`TOUCH ${id}`);
}

export function encodePub(topic: string, body: Buffer | string): Buffer {
  checkName('topic', topic);
  return withBody(`PUB ${topic}`, asBuffer(body));
}

export function encodeDpub(topic: string, deferMs: number, body: Buffer | string): Buffer {
  checkName('topic', topic);
  checkMs('DPUB defer', deferMs);
  return withBody(`DPUB ${topic} ${deferMs}`, asBuffer(body));
}

/** MPUB's body is [4B count]([4B size][message])*; one allocation for the whole command. */
export function encodeMpub(topic: string, bodies: ReadonlyArray<Buffer | string>): Buffer {
  checkName('topic', topic);
  if (bodies.length === 0) throw new RangeError('MPUB needs at least one message');
  const bufs = bodies.map(asBuffer);
  let size = 4;
  for (const b of bufs) size += 4 + b.length;
  const head = `MPUB ${topic}\n`;
  const out = Buffer.allocUnsafe(head.length + 4 + size);
  let off = out.write(head, 0, 'latin1');
  off = out.writeUInt32BE(size, off);
  off = out.writeUInt32BE(bufs.length, off);
  for (const b of bufs) {
    off = out.writeUInt32BE(b.length, off);
    off += b.copy(out, off);
  }
  return out;
}
