// The admin UI and its JSON API, as one Express router the gateway mounts: the static pages under
// /admin/, reads and actions under /v1/admin/, live updates over SSE, and a read-only passthrough
// to a known shard's own /stats, /info, /ping and /metrics. With auth on, reading under /v1/admin
// needs the `stats` or `admin` scope and every action (POST) the `admin` scope; actions also refuse
// cross-origin browser requests.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import express, { NextFunction, Request, Response, Router } from 'express';
import type { Logger } from '../../runtime/logger';
import { isValidName } from '../../wire/names';
import { Auth, canReadStats, isAdmin } from '../auth';
import { GatewayError, sendError, sendJson, toGatewayError } from '../errors';
import type { Topology } from '../topology';
import { Action, ActionContext, ActionResult, Actor, channelAction, TOPIC_ACTIONS, tombstone, topicAction } from './actions';
import { Aggregator, AggregatorOptions, DEFAULT_AGGREGATOR_OPTIONS } from './aggregator';
import { AdminHttp, AdminHttpOptions, CallError, DEFAULT_ADMIN_HTTP_OPTIONS, errorCode, json } from './shard-http';

export interface AdminOptions {
  http: AdminHttpOptions;
  aggregator: AggregatorOptions;
  placementCount: number;
  /** Most simultaneous live viewers (SSE streams) per gateway. */
  maxViewers: number;
}

export const DEFAULT_ADMIN_OPTIONS: AdminOptions = { http: DEFAULT_ADMIN_HTTP_OPTIONS, aggregator: DEFAULT_AGGREGATOR_OPTIONS, placementCount: 2, maxViewers: 200 };

export interface AdminDeps {
  topology: Topology;
  auth: Auth | null;
  logger: Logger;
  /** The publisher's breaker for a shard is open. */
  publishBreakerOpen(address: string): boolean;
  /** Folder of index.html, admin.js, admin.css. */
  uiDir: string;
}

export interface Admin {
  router: Router;
  aggregator: Aggregator;
  close(): Promise<void>;
}

/** The shard endpoints the passthrough forwards (GET only). */
export const PASSTHROUGH = new Set(['stats', 'info', 'ping', 'metrics']);

const LOCAL_HOST = /^(localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\])(:\d+)?$/;

function fail(res: Response, err: unknown, logger: Logger): void {
  if (!(err instanceof GatewayError)) logger.error('admin request failed', { error: err instanceof Error ? err.stack : String(err) });
  sendError(res, toGatewayError(err));
}

const UI_FILES: Record<string, string> = { '': 'index.html', 'index.html': 'index.html', 'admin.js': 'admin.js', 'admin.css': 'admin.css' };
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export function createAdmin(options: Partial<AdminOptions>, deps: AdminDeps): Admin {
  const opts: AdminOptions = { ...DEFAULT_ADMIN_OPTIONS, ...options };
  const { topology, auth, logger } = deps;
  const http = new AdminHttp(opts.http, logger, deps.publishBreakerOpen);
  const aggregator = new Aggregator(topology, http, opts.aggregator, logger);
  // Audit records are the gateway's own log lines marked `audit: true` (one stream to collect).
  const ctx: ActionContext = { topology, http, aggregator, audit: logger, placementCount: opts.placementCount };
  const ui = new Map(Object.entries(UI_FILES).map(([k, f]) => [k, { type: TYPES[path.extname(f)], body: readFileSync(path.join(deps.uiDir, f)) }]));

  const router = express.Router();
  const streams = new Set<Response>();

  // ---- the pages (open: they hold no data; the API they call needs the key) ----
  // Express routing is not strict: '/admin' also matches '/admin/', so the path decides.
  router.get('/admin', (req, res, next) => (req.path.endsWith('/') ? serveUi('', res, next) : res.redirect(302, '/admin/')));
  router.get('/admin/:file', (req, res, next) => serveUi(String(req.params.file), res, next));
  function serveUi(name: string, res: Response, next: NextFunction): void {
    const f = ui.get(name);
    if (!f) return next();
    res.writeHead(200, { 'Content-Type': f.type, 'Content-Length': f.body.length, 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-cache' });
    res.end(f.body);
  }

  // ---- the API ----
  const actor = (req: Request): Actor => {
    const remote = req.socket.remoteAddress ?? '';
    if (!auth) {
      // An open gateway answers only to an IP literal or localhost: a web page that rebinds its own
      // domain name to 127.0.0.1 (DNS rebinding) sends that name as Host and is refused.
      if (!LOCAL_HOST.test(req.headers.host ?? '')) throw new GatewayError('FORBIDDEN', { reason: 'without --auth-file the admin API answers only to an IP address or localhost' });
      return { who: 'anonymous', remote };
    }
    const p = auth.authenticate(req.headers.authorization);
    // reads (GET) are open to the read-only `stats` scope; everything else changes the cluster
    const read = req.method === 'GET' || req.method === 'HEAD';
    if (read ? !canReadStats(p) : !isAdmin(p)) throw new GatewayError('FORBIDDEN', { need: read ? 'stats' : 'admin' });
    return { who: p.name, remote };
  };
  type H = (req: Request, res: Response, who: Actor) => Promise<void> | void;
  const handle = (h: H) => async (req: Request, res: Response) => {
    try {
      await h(req, res, actor(req));
    } catch (err) {
      fail(res, err, logger);
    }
  };
  const topicParam = (req: Request): string => {
    const t = String(req.params.topic);
    if (!isValidName(t)) throw new GatewayError('INVALID_TOPIC', { topic: t });
    return t;
  };
  const channelParam = (req: Request): string => {
    const c = String(req.params.channel);
    if (!isValidName(c)) throw new GatewayError('INVALID_CHANNEL', { channel: c });
    return c;
  };
  const knownShard = (s: unknown): string => {
    if (typeof s !== 'string' || !topology.nodes().includes(s)) throw new GatewayError('SHARD_NOT_FOUND', { shard: String(s) });
    return s;
  };
  // Browsers send Origin on cross-origin POSTs: an open gateway must not be steerable from another site.
  const sameOrigin = (req: Request): void => {
    const origin = req.headers.origin;
    if (origin === undefined) return;
    let host = '';
    try {
      host = new URL(origin).host;
    } catch {
      /* "null" or garbage: refused below */
    }
    if (host === '' || host !== req.headers.host) throw new GatewayError('FORBIDDEN', { reason: 'cross-origin admin action' });
  };
  const answerAction = (res: Response, r: ActionResult) => {
    if (r.result === 'ok') return sendJson(res, 200, r);
    if (r.result === 'not_found') {
      if (r.action === 'topic.create') throw new GatewayError('NO_SHARD', { topic: r.topic });
      if (r.channel !== undefined && r.action !== 'channel.create') throw new GatewayError('CHANNEL_NOT_FOUND', { topic: r.topic, channel: r.channel });
      throw new GatewayError('TOPIC_NOT_FOUND', { topic: r.topic });
    }
    throw new GatewayError('ACTION_FAILED', { ...r });
  };
  const actionParam = (req: Request): Action => {
    const a = String(req.params.action);
    if (!(TOPIC_ACTIONS as readonly string[]).includes(a)) throw new GatewayError('NOT_FOUND', { path: req.path });
    return a as Action;
  };

  router.get('/v1/admin/cluster', handle(async (_req, res) => {
    const s = await aggregator.collect();
    sendJson(res, 200, { ...s, lookups: topology.lookups(), interval_ms: opts.aggregator.intervalMs });
  }));
  router.get('/v1/admin/topics', handle(async (_req, res) => {
    const s = await aggregator.collect();
    sendJson(res, 200, { at: s.at, topics: s.topics, shards: s.shards });
  }));
  router.get('/v1/admin/topics/:topic', handle(async (req, res) => {
    const topic = topicParam(req);
    const s = await aggregator.collect({ topic });
    const t = s.topics.find((x) => x.name === topic);
    if (!t) throw new GatewayError('TOPIC_NOT_FOUND', { topic, shards: s.shards });
    sendJson(res, 200, { at: s.at, topic: t, shards: s.shards });
  }));
  router.get('/v1/admin/topics/:topic/channels/:channel', handle(async (req, res) => {
    const topic = topicParam(req);
    const channel = channelParam(req);
    const s = await aggregator.collect({ topic, channel, includeClients: true });
    const c = s.topics.find((x) => x.name === topic)?.channels.find((x) => x.name === channel);
    if (!c) throw new GatewayError('CHANNEL_NOT_FOUND', { topic, channel });
    sendJson(res, 200, { at: s.at, topic, channel: c, shards: s.shards });
  }));
  router.get('/v1/admin/shards', handle(async (_req, res) => {
    const shards = await Promise.all(topology.nodes().map(describeShard));
    sendJson(res, 200, { shards });
  }));
  router.get('/v1/admin/lookups', handle(async (_req, res) => {
    const lookups = await Promise.all(Object.entries(topology.lookups()).map(([address, polled]) => describeLookup(address, polled)));
    sendJson(res, 200, { lookups });
  }));
  router.get('/v1/admin/events', handle((req, res) => liveStream(req, res)));

  router.post('/v1/admin/topics/:topic/channels/:channel/:action', handle(async (req, res, who) => {
    sameOrigin(req);
    answerAction(res, await channelAction(ctx, who, topicParam(req), channelParam(req), actionParam(req)));
  }));
  router.post('/v1/admin/topics/:topic/tombstone', handle(async (req, res, who) => {
    sameOrigin(req);
    const topic = topicParam(req);
    const shard = knownShard(req.query.shard);
    answerAction(res, await tombstone(ctx, who, topic, shard));
  }));
  router.post('/v1/admin/topics/:topic/:action', handle(async (req, res, who) => {
    sameOrigin(req);
    answerAction(res, await topicAction(ctx, who, topicParam(req), actionParam(req)));
  }));

  // ---- read-only passthrough to a known shard's own API, for tools that expect nsqd ----
  router.get('/v1/admin/shards/:shard/:endpoint', handle(async (req, res) => {
    const shard = knownShard(req.params.shard);
    const endpoint = String(req.params.endpoint);
    if (!PASSTHROUGH.has(endpoint)) throw new GatewayError('NOT_FOUND', { path: req.path, allowed: [...PASSTHROUGH] });
    const q = req.url.indexOf('?');
    let answer;
    try {
      answer = await http.shard(shard, 'GET', '/' + endpoint + (q === -1 ? '' : req.url.slice(q)));
    } catch (err) {
      if (!(err instanceof CallError) || !err.answer) throw new GatewayError('SHARD_UNAVAILABLE', { shard, reason: errorCode(err) });
      answer = err.answer;
    }
    res.writeHead(answer.status, { 'Content-Type': answer.contentType, 'Content-Length': answer.body.length, 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' });
    res.end(answer.body);
  }));

  for (const p of ['/v1/admin/topics/:topic/:action', '/v1/admin/topics/:topic/channels/:channel/:action']) {
    router.all(p, (req, res, next) => (req.method === 'GET' ? next() : fail(res, new GatewayError('METHOD_NOT_ALLOWED', { allow: 'POST' }), logger)));
  }

  async function describeShard(address: string): Promise<Record<string, unknown>> {
    const started = performance.now();
    const [info, stats] = await Promise.allSettled([http.shard(address, 'GET', '/info'), http.shard(address, 'GET', '/stats?format=json&include_clients=false')]);
    const out: Record<string, unknown> = { address, breaker: http.breaker(address), ok: info.status === 'fulfilled' && stats.status === 'fulfilled' };
    if (info.status === 'fulfilled') {
      const i = json(info.value) as Record<string, unknown>;
      Object.assign(out, { version: i.version, hostname: i.hostname, tcp_port: i.tcp_port, http_port: i.http_port, start_time: i.start_time, sluice: i.sluice ?? null });
      if (typeof i.start_time === 'number') out.uptime_s = Math.max(0, Math.floor(Date.now() / 1000 - i.start_time));
    } else out.error = errorCode(info.reason);
    if (stats.status === 'fulfilled') {
      const s = json(stats.value) as { health?: unknown; topics?: unknown[] };
      out.health = s.health;
      out.topic_count = Array.isArray(s.topics) ? s.topics.length : 0;
    } else out.error ??= errorCode(stats.reason);
    out.ms = Math.round(performance.now() - started);
    return out;
  }

  async function describeLookup(address: string, polled: boolean): Promise<Record<string, unknown>> {
    const [info, nodes] = await Promise.allSettled([http.lookup(address, 'GET', '/info'), http.lookup(address, 'GET', '/nodes')]);
    const out: Record<string, unknown> = { address, ok: info.status === 'fulfilled', last_poll_ok: polled };
    if (info.status === 'fulfilled') out.version = (json(info.value) as { version?: unknown }).version;
    else out.error = errorCode(info.reason);
    if (nodes.status === 'fulfilled') {
      const producers = (json(nodes.value) as { producers?: unknown }).producers;
      out.nodes = Array.isArray(producers) ? producers.length : 0;
    }
    return out;
  }

  function liveStream(req: Request, res: Response): void {
    if (aggregator.viewerCount >= opts.maxViewers) throw new GatewayError('TOO_MANY_VIEWERS', { max: opts.maxViewers });
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', Connection: 'keep-alive' });
    res.flushHeaders();
    const send = (event: string, data: unknown) => {
      // A viewer that cannot keep up skips snapshots (each one is complete) instead of buffering them.
      if (res.writableLength > 1024 * 1024) return;
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    res.write('retry: 2000\n\n');
    send('hello', { interval_ms: opts.aggregator.intervalMs, history: aggregator.history.toJSON(), snapshot: aggregator.latest, lookups: topology.lookups() });
    const unwatch = aggregator.watch((_e, s) => send('snapshot', { ...s, lookups: topology.lookups() }));
    const stop = () => {
      unwatch();
      streams.delete(res);
    };
    streams.add(res);
    req.on('close', stop);
    res.on('error', stop);
  }

  return {
    router,
    aggregator,
    async close() {
      for (const res of streams) res.end();
      streams.clear();
      aggregator.close();
      await http.close();
    },
  };
}
