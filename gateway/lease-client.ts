// The gateway's client for a shard's lease API (/sluice/lease/*) and channel settings
// (/sluice/channel/config): one undici Pool of keep-alive connections per shard, separate from
// the publish client because a long-poll holds its connection for up to its wait. Answers are
// checked before they are trusted; anything but a 2xx becomes a ShardError. Pull-many answers are
// asked for in the binary lease batch (wire/lease-batch.ts): bodies arrive as views of the one
// response buffer instead of base64 in JSON. A shard that answers JSON anyway is still understood.

import { Pool } from 'undici';
import { decodeLeaseBatch, LEASE_BATCH_TYPE, LeaseBatchError, type LeaseBatchMessage } from '../wire/lease-batch';
import { ShardError } from './shards';

/** A message a shard leased to this gateway (the same fields whichever answer format brought it). */
export type LeasedMessage = LeaseBatchMessage;

export interface PullSpec {
  topic: string;
  channel: string;
  max: number;
  leaseMs: number;
}

export type SettleOp = 'finish' | 'requeue' | 'touch' | 'status';

export interface SettleItem {
  id: string;
  token: string;
  delayMs?: number;
  leaseMs?: number;
  /** requeue only: the delivery never reached a consumer, so it does not count as an attempt. */
  undelivered?: boolean;
}

/** The shard's per-lease answer: OK, NOT_IN_FLIGHT, STALE_LEASE or NOT_OWNER (and lease_ms after touch/status). */
export interface SettleOutcome {
  status: string;
  leaseMs?: number;
}

export interface ChannelConfig {
  max_attempts: number;
  dead_letter_topic: string;
  dead_lettered_count: number;
}

/** What the consuming side needs from a shard; the fake in the unit tests implements the same. */
export interface LeaseClient {
  readonly address: string;
  /** One long-poll over many channels; `onAnswer` runs when the shard's answer starts arriving. */
  pullMany(pulls: readonly PullSpec[], waitMs: number, signal: AbortSignal, onAnswer?: () => void): Promise<LeasedMessage[][]>;
  settle(op: SettleOp, topic: string, channel: string, items: readonly SettleItem[]): Promise<SettleOutcome[]>;
  channelConfig(topic: string, channel: string, set?: { maxAttempts: number; deadLetterTopic: string }): Promise<ChannelConfig>;
  /** Creates the channel (and topic) if it does not exist (nsqd's /channel/create). */
  createChannel(topic: string, channel: string): Promise<void>;
  close(): Promise<void>;
}

export interface LeaseClientOptions {
  connections: number;
  /** Budget of a settle or config call. */
  timeoutMs: number;
}

const HEX16 = /^[0-9a-f]{16}$/;

function bad(what: string): ShardError {
  return new ShardError(502, 'BAD_SHARD_ANSWER', { what });
}

function parseMessage(raw: unknown, fallbackLease: number): LeasedMessage {
  const m = raw as Record<string, unknown>;
  if (!m || typeof m.id !== 'string' || !HEX16.test(m.id) || typeof m.token !== 'string' || m.token.length === 0 || m.token.length > 200) throw bad('message id/token');
  if (typeof m.attempts !== 'number' || typeof m.timestamp !== 'number' || typeof m.body !== 'string') throw bad('message fields');
  return {
    id: m.id,
    token: m.token,
    attempts: m.attempts,
    timestamp: m.timestamp,
    leaseMs: typeof m.lease_ms === 'number' ? m.lease_ms : fallbackLease,
    body: Buffer.from(m.body, 'base64'),
  };
}

/** A JSON answer's document; a non-200 becomes a ShardError named by its `message`. */
function parseJsonAnswer(status: number, text: string): unknown {
  let parsed: unknown;
  try {
    parsed = text === '' ? null : (JSON.parse(text) as unknown);
  } catch {
    parsed = undefined;
  }
  if (status !== 200) {
    const code = typeof (parsed as { message?: unknown })?.message === 'string' ? (parsed as { message: string }).message : 'SHARD_HTTP_' + status;
    throw new ShardError(status, code);
  }
  if (parsed === undefined) throw bad('not JSON');
  return parsed;
}

/** A binary pull-many answer, checked like the JSON one: one result per pull asked, in order, for the same channel. */
function fromLeaseBatch(buf: Buffer, pulls: readonly PullSpec[]): LeasedMessage[][] {
  let results;
  try {
    results = decodeLeaseBatch(buf);
  } catch (err) {
    if (err instanceof LeaseBatchError) throw bad('pull-many batch: ' + err.problem);
    throw err;
  }
  if (results.length !== pulls.length) throw bad('pull-many results');
  const out = new Array<LeasedMessage[]>(results.length);
  for (let i = 0; i < results.length; i++) {
    const r = results[i];
    if (r.topic !== pulls[i].topic || r.channel !== pulls[i].channel) throw bad('pull-many results');
    const msgs = r.messages;
    for (let k = 0; k < msgs.length; k++) if (msgs[k].token.length > 200) throw bad('message id/token');
    out[i] = msgs;
  }
  return out;
}

const PULL_HEADERS = { 'content-type': 'application/json', accept: `${LEASE_BATCH_TYPE}, application/json;q=0.5` };

export class HttpLeaseClient implements LeaseClient {
  private readonly pool: Pool;

  constructor(readonly address: string, private readonly opts: LeaseClientOptions) {
    this.pool = new Pool(`http://${address}`, {
      connections: opts.connections,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      connectTimeout: Math.min(opts.timeoutMs, 5000),
      // A long-poll's answer may take its whole wait; the caller's signal bounds it.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  private async post(path: string, body: string | undefined, signal: AbortSignal, onAnswer?: () => void): Promise<unknown> {
    const res = await this.pool.request({ path, method: 'POST', body, headers: body === undefined ? {} : { 'content-type': 'application/json' }, signal });
    onAnswer?.();
    return parseJsonAnswer(res.statusCode, await res.body.text());
  }

  async pullMany(pulls: readonly PullSpec[], waitMs: number, signal: AbortSignal, onAnswer?: () => void): Promise<LeasedMessage[][]> {
    const body = JSON.stringify({ pulls: pulls.map((p) => ({ topic: p.topic, channel: p.channel, max: p.max, lease_ms: p.leaseMs })) });
    const res = await this.pool.request({
      path: '/sluice/lease/pull-many?wait_ms=' + waitMs,
      method: 'POST',
      body,
      headers: PULL_HEADERS,
      signal,
    });
    onAnswer?.();
    const type = res.headers['content-type'];
    if (res.statusCode === 200 && typeof type === 'string' && type.startsWith(LEASE_BATCH_TYPE)) {
      // One copy (undici joins the chunks into one buffer); every body is a view of it.
      const raw = await res.body.arrayBuffer();
      return fromLeaseBatch(Buffer.from(raw), pulls);
    }
    const doc = parseJsonAnswer(res.statusCode, await res.body.text()) as { results?: unknown };
    const results = doc?.results;
    if (!Array.isArray(results) || results.length !== pulls.length) throw bad('pull-many results');
    return results.map((r, i) => {
      const msgs = (r as { messages?: unknown })?.messages;
      if (!Array.isArray(msgs)) throw bad('pull-many messages');
      return msgs.map((m) => parseMessage(m, pulls[i].leaseMs));
    });
  }

  async settle(op: SettleOp, topic: string, channel: string, items: readonly SettleItem[]): Promise<SettleOutcome[]> {
    const leases = items.map((it) => {
      const o: Record<string, unknown> = { id: it.id, token: it.token };
      if (it.delayMs !== undefined) o.delay_ms = it.delayMs;
      if (it.leaseMs !== undefined) o.lease_ms = it.leaseMs;
      if (it.undelivered) o.undelivered = true;
      return o;
    });
    const q = '?topic=' + encodeURIComponent(topic) + '&channel=' + encodeURIComponent(channel);
    const doc = (await this.post(`/sluice/lease/${op}${q}`, JSON.stringify({ leases }), AbortSignal.timeout(this.opts.timeoutMs))) as { results?: unknown };
    const results = doc?.results;
    if (!Array.isArray(results) || results.length !== items.length) throw bad(`${op} results`);
    return results.map((r) => {
      const o = r as { status?: unknown; lease_ms?: unknown };
      if (typeof o?.status !== 'string') throw bad(`${op} status`);
      return typeof o.lease_ms === 'number' ? { status: o.status, leaseMs: o.lease_ms } : { status: o.status };
    });
  }

  async channelConfig(topic: string, channel: string, set?: { maxAttempts: number; deadLetterTopic: string }): Promise<ChannelConfig> {
    let q = '/sluice/channel/config?topic=' + encodeURIComponent(topic) + '&channel=' + encodeURIComponent(channel);
    let doc: unknown;
    if (set) {
      q += '&max_attempts=' + set.maxAttempts + (set.deadLetterTopic ? '&dead_letter_topic=' + encodeURIComponent(set.deadLetterTopic) : '');
      doc = await this.post(q, undefined, AbortSignal.timeout(this.opts.timeoutMs));
    } else {
      const res = await this.pool.request({ path: q, method: 'GET', signal: AbortSignal.timeout(this.opts.timeoutMs) });
      const text = await res.body.text();
      if (res.statusCode !== 200) {
        let code = 'SHARD_HTTP_' + res.statusCode;
        try {
          code = (JSON.parse(text) as { message?: string }).message ?? code;
        } catch {
          /* keep the status */
        }
        throw new ShardError(res.statusCode, code);
      }
      doc = JSON.parse(text) as unknown;
    }
    const c = doc as Partial<ChannelConfig>;
    if (typeof c?.max_attempts !== 'number' || typeof c.dead_letter_topic !== 'string' || typeof c.dead_lettered_count !== 'number') throw bad('channel config');
    return { max_attempts: c.max_attempts, dead_letter_topic: c.dead_letter_topic, dead_lettered_count: c.dead_lettered_count };
  }

  async createChannel(topic: string, channel: string): Promise<void> {
    const res = await this.pool.request({
      path: '/channel/create?topic=' + encodeURIComponent(topic) + '&channel=' + encodeURIComponent(channel),
      method: 'POST',
      signal: AbortSignal.timeout(this.opts.timeoutMs),
    });
    await res.body.dump();
    if (res.statusCode !== 200) throw new ShardError(res.statusCode, 'SHARD_HTTP_' + res.statusCode);
  }

  async close(): Promise<void> {
    await this.pool.destroy().catch(() => undefined);
  }
}
