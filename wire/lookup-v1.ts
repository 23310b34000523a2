// The lookup registration protocol ("  V1") between nsqd-style nodes and a lookup, as bytes ↔ meaning.
// Pure and push-based: the TCP layer feeds chunks in and writes back the frames built here; no sockets, no state.

import { ByteQueue } from './byte-queue';
import { isValidChannelName, isValidTopicName } from './names';

/** The 4 bytes a client sends first to pick this protocol. */
export const MAGIC_V1 = Buffer.from('  V1', 'latin1');

/**
 * nsqlookupd reads lines with an unbounded bufio reader; the longest legitimate line
 * ("UNREGISTER <64> <64>") is ~140 bytes, so anything far longer is refused before it is buffered.
 */
export const MAX_LINE_LENGTH = 4096;
/** nsqlookupd trusts the int32 IDENTIFY size (a negative one panics it); nsqd's bodies are ~200 bytes. */
export const MAX_IDENTIFY_BODY = 64 * 1024;
/** Default cap for the client-side response decoder (an IDENTIFY answer is ~150 bytes). */
export const MAX_RESPONSE_SIZE = 1024 * 1024;

export type LookupErrorCode = 'E_INVALID' | 'E_BAD_TOPIC' | 'E_BAD_CHANNEL' | 'E_BAD_BODY' | 'E_BAD_PROTOCOL';

/** An error as nsqlookupd sends it: `message` is the exact response text ("CODE description"). */
export interface LookupError {
  code: LookupErrorCode;
  message: string;
  /** Every error nsqlookupd raises is a FatalClientErr: it answers, then closes the connection. */
  fatal: boolean;
}

export function lookupError(code: LookupErrorCode, description?: string): LookupError {
  return { code, message: description === undefined ? code : `${code} ${description}`, fatal: true };
}

export type LookupCommand =
  | { name: 'PING'; params: string[] }
  | { name: 'REGISTER' | 'UNREGISTER'; params: string[] }
  | { name: 'IDENTIFY'; params: string[]; body: Buffer };

export type DecodedItem = { type: 'command'; command: LookupCommand } | { type: 'error'; error: LookupError };

type State = 'magic' | 'line' | 'identify-size' | 'identify-body' | 'failed';

// Go's strings.TrimSpace (unicode.IsSpace), which nsqlookupd applies to every command line.
const GO_SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const TRIM = new RegExp(`^[${GO_SPACE}]+|[${GO_SPACE}]+$`, 'g');

/**
 * Turns the client's byte stream into commands. After the first error it returns nothing more,
 * because every nsqlookupd error closes the connection.
 */
export class LookupV1Decoder {
  private state: State;
  private readonly input = new ByteQueue();
  // how far readLine has already looked for '\n' in the input
  private scanned = 0;
  private identifyParams: string[] = [];
  private bodySize = 0;
  private identified = false;

  /** `expectMagic: false` decodes a stream whose magic was already consumed (tests, tools). */
  constructor(opts: { expectMagic?: boolean } = {}) {
    this.state = opts.expectMagic === false ? 'line' : 'magic';
  }

  push(chunk: Buffer): DecodedItem[] {
    if (this.state === 'failed') return [];
    this.input.append(chunk);
    const out: DecodedItem[] = [];
    while (this.step(out));
    this.input.settle();
    return out;
  }

  /** Bytes of memory held between pushes (at most max(64 KiB, 4 × an unfinished line or IDENTIFY body)). */
  get retainedBytes(): number {
    return this.input.retainedBytes;
  }

  /** The peer closed its side: a half-read IDENTIFY is reported as nsqlookupd reports a short read. */
  end(): DecodedItem[] {
    if (this.state === 'identify-size') return [this.fail('IDENTIFY failed to read body size')];
    if (this.state === 'identify-body') return [this.fail('IDENTIFY failed to read body')];
    return [];
  }

  /** Decodes at most one item; returns false when more bytes are needed. */
  private step(out: DecodedItem[]): boolean {
    switch (this.state) {
      case 'magic':
        return this.readMagic(out);
      case 'line':
        return this.readLine(out);
      case 'identify-size':
        return this.readIdentifySize(out);
      case 'identify-body':
        return this.readIdentifyBody(out);
      default:
        return false;
    }
  }

  private readMagic(out: DecodedItem[]): boolean {
    if (this.input.bytes.length < 4) return false;
    if (!this.input.bytes.subarray(0, 4).equals(MAGIC_V1)) {
      out.push(this.failWith(lookupError('E_BAD_PROTOCOL')));
      return false;
    }
    this.consume(4);
    this.state = 'line';
    return true;
  }

  private readLine(out: DecodedItem[]): boolean {
    const nl = this.input.bytes.indexOf(0x0a, this.scanned);
    if (nl === -1) this.scanned = this.input.bytes.length;
    if (nl === -1 || nl > MAX_LINE_LENGTH) {
      if (nl !== -1 || this.input.bytes.length > MAX_LINE_LENGTH) out.push(this.failWith(lookupError('E_INVALID', 'command line too long')));
      return false;
    }
    const line = this.input.bytes.toString('utf8', 0, nl).replace(TRIM, '');
    this.consume(nl + 1);
    const [name, ...params] = line.split(' ');
    return this.dispatch(name, params, out);
  }

  private dispatch(name: string, params: string[], out: DecodedItem[]): boolean {
    if (name === 'PING' || name === 'REGISTER' || name === 'UNREGISTER') {
      out.push({ type: 'command', command: { name, params } });
      return true;
    }
    if (name !== 'IDENTIFY') {
      out.push(this.failWith(lookupError('E_INVALID', `invalid command ${name}`)));
      return false;
    }
    // A connection still open after an IDENTIFY was identified (a failed one is fatal), and
    // nsqlookupd refuses a second one before reading its body.
    if (this.identified) {
      out.push(this.failWith(lookupError('E_INVALID', 'cannot IDENTIFY again')));
      return false;
    }
    this.identifyParams = params;
    this.state = 'identify-size';
    return true;
  }

  private readIdentifySize(out: DecodedItem[]): boolean {
    if (this.input.bytes.length < 4) return false;
    const size = this.input.bytes.readInt32BE(0);
    if (size < 0 || size > MAX_IDENTIFY_BODY) {
      out.push(this.fail(`IDENTIFY invalid body size ${size}`));
      return false;
    }
    this.consume(4);
    this.bodySize = size;
    this.state = 'identify-body';
    return true;
  }

  private readIdentifyBody(out: DecodedItem[]): boolean {
    if (this.input.bytes.length < this.bodySize) return false;
    const body = Buffer.from(this.input.bytes.subarray(0, this.bodySize));
    this.consume(this.bodySize);
    this.identified = true;
    this.state = 'line';
    out.push({ type: 'command', command: { name: 'IDENTIFY', params: this.identifyParams, body } });
    return true;
  }

  private consume(n: number): void {
    this.scanned = 0;
    this.input.consume(n);
  }

  private fail(description: string): DecodedItem {
    return this.failWith(lookupError('E_BAD_BODY', description));
  }

  private failWith(error: LookupError): DecodedItem {
    this.state = 'failed';
    this.input.clear();
    return { type: 'error', error };
  }
}

/** What IDENTIFY carries (nsqd's connectCallback in nsqd/lookup.go sends exactly these five). */
export interface IdentifyInfo {
  broadcastAddress: string;
  hostname: string;
  tcpPort: number;
  httpPort: number;
  version: string;
}

type StringField = 'broadcastAddress' | 'hostname' | 'version';
type IntField = 'tcpPort' | 'httpPort';
type FieldSpec = { kind: 'string'; key: StringField } | { kind: 'int'; key: IntField };

// A Map, not an object literal, so keys such as "__proto__" or "constructor" are simply unknown.
const IDENTIFY_FIELDS = new Map<string, FieldSpec>([
  ['broadcast_address', { key: 'broadcastAddress', kind: 'string' }],
  ['hostname', { key: 'hostname', kind: 'string' }],
  ['tcp_port', { key: 'tcpPort', kind: 'int' }],
  ['http_port', { key: 'httpPort', kind: 'int' }],
  ['version', { key: 'version', kind: 'string' }],
]);

const INT64_LIMIT = 2 ** 63;

/**
 * Validates an IDENTIFY body the way Go's json.Unmarshal into nsqlookupd's PeerInfo does:
 * unknown keys ignored, keys matched case-insensitively, null leaves a field empty, a wrong type
 * is a decode error; then broadcast_address, tcp_port, http_port and version must be non-zero.
 */
export function parseIdentifyBody(body: Buffer): { ok: true; info: IdentifyInfo } | { ok: false; error: LookupError } {
  const decodeError = { ok: false as const, error: lookupError('E_BAD_BODY', 'IDENTIFY failed to decode JSON body') };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return decodeError;
  }
  const info: IdentifyInfo = { broadcastAddress: '', hostname: '', tcpPort: 0, httpPort: 0, version: '' };
  if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) return decodeError;
  for (const [rawKey, value] of Object.entries((parsed ?? {}) as Record<string, unknown>)) {
    const field = IDENTIFY_FIELDS.get(rawKey) ?? IDENTIFY_FIELDS.get(rawKey.toLowerCase());
    if (field === undefined || value === null) continue;
    if (!assignField(info, field, value)) return decodeError;
  }
  if (info.broadcastAddress === '' || info.tcpPort === 0 || info.httpPort === 0 || info.version === '')
    return { ok: false, error: lookupError('E_BAD_BODY', 'IDENTIFY missing fields') };
  return { ok: true, info };
}

function assignField(info: IdentifyInfo, field: FieldSpec, value: unknown): boolean {
  if (field.kind === 'string') {
    if (typeof value !== 'string') return false;
    info[field.key] = value;
    return true;
  }
  // Go's int field: any integral JSON number in int64 range (JSON.parse cannot tell 4150 from 4150.0).
  if (typeof value !== 'number' || !Number.isInteger(value) || Math.abs(value) >= INT64_LIMIT) return false;
  info[field.key] = value;
  return true;
}

/** REGISTER/UNREGISTER arguments, checked in nsqlookupd's order (getTopicChan). Extra params are ignored. */
export function parseTopicChannel(
  command: 'REGISTER' | 'UNREGISTER',
  params: string[],
): { ok: true; topic: string; channel: string } | { ok: false; error: LookupError } {
  if (params.length === 0) return { ok: false, error: lookupError('E_INVALID', `${command} insufficient number of params`) };
  const topic = params[0];
  const channel = params.length >= 2 ? params[1] : '';
  if (!isValidTopicName(topic)) return { ok: false, error: lookupError('E_BAD_TOPIC', `${command} topic name '${topic}' is not valid`) };
  // An empty channel (e.g. "REGISTER t  c" splits to ["t", "", "c"]) means a topic-only registration.
  if (channel !== '' && !isValidChannelName(channel))
    return { ok: false, error: lookupError('E_BAD_CHANNEL', `${command} channel name '${channel}' is not valid`) };
  return { ok: true, topic, channel };
}

/** A server response as nsqlookupd writes it (protocol.SendResponse): [4B big-endian size][data], no frame type. */
export function encodeResponse(data: Buffer | string): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeInt32BE(payload.length, 0);
  payload.copy(out, 4);
  return out;
}

const GO_JSON_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/** JSON as Go's json.Marshal writes it, which also escapes <, >, & and U+2028/9 (HTML-safe by default). */
export function toGoJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => GO_JSON_ESCAPES[c]);
}

// --- the client side (what nsqd's lookupPeer sends), for shards, tools and tests ---

export function encodeIdentify(info: Record<string, unknown>): Buffer {
  const body = Buffer.from(JSON.stringify(info), 'utf8');
  const size = Buffer.allocUnsafe(4);
  size.writeInt32BE(body.length, 0);
  return Buffer.concat([Buffer.from('IDENTIFY\n', 'latin1'), size, body]);
}

export function encodeRegister(topic: string, channel?: string): Buffer {
  return Buffer.from(channel ? `REGISTER ${topic} ${channel}\n` : `REGISTER ${topic}\n`, 'utf8');
}

export function encodeUnregister(topic: string, channel?: string): Buffer {
  return Buffer.from(channel ? `UNREGISTER ${topic} ${channel}\n` : `UNREGISTER ${topic}\n`, 'utf8');
}

export function encodePing(): Buffer {
  return Buffer.from('PING\n', 'latin1');
}

/** Splits the lookup's replies ([4B size][data]) out of a byte stream, refusing oversize ones before buffering. */
export class LookupResponseDecoder {
  private readonly input = new ByteQueue();
  constructor(private readonly maxSize = MAX_RESPONSE_SIZE) {}

  push(chunk: Buffer): Buffer[] {
    this.input.append(chunk);
    const out: Buffer[] = [];
    while (this.input.length >= 4) {
      const buf = this.input.bytes;
      const size = buf.readInt32BE(0);
      if (size < 0 || size > this.maxSize) throw new RangeError(`lookup response size ${size} out of range`);
      if (buf.length < 4 + size) break;
      out.push(Buffer.from(buf.subarray(4, 4 + size)));
      this.input.consume(4 + size);
    }
    this.input.settle();
    return out;
  }
}
