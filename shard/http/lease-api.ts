// The lease API (Sluice's extension, under /sluice/lease/): pull messages without holding a
// connection, then finish, requeue or touch them by message id + lease token, one or many at once.
// This is what lets gateways stay stateless: any gateway can settle any lease.

import type { Engine } from '../engine/engine';
import type { SettleResult } from '../engine/channel';
import type { Message } from '../engine/message';
import { encodeLeaseBatch, LEASE_BATCH_TYPE } from '../../wire/lease-batch';
import { isValidName } from '../../wire/names';
import { channelArg, topicArg } from './params';
import { HttpError, readBody, Request, Router } from './router';

export const LEASE_PREFIX = '/sluice/lease';
/** Longest long-poll a pull may ask for. */
export const MAX_WAIT_MS = 60_000;
const MAX_PULL = 5000;
const MAX_BATCH_BODY = 4 * 1024 * 1024;
const MAX_PULLS_PER_REQUEST = 10_000;

export interface LeaseApiDeps {
  engine: Engine;
  defaultLeaseMs: number;
}

export interface SettleItem {
  id: string;
  token: string;
  delay_ms?: number;
  lease_ms?: number;
  /** requeue: the delivery never reached a consumer (e.g. a gateway could not hand it out), so it is not an attempt. */
  undelivered?: boolean;
}

const RESULT: Record<SettleResult, { status: number; code: string }> = {
  ok: { status: 200, code: 'OK' },
  not_in_flight: { status: 404, code: 'NOT_IN_FLIGHT' },
  stale: { status: 409, code: 'STALE_LEASE' },
  not_owner: { status: 409, code: 'NOT_OWNER' },
};

function intArg(r: Request, key: string, def: number, min: number, max: number): number {
  const v = r.query.get(key);
  if (v === null || v === '') return def;
  if (!/^\d+$/.test(v)) throw new HttpError(400, `INVALID_${key.toUpperCase()}`);
  const n = Number(v);
  if (n < min || n > max) throw new HttpError(400, `INVALID_${key.toUpperCase()}`);
  return n;
}

export function leaseView(m: Message, leaseMs: number): Record<string, unknown> {
  return {
    id: m.id,
    token: m.token,
    attempts: m.attempts,
    timestamp: m.timestamp,
    lease_ms: leaseMs,
    body: m.body.toString('base64'),
  };
}

/**
 * Whether the caller asked for the binary pull-many answer (wire/lease-batch.ts): its Accept names
 * application/x-sluice-leases with a weight above zero and no JSON type with a higher one. JSON
 * stays the answer for everyone else (curl, browsers, older gateways).
 */
export function wantsLeaseBatch(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const a = accept.toLowerCase();
  if (!a.includes(LEASE_BATCH_TYPE)) return false;
  let binary = -1;
  let json = -1;
  for (const part of a.split(',')) {
    const [type, ...params] = part.split(';');
    let q = 1;
    for (const p of params) {
      const [k, v] = p.split('=');
      if (k.trim() === 'q') q = Number(v);
    }
    if (!(q > 0)) continue;
    const t = type.trim();
    if (t === LEASE_BATCH_TYPE) binary = Math.max(binary, q);
    else if (t === 'application/json') json = Math.max(json, q);
  }
  return binary > 0 && binary >= json;
}

/** Reads a JSON request body (bounded); INVALID_BODY when it is not JSON. */
async function jsonBody(r: Request): Promise<Record<string, unknown> | null> {
  const body = await readBody(r.req, MAX_BATCH_BODY, 'BODY_TOO_BIG');
  try {
    return JSON.parse(body.toString('utf8')) as Record<string, unknown> | null;
  } catch {
    throw new HttpError(400, 'INVALID_BODY', { detail: 'body is not JSON' });
  }
}

/** Items come from a JSON body `{"leases":[{id, token, ...}]}` or, for one, from the query string. */
async function settleItems(r: Request): Promise<{ items: SettleItem[]; single: boolean }> {
  const id = r.query.get('id');
  if (id !== null) {
    const token = r.query.get('token');
    if (token === null) throw new HttpError(400, 'MISSING_ARG_TOKEN');
    const item: SettleItem = { id, token };
    const delay = r.query.get('delay_ms');
    if (delay !== null) item.delay_ms = intArg(r, 'delay_ms', 0, 0, Number.MAX_SAFE_INTEGER);
    const lease = r.query.get('lease_ms');
    if (lease !== null) item.lease_ms = intArg(r, 'lease_ms', 1, 1, Number.MAX_SAFE_INTEGER);
    return { items: [item], single: true };
  }
  const leases = (await jsonBody(r))?.leases;
  if (!Array.isArray(leases)) throw new HttpError(400, 'INVALID_BODY', { detail: 'expected {"leases":[{"id","token"}]}' });
  const items: SettleItem[] = [];
  for (let i = 0; i < leases.length; i++) {
    const it = leases[i] as Record<string, unknown>;
    const bad = (what: string) => new HttpError(400, 'INVALID_BODY', { detail: `leases[${i}]: ${what}` });
    if (!it || typeof it.id !== 'string' || typeof it.token !== 'string') throw bad('id and token must be strings');
    for (const k of ['delay_ms', 'lease_ms'] as const) {
      if (it[k] !== undefined && (typeof it[k] !== 'number' || !Number.isInteger(it[k]) || (it[k] as number) < 0)) throw bad(`${k} must be a non-negative integer`);
    }
    if (it.undelivered !== undefined && typeof it.undelivered !== 'boolean') throw bad('undelivered must be a boolean');
    items.push({ id: it.id, token: it.token, delay_ms: it.delay_ms as number | undefined, lease_ms: it.lease_ms as number | undefined, undelivered: it.undelivered === true });
  }
  return { items, single: false };
}

type Settle = (topic: string, channel: string, it: SettleItem) => SettleResult;

function settleRoute(d: LeaseApiDeps, settle: Settle, withLease: boolean) {
  return async (r: Request) => {
    const topic = topicArg(r);
    const channel = channelArg(r);
    const { items, single } = await settleItems(r);
    const outcomes = items.map((it) => ({ it, result: settle(topic, channel, it) }));
    if (single && outcomes[0].result !== 'ok') {
      const e = RESULT[outcomes[0].result];
      throw new HttpError(e.status, e.code);
    }
    const results = outcomes.map(({ it, result }) => {
      const out: Record<string, unknown> = { id: it.id, status: RESULT[result].code };
      if (withLease && result === 'ok') out.lease_ms = d.engine.leaseRemaining(topic, channel, it.id);
      return out;
    });
    return { results };
  };
}

interface PullSpec {
  topic: string;
  channel: string;
  max: number;
  lease_ms: number;
}

/** Body of pull-many: `{"pulls":[{topic, channel, max?, lease_ms?}]}`, each checked like a single pull. */
async function pullSpecs(r: Request, d: LeaseApiDeps): Promise<PullSpec[]> {
  const pulls = (await jsonBody(r))?.pulls;
  if (!Array.isArray(pulls) || pulls.length === 0 || pulls.length > MAX_PULLS_PER_REQUEST)
    throw new HttpError(400, 'INVALID_BODY', { detail: `expected {"pulls":[{"topic","channel","max","lease_ms"}]} with 1 to ${MAX_PULLS_PER_REQUEST} items` });
  return pulls.map((raw, i) => {
    const p = raw as Record<string, unknown>;
    const bad = (what: string) => new HttpError(400, 'INVALID_BODY', { detail: `pulls[${i}]: ${what}` });
    if (!p || typeof p.topic !== 'string' || !isValidName(p.topic)) throw bad('invalid topic');
    if (typeof p.channel !== 'string' || !isValidName(p.channel)) throw bad('invalid channel');
    const max = p.max ?? 1;
    const leaseMs = p.lease_ms ?? d.defaultLeaseMs;
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > MAX_PULL) throw bad(`max must be 1..${MAX_PULL}`);
    if (typeof leaseMs !== 'number' || !Number.isInteger(leaseMs) || leaseMs < 1 || leaseMs > d.engine.opts.maxMsgTimeoutMs) throw bad('lease_ms out of range');
    return { topic: p.topic, channel: p.channel, max, lease_ms: leaseMs };
  });
}

export function registerLeaseApi(router: Router, d: LeaseApiDeps): void {
  router.on('POST', `${LEASE_PREFIX}/pull`, async (r) => {
    const topic = topicArg(r);
    const channel = channelArg(r);
    const max = intArg(r, 'max', 1, 1, MAX_PULL);
    const leaseMs = intArg(r, 'lease_ms', d.defaultLeaseMs, 1, d.engine.opts.maxMsgTimeoutMs);
    const waitMs = intArg(r, 'wait_ms', 0, 0, MAX_WAIT_MS);
    r.req.resume();
    // If the caller goes away before the answer is written, what it was handed is requeued at once.
    const ac = new AbortController();
    const onClose = () => ac.abort();
    r.res.once('close', onClose);
    const msgs = await d.engine.pull(topic, channel, { max, leaseMs, waitMs, signal: ac.signal });
    r.res.off('close', onClose);
    if (r.res.destroyed || r.req.socket.destroyed) {
      for (const m of msgs) d.engine.requeueLease(topic, channel, m.id, m.token, 0, true);
      return null;
    }
    return { messages: msgs.map((m) => leaseView(m, leaseMs)) };
  });

  router.on('POST', `${LEASE_PREFIX}/pull-many`, async (r) => {
    const waitMs = intArg(r, 'wait_ms', 0, 0, MAX_WAIT_MS);
    const binary = wantsLeaseBatch(r.req.headers.accept);
    const specs = await pullSpecs(r, d);
    const ac = new AbortController();
    const onClose = () => ac.abort();
    r.res.once('close', onClose);
    const got = await d.engine.pullMany(
      specs.map((p) => ({ topic: p.topic, channel: p.channel, max: p.max, leaseMs: p.lease_ms })),
      waitMs,
      ac.signal,
    );
    r.res.off('close', onClose);
    if (r.res.destroyed || r.req.socket.destroyed) {
      got.forEach((msgs, i) => {
        for (const m of msgs) d.engine.requeueLease(specs[i].topic, specs[i].channel, m.id, m.token, 0, true);
      });
      return null;
    }
    if (binary) {
      // One buffer for the whole answer, sized first; bodies copied once, no base64.
      r.res.setHeader('Content-Type', LEASE_BATCH_TYPE);
      r.res.setHeader('Vary', 'Accept');
      return encodeLeaseBatch(specs.map((p, i) => ({ topic: p.topic, channel: p.channel, leaseMs: p.lease_ms, messages: got[i] })));
    }
    r.res.setHeader('Vary', 'Accept');
    return {
      results: specs.map((p, i) => ({ topic: p.topic, channel: p.channel, messages: got[i].map((m) => leaseView(m, p.lease_ms)) })),
    };
  });

  router.on('POST', `${LEASE_PREFIX}/finish`, settleRoute(d, (t, c, it) => d.engine.finishLease(t, c, it.id, it.token), false));
  router.on('POST', `${LEASE_PREFIX}/requeue`, settleRoute(d, (t, c, it) => d.engine.requeueLease(t, c, it.id, it.token, it.delay_ms ?? 0, it.undelivered === true), false));
  router.on('POST', `${LEASE_PREFIX}/touch`, settleRoute(d, (t, c, it) => d.engine.touchLease(t, c, it.id, it.token, it.lease_ms), true));
  // Read-only: is this lease still out with this token, and for how long (gateways reconcile stream credit with it).
  router.on('POST', `${LEASE_PREFIX}/status`, settleRoute(d, (t, c, it) => d.engine.leaseStatus(t, c, it.id, it.token), true));
}
