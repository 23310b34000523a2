// IDENTIFY as nsqd v1.3 reads it (client_v2.go Identify and its setters, protocol_v2.go IDENTIFY):
// the JSON body checked like Go's json.Unmarshal into identifyDataV2, each setting checked against
// the server's bounds, and the feature-negotiation answer. Pure: no sockets, no state.

import { V2Errors, type ProtocolError } from '../../wire/nsq-v2';

/** Server-side bounds and defaults, nsqd's option names in camelCase, durations in ms. */
export interface IdentifyLimits {
  maxHeartbeatIntervalMs: number;
  maxOutputBufferSize: number;
  minOutputBufferTimeoutMs: number;
  maxOutputBufferTimeoutMs: number;
  maxMsgTimeoutMs: number;
}

/** What a connection is using now; IDENTIFY changes it. 0 means "disabled" for the two intervals. */
export interface ClientSettings {
  clientId: string;
  hostname: string;
  userAgent: string;
  heartbeatIntervalMs: number;
  outputBufferSize: number;
  outputBufferTimeoutMs: number;
  sampleRate: number;
  msgTimeoutMs: number;
}

/** The identifyDataV2 fields; absent, null or zero mean "keep the default", as with Go's zero values. */
export interface IdentifyData {
  client_id: string;
  hostname: string;
  heartbeat_interval: number;
  output_buffer_size: number;
  output_buffer_timeout: number;
  feature_negotiation: boolean;
  tls_v1: boolean;
  deflate: boolean;
  deflate_level: number;
  snappy: boolean;
  sample_rate: number;
  user_agent: string;
  msg_timeout: number;
}

type Kind = 'string' | 'int' | 'int32' | 'bool';
const FIELDS: Record<keyof IdentifyData, Kind> = {
  client_id: 'string',
  hostname: 'string',
  heartbeat_interval: 'int',
  output_buffer_size: 'int',
  output_buffer_timeout: 'int',
  feature_negotiation: 'bool',
  tls_v1: 'bool',
  deflate: 'bool',
  deflate_level: 'int',
  snappy: 'bool',
  sample_rate: 'int32',
  user_agent: 'string',
  msg_timeout: 'int',
};
const FIELD_NAMES = Object.keys(FIELDS) as (keyof IdentifyData)[];
const INT32_MAX = 2147483647;

function emptyData(): IdentifyData {
  return {
    client_id: '',
    hostname: '',
    heartbeat_interval: 0,
    output_buffer_size: 0,
    output_buffer_timeout: 0,
    feature_negotiation: false,
    tls_v1: false,
    deflate: false,
    deflate_level: 0,
    snappy: false,
    sample_rate: 0,
    user_agent: '',
    msg_timeout: 0,
  };
}

/**
 * The body as Go's json.Unmarshal would fill identifyDataV2: an object (or null), unknown keys
 * ignored, keys matched case-insensitively, null leaves the zero value, a wrong type fails.
 * (Go also refuses a number written with an exponent for an int field; JSON.parse hides that.)
 */
export function parseIdentify(body: Buffer): IdentifyData | ProtocolError {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    return V2Errors.identifyBadJson();
  }
  const data = emptyData();
  if (raw === null) return data;
  if (typeof raw !== 'object' || Array.isArray(raw)) return V2Errors.identifyBadJson();
  const out = data as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const name = FIELD_NAMES.find((f) => f === key) ?? FIELD_NAMES.find((f) => f === key.toLowerCase());
    if (name === undefined || value === null) continue;
    const kind = FIELDS[name];
    if (kind === 'string') {
      if (typeof value !== 'string') return V2Errors.identifyBadJson();
    } else if (kind === 'bool') {
      if (typeof value !== 'boolean') return V2Errors.identifyBadJson();
    } else {
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) return V2Errors.identifyBadJson();
      if (kind === 'int32' && (value > INT32_MAX || value < -INT32_MAX - 1)) return V2Errors.identifyBadJson();
    }
    out[name] = value;
  }
  return data;
}

/**
 * Applies IDENTIFY to the current settings in nsqd's order (heartbeat, output buffer size and
 * timeout, sample rate, msg timeout); the first refusal is the error nsqd sends, e.g.
 * "E_BAD_BODY IDENTIFY heartbeat interval (5) is invalid".
 */
export function applyIdentify(cur: ClientSettings, d: IdentifyData, lim: IdentifyLimits): ClientSettings | ProtocolError {
  const next: ClientSettings = { ...cur, clientId: d.client_id, hostname: d.hostname, userAgent: d.user_agent };

  const hb = d.heartbeat_interval;
  if (hb === -1) next.heartbeatIntervalMs = 0;
  else if (hb >= 1000 && hb <= lim.maxHeartbeatIntervalMs) next.heartbeatIntervalMs = hb;
  else if (hb !== 0) return V2Errors.identifyRejected(`heartbeat interval (${hb}) is invalid`);

  const size = d.output_buffer_size;
  // -1: "effectively no buffer (every write will go directly to the wrapped net.Conn)"
  if (size === -1) next.outputBufferSize = 1;
  else if (size >= 64 && size <= lim.maxOutputBufferSize) next.outputBufferSize = size;
  else if (size !== 0) return V2Errors.identifyRejected(`output buffer size (${size}) is invalid`);

  const obt = d.output_buffer_timeout;
  if (obt === -1) next.outputBufferTimeoutMs = 0;
  else if (obt >= lim.minOutputBufferTimeoutMs && obt <= lim.maxOutputBufferTimeoutMs) next.outputBufferTimeoutMs = obt;
  else if (obt !== 0) return V2Errors.identifyRejected(`output buffer timeout (${obt}) is invalid`);

  const rate = d.sample_rate;
  if (rate < 0 || rate > 99) return V2Errors.identifyRejected(`sample rate (${rate}) is invalid`);
  next.sampleRate = rate;

  const mt = d.msg_timeout;
  if (mt >= 1000 && mt <= lim.maxMsgTimeoutMs) next.msgTimeoutMs = mt;
  else if (mt !== 0) return V2Errors.identifyRejected(`msg timeout (${mt}) is invalid`);

  return next;
}

/** What the server can offer; a feature is negotiated only if both sides want it. */
export interface ServerFeatures {
  version: string;
  maxRdyCount: number;
  maxMsgTimeoutMs: number;
  tls: boolean;
  deflate: boolean;
  maxDeflateLevel: number;
  snappy: boolean;
  authRequired: boolean;
}

export interface Negotiated {
  tls: boolean;
  deflate: boolean;
  deflateLevel: number;
  snappy: boolean;
}

/** nsqd's choice of features; deflate and snappy together are refused (E_IDENTIFY_FAILED). */
export function negotiate(d: IdentifyData, f: ServerFeatures): Negotiated | ProtocolError {
  const deflate = f.deflate && d.deflate;
  let deflateLevel = 6;
  if (deflate && d.deflate_level > 0) deflateLevel = d.deflate_level;
  if (f.maxDeflateLevel < deflateLevel) deflateLevel = f.maxDeflateLevel;
  const snappy = f.snappy && d.snappy;
  if (deflate && snappy) return V2Errors.identifyCompressionConflict();
  return { tls: f.tls && d.tls_v1, deflate, deflateLevel, snappy };
}

/** The JSON nsqd answers a feature-negotiating IDENTIFY with, fields in nsqd's order. */
export function negotiationResponse(s: ClientSettings, n: Negotiated, f: ServerFeatures): string {
  return JSON.stringify({
    max_rdy_count: f.maxRdyCount,
    version: f.version,
    max_msg_timeout: f.maxMsgTimeoutMs,
    msg_timeout: s.msgTimeoutMs,
    tls_v1: n.tls,
    deflate: n.deflate,
    deflate_level: n.deflateLevel,
    max_deflate_level: f.maxDeflateLevel,
    snappy: n.snappy,
    sample_rate: s.sampleRate,
    auth_required: f.authRequired,
    output_buffer_size: s.outputBufferSize,
    output_buffer_timeout: s.outputBufferTimeoutMs,
  });
}
