// The consuming endpoints as plain node:http handlers (like api.ts, so the lean front router and
// the Express app share them): long-poll, the SSE stream, channel settings and the example page
// (ack/requeue/touch are in receipts-api.ts), and the one router both paths use. Handlers
// validate, authorise and hand the work to the Consumption service.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { isValidName } from '../wire/names';
import { ApiDeps, Call, run } from './api';
import { mediaType, readBody } from './body';
import type { Group, Lease, Waiter } from './consumers';
import type { Consumption } from './consume';
import { admit, ConsumeApi, ConsumeCall, consumer, intParam, param, requireConsume, service } from './consume-common';
import { GatewayError, sendError, sendJson } from './errors';
import { Op, settleHandler } from './receipts-api';
import { ENCODINGS, Encoding, messageJson } from './render';
import { describeErrors } from './schemas';
import { SseStream } from './sse';

export { createConsumeApi } from './consume-common';

function names(c: ConsumeCall): { topic: string; channel: string } {
  if (!isValidName(c.topic)) throw new GatewayError('INVALID_TOPIC', { topic: c.topic });
  if (!isValidName(c.channel)) throw new GatewayError('INVALID_CHANNEL', { channel: c.channel });
  return { topic: c.topic, channel: c.channel };
}

function encodingOf(c: Call): Encoding {
  const v = param(c, 'encoding');
  if (v === null || v === '' || v === 'auto') return 'json';
  if (!(ENCODINGS as readonly string[]).includes(v)) throw new GatewayError('INVALID_PARAMETER', { parameter: 'encoding', value: v, allowed: ENCODINGS });
  return v as Encoding;
}

interface SubscribeParams {
  topic: string;
  channel: string;
  leaseMs: number;
  encoding: Encoding;
}

/** What every subscribe shares: names, auth, per-key limits, lease, encoding, and `max_attempts` (configures the channel). */
async function subscribeParams(d: ApiDeps, k: ConsumeApi, c: ConsumeCall): Promise<SubscribeParams> {
  const svc = service(k);
  const { topic, channel } = names(c);
  const who = consumer(d, c);
  requireConsume(who, topic, channel);
  // A long-poll or a stream holds its slot until it answers or closes: the per-key connection limit.
  admit(d, c, 'consume', who);
  const o = svc.opts;
  const leaseMs = intParam(c, 'lease_ms', o.defaultLeaseMs, o.minLeaseMs, o.maxLeaseMs);
  const encoding = encodingOf(c);
  const maxAttempts = param(c, 'max_attempts');
  if (maxAttempts !== null) {
    const n = intParam(c, 'max_attempts', 0, 0, 65535);
    const dead = param(c, 'dead_letter_topic') ?? '';
    checkDeadLetter(topic, n, dead);
    if (!(await svc.ensureConfigured(topic, channel, n, dead))) throw new GatewayError('SHARD_UNAVAILABLE', { reason: 'could not set max_attempts on every shard of the topic' });
  }
  return { topic, channel, leaseMs, encoding };
}

function checkDeadLetter(topic: string, maxAttempts: number, dead: string): void {
  const effective = dead || `${topic}.dead`;
  if (dead !== '' && !isValidName(dead)) throw new GatewayError('INVALID_DEAD_LETTER_TOPIC', { dead_letter_topic: dead });
  if (maxAttempts > 0 && !isValidName(effective)) throw new GatewayError('INVALID_DEAD_LETTER_TOPIC', { dead_letter_topic: effective, reason: 'name one with dead_letter_topic' });
  if (effective === topic) throw new GatewayError('INVALID_DEAD_LETTER_TOPIC', { reason: 'a channel cannot dead-letter into its own topic' });
}

async function groupOf(svc: Consumption, p: SubscribeParams): Promise<Group> {
  const g = svc.group(p.topic, p.channel, p.leaseMs);
  if (g.shards.length === 0) throw new GatewayError('NO_SHARD');
  await g.ready;
  return g;
}

// ---- POST /v1/topics/{topic}/channels/{channel}/messages (long-poll) ----

/** A long-poll request: takes up to `max` messages once, then leaves the group. */
class PollWaiter implements Waiter {
  done = false;
  constructor(private readonly max: number, private readonly onTake: (leases: Lease[], g: Group) => void) {}
  free(): number {
    return this.done ? 0 : this.max;
  }
  take(leases: Lease[], g: Group): void {
    this.done = true;
    g.remove(this, true);
    this.onTake(leases, g);
  }
}

/** Waiting less than this would rarely give the shards time to answer: `wait_ms=0` waits this long. */
const MIN_EFFECTIVE_WAIT_MS = 50;

export async function longPoll(d: ApiDeps, k: ConsumeApi, c: ConsumeCall): Promise<void> {
  const p = await subscribeParams(d, k, c);
  const svc = k.consume;
  const max = intParam(c, 'max', 1, 1, svc.opts.maxMessages);
  const waitMs = intParam(c, 'wait_ms', svc.opts.defaultWaitMs, 0, svc.opts.maxWaitMs);
  c.req.resume();
  const g = await groupOf(svc, p);
  if (c.res.destroyed) return;
  const answer = (leases: Lease[]) => {
    const now = svc.now();
    let out = '{"topic":"' + p.topic + '","channel":"' + p.channel + '","messages":[';
    for (let i = 0; i < leases.length; i++) {
      const l = leases[i];
      const receipt = svc.receiptFor(g, l);
      out += (i === 0 ? '' : ',') + messageJson(l.msg, receipt, l.expiresAt - now, p.encoding);
    }
    out += ']}';
    c.res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(out), 'Cache-Control': 'no-store' });
    c.res.end(out);
  };
  await new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      if (timer) clearTimeout(timer);
      c.res.off('close', gone);
      resolve();
    };
    const w = new PollWaiter(max, (leases, grp) => {
      finish();
      // The client left before its answer: nobody saw these, so they go back at once, not as an attempt.
      if (c.res.destroyed || c.req.socket.destroyed) void svc.giveBack(grp.topic, grp.channel, leases, true);
      else answer(leases);
    });
    const gone = () => {
      if (w.done) return;
      w.done = true;
      g.remove(w);
      finish();
    };
    c.res.once('close', gone);
    timer = setTimeout(() => {
      if (w.done) return;
      w.done = true;
      g.remove(w);
      finish();
      if (!c.res.destroyed) answer([]);
    }, Math.max(waitMs, MIN_EFFECTIVE_WAIT_MS));
    g.add(w);
  });
}

// ---- GET /v1/topics/{topic}/channels/{channel}/stream (Server-Sent Events) ----

export async function stream(d: ApiDeps, k: ConsumeApi, c: ConsumeCall): Promise<void> {
  const p = await subscribeParams(d, k, c);
  const svc = k.consume;
  const maxInFlight = intParam(c, 'max_in_flight', 10, 1, svc.opts.maxInFlight);
  c.req.resume();
  const g = await groupOf(svc, p);
  if (c.res.destroyed) return;
  new SseStream(svc, g, c.res, maxInFlight, p.encoding).open(2000);
}

// ---- GET / PUT /v1/topics/{topic}/channels/{channel} (max attempts, dead-letter topic) ----

type ShardSettings = Awaited<ReturnType<Consumption['channelSettings']>>;

function settingsView(topic: string, channel: string, per: ShardSettings): Record<string, unknown> {
  let max = 0;
  let dead = '';
  let count = 0;
  const shards = per.map((s) => {
    if (!s.config) return s.error ? { address: s.address, exists: false, error: s.error } : { address: s.address, exists: false };
    if (s.config.max_attempts >= max) {
      max = s.config.max_attempts;
      dead = s.config.dead_letter_topic || dead;
    }
    count += s.config.dead_lettered_count;
    return { address: s.address, exists: true, ...s.config };
  });
  return { topic, channel, max_attempts: max, dead_letter_topic: max > 0 ? dead : '', dead_lettered_count: count, shards };
}

export async function getChannel(d: ApiDeps, k: ConsumeApi, c: ConsumeCall): Promise<void> {
  const svc = service(k);
  const { topic, channel } = names(c);
  requireConsume(consumer(d, c), topic, channel);
  const per = await svc.channelSettings(topic, channel);
  if (per.length === 0) throw new GatewayError('NO_SHARD');
  if (per.every((s) => !s.config && !s.error)) throw new GatewayError('CHANNEL_NOT_FOUND', { topic, channel });
  sendJson(c.res, 200, settingsView(topic, channel, per));
}

export async function putChannel(d: ApiDeps, k: ConsumeApi, c: ConsumeCall): Promise<void> {
  const svc = service(k);
  const { topic, channel } = names(c);
  requireConsume(consumer(d, c), topic, channel);
  if (mediaType(c.req) !== 'application/json') throw new GatewayError('UNSUPPORTED_MEDIA_TYPE', { accepted: ['application/json'] });
  const body = await readBody(c.req, 64 * 1024, 'BODY_TOO_BIG');
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new GatewayError('INVALID_JSON', { reason: err instanceof Error ? err.message : String(err) });
  }
  if (!k.channelSettingsRequest(doc)) throw new GatewayError('VALIDATION_FAILED', { errors: describeErrors(k.channelSettingsRequest.errors) });
  const { max_attempts: maxAttempts, dead_letter_topic: dead = '' } = doc as { max_attempts: number; dead_letter_topic?: string };
  checkDeadLetter(topic, maxAttempts, dead);
  const per = await svc.configureChannel(topic, channel, maxAttempts, dead);
  if (per.length === 0) throw new GatewayError('NO_SHARD');
  const failed = per.filter((s) => !s.config);
  if (failed.length > 0) throw new GatewayError('SHARD_UNAVAILABLE', { shards: failed.map((s) => ({ address: s.address, error: s.error })) });
  sendJson(c.res, 200, settingsView(topic, channel, per));
}

// ---- GET /example ----

export function example(_d: ApiDeps, k: ConsumeApi, c: Call): void {
  c.res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(k.exampleHtml),
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
    // The page's own script and style only; it talks to this gateway (same origin).
    'Content-Security-Policy': "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
  });
  c.res.end(k.exampleHtml);
}

// ---- routing: one function for the front router and the Express app alike ----

type Handler = (d: ApiDeps, k: ConsumeApi, c: ConsumeCall) => Promise<void> | void;

const RECEIPT_OPS: Record<string, Op> = { ack: 'finish', requeue: 'requeue', touch: 'touch' };
const settleHandlers: Record<Op, Handler> = { finish: settleHandler('finish'), requeue: settleHandler('requeue'), touch: settleHandler('touch') };

function segment(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return '\u0000';
  }
}

interface Match {
  methods: Partial<Record<string, Handler>>;
  topic: string;
  channel: string;
}

function match(p: string): Match | null {
  if (p.startsWith('/v1/topics/')) {
    const parts = p.slice(11).split('/');
    if (parts.length < 3 || parts[1] !== 'channels' || parts[0] === '' || parts[2] === '') return null;
    const topic = segment(parts[0]);
    const channel = segment(parts[2]);
    if (parts.length === 3) return { methods: { GET: getChannel, PUT: putChannel }, topic, channel };
    if (parts.length !== 4) return null;
    if (parts[3] === 'messages') return { methods: { POST: longPoll }, topic, channel };
    if (parts[3] === 'stream') return { methods: { GET: stream }, topic, channel };
    return null;
  }
  if (p.startsWith('/v1/receipts/')) {
    const op = RECEIPT_OPS[p.slice(13)];
    return op ? { methods: { POST: settleHandlers[op] }, topic: '', channel: '' } : null;
  }
  if (p === '/example' || p === '/example/') return { methods: { GET: example }, topic: '', channel: '' };
  return null;
}

/**
 * Serves the consuming endpoints: returns true when `req` was one of them (answered or being
 * answered), false to let the caller route it elsewhere.
 */
export function consumeRouter(d: ApiDeps, k: ConsumeApi): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const m = match(q === -1 ? url : url.slice(0, q));
    if (!m) return false;
    const h = m.methods[req.method ?? ''];
    if (!h) {
      const allow = Object.keys(m.methods).join(', ');
      res.setHeader('Allow', allow);
      req.resume();
      sendError(res, new GatewayError('METHOD_NOT_ALLOWED', { allow }), req.complete);
      return true;
    }
    const call: ConsumeCall = { req, res, topic: m.topic, channel: m.channel, rawQuery: q === -1 ? '' : url.slice(q + 1) };
    run(d, call, (dd, cc) => h(dd, k, cc as ConsumeCall));
    return true;
  };
}
