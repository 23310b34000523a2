// The gateway's endpoints as plain node:http handlers, so the same code serves the Express app
// (library use) and the lean front router that start() listens with (speed). Each handler
// validates, authorises, publishes and answers; errors are thrown as GatewayError values.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { isValidName } from '../wire/names';
import { MAX_IDEMPOTENCY_KEY_LENGTH } from '../wire/sluice-batch';
import { Auth, canPublish, isAdmin, Principal } from './auth';
import { mediaType, readBody } from './body';
import { GatewayError, sendError, sendJson, toGatewayError } from './errors';
import type { OutMessage, Publisher, PublishResult } from './publish';
import { describeErrors, Schemas } from './schemas';
import type { BreakerState } from './shards';
import type { Topology } from './topology';
import { limitKey, type KeyLimits } from './key-limits';
import { describeEvent, DEFAULT_WEBHOOK_TOPIC, envelope, tryJson, verifySignature, WebhookTopic } from './webhooks';
import type { Logger } from '../runtime/logger';
import type { Registry } from 'prom-client';

export interface ApiLimits {
  maxMsgSize: number;
  maxBodySize: number;
  maxDeferMs: number;
}

export interface ApiDeps {
  limits: ApiLimits;
  /** Log every request (debug); off on the hot path otherwise. */
  logRequests: boolean;
  publisher: Publisher;
  topology: Topology;
  breakerState(address: string): BreakerState;
  metrics: Registry;
  schemas: Schemas;
  auth: Auth | null;
  webhooks: Map<string, WebhookTopic>;
  logger: Logger;
  wallNow(): number;
  openapi: string;
  /** Per-key rate and concurrency limits, per endpoint family (gateway/key-limits.ts); absent = none. */
  keyLimits?: KeyLimits | null;
}

export interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  /** The topic path segment, already percent-decoded. */
  topic: string;
  /** The query string without "?" ('' when none); parsed only when a parameter is asked for. */
  rawQuery: string;
  parsedQuery?: URLSearchParams;
}

function param(c: Call, name: string): string | null {
  if (c.rawQuery === '') return null;
  c.parsedQuery ??= new URLSearchParams(c.rawQuery);
  return c.parsedQuery.get(name);
}

const IDEMPOTENCY_KEY = /^[\x20-\x7e]+$/;

/** Runs a handler and renders whatever it throws. */
export function run(d: ApiDeps, c: Call, handler: (d: ApiDeps, c: Call) => Promise<void> | void): void {
  // Request logging only at debug level (it costs on the hot path). The logger masks the
  // Authorization header and ?token= wherever they appear.
  if (d.logRequests) {
    const started = performance.now();
    c.res.once('finish', () =>
      d.logger.debug('request', { method: c.req.method, url: c.req.url, status: c.res.statusCode, ms: Math.round((performance.now() - started) * 100) / 100, authorization: c.req.headers.authorization }),
    );
  }
  let out: Promise<void> | void;
  try {
    out = handler(d, c);
  } catch (err) {
    fail(d, c, err);
    return;
  }
  if (out) out.catch((err: unknown) => fail(d, c, err));
}

function fail(d: ApiDeps, c: Call, err: unknown): void {
  const e = toGatewayError(err);
  if (e.code === 'INTERNAL') d.logger.error('request failed', { path: c.req.url, error: err instanceof Error ? err.stack : String(err) });
  const complete = c.req.complete;
  if (!complete) c.req.resume();
  sendError(c.res, e, complete);
}

function topicOf(c: Call): string {
  if (!isValidName(c.topic)) throw new GatewayError('INVALID_TOPIC', { topic: c.topic });
  return c.topic;
}

function principal(d: ApiDeps, c: Call, allowQueryToken = false): Principal | null {
  if (!d.auth) return null;
  return d.auth.authenticate(c.req.headers.authorization, allowQueryToken ? param(c, 'token') : undefined);
}

function requirePublish(d: ApiDeps, c: Call, topic: string): void {
  const p = principal(d, c);
  if (p && !canPublish(p, topic)) throw new GatewayError('FORBIDDEN', { need: `publish:${topic}` });
  // after authentication, so an unknown key cannot use up a real key's budget
  if (d.keyLimits) d.keyLimits.admit('publish', limitKey(p, c.req), c.res);
}

function deferOf(d: ApiDeps, c: Call): number {
  const v = param(c, 'defer');
  if (v === null || v === '') return 0;
  if (!/^\d+$/.test(v)) throw new GatewayError('INVALID_DEFER', { defer: v });
  const ms = Number(v);
  if (ms > d.limits.maxDeferMs) throw new GatewayError('INVALID_DEFER', { defer: ms, max: d.limits.maxDeferMs });
  return ms;
}

function routingKeyOf(c: Call): string | undefined {
  const k = param(c, 'key');
  if (k === null) return undefined;
  if (k.length === 0 || k.length > 256) throw new GatewayError('INVALID_KEY');
  return k;
}

function idempotencyKeyOf(c: Call): string | undefined {
  const v = c.req.headers['idempotency-key'];
  if (v === undefined) return undefined;
  const k = Array.isArray(v) ? v[0] : v;
  if (k.length === 0 || k.length > MAX_IDEMPOTENCY_KEY_LENGTH || !IDEMPOTENCY_KEY.test(k)) throw new GatewayError('INVALID_IDEMPOTENCY_KEY');
  return k;
}

/** Checks a message against its topic's schema, if it has one (422 with ajv's errors). */
function checkTopicSchema(d: ApiDeps, topic: string, body: Buffer | null, value: unknown, index?: number): void {
  const validate = d.schemas.topic(topic);
  if (!validate) return;
  let v = value;
  if (body !== null) {
    try {
      v = JSON.parse(body.toString('utf8')) as unknown;
    } catch {
      throw new GatewayError('SCHEMA_MISMATCH', { ...(index === undefined ? {} : { index }), errors: [{ instancePath: '', keyword: 'json', message: 'the message is not JSON', params: {} }] });
    }
  }
  if (!validate(v)) throw new GatewayError('SCHEMA_MISMATCH', { ...(index === undefined ? {} : { index }), errors: describeErrors(validate.errors) });
}

// The hot path's answer, written by hand: ids are hex, topic names and shard addresses need no escaping.
const SAFE = /^[\x21\x23-\x5b\x5d-\x7e]*$/;
function answer(c: Call, topic: string, r: PublishResult): void {
  if (c.res.headersSent || c.res.destroyed) return;
  if (!SAFE.test(r.id) || !SAFE.test(r.shard)) {
    sendJson(c.res, 200, { id: r.id, topic, shard: r.shard, duplicate: r.duplicate });
    return;
  }
  const body = '{"id":"' + r.id + '","topic":"' + topic + '","shard":"' + r.shard + '","duplicate":' + (r.duplicate ? 'true}' : 'false}');
  c.res.writeHead(200, ['Content-Type', 'application/json; charset=utf-8', 'Content-Length', String(body.length)]);
  c.res.end(body);
}

// ---- POST /v1/topics/{topic}/messages ----

export async function publishOne(d: ApiDeps, c: Call): Promise<void> {
  const topic = topicOf(c);
  requirePublish(d, c, topic);
  const deferMs = deferOf(d, c);
  const key = routingKeyOf(c);
  const idempotencyKey = idempotencyKeyOf(c);
  const body = await readBody(c.req, d.limits.maxMsgSize, 'MSG_TOO_BIG');
  if (body.length === 0) throw new GatewayError('MSG_EMPTY');
  checkTopicSchema(d, topic, body, undefined);
  const msg: OutMessage = { body, deferMs, idempotencyKey, key };
  answer(c, topic, await d.publisher.publishOne(topic, msg));
}

// ---- POST /v1/topics/{topic}/batch ----

interface BatchItem {
  body?: unknown;
  body_base64?: string;
  defer?: number;
  key?: string;
  idempotency_key?: string;
}

function indexOfPath(path: string): number | undefined {
  const m = /^\/(\d+)/.exec(path);
  return m ? Number(m[1]) : undefined;
}

function parseBatch(d: ApiDeps, c: Call, body: Buffer): BatchItem[] {
  const type = mediaType(c.req);
  if (type === 'application/json') {
    let items: unknown;
    try {
      items = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new GatewayError('INVALID_JSON', { reason: err instanceof Error ? err.message : String(err) });
    }
    if (!d.schemas.batchRequest(items)) {
      const errors = describeErrors(d.schemas.batchRequest.errors);
      const index = errors.length ? indexOfPath(errors[0].instancePath) : undefined;
      throw new GatewayError('VALIDATION_FAILED', { ...(index === undefined ? {} : { index }), errors });
    }
    return items as BatchItem[];
  }
  if (type === 'application/x-ndjson' || type === 'application/jsonl' || type === 'application/json-seq') {
    const items: BatchItem[] = [];
    const text = body.toString('utf8');
    let line = 0;
    for (const raw of text.split('\n')) {
      line++;
      if (raw.trim() === '') continue;
      let item: unknown;
      try {
        item = JSON.parse(raw);
      } catch (err) {
        throw new GatewayError('INVALID_JSON', { index: items.length, line, reason: err instanceof Error ? err.message : String(err) });
      }
      if (!d.schemas.batchItem(item)) throw new GatewayError('VALIDATION_FAILED', { index: items.length, line, errors: describeErrors(d.schemas.batchItem.errors) });
      items.push(item as BatchItem);
    }
    if (items.length === 0) throw new GatewayError('VALIDATION_FAILED', { errors: [{ instancePath: '', keyword: 'minItems', message: 'a batch needs at least one message', params: {} }] });
    return items;
  }
  throw new GatewayError('UNSUPPORTED_MEDIA_TYPE', { accepted: ['application/json', 'application/x-ndjson'], got: type });
}

/** JSON.stringify recurses: a body nested deeper than the stack (JSON.parse does not mind) is the client's error. */
function stringifyBody(body: unknown, index: number): string {
  try {
    return JSON.stringify(body);
  } catch (err) {
    if (err instanceof RangeError) throw new GatewayError('INVALID_JSON', { index, reason: 'nested too deeply' });
    throw err;
  }
}

export async function publishBatch(d: ApiDeps, c: Call): Promise<void> {
  const topic = topicOf(c);
  requirePublish(d, c, topic);
  const batchKey = idempotencyKeyOf(c);
  const body = await readBody(c.req, d.limits.maxBodySize, 'BODY_TOO_BIG');
  if (body.length === 0) throw new GatewayError('INVALID_BODY', { reason: 'empty body' });
  const items = parseBatch(d, c, body);
  // Everything is checked before anything is sent: one bad message fails the whole batch.
  const msgs: OutMessage[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    let bytes: Buffer;
    if (it.body_base64 !== undefined) bytes = Buffer.from(it.body_base64, 'base64');
    else if (typeof it.body === 'string') bytes = Buffer.from(it.body, 'utf8');
    else bytes = Buffer.from(stringifyBody(it.body, i), 'utf8');
    if (bytes.length === 0) throw new GatewayError('MSG_EMPTY', { index: i });
    if (bytes.length > d.limits.maxMsgSize) throw new GatewayError('MSG_TOO_BIG', { index: i, limit: d.limits.maxMsgSize });
    const deferMs = it.defer ?? 0;
    if (deferMs > d.limits.maxDeferMs) throw new GatewayError('INVALID_DEFER', { index: i, max: d.limits.maxDeferMs });
    if (d.schemas.topic(topic)) {
      if (it.body !== undefined && typeof it.body !== 'string') checkTopicSchema(d, topic, null, it.body, i);
      else checkTopicSchema(d, topic, bytes, undefined, i);
    }
    // A batch-wide Idempotency-Key makes resending the same batch safe: message i is "<key>#<i>".
    const idempotencyKey = it.idempotency_key ?? (batchKey !== undefined ? `${batchKey}#${i}` : undefined);
    if (idempotencyKey !== undefined && idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH) throw new GatewayError('INVALID_IDEMPOTENCY_KEY', { index: i });
    msgs[i] = { body: bytes, deferMs, key: it.key, idempotencyKey };
  }
  const results = await d.publisher.publishBatch(topic, msgs, batchKey);
  // Written by hand for speed, like answer(): ids and shard addresses checked safe to embed.
  const parts: string[] = new Array(results.length);
  for (let i = 0; i < results.length; i++) {
    const r = results[i];
    if (!SAFE.test(r.id) || !SAFE.test(r.shard)) {
      sendJson(c.res, 200, { topic, count: results.length, results });
      return;
    }
    parts[i] = '{"id":"' + r.id + '","shard":"' + r.shard + '","duplicate":' + (r.duplicate ? 'true}' : 'false}');
  }
  const out = '{"topic":"' + topic + '","count":' + results.length + ',"results":[' + parts.join(',') + ']}';
  c.res.writeHead(200, ['Content-Type', 'application/json; charset=utf-8', 'Content-Length', String(out.length)]);
  c.res.end(out);
}

// ---- POST /v1/webhooks/{topic} ----

export async function webhook(d: ApiDeps, c: Call): Promise<void> {
  const topic = topicOf(c);
  const cfg = d.webhooks.get(topic) ?? DEFAULT_WEBHOOK_TOPIC;
  const signed = Boolean(cfg.secret);
  // A signed topic is authenticated by its signature; otherwise an API key (header or ?token=).
  if (!signed && d.auth) {
    const p = principal(d, c, true);
    if (p && !canPublish(p, topic)) throw new GatewayError('FORBIDDEN', { need: `publish:${topic}` });
  }
  const body = await readBody(c.req, d.limits.maxMsgSize, 'MSG_TOO_BIG');
  const now = d.wallNow();
  if (signed) verifySignature(cfg, c.req.headers, body, now);
  if (body.length === 0 && !cfg.envelope) throw new GatewayError('MSG_EMPTY');
  const json = body.length > 0 ? tryJson(body) : ({ ok: false } as const);
  if (d.schemas.topic(topic)) checkTopicSchema(d, topic, body, undefined);
  const ev = describeEvent(cfg, c.req.headers, json.ok ? json.value : undefined);
  const message = cfg.envelope ? envelope(ev, body, json.ok, now) : body;
  if (message.length > d.limits.maxMsgSize) throw new GatewayError('MSG_TOO_BIG', { limit: d.limits.maxMsgSize });
  // A redelivered event (same delivery id) is published once within the shard's window.
  const delivery = ev.delivery && IDEMPOTENCY_KEY.test(ev.delivery) && ev.delivery.length <= 180 ? `webhook:${ev.delivery}` : undefined;
  answer(c, topic, await d.publisher.publishOne(topic, { body: message, deferMs: 0, idempotencyKey: delivery }));
}

// ---- reads ----

export function listTopics(d: ApiDeps, c: Call): void {
  principal(d, c);
  const topics = [...d.topology.topics()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, shards]) => ({ name, shards: [...shards] }));
  sendJson(c.res, 200, { topics });
}

export function getTopic(d: ApiDeps, c: Call): void {
  principal(d, c);
  const topic = topicOf(c);
  const shards = d.topology.shardsOf(topic);
  if (shards.length === 0) throw new GatewayError('TOPIC_NOT_FOUND', { topic });
  sendJson(c.res, 200, { name: topic, shards: [...shards] });
}

export function listShards(d: ApiDeps, c: Call): void {
  const p = principal(d, c);
  if (p && !isAdmin(p)) throw new GatewayError('FORBIDDEN', { need: 'admin' });
  const byShard = new Map<string, string[]>(d.topology.nodes().map((n) => [n, []]));
  for (const [t, shards] of d.topology.topics()) for (const s of shards) byShard.get(s)?.push(t);
  const shards = [...byShard].map(([address, topics]) => ({ address, breaker: d.breakerState(address), topics: topics.sort() }));
  sendJson(c.res, 200, { shards });
}

/** Prometheus metrics (admin scope when auth is on). */
export async function metrics(d: ApiDeps, c: Call): Promise<void> {
  const p = principal(d, c);
  if (p && !isAdmin(p)) throw new GatewayError('FORBIDDEN', { need: 'admin' });
  const text = await d.metrics.metrics();
  c.res.writeHead(200, { 'Content-Type': d.metrics.contentType, 'Content-Length': Buffer.byteLength(text) });
  c.res.end(text);
}

export function healthz(_d: ApiDeps, c: Call): void {
  sendJson(c.res, 200, { status: 'ok' });
}

/** Ready when some shard is known and its breaker is not open (cached topology counts). */
export function readyz(d: ApiDeps, c: Call): void {
  const up = d.topology.nodes().filter((n) => d.breakerState(n) !== 'open').length;
  if (up === 0) throw new GatewayError('NO_SHARD', { shards: d.topology.nodes().length, lookups: d.topology.lookups() });
  sendJson(c.res, 200, { status: 'ready', shards: up, lookups: d.topology.lookups() });
}

export function openapi(d: ApiDeps, c: Call): void {
  c.res.writeHead(200, { 'Content-Type': 'application/yaml; charset=utf-8', 'Content-Length': Buffer.byteLength(d.openapi) });
  c.res.end(d.openapi);
}
