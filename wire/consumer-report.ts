// The consumer report a gateway sends each shard (POST /sluice/consumers): its HTTP consumers
// (SSE streams, waiting long-polls) per channel of that shard. Shared by the gateway that writes
// it and the shard that checks it; no I/O. A report is either full (`channels`: replaces all the
// shard held for that gateway) or a delta against the version the shard holds (`base` +
// `changes`; an empty `changes` is the heartbeat). A full report with no channels clears at once.

import { isValidName } from './names';

export const CONSUMER_REPORT_PATH = '/sluice/consumers';

/** Bounds a shard enforces: a report outside them is refused with 400 INVALID_REPORT. */
export const REPORT_LIMITS = {
  minTtlMs: 100,
  maxTtlMs: 10 * 60_000,
  maxChannels: 50_000,
  maxIdLength: 128,
  maxAddressLength: 256,
  /** Largest request body, in bytes. */
  maxBody: 8 * 1024 * 1024,
} as const;

export interface ReportedGateway {
  /** Unique per gateway process of the cluster (`--gateway-id`; default hostname:port). */
  id: string;
  /** Where the gateway listens (host:port), for people reading the admin UI; may be ''. */
  address: string;
}

/** One channel's HTTP consumers on one gateway. */
export interface ReportedChannel {
  topic: string;
  channel: string;
  /** Open SSE streams. */
  streams: number;
  /** Long-poll requests waiting for messages. */
  long_polls: number;
  /** Messages delivered to the gateway's SSE streams and not settled yet (as the gateway knows). */
  in_flight: number;
  /** Leased from the shards and held by the gateway for a subscriber, not handed out yet. */
  held: number;
}

interface ReportBase {
  gateway: ReportedGateway;
  /** How long the shard keeps what it was told without hearing from the gateway again. */
  ttl_ms: number;
  /** The version this report leaves the shard at (the gateway's counter). */
  version: number;
}

export interface FullReport extends ReportBase {
  channels: ReportedChannel[];
}

export interface DeltaReport extends ReportBase {
  /** The version the shard must hold for this delta to apply; otherwise 409 REPORT_UNKNOWN. */
  base: number;
  /** Channels whose counts changed; all counts 0 removes the channel. */
  changes: ReportedChannel[];
}

export type ConsumerReport = FullReport | DeltaReport;

export function isFull(r: ConsumerReport): r is FullReport {
  return (r as FullReport).channels !== undefined;
}

export function channelKey(topic: string, channel: string): string {
  return topic + '\u0000' + channel;
}

/** Whether a channel entry reports nothing (such a delta entry removes the channel). */
export function isEmptyChannel(c: ReportedChannel): boolean {
  return c.streams === 0 && c.long_polls === 0 && c.in_flight === 0 && c.held === 0;
}

/** What is wrong with a report: the field and why. */
export interface ReportProblem {
  field: string;
  detail: string;
}

const ID = /^[!-~]+$/;
const COUNTS = ['streams', 'long_polls', 'in_flight', 'held'] as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function parseChannels(v: unknown, field: string): ReportedChannel[] | ReportProblem {
  if (!Array.isArray(v)) return { field, detail: 'an array of {topic, channel, streams, long_polls, in_flight, held}' };
  if (v.length > REPORT_LIMITS.maxChannels) return { field, detail: `at most ${REPORT_LIMITS.maxChannels} channels` };
  const out: ReportedChannel[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < v.length; i++) {
    const e = v[i] as unknown;
    const at = `${field}[${i}]`;
    if (!isObject(e)) return { field: at, detail: 'an object' };
    if (typeof e.topic !== 'string' || !isValidName(e.topic)) return { field: `${at}.topic`, detail: 'a valid topic name' };
    if (typeof e.channel !== 'string' || !isValidName(e.channel)) return { field: `${at}.channel`, detail: 'a valid channel name' };
    const c: ReportedChannel = { topic: e.topic, channel: e.channel, streams: 0, long_polls: 0, in_flight: 0, held: 0 };
    for (const k of COUNTS) {
      const n = e[k];
      // `held` came after the others: a missing one reads as 0, every other count is required.
      if (n === undefined && k === 'held') continue;
      if (!isCount(n)) return { field: `${at}.${k}`, detail: 'a non-negative integer' };
      c[k] = n;
    }
    const key = channelKey(c.topic, c.channel);
    if (seen.has(key)) return { field: at, detail: `${c.topic}/${c.channel} is listed twice` };
    seen.add(key);
    out.push(c);
  }
  return out;
}

/** Checks a decoded JSON body field by field; the report, or the first problem found. */
export function parseConsumerReport(doc: unknown): ConsumerReport | ReportProblem {
  if (!isObject(doc)) return { field: '', detail: 'a JSON object' };
  const g = doc.gateway;
  if (!isObject(g)) return { field: 'gateway', detail: 'an object {id, address}' };
  if (typeof g.id !== 'string' || g.id.length === 0 || g.id.length > REPORT_LIMITS.maxIdLength || !ID.test(g.id))
    return { field: 'gateway.id', detail: `1-${REPORT_LIMITS.maxIdLength} printable ASCII characters, no spaces` };
  if (typeof g.address !== 'string' || g.address.length > REPORT_LIMITS.maxAddressLength || (g.address !== '' && !ID.test(g.address)))
    return { field: 'gateway.address', detail: `a host:port string of at most ${REPORT_LIMITS.maxAddressLength} characters (or '')` };
  const ttl = doc.ttl_ms;
  if (!isCount(ttl) || ttl < REPORT_LIMITS.minTtlMs || ttl > REPORT_LIMITS.maxTtlMs) return { field: 'ttl_ms', detail: `an integer ${REPORT_LIMITS.minTtlMs}..${REPORT_LIMITS.maxTtlMs}` };
  if (!isCount(doc.version)) return { field: 'version', detail: 'a non-negative integer' };
  const base = { gateway: { id: g.id, address: g.address }, ttl_ms: ttl, version: doc.version };
  const hasFull = doc.channels !== undefined;
  const hasDelta = doc.changes !== undefined || doc.base !== undefined;
  if (hasFull === hasDelta) return { field: 'channels', detail: 'either "channels" (a full report) or "base" and "changes" (a delta), not both' };
  if (hasFull) {
    const channels = parseChannels(doc.channels, 'channels');
    return Array.isArray(channels) ? { ...base, channels } : channels;
  }
  if (!isCount(doc.base)) return { field: 'base', detail: 'a non-negative integer: the version the delta applies to' };
  const changes = parseChannels(doc.changes, 'changes');
  return Array.isArray(changes) ? { ...base, base: doc.base, changes } : changes;
}

export function isProblem(v: ConsumerReport | ReportProblem): v is ReportProblem {
  return (v as ReportProblem).detail !== undefined;
}
