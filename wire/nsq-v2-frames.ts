// Server → client half of NSQ TCP protocol V2: the "  V2" magic, the [4B size][4B type][data]
// frames nsqd writes, and protocol errors as values carrying nsqd's code, text and fatality.

import { MESSAGE_HEADER_LENGTH, writeMessage, type WireMessage } from './message';

export const MAGIC_V2 = '  V2';
export const MAGIC_LENGTH = 4;

export const FRAME_RESPONSE = 0;
export const FRAME_ERROR = 1;
export const FRAME_MESSAGE = 2;
/** [4B size][4B frame type]; the size counts the type and the data but not itself. */
export const FRAME_HEADER_LENGTH = 8;

export const OK = 'OK';
export const HEARTBEAT = '_heartbeat_';
export const CLOSE_WAIT = 'CLOSE_WAIT';

/**
 * A protocol error exactly as nsqd reports it: the frame's data is `code + ' ' + text`.
 * `fatal` mirrors nsqd's FatalClientErr (send the frame, then close the connection) versus
 * ClientErr (send the frame and keep reading; only E_FIN_FAILED, E_REQ_FAILED, E_TOUCH_FAILED).
 */
export interface ProtocolError {
  readonly type: 'error';
  /** The command word the error is about ('' if none): the handler runs nsqd's TLS and state checks on it first. */
  readonly command: string;
  readonly code: string;
  readonly text: string;
  readonly fatal: boolean;
}

export function protocolError(code: string, text: string, fatal: boolean, command = ''): ProtocolError {
  return { type: 'error', command, code, text, fatal };
}

/** The data of an error frame. E_BAD_PROTOCOL is the one error nsqd sends with no text. */
export function errorData(code: string, text = ''): string {
  return text === '' ? code : code + ' ' + text;
}

/** nsqd reads all four magic bytes before comparing, so anything shorter is just incomplete. */
export function checkMagic(buf: Buffer, offset = 0): 'ok' | 'bad' | 'incomplete' {
  if (buf.length - offset < MAGIC_LENGTH) return 'incomplete';
  // "  V2" = 0x20 0x20 0x56 0x32
  return buf[offset] === 0x20 && buf[offset + 1] === 0x20 && buf[offset + 2] === 0x56 && buf[offset + 3] === 0x32
    ? 'ok'
    : 'bad';
}

export const BAD_PROTOCOL: ProtocolError = protocolError('E_BAD_PROTOCOL', '', true);

// ---- frame encoders: write into the caller's buffer, return the offset after the frame ----

function dataLength(data: string | Buffer): number {
  return typeof data === 'string' ? Buffer.byteLength(data) : data.length;
}

/** Bytes a response or error frame carrying `data` takes on the wire. */
export function frameLength(data: string | Buffer): number {
  return FRAME_HEADER_LENGTH + dataLength(data);
}

function writeFrame(buf: Buffer, offset: number, frameType: number, data: string | Buffer): number {
  const len = dataLength(data);
  buf.writeUInt32BE(4 + len, offset);
  buf.writeUInt32BE(frameType, offset + 4);
  if (typeof data === 'string') buf.write(data, offset + FRAME_HEADER_LENGTH, len, 'utf8');
  else data.copy(buf, offset + FRAME_HEADER_LENGTH);
  return offset + FRAME_HEADER_LENGTH + len;
}

export function writeResponseFrame(buf: Buffer, offset: number, data: string | Buffer): number {
  return writeFrame(buf, offset, FRAME_RESPONSE, data);
}

/** `data` is the whole error text, e.g. errorData(err.code, err.text). */
export function writeErrorFrame(buf: Buffer, offset: number, data: string | Buffer): number {
  return writeFrame(buf, offset, FRAME_ERROR, data);
}

export function messageFrameLength(bodyLength: number): number {
  return FRAME_HEADER_LENGTH + MESSAGE_HEADER_LENGTH + bodyLength;
}

/** The message path: no allocation, the body is copied straight into `buf`. */
export function writeMessageFrame(buf: Buffer, offset: number, msg: WireMessage): number {
  buf.writeUInt32BE(4 + MESSAGE_HEADER_LENGTH + msg.body.length, offset);
  buf.writeUInt32BE(FRAME_MESSAGE, offset + 4);
  return writeMessage(buf, offset + FRAME_HEADER_LENGTH, msg);
}

/** A fresh buffer for rare frames (IDENTIFY's JSON, CLOSE_WAIT, errors). */
export function responseFrame(data: string | Buffer): Buffer {
  const buf = Buffer.allocUnsafe(frameLength(data));
  writeResponseFrame(buf, 0, data);
  return buf;
}

export function errorFrame(code: string, text = ''): Buffer {
  const data = errorData(code, text);
  const buf = Buffer.allocUnsafe(frameLength(data));
  writeErrorFrame(buf, 0, data);
  return buf;
}

// ---- errors the connection handler raises (the decoder raises its own in nsq-v2.ts) ----
// Texts are nsqd v1.3's (nsqd/protocol_v2.go); the comment on each names the function.

const fatal = (code: string, text: string, command = ''): ProtocolError => protocolError(code, text, true, command);

export const V2Errors = {
  /** Exec → enforceTLSPolicy: checked before every command but IDENTIFY, even unknown ones. */
  tlsRequired: (command: string) => fatal('E_INVALID', `cannot ${command} in current state (TLS required)`, command),
  /** IDENTIFY, AUTH, SUB, RDY, FIN, REQ, TOUCH, CLS: wrong client state (see checkState). */
  wrongState: (command: string) => fatal('E_INVALID', `cannot ${command} in current state`, command),
  /** SUB */
  subHeartbeatsDisabled: () => fatal('E_INVALID', 'cannot SUB with heartbeats disabled', 'SUB'),
  /** SUB: channel.AddClient failed (e.g. too many consumers, channel exiting). */
  subFailed: (reason: string) => fatal('E_SUB_FAILED', 'SUB failed ' + reason, 'SUB'),
  /** RDY (see validateRdy) */
  rdyOutOfRange: (count: number, maxRdyCount: number) =>
    fatal('E_INVALID', `RDY count ${count} out of range 0-${maxRdyCount}`, 'RDY'),
  /** IDENTIFY: json.Unmarshal failed. */
  identifyBadJson: () => fatal('E_BAD_BODY', 'IDENTIFY failed to decode JSON body', 'IDENTIFY'),
  /** IDENTIFY: client.Identify refused a setting, e.g. "heartbeat interval (5) is invalid". */
  identifyRejected: (reason: string) => fatal('E_BAD_BODY', 'IDENTIFY ' + reason, 'IDENTIFY'),
  identifyCompressionConflict: () =>
    fatal('E_IDENTIFY_FAILED', 'cannot enable both deflate and snappy compression', 'IDENTIFY'),
  /** AUTH */
  authAlreadySet: () => fatal('E_INVALID', 'AUTH already set', 'AUTH'),
  authDisabled: () => fatal('E_AUTH_DISABLED', 'AUTH disabled', 'AUTH'),
  authFailed: () => fatal('E_AUTH_FAILED', 'AUTH failed', 'AUTH'),
  authNoAuthorizations: () => fatal('E_UNAUTHORIZED', 'AUTH no authorizations found', 'AUTH'),
  /** CheckAuth (SUB, PUB, MPUB, DPUB) */
  authFirst: (command: string) => fatal('E_AUTH_FIRST', `AUTH required before ${command}`, command),
  unauthorized: (command: string, topic: string, channel: string) =>
    fatal('E_UNAUTHORIZED', `AUTH failed for ${command} on ${goQuote(topic)} ${goQuote(channel)}`, command),
  /** PUB, MPUB, DPUB: the topic refused the message(s) (it is exiting). Fatal in nsqd. */
  putFailed: (command: 'PUB' | 'MPUB' | 'DPUB', reason: string) =>
    fatal(`E_${command}_FAILED`, `${command} failed ${reason}`, command),
  /** FIN, REQ, TOUCH on a message that is not in flight for this client: the only non-fatal errors. */
  finFailed: (id: string, reason: string) => protocolError('E_FIN_FAILED', `FIN ${id} failed ${reason}`, false, 'FIN'),
  reqFailed: (id: string, reason: string) => protocolError('E_REQ_FAILED', `REQ ${id} failed ${reason}`, false, 'REQ'),
  touchFailed: (id: string, reason: string) =>
    protocolError('E_TOUCH_FAILED', `TOUCH ${id} failed ${reason}`, false, 'TOUCH'),
} as const;

// ---- Go's %q, so texts that quote a client's bytes match nsqd's byte for byte ----

const HEX = '0123456789abcdef';
// Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols (and ASCII space, handled apart).
const GO_PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;
const SHORT_ESCAPES: Record<number, string> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r' };

function hex(n: number, width: number): string {
  let s = '';
  for (let i = width - 1; i >= 0; i--) s += HEX[(n >>> (i * 4)) & 15];
  return s;
}

/** Go's utf8.DecodeRune: the code point, or -1 for an invalid sequence (which Go consumes as one byte). */
function decodeRune(b: Buffer, i: number, end: number): number {
  const b0 = b[i];
  let need: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) need = 1;
  else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    if (b0 === 0xe0) lo = 0xa0;
    else if (b0 === 0xed) hi = 0x9f; // no surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    if (b0 === 0xf0) lo = 0x90;
    else if (b0 === 0xf4) hi = 0x8f; // nothing past U+10FFFF
  } else return -1;
  if (i + need >= end) return -1; // truncated sequence
  let cp = b0 & (0x3f >> need);
  for (let k = 1; k <= need; k++) {
    const c = b[i + k];
    if (c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return -1;
    cp = (cp << 6) | (c & 0x3f);
  }
  return cp;
}

function runeWidth(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/** strconv.Quote over raw bytes (or a string's UTF-8), as fmt's %q renders nsqd's topic names. */
export function goQuote(input: Buffer | string, start = 0, end?: number): string {
  const b = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  const stop = end ?? b.length;
  let out = '"';
  let i = start;
  while (i < stop) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      if (c === 0x22 || c === 0x5c) out += '\\' + String.fromCharCode(c);
      else if (c >= 0x20 && c < 0x7f) out += String.fromCharCode(c);
      else out += SHORT_ESCAPES[c] ?? '\\x' + hex(c, 2);
      continue;
    }
    const cp = decodeRune(b, i, stop);
    if (cp < 0) {
      out += '\\x' + hex(c, 2);
      i++;
      continue;
    }
    i += runeWidth(cp);
    const ch = String.fromCodePoint(cp);
    if (GO_PRINTABLE.test(ch)) out += ch;
    else out += cp < 0x10000 ? '\\u' + hex(cp, 4) : '\\U' + hex(cp, 8);
  }
  return out + '"';
}
