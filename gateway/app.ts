// createGateway(opts, deps): the gateway as a library. Returns the Express app (mount it anywhere),
// a plain request handler that serves the publish endpoints without Express's per-request cost
// and hands everything else to the app, and start()/close(). It listens only in start().

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import express, { Express, NextFunction, Request, Response } from 'express';
import { parseHostPort } from '../runtime/config';
import { Logger, silentLogger } from '../runtime/logger';
import * as api from './api';
import { Auth } from './auth';
import { GatewayError, sendError } from './errors';
import { DEFAULT_PUBLISHER_OPTIONS, Publisher, PublisherOptions } from './publish';
import { projectRoot, Schemas } from './schemas';
import { DEFAULT_SHARD_CLIENT_OPTIONS, ShardClient, ShardClientOptions } from './shards';
import { FetchNodes, Topology } from './topology';
import { loadWebhookConfig, WebhookTopic } from './webhooks';
import { createGatewayMetrics } from './metrics';
import { HttpRequestCounts } from './http-metrics';
import { createAdmin, DEFAULT_ADMIN_OPTIONS } from './admin/router';
import { Consumption, ConsumeOptions, DEFAULT_CONSUME_OPTIONS } from './consume';
import { consumeRouter, createConsumeApi } from './consume-api';
import { Cors } from './cors';
import { HttpLeaseClient, LeaseClient } from './lease-client';
import { registerConsumeMetrics } from './consume-metrics';
import { totalCounter } from '../runtime/metrics';
import { httpServerOptions, type HttpTimeouts } from '../runtime/http-server';
import { KeyLimitOptions, KeyLimits } from './key-limits';
import { ConsumerReporter, DEFAULT_CONSUMER_REPORT_OPTIONS, httpReportSender } from './consumer-report';

export interface GatewayOptions {
  /** host:port for start() to listen on; '' = do not listen (embedded use). */
  httpAddress: string;
  lookupdHttpAddresses: string[];
  shardHttpAddresses: string[];
  lookupdPollIntervalMs: number;
  topicSchemas: string;
  authFile: string;
  webhookConfig: string;
  maxMsgSize: number;
  maxBodySize: number;
  maxDeferMs: number;
  /** Log every request at debug level (costs throughput). */
  logRequests: boolean;
  shard: ShardClientOptions;
  publisher: PublisherOptions;
  /** Consuming over HTTP (long-poll, SSE, receipts); off without receipt secrets. */
  consume: Partial<ConsumeOptions>;
  /** Browser origins allowed to call this gateway (exact scheme://host[:port]). */
  corsOrigins: string[];
  /** Header and request deadlines of the listening server (slowloris guard); defaults when absent. */
  httpTimeouts?: Partial<HttpTimeouts>;
  /** Per-key limits (--rate-limit, --rate-burst, --key-concurrency), a budget each for publishes, consuming and receipts; off when absent. */
  keyLimits?: KeyLimitOptions;
  /** This gateway's name in its consumer reports to the shards; '' = hostname:port. */
  gatewayId: string;
  /** How often the shards are told about this gateway's HTTP consumers; 0 = never. */
  consumerReportIntervalMs: number;
  /** Most admin pages following the live view (/v1/admin/events) at once. */
  adminMaxViewers: number;
}

export const DEFAULT_GATEWAY_OPTIONS: GatewayOptions = {
  httpAddress: '',
  lookupdHttpAddresses: [],
  shardHttpAddresses: [],
  lookupdPollIntervalMs: 5000,
  topicSchemas: '',
  authFile: '',
  webhookConfig: '',
  maxMsgSize: 1024 * 1024,
  maxBodySize: 5 * 1024 * 1024,
  maxDeferMs: 60 * 60_000,
  logRequests: false,
  shard: DEFAULT_SHARD_CLIENT_OPTIONS,
  publisher: DEFAULT_PUBLISHER_OPTIONS,
  consume: {},
  corsOrigins: [],
  gatewayId: '',
  consumerReportIntervalMs: DEFAULT_CONSUMER_REPORT_OPTIONS.intervalMs,
  adminMaxViewers: DEFAULT_ADMIN_OPTIONS.maxViewers,
};

export interface GatewayDeps {
  logger?: Logger;
  /** Replaces the lookup HTTP client (tests). */
  fetchNodes?: FetchNodes;
  /** Wall clock (webhook timestamps). */
  wallNow?: () => number;
  env?: NodeJS.ProcessEnv;
  /** Pre-built pieces (tests): an Auth or webhook table instead of the files. */
  auth?: Auth | null;
  webhooks?: Map<string, WebhookTopic>;
  /** Include Node's process metrics in /metrics (default true). */
  processMetrics?: boolean;
  /** Replaces the lease API client of a shard (tests). */
  leaseClient?: (address: string) => LeaseClient;
}

export interface Gateway {
  app: Express;
  /** node:http request listener: the publish endpoints directly, everything else through `app`. */
  handler: http.RequestListener;
  topology: Topology;
  publisher: Publisher;
  consume: Consumption;
  /** Polls the lookups once (waits for it), then keeps polling; listens if httpAddress is set. */
  start(): Promise<{ http: string }>;
  close(): Promise<void>;
}

type Handler = (d: api.ApiDeps, c: api.Call) => Promise<void> | void;

function rawQueryOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? '' : url.slice(q + 1);
}

export function createGateway(options: Partial<GatewayOptions> = {}, deps: GatewayDeps = {}): Gateway {
  const opts: GatewayOptions = { ...DEFAULT_GATEWAY_OPTIONS, ...options };
  const logger = deps.logger ?? silentLogger();
  const root = projectRoot();
  const schemas = new Schemas(root, opts.topicSchemas);
  const auth = deps.auth !== undefined ? deps.auth : opts.authFile ? Auth.fromFile(opts.authFile, schemas.authFile) : null;
  const webhooks = deps.webhooks ?? (opts.webhookConfig ? loadWebhookConfig(opts.webhookConfig, schemas.webhookConfig, deps.env ?? process.env) : new Map());

  const topology = new Topology(
    { lookups: opts.lookupdHttpAddresses, staticShards: opts.shardHttpAddresses, pollIntervalMs: opts.lookupdPollIntervalMs, timeoutMs: Math.min(2000, opts.lookupdPollIntervalMs) },
    logger,
    deps.fetchNodes,
  );
  const clients = new Map<string, ShardClient>();
  const shardPool = {
    get(address: string): ShardClient {
      let c = clients.get(address);
      if (!c) clients.set(address, (c = new ShardClient(address, opts.shard, logger)));
      return c;
    },
    isUnavailable: (address: string) => clients.get(address)?.state === 'open',
  };
  // Clients (and their breakers) outlive a shard's absence from the lookups: one that comes back
  // at the same address finds its breaker where it left it. They are closed with the gateway.
  const publisher = new Publisher(topology, shardPool, { ...DEFAULT_PUBLISHER_OPTIONS, ...opts.publisher }, logger);
  const breakerState = (a: string) => clients.get(a)?.state ?? 'closed';
  const leaseClients = new Map<string, LeaseClient>();
  const consume = new Consumption(
    { ...DEFAULT_CONSUME_OPTIONS, placementCount: opts.publisher.placementCount, ...opts.consume },
    {
      topology,
      logger,
      clientFor(address: string): LeaseClient {
        let c = leaseClients.get(address);
        if (!c) leaseClients.set(address, (c = deps.leaseClient?.(address) ?? new HttpLeaseClient(address, { connections: opts.shard.connections, timeoutMs: opts.shard.timeoutMs })));
        return c;
      },
    },
  );
  const cors = new Cors(opts.corsOrigins);
  const requests = new HttpRequestCounts();
  const metrics = createGatewayMetrics({ publisher, topology, breakerState, requests }, deps.processMetrics ?? true);
  registerConsumeMetrics(metrics, consume);
  const d: api.ApiDeps = {
    limits: { maxMsgSize: opts.maxMsgSize, maxBodySize: opts.maxBodySize, maxDeferMs: opts.maxDeferMs },
    logRequests: opts.logRequests,
    publisher,
    topology,
    breakerState,
    metrics,
    schemas,
    auth,
    webhooks,
    logger,
    wallNow: deps.wallNow ?? Date.now,
    openapi: readFileSync(path.join(root, 'openapi.yaml'), 'utf8'),
    keyLimits: opts.keyLimits ? new KeyLimits(opts.keyLimits) : null,
  };

  // ---- the Express app: every endpoint, for library use and for all but the publish paths ----
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Request metrics for library use of the app; the front handler has already started this one's clock.
  app.use((req: Request, res: Response, next: NextFunction) => {
    requests.track(req, res);
    next();
  });
  const admin = createAdmin({ placementCount: opts.publisher.placementCount, maxViewers: opts.adminMaxViewers }, { topology, auth, logger, publishBreakerOpen: shardPool.isUnavailable, uiDir: path.join(root, 'gateway', 'admin', 'ui') });
  app.use(admin.router);
  if (cors.enabled) app.use((req: Request, res: Response, next: NextFunction) => (cors.handle(req, res) ? undefined : next()));
  const serveConsume = consumeRouter(d, createConsumeApi(root, consume));
  app.use((req: Request, res: Response, next: NextFunction) => (serveConsume(req, res) ? undefined : next()));
  const route = (h: Handler) => (req: Request, res: Response) => {
    const topic = typeof req.params.topic === 'string' ? req.params.topic : '';
    api.run(d, { req, res, topic, rawQuery: rawQueryOf(req.url) }, h);
  };
  const routes: [string, Partial<Record<'get' | 'post', Handler>>][] = [
    ['/healthz', { get: api.healthz }],
    ['/readyz', { get: api.readyz }],
    ['/openapi.yaml', { get: api.openapi }],
    ['/v1/topics', { get: api.listTopics }],
    ['/v1/topics/:topic', { get: api.getTopic }],
    ['/v1/topics/:topic/messages', { post: api.publishOne }],
    ['/v1/topics/:topic/batch', { post: api.publishBatch }],
    ['/v1/webhooks/:topic', { post: api.webhook }],
    ['/v1/shards', { get: api.listShards }],
    ['/metrics', { get: api.metrics }],
  ];
  for (const [p, methods] of routes) {
    if (methods.get) app.get(p, route(methods.get));
    if (methods.post) app.post(p, route(methods.post));
    const allow = Object.keys(methods).map((m) => m.toUpperCase()).join(', ');
    app.all(p, (req: Request, res: Response) => {
      res.setHeader('Allow', allow);
      req.resume();
      sendError(res, new GatewayError('METHOD_NOT_ALLOWED', { allow }), req.complete);
    });
  }
  app.use((req: Request, res: Response) => {
    req.resume();
    sendError(res, new GatewayError('NOT_FOUND', { path: req.path }), req.complete);
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = (err as { status?: number })?.status;
    const e = status === 400 ? new GatewayError('INVALID_BODY', { reason: 'malformed request' }) : new GatewayError('INTERNAL');
    if (e.code === 'INTERNAL') logger.error('request failed', { path: req.url, error: err instanceof Error ? err.stack : String(err) });
    sendError(res, e, req.complete);
  });

  // ---- the front router: publish paths straight to their handlers ----
  const handler: http.RequestListener = (req, res) => {
    requests.track(req, res);
    if (cors.enabled && cors.handle(req, res)) return;
    if (req.method === 'POST') {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const p = q === -1 ? url : url.slice(0, q);
      let h: Handler | undefined;
      let seg = '';
      if (p.startsWith('/v1/topics/')) {
        const slash = p.indexOf('/', 11);
        if (slash !== -1) {
          const tail = p.slice(slash + 1);
          h = tail === 'messages' ? api.publishOne : tail === 'batch' ? api.publishBatch : undefined;
          seg = p.slice(11, slash);
        }
      } else if (p.startsWith('/v1/webhooks/') && p.indexOf('/', 13) === -1) {
        h = api.webhook;
        seg = p.slice(13);
      }
      if (h !== undefined && seg !== '') {
        let topic = seg;
        if (seg.includes('%')) {
          try {
            topic = decodeURIComponent(seg);
          } catch {
            topic = '\u0000';
          }
        }
        api.run(d, { req, res, topic, rawQuery: q === -1 ? '' : url.slice(q + 1) }, h);
        return;
      }
    }
    if (serveConsume(req, res)) return;
    app(req, res);
  };

  // The shards learn this gateway's SSE streams and long-polls from its reports (for the admin).
  const identity = { id: opts.gatewayId, address: '' };
  const reportSender = httpReportSender(Math.min(DEFAULT_CONSUMER_REPORT_OPTIONS.timeoutMs, opts.shard.timeoutMs));
  const reporter = new ConsumerReporter(
    { ...DEFAULT_CONSUMER_REPORT_OPTIONS, intervalMs: opts.consumerReportIntervalMs },
    { groups: () => consume.activeGroups(), shards: () => topology.nodes(), identity: () => identity, send: reportSender.send, logger },
  );
  totalCounter(metrics, 'sluice_gateway_consumer_reports_total', 'Consumer reports sent to shards, full (all channels) or changes only', () => reporter.counts.full + reporter.counts.delta);
  totalCounter(metrics, 'sluice_gateway_consumer_report_failures_total', 'Consumer reports a shard did not take (unreachable, or refused)', () => reporter.counts.failed);
  const startReports = (host: string, port: number) => {
    if (!consume.enabled) return;
    const named = host === '0.0.0.0' || host === '::' || host === '' ? os.hostname() : host.includes(':') ? `[${host}]` : host;
    identity.address = port > 0 ? `${named}:${port}` : '';
    identity.id ||= `${os.hostname()}:${port > 0 ? port : `pid${process.pid}`}`;
    reporter.start();
  };

  let server: http.Server | undefined;
  return {
    app,
    handler,
    topology,
    publisher,
    consume,
    async start() {
      await topology.start();
      consume.start();
      if (!opts.httpAddress) {
        startReports('', 0);
        return { http: '' };
      }
      const { host, port } = parseHostPort(opts.httpAddress);
      const s = http.createServer(httpServerOptions(65_000, opts.httpTimeouts), handler);
      server = s;
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        // A deep accept queue: thousands of EventSource clients may (re)connect at once.
        s.listen({ port, host, backlog: 4096 }, () => {
          s.off('error', reject);
          resolve();
        });
      });
      const addr = s.address() as AddressInfo;
      startReports(addr.address, addr.port);
      return { http: `${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}` };
    },
    async close() {
      // Streams end and every unacked message they hold is requeued before the sockets close.
      await consume.close();
      // The streams are gone: tell the shards to forget this gateway's consumers now, not after their TTL.
      await reporter.close();
      await reportSender.close();
      topology.stop();
      await admin.close();
      if (server) {
        const s = server;
        await new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeIdleConnections();
          // Keep-alive clients that never pause get a short grace period, then their sockets close.
          setTimeout(() => s.closeAllConnections(), 2000).unref();
        });
      }
      await Promise.all([...clients.values()].map((c) => c.close()));
      await Promise.all([...leaseClients.values()].map((c) => c.close()));
    },
  };
}
