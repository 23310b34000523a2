// Client → server half of NSQ TCP protocol V2: a push-based decoder turning the byte stream into
// commands or nsqd's protocol errors, plus the pure checks that need connection state or config.

import { MESSAGE_ID_LENGTH } from './message';
import { isValidName } from './names';
import { goQuote, protocolError, V2Errors, type ProtocolError } from './nsq-v2-frames';

export * from './nsq-v2-frames';

/*
 * Who checks what. nsqd (protocol_v2.go) reads each command's body from inside its handler, so
 * its checks are interleaved with reads; we keep its order by making them in three places:
 *
 * 1. The connection handler, on every item *before* looking at it — a command's `type`, or an
 *    error's `command` — runs what depends on the connection: TLS policy (V2Errors.tlsRequired,
 *    every command but IDENTIFY), client state (checkState), and SUB's heartbeats check.
 * 2. The decoder, from bytes and limits alone: the command name, parameter counts, topic and
 *    channel names, message id length, number syntax, DPUB's defer range, and every length
 *    prefix — each rejected before any body byte is buffered. All of these are fatal in nsqd.
 * 3. The handler, after: validateRdy (RDY range), clampReqTimeout (nsqd clamps REQ, it does not
 *    fail it), IDENTIFY's JSON, AUTH, authorization, and the engine's FIN/REQ/TOUCH failures.
 *
 * Known differences from nsqd, all on inputs no working client sends:
 * - nsqd frames MPUB by the sizes inside it and ignores the declared body size, so leftover
 *   bytes run as commands; we frame by the declared size and fail a mismatch (E_BAD_BODY).
 * - With auth enabled nsqd fails an unauthorized MPUB before reading its body; we read it first.
 * - nsqd ignores any RDY line, even a malformed one, after CLS; a malformed RDY is fatal here.
 * - Numbers that overflow Go's int64 nanoseconds (REQ/DPUB > ~292 years) wrap in nsqd; here
 *   they are out of range. Error texts quoting non-UTF-8 bytes with %s show U+FFFD.
 */

export interface DecoderLimits {
  /** --max-msg-size: the largest PUB/DPUB body and the largest message inside an MPUB. */
  readonly maxMsgSize: number;
  /** --max-body-size: the largest MPUB, IDENTIFY or AUTH body. */
  readonly maxBodySize: number;
  /** --max-req-timeout in ms (default 1 h): nsqd checks DPUB's defer against it before the body. */
  readonly maxReqTimeoutMs?: number;
}

export type Command =
  | { readonly type: 'IDENTIFY'; readonly body: Buffer }
  | { readonly type: 'AUTH'; readonly body: Buffer }
  | { readonly type: 'SUB'; readonly topic: string; readonly channel: string }
  | { readonly type: 'PUB'; readonly topic: string; readonly body: Buffer }
  | { readonly type: 'MPUB'; readonly topic: string; readonly bodies: Buffer[] }
  | { readonly type: 'DPUB'; readonly topic: string; readonly deferMs: number; readonly body: Buffer }
  | { readonly type: 'RDY'; readonly count: number }
  | { readonly type: 'FIN'; readonly id: string }
  | { readonly type: 'REQ'; readonly id: string; readonly timeoutMs: number }
  | { readonly type: 'TOUCH'; readonly id: string }
  | { readonly type: 'CLS' }
  | { readonly type: 'NOP' };

export type DecodedItem = Command | ProtocolError;

/** nsqd reads lines through a 16 KiB bufio.Reader: a longer line (with its '\n') ends the connection. */
export const MAX_LINE_LENGTH = 16 * 1024;
export const DEFAULT_MAX_REQ_TIMEOUT_MS = 3_600_000;

// Indexes into NAMES; the hot commands come first because the lookup is a linear scan.
const NAMES = ['PUB', 'MPUB', 'FIN', 'RDY', 'REQ', 'TOUCH', 'DPUB', 'NOP', 'SUB', 'CLS', 'IDENTIFY', 'AUTH'] as const;
const PUB = 0, MPUB = 1, FIN = 2, RDY = 3, REQ = 4, TOUCH = 5, DPUB = 6, NOP = 7, SUB = 8, CLS = 9, IDENTIFY = 10, AUTH = 11;

const STEP_LINE = 0; // waiting for a command line
const STEP_SIZE = 1; // waiting for the 4-byte body size of `kind`
const STEP_BODY = 2; // waiting for `bodyLen` body bytes of `kind`
const STEP_HALTED = 3; // after a fatal error or end(): nothing more is decoded

const EMPTY = Buffer.alloc(0);
const NOP_COMMAND: Command = Object.freeze({ type: 'NOP' });
const CLS_COMMAND: Command = Object.freeze({ type: 'CLS' });
const LINE_BUFFER_KEEP = 4096; // a line buffer grown past this is dropped once the line is parsed

/**
 * Feed it socket chunks with push(); it returns every complete command (or the error that ends
 * the stream) and keeps at most one unfinished unit (line, size field or body) between chunks.
 *
 * Ownership: push() takes the chunk; never write to it afterwards (a 'data' chunk from node:net
 * is never reused, a buffer given as `onread.buffer` is — copy those first). Bodies are views,
 * never copies, of either that chunk or of a buffer allocated for exactly that body when it
 * straddled chunks; the decoder never writes to memory it has handed out, so callers may keep
 * bodies as long as they like. So each body is copied at most once (only when it straddles
 * chunks). The cost: a kept body keeps its whole chunk (≤ 64 KiB) alive; a store that keeps
 * messages long may copy them into its own layout.
 */
export class CommandDecoder {
  private readonly maxMsgSize: number;
  private readonly maxBodySize: number;
  private readonly maxReqTimeoutMs: number;

  private step = STEP_LINE;
  // the body-carrying command whose size or body is awaited
  private kind = PUB;
  private topic = '';
  private deferMs = 0;
  private bodyLen = 0;
  // bytes of the unfinished unit carried over from earlier chunks
  private lineBuf = EMPTY;
  private bodyBuf = EMPTY;
  private carried = 0;
  // publishers repeat one topic: reuse its string and skip re-validating it
  private lastTopic = '';
  // bounds of params[0..2] of the line being parsed
  private readonly ps = [0, 0, 0];
  private readonly pe = [0, 0, 0];

  constructor(limits: DecoderLimits) {
    this.maxMsgSize = limits.maxMsgSize;
    this.maxBodySize = limits.maxBodySize;
    this.maxReqTimeoutMs = limits.maxReqTimeoutMs ?? DEFAULT_MAX_REQ_TIMEOUT_MS;
    for (const [name, v] of Object.entries({ ...limits, maxReqTimeoutMs: this.maxReqTimeoutMs }))
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer`);
  }

  /** Bytes of an unfinished command held between pushes (< max(MAX_LINE_LENGTH, largest body limit)). */
  get bufferedBytes(): number {
    return this.carried;
  }

  /** Bytes of the buffers the decoder holds (≤ MAX_LINE_LENGTH + largest body limit). */
  get retainedBytes(): number {
    return this.lineBuf.length + this.bodyBuf.length;
  }

  get halted(): boolean {
    return this.step === STEP_HALTED;
  }

  push(chunk: Buffer): DecodedItem[] {
    const out: DecodedItem[] = [];
    const len = chunk.length;
    let pos = 0;
    while (pos < len && this.step !== STEP_HALTED) {
      if (this.carried === 0) {
        // Nothing carried: parse in place, carry only the unfinished tail.
        pos = this.run(chunk, pos, len, out);
        if (pos < len && this.step !== STEP_HALTED) this.carry(chunk, pos, len);
        break;
      }
      // Finish the carried unit with as few bytes of this chunk as it needs, then go in place.
      const need = this.stillNeeded(chunk, pos, len);
      const take = need < 0 ? len - pos : need;
      if (this.step === STEP_LINE && this.carried + take >= MAX_LINE_LENGTH + (need < 0 ? 0 : 1)) {
        this.fail(out, lineTooLong());
        break;
      }
      this.carry(chunk, pos, pos + take);
      pos += take;
      if (need < 0) break;
      this.runCarried(out);
    }
    return out;
  }

  /**
   * The connection reached EOF. Returns the error nsqd gives for a command cut short inside its
   * size or body (null for a partial line, which nsqd drops silently); the decoder then halts.
   */
  end(): ProtocolError | null {
    let err: ProtocolError | null = null;
    const name = NAMES[this.kind];
    if (this.step === STEP_SIZE) {
      err =
        this.kind === PUB || this.kind === DPUB
          ? fatal('E_BAD_MESSAGE', `${name} failed to read message body size`, name)
          : fatal('E_BAD_BODY', `${name} failed to read body size`, name);
    } else if (this.step === STEP_BODY) {
      if (this.kind === MPUB) {
        // nsqd reads MPUB message by message, so the error names where the stream stopped.
        const r = splitMpub(this.bodyBuf.subarray(0, this.carried), this.bodyLen, this.maxMsgSize, this.maxBodySize);
        if (!Array.isArray(r)) err = r; // always an error: the body is shorter than declared
      } else if (this.kind === PUB || this.kind === DPUB) {
        err = fatal('E_BAD_MESSAGE', `${name} failed to read message body`, name);
      } else {
        err = fatal('E_BAD_BODY', `${name} failed to read body`, name);
      }
    }
    this.halt();
    return err;
  }

  // Consumes complete units of src[pos, lim); returns where the first unfinished one starts.
  private run(src: Buffer, pos: number, lim: number, out: DecodedItem[]): number {
    for (;;) {
      if (this.step === STEP_LINE) {
        let nl = src.indexOf(10, pos);
        if (nl >= lim) nl = -1; // past the carried bytes of a reused line buffer
        if (nl < 0 ? lim - pos >= MAX_LINE_LENGTH : nl - pos >= MAX_LINE_LENGTH) {
          this.fail(out, lineTooLong());
          return lim;
        }
        if (nl < 0) return pos;
        // nsqd trims the '\n' and then one optional '\r'
        this.parseLine(src, pos, nl > pos && src[nl - 1] === 13 ? nl - 1 : nl, out);
        pos = nl + 1;
      } else if (this.step === STEP_SIZE) {
        if (lim - pos < 4) return pos;
        this.parseSize(src.readInt32BE(pos), out);
        pos += 4;
      } else if (this.step === STEP_BODY) {
        if (lim - pos < this.bodyLen) return pos;
        const body = src.subarray(pos, pos + this.bodyLen);
        pos += this.bodyLen;
        this.parseBody(body, out);
      } else {
        return lim;
      }
    }
  }

  // How many bytes of chunk complete the carried unit, or -1 if all of them are not enough.
  private stillNeeded(chunk: Buffer, pos: number, len: number): number {
    if (this.step === STEP_LINE) {
      const nl = chunk.indexOf(10, pos);
      return nl < 0 ? -1 : nl - pos + 1;
    }
    const need = (this.step === STEP_SIZE ? 4 : this.bodyLen) - this.carried;
    return need <= len - pos ? need : -1;
  }

  private carry(src: Buffer, start: number, end: number): void {
    if (this.step === STEP_BODY) {
      // Sized once for the whole body, so the body is a view of it and is copied only this once.
      if (this.bodyBuf.length === 0) this.bodyBuf = Buffer.allocUnsafe(this.bodyLen);
      src.copy(this.bodyBuf, this.carried, start, end);
    } else {
      const total = this.carried + end - start;
      if (this.lineBuf.length < total) {
        const size = Math.min(MAX_LINE_LENGTH, Math.max(total, 2 * this.lineBuf.length, 128));
        const next = Buffer.allocUnsafe(size);
        this.lineBuf.copy(next, 0, 0, this.carried);
        this.lineBuf = next;
      }
      src.copy(this.lineBuf, this.carried, start, end);
    }
    this.carried += end - start;
  }

  private runCarried(out: DecodedItem[]): void {
    const wasBody = this.step === STEP_BODY;
    const n = this.carried;
    this.carried = 0;
    this.run(wasBody ? this.bodyBuf : this.lineBuf, 0, n, out);
    if (wasBody) this.bodyBuf = EMPTY; // handed out as a body: never written again
    else if (this.lineBuf.length > LINE_BUFFER_KEEP) this.lineBuf = EMPTY;
  }

  private fail(out: DecodedItem[], err: ProtocolError): void {
    out.push(err);
    this.halt();
  }

  private halt(): void {
    this.step = STEP_HALTED;
    this.lineBuf = this.bodyBuf = EMPTY;
    this.carried = 0;
  }

  // Fills ps/pe with the bounds of params[0..2] (split on every single space, like nsqd's
  // bytes.Split, so "FIN  x" has an empty id); returns the param count, capped at 4.
  private splitParams(src: Buffer, start: number, end: number): number {
    const ps = this.ps, pe = this.pe;
    ps[0] = start;
    for (let n = 1, p = start; ; n++) {
      let sp = p;
      while (sp < end && src[sp] !== 32) sp++;
      pe[n - 1] = sp;
      if (sp === end) return n;
      if (n === 3) return 4;
      ps[n] = p = sp + 1;
    }
  }

  private parseLine(src: Buffer, start: number, end: number, out: DecodedItem[]): void {
    const n = this.splitParams(src, start, end);
    const { ps, pe } = this;
    const code = commandCode(src, ps[0], pe[0]);
    if (code < 0) {
      const word = src.toString('utf8', ps[0], pe[0]);
      return this.fail(out, fatal('E_INVALID', `invalid command ${word}`, word));
    }
    const name = NAMES[code];
    switch (code) {
      case NOP:
        out.push(NOP_COMMAND);
        return;
      case CLS:
        out.push(CLS_COMMAND);
        return;
      case IDENTIFY:
        return this.expectBody(IDENTIFY, '', 0);
      case AUTH:
        if (n !== 1) return this.fail(out, fatal('E_INVALID', 'AUTH invalid number of parameters', name));
        return this.expectBody(AUTH, '', 0);
      case RDY: {
        let count = 1;
        if (n > 1) {
          count = parseDecimal(src, ps[1], pe[1], true); // nsqd: int64(ByteToBase10(...))
          if (Number.isNaN(count))
            return this.fail(out, fatal('E_INVALID', `RDY could not parse count ${src.toString('utf8', ps[1], pe[1])}`, name));
        }
        out.push({ type: 'RDY', count });
        return;
      }
      case FIN:
      case TOUCH:
      case REQ: {
        if (n < (code === REQ ? 3 : 2))
          return this.fail(out, fatal('E_INVALID', `${name} insufficient number of params`, name));
        if (pe[1] - ps[1] !== MESSAGE_ID_LENGTH) return this.fail(out, fatal('E_INVALID', 'Invalid Message ID', name));
        const id = src.toString('latin1', ps[1], pe[1]);
        if (code === FIN) out.push({ type: 'FIN', id });
        else if (code === TOUCH) out.push({ type: 'TOUCH', id });
        else {
          const timeoutMs = parseDecimal(src, ps[2], pe[2], false);
          if (Number.isNaN(timeoutMs))
            return this.fail(out, fatal('E_INVALID', `REQ could not parse timeout ${src.toString('utf8', ps[2], pe[2])}`, name));
          out.push({ type: 'REQ', id, timeoutMs });
        }
        return;
      }
      case SUB: {
        if (n < 3) return this.fail(out, fatal('E_INVALID', 'SUB insufficient number of parameters', name));
        const topic = this.topicAt(src, ps[1], pe[1]);
        if (topic === null)
          return this.fail(out, fatal('E_BAD_TOPIC', `SUB topic name ${goQuote(src, ps[1], pe[1])} is not valid`, name));
        const channel = src.toString('latin1', ps[2], pe[2]);
        if (!isValidName(channel))
          return this.fail(out, fatal('E_BAD_CHANNEL', `SUB channel name ${goQuote(src, ps[2], pe[2])} is not valid`, name));
        out.push({ type: 'SUB', topic, channel });
        return;
      }
      default: {
        // PUB, MPUB, DPUB
        if (n < (code === DPUB ? 3 : 2))
          return this.fail(out, fatal('E_INVALID', `${name} insufficient number of parameters`, name));
        const topic = this.topicAt(src, ps[1], pe[1]);
        if (topic === null) {
          // nsqd's MPUB repeats the code inside the text: "E_BAD_TOPIC E_BAD_TOPIC MPUB topic name ..."
          const prefix = code === MPUB ? 'E_BAD_TOPIC ' : '';
          return this.fail(out, fatal('E_BAD_TOPIC', `${prefix}${name} topic name ${goQuote(src, ps[1], pe[1])} is not valid`, name));
        }
        let deferMs = 0;
        if (code === DPUB) {
          deferMs = parseDecimal(src, ps[2], pe[2], false);
          if (Number.isNaN(deferMs))
            return this.fail(out, fatal('E_INVALID', `DPUB could not parse timeout ${src.toString('utf8', ps[2], pe[2])}`, name));
          if (deferMs > this.maxReqTimeoutMs)
            return this.fail(out, fatal('E_INVALID', `DPUB timeout ${decimalText(src, ps[2], pe[2])} out of range 0-${this.maxReqTimeoutMs}`, name));
        }
        return this.expectBody(code, topic, deferMs);
      }
    }
  }

  private expectBody(kind: number, topic: string, deferMs: number): void {
    this.kind = kind;
    this.topic = topic;
    this.deferMs = deferMs;
    this.step = STEP_SIZE;
  }

  // The size is a signed int32 as nsqd reads it; each command checks it in nsqd's order.
  private parseSize(size: number, out: DecodedItem[]): void {
    const name = NAMES[this.kind];
    let err: ProtocolError | null = null;
    if (this.kind === PUB || this.kind === DPUB) {
      if (size <= 0) err = fatal('E_BAD_MESSAGE', `${name} invalid message body size ${size}`, name);
      else if (size > this.maxMsgSize) err = fatal('E_BAD_MESSAGE', `${name} message too big ${size} > ${this.maxMsgSize}`, name);
    } else if (this.kind === MPUB) {
      if (size <= 0) err = fatal('E_BAD_BODY', `MPUB invalid body size ${size}`, name);
      else if (size > this.maxBodySize) err = fatal('E_BAD_BODY', `MPUB body too big ${size} > ${this.maxBodySize}`, name);
    } else if (size > this.maxBodySize) {
      err = fatal('E_BAD_BODY', `${name} body too big ${size} > ${this.maxBodySize}`, name); // IDENTIFY, AUTH
    } else if (size <= 0) {
      err = fatal('E_BAD_BODY', `${name} invalid body size ${size}`, name);
    }
    if (err !== null) return this.fail(out, err);
    this.bodyLen = size;
    this.step = STEP_BODY;
  }

  private parseBody(body: Buffer, out: DecodedItem[]): void {
    this.step = STEP_LINE;
    const topic = this.topic;
    switch (this.kind) {
      case PUB:
        out.push({ type: 'PUB', topic, body });
        return;
      case DPUB:
        out.push({ type: 'DPUB', topic, deferMs: this.deferMs, body });
        return;
      case IDENTIFY:
        out.push({ type: 'IDENTIFY', body });
        return;
      case AUTH:
        out.push({ type: 'AUTH', body });
        return;
      default: {
        const r = splitMpub(body, body.length, this.maxMsgSize, this.maxBodySize);
        if (Array.isArray(r)) out.push({ type: 'MPUB', topic, bodies: r });
        else this.fail(out, r);
      }
    }
  }

  // The topic string if the bytes name a valid topic, else null.
  private topicAt(src: Buffer, start: number, end: number): string | null {
    const last = this.lastTopic;
    const n = end - start;
    if (n > 0 && last.length === n) {
      let i = 0;
      while (i < n && src[start + i] === last.charCodeAt(i)) i++;
      if (i === n) return last;
    }
    const topic = src.toString('latin1', start, end); // valid names are ASCII
    if (!isValidName(topic)) return null;
    this.lastTopic = topic;
    return topic;
  }
}

function fatal(code: string, text: string, command: string): ProtocolError {
  return protocolError(code, text, true, command);
}

function lineTooLong(): ProtocolError {
  // nsqd hits bufio.ErrBufferFull and closes without a frame; a reason costs nothing here.
  return fatal('E_INVALID', `command line longer than ${MAX_LINE_LENGTH - 1} bytes`, '');
}

function mpubSizeMismatch(declared: number, used: number): ProtocolError {
  return fatal('E_BAD_BODY', `MPUB body size ${declared} does not match the ${used} bytes its messages use`, 'MPUB');
}

function commandCode(src: Buffer, start: number, end: number): number {
  const n = end - start;
  for (let c = 0; c < NAMES.length; c++) {
    const name = NAMES[c];
    if (name.length !== n) continue;
    let i = 0;
    while (i < n && src[start + i] === name.charCodeAt(i)) i++;
    if (i === n) return c;
  }
  return -1;
}

/**
 * nsqd's ByteToBase10: ASCII digits only (an empty string is 0), wrapping modulo 2^64 like Go's
 * uint64 (then read as int64 when `signed`); NaN for any other byte. Beyond 2^53 the value is
 * approximate, which only shows in the text of an out-of-range error (see decimalText).
 */
function parseDecimal(src: Buffer, start: number, end: number, signed: boolean): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = src[i] - 48;
    if (d < 0 || d > 9) return NaN;
    n = n * 10 + d;
  }
  if (end - start <= 15) return n; // exact, and far from wrapping
  const big = BigInt(src.toString('latin1', start, end));
  return Number(signed ? BigInt.asIntN(64, big) : BigInt.asUintN(64, big));
}

function decimalText(src: Buffer, start: number, end: number): string {
  return end === start ? '0' : BigInt.asUintN(64, BigInt(src.toString('latin1', start, end))).toString();
}

/**
 * The messages of an MPUB body, checked in nsqd's order (readMPUB); `declared` is the size the
 * client announced and `body` may be shorter when the stream ended early (see end()). Views, not
 * copies. All or nothing: one bad message fails the whole MPUB.
 */
function splitMpub(body: Buffer, declared: number, maxMsgSize: number, maxBodySize: number): Buffer[] | ProtocolError {
  const len = body.length;
  if (len < 4) return fatal('E_BAD_BODY', 'MPUB failed to read message count', 'MPUB');
  const count = body.readInt32BE(0);
  // 4 bytes of count, then at least 4 + 1 bytes per message
  if (count <= 0 || count > Math.trunc((maxBodySize - 4) / 5))
    return fatal('E_BAD_BODY', `MPUB invalid message count ${count}`, 'MPUB');
  const bodies: Buffer[] = [];
  let p = 4;
  for (let i = 0; i < count; i++) {
    if (len - p < 4) return fatal('E_BAD_MESSAGE', `MPUB failed to read message(${i}) body size`, 'MPUB');
    const size = body.readInt32BE(p);
    p += 4;
    if (size <= 0) return fatal('E_BAD_MESSAGE', `MPUB invalid message(${i}) body size ${size}`, 'MPUB');
    if (size > maxMsgSize) return fatal('E_BAD_MESSAGE', `MPUB message too big ${size} > ${maxMsgSize}`, 'MPUB');
    if (len - p < size) return fatal('E_BAD_MESSAGE', 'MPUB failed to read message body', 'MPUB');
    bodies.push(body.subarray(p, p + size));
    p += size;
  }
  if (p !== declared) return mpubSizeMismatch(declared, p);
  return bodies;
}

// ---- checks the connection handler makes (pure; they need state or config the decoder lacks) ----

export type ClientState = 'init' | 'subscribed' | 'closing';

/**
 * nsqd's per-command state rule, checked before anything else about the command (after TLS).
 * 'ignore' means drop the command silently: nsqd ignores RDY once the client sent CLS.
 */
export function checkState(command: string, state: ClientState): ProtocolError | 'ignore' | null {
  switch (command) {
    case 'IDENTIFY':
    case 'AUTH':
    case 'SUB':
      return state === 'init' ? null : V2Errors.wrongState(command);
    case 'RDY':
      if (state === 'closing') return 'ignore';
      return state === 'subscribed' ? null : V2Errors.wrongState(command);
    case 'FIN':
    case 'REQ':
    case 'TOUCH':
      return state === 'init' ? V2Errors.wrongState(command) : null;
    case 'CLS':
      return state === 'subscribed' ? null : V2Errors.wrongState(command);
    default:
      return null; // PUB, MPUB, DPUB, NOP work in any state; unknown commands fail in the decoder
  }
}

/** RDY's range, fatal in nsqd "otherwise clients would have inconsistent state". */
export function validateRdy(count: number, maxRdyCount: number): ProtocolError | null {
  return count < 0 || count > maxRdyCount ? V2Errors.rdyOutOfRange(count, maxRdyCount) : null;
}

/** nsqd (since 1.0) clamps REQ's timeout into 0..--max-req-timeout instead of failing it. */
export function clampReqTimeout(timeoutMs: number, maxReqTimeoutMs: number): number {
  return timeoutMs > maxReqTimeoutMs ? maxReqTimeoutMs : timeoutMs < 0 ? 0 : timeoutMs;
}
