// The lookup's HTTP API, byte-compatible with nsqlookupd v1.3 (its http.go behind julienschmidt/httprouter):
// same paths, methods, JSON shapes, error codes and headers, on bare node:http for speed.

import { httpServerOptions, type HttpTimeouts } from '../runtime/http-server';
import http from 'node:http';
import type { Logger } from '../runtime/logger';
import { isValidChannelName, isValidTopicName } from '../wire/names';
import { toGoJson } from '../wire/lookup-v1';
import type { Peer, Registry } from './registry';
import { listen } from './tcp';
import type { Registry as PromRegistry } from 'prom-client';

export interface HttpServerDeps {
  registry: Registry;
  version: string;
  logger: Logger;
  /** Prometheus registry served at GET /metrics (Sluice's addition; nsqlookupd has none). */
  metrics?: PromRegistry;
  timeouts?: Partial<HttpTimeouts>;
}

/** An error rendered as nsqlookupd's V1 responder does: `{"message":"CODE"}` with the status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(code);
  }
}

type Reply = { kind: 'json'; body: unknown } | { kind: 'empty' } | { kind: 'text'; body: string };

/** Request parameters, parsed lazily: only handlers that read them can fail with INVALID_REQUEST. */
class Params {
  private values: Map<string, string[]> | null = null;
  constructor(private readonly rawQuery: string) {}

  /** The first value, '' for `?topic=`, undefined when the key is absent (Go's url.Values semantics). */
  get(key: string): string | undefined {
    if (this.values === null) {
      const parsed = parseGoQuery(this.rawQuery);
      if (parsed === null) throw new HttpError(400, 'INVALID_REQUEST');
      this.values = parsed;
    }
    return this.values.get(key)?.[0];
  }

  require(key: string, missingCode: string): string {
    const value = this.get(key);
    if (value === undefined) throw new HttpError(400, missingCode);
    return value;
  }

  /** nsqd's GetTopicChannelArgs: both present and valid, checked in this order. */
  topicChannel(): { topic: string; channel: string } {
    const topic = this.require('topic', 'MISSING_ARG_TOPIC');
    if (!isValidTopicName(topic)) throw new HttpError(400, 'INVALID_ARG_TOPIC');
    const channel = this.require('channel', 'MISSING_ARG_CHANNEL');
    if (!isValidChannelName(channel)) throw new HttpError(400, 'INVALID_ARG_CHANNEL');
    return { topic, channel };
  }
}

type Handler = (params: Params, deps: HttpServerDeps) => Reply;
interface Route {
  method: 'GET' | 'POST';
  handle: Handler;
}

const EMPTY: Reply = { kind: 'empty' };
const json = (body: unknown): Reply => ({ kind: 'json', body });

/** PeerInfo's JSON field order in nsqlookupd. */
function producerJson(p: Peer): Record<string, string | number> {
  return {
    remote_address: p.remoteAddress,
    hostname: p.hostname,
    broadcast_address: p.broadcastAddress,
    tcp_port: p.tcpPort,
    http_port: p.httpPort,
    version: p.version,
  };
}

function lookupTopic(params: Params, { registry }: HttpServerDeps): Reply {
  // No name validation here: an invalid name simply is not found.
  const found = registry.lookup(params.require('topic', 'MISSING_ARG_TOPIC'));
  if (found === null) throw new HttpError(404, 'TOPIC_NOT_FOUND');
  return json({ channels: found.channels, producers: found.producers.map(producerJson) });
}

function listNodes(_params: Params, { registry }: HttpServerDeps): Reply {
  const producers = registry.nodes().map((n) => ({ ...producerJson(n.peer), tombstones: n.tombstones, topics: n.topics }));
  return json({ producers });
}

function createTopic(params: Params, { registry }: HttpServerDeps): Reply {
  const topic = params.require('topic', 'MISSING_ARG_TOPIC');
  if (!isValidTopicName(topic)) throw new HttpError(400, 'INVALID_ARG_TOPIC');
  registry.createTopic(topic);
  return EMPTY;
}

/** Like nsqlookupd, deleting an unknown (or invalid) topic is not an error. */
function deleteTopic(params: Params, { registry }: HttpServerDeps): Reply {
  registry.deleteTopic(params.require('topic', 'MISSING_ARG_TOPIC'));
  return EMPTY;
}

function createChannel(params: Params, { registry }: HttpServerDeps): Reply {
  const { topic, channel } = params.topicChannel();
  registry.createChannel(topic, channel);
  return EMPTY;
}

function deleteChannel(params: Params, { registry }: HttpServerDeps): Reply {
  const { topic, channel } = params.topicChannel();
  if (!registry.deleteChannel(topic, channel)) throw new HttpError(404, 'CHANNEL_NOT_FOUND');
  return EMPTY;
}

function tombstoneProducer(params: Params, { registry, logger }: HttpServerDeps): Reply {
  const topic = params.require('topic', 'MISSING_ARG_TOPIC');
  const node = params.require('node', 'MISSING_ARG_NODE');
  // node is "broadcast_address:http_port"; an unknown one is not an error in nsqlookupd.
  logger.info('tombstoning producer', { topic, node, matched: registry.tombstone(topic, node) });
  return EMPTY;
}

// The legacy GET endpoints (/create_topic, /tombstone_topic_producer, …) were removed in nsq 1.0.0-compat.
const ROUTES = new Map<string, Route>([
  ['/ping', { method: 'GET', handle: () => ({ kind: 'text', body: 'OK' }) }],
  ['/info', { method: 'GET', handle: (_p, d) => json({ version: d.version }) }],
  ['/lookup', { method: 'GET', handle: lookupTopic }],
  ['/topics', { method: 'GET', handle: (_p, d) => json({ topics: d.registry.topics() }) }],
  ['/channels', { method: 'GET', handle: (p, d) => json({ channels: d.registry.channels(p.require('topic', 'MISSING_ARG_TOPIC')) }) }],
  ['/nodes', { method: 'GET', handle: listNodes }],
  ['/topic/create', { method: 'POST', handle: createTopic }],
  ['/topic/delete', { method: 'POST', handle: deleteTopic }],
  ['/channel/create', { method: 'POST', handle: createChannel }],
  ['/channel/delete', { method: 'POST', handle: deleteChannel }],
  ['/topic/tombstone', { method: 'POST', handle: tombstoneProducer }],
]);

const NSQ_HEADERS = { 'X-NSQ-Content-Type': 'nsq; version=1.0' };
const JSON_TYPE = 'application/json; charset=utf-8';

function send(res: http.ServerResponse, status: number, headers: http.OutgoingHttpHeaders, body: string): void {
  res.writeHead(status, { ...headers, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendReply(res: http.ServerResponse, reply: Reply): void {
  if (reply.kind === 'text') send(res, 200, { 'Content-Type': 'text/plain; charset=utf-8' }, reply.body);
  else if (reply.kind === 'empty') send(res, 200, NSQ_HEADERS, '');
  else send(res, 200, { 'Content-Type': JSON_TYPE, ...NSQ_HEADERS }, toGoJson(reply.body));
}

function sendError(res: http.ServerResponse, status: number, code: string, extra: http.OutgoingHttpHeaders = {}): void {
  send(res, status, { ...extra, 'Content-Type': JSON_TYPE, ...NSQ_HEADERS }, toGoJson({ message: code }));
}

/** The request handler, separate from listening so it can be driven directly. */
export function createHttpHandler(deps: HttpServerDeps): http.RequestListener {
  return (req, res) => {
    req.resume(); // nsqlookupd reads and ignores request bodies
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q === -1 ? url : url.slice(0, q);
    const rawQuery = q === -1 ? '' : url.slice(q + 1);
    const path = unescapeGo(rawPath, false);
    if (path === null) {
      // Go's server refuses a request whose path does not unescape before any handler runs.
      send(res, 400, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' }, '400 Bad Request');
      return;
    }
    if (path === '/metrics' && req.method === 'GET' && deps.metrics) {
      const prom = deps.metrics;
      prom.metrics().then(
        (text) => send(res, 200, { 'Content-Type': prom.contentType }, text),
        () => sendError(res, 500, 'INTERNAL_ERROR'),
      );
      return;
    }
    route(req.method ?? 'GET', path, rawQuery, res, deps);
  };
}

function route(method: string, path: string, rawQuery: string, res: http.ServerResponse, deps: HttpServerDeps): void {
  const found = ROUTES.get(path);
  if (found !== undefined && found.method === method) {
    runHandler(found, new Params(rawQuery), res, deps);
    return;
  }
  const redirect = redirectTarget(method, path);
  if (redirect !== null) {
    sendRedirect(res, method, redirect + (rawQuery ? `?${rawQuery}` : ''));
    return;
  }
  if (found === undefined) {
    sendError(res, 404, 'NOT_FOUND');
    return;
  }
  // httprouter answers OPTIONS itself and lists the other method plus OPTIONS on a 405.
  const allow = `${found.method}, OPTIONS`;
  if (method === 'OPTIONS') send(res, 200, { Allow: allow }, '');
  else sendError(res, 405, 'METHOD_NOT_ALLOWED', { Allow: allow });
}

function runHandler(found: Route, params: Params, res: http.ServerResponse, deps: HttpServerDeps): void {
  let reply: Reply;
  try {
    reply = found.handle(params, deps);
  } catch (err) {
    if (err instanceof HttpError) sendError(res, err.status, err.code);
    else {
      deps.logger.error('http handler failed', { error: err instanceof Error ? err.message : String(err) });
      sendError(res, 500, 'INTERNAL_ERROR');
    }
    return;
  }
  sendReply(res, reply);
}

/**
 * httprouter's RedirectTrailingSlash and RedirectFixedPath: a path that differs from a route of the
 * same method only by a trailing slash, case, or unclean segments is redirected (301 for GET, else 307).
 */
function redirectTarget(method: string, path: string): string | null {
  if (method === 'CONNECT' || path === '/') return null;
  let known = false;
  for (const [p, r] of ROUTES) {
    if (r.method !== method) continue;
    known = true;
    if (p === path.slice(0, -1) && path.endsWith('/')) return p;
  }
  if (!known) return null;
  const cleaned = cleanPath(path).toLowerCase();
  for (const [p, r] of ROUTES) {
    if (r.method === method && (p.toLowerCase() === cleaned || `${p.toLowerCase()}/` === cleaned)) return p;
  }
  return null;
}

function sendRedirect(res: http.ServerResponse, method: string, location: string): void {
  if (method !== 'GET') {
    res.writeHead(307, { Location: location, 'Content-Length': 0 });
    res.end();
    return;
  }
  // Go's http.Redirect writes a tiny HTML body for GET.
  const body = `<a href="${escapeHtml(location)}">Moved Permanently</a>.\n\n`;
  send(res, 301, { Location: location, 'Content-Type': 'text/html; charset=utf-8' }, body);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' })[c] ?? c);
}

/** httprouter's CleanPath: path.Clean that keeps a trailing slash and always starts with "/". */
export function cleanPath(p: string): string {
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  const cleaned = '/' + out.join('/');
  return p.endsWith('/') && cleaned !== '/' ? cleaned + '/' : cleaned;
}

/**
 * Go's url.ParseQuery: '&'-separated pairs, a ';' anywhere is an error, '+' is a space, and a bad
 * %-escape is an error. Returns null on any error (nsqlookupd's INVALID_REQUEST).
 */
export function parseGoQuery(raw: string): Map<string, string[]> | null {
  const values = new Map<string, string[]>();
  let ok = true;
  for (const part of raw.split('&')) {
    if (part === '') continue;
    if (part.includes(';')) {
      ok = false;
      continue;
    }
    const eq = part.indexOf('=');
    const key = unescapeGo(eq === -1 ? part : part.slice(0, eq), true);
    const value = unescapeGo(eq === -1 ? '' : part.slice(eq + 1), true);
    if (key === null || value === null) {
      ok = false;
      continue;
    }
    const list = values.get(key);
    if (list) list.push(value);
    else values.set(key, [value]);
  }
  return ok ? values : null;
}

const HEX = /^[0-9a-fA-F]{2}$/;

/** Go's url unescape: %XX to a byte (any byte, unlike decodeURIComponent), '+' to space in a query. */
export function unescapeGo(s: string, query: boolean): string | null {
  if (!s.includes('%') && !(query && s.includes('+'))) return s;
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === 0x25) {
      const hex = raw.toString('latin1', i + 1, i + 3);
      if (!HEX.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(query && c === 0x2b ? 0x20 : c);
  }
  return Buffer.from(bytes).toString('utf8');
}

export interface LookupHttpServer {
  start(host: string, port: number): Promise<{ host: string; port: number }>;
  close(): Promise<void>;
}

export function createHttpServer(deps: HttpServerDeps): LookupHttpServer {
  const server = http.createServer(httpServerOptions(5000, deps.timeouts), createHttpHandler(deps));
  return {
    start: (host, port) => listen(server, host, port),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
