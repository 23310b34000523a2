// Request rate and latency per route template, method and status for the gateway's /metrics.
// Each response adds to plain pre-allocated arrays when it closes (a route lookup, two clock
// reads, a few array increments); prom-client sees the totals only when /metrics is scraped.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Metric, Registry } from 'prom-client';

/**
 * Every route the gateway serves, as the OpenAPI path template; a test keeps this list, the
 * routers and openapi.yaml in step. A request whose path matches none is counted as UNMATCHED,
 * so arbitrary paths cannot grow the label set.
 */
export const ROUTE_TEMPLATES = [
  '/v1/topics/{topic}/messages',
  '/v1/topics/{topic}/batch',
  '/v1/webhooks/{topic}',
  '/v1/topics',
  '/v1/topics/{topic}',
  '/v1/topics/{topic}/channels/{channel}',
  '/v1/topics/{topic}/channels/{channel}/messages',
  '/v1/topics/{topic}/channels/{channel}/stream',
  '/v1/receipts/ack',
  '/v1/receipts/requeue',
  '/v1/receipts/touch',
  '/v1/shards',
  '/v1/admin/cluster',
  '/v1/admin/topics',
  '/v1/admin/topics/{topic}',
  '/v1/admin/topics/{topic}/{action}',
  '/v1/admin/topics/{topic}/tombstone',
  '/v1/admin/topics/{topic}/channels/{channel}',
  '/v1/admin/topics/{topic}/channels/{channel}/{action}',
  '/v1/admin/shards',
  '/v1/admin/shards/{shard}/{endpoint}',
  '/v1/admin/lookups',
  '/v1/admin/events',
  '/admin',
  '/admin/{file}',
  '/example',
  '/metrics',
  '/healthz',
  '/readyz',
  '/openapi.yaml',
] as const;

export const UNMATCHED = 'unmatched';

/** Routes whose 200 answer is a Server-Sent Events stream: its duration is not an API latency. */
const STREAM_ROUTES = new Set<string>(['/v1/topics/{topic}/channels/{channel}/stream', '/v1/admin/events']);

/** Upper bounds (seconds) for API answers; 30 s covers a long-poll that waits its longest. */
export const REQUEST_BUCKETS_S: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Upper bounds (seconds) for how long SSE streams stayed open. */
export const STREAM_BUCKETS_S: readonly number[] = [1, 10, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600];

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'other'] as const;
const M = METHODS.length;

function methodIndex(m: string | undefined): number {
  switch (m) {
    case 'GET': return 0;
    case 'HEAD': return 1;
    case 'POST': return 2;
    case 'PUT': return 3;
    case 'DELETE': return 4;
    case 'OPTIONS': return 5;
    case 'PATCH': return 6;
    default: return 7;
  }
}

/**
 * Exact status codes get a slot each as they are first seen, up to this many; later new codes
 * share one "other" slot. The gateway answers about 20 distinct codes, the shard passthrough
 * whatever the shard said, so this keeps codes exact while bounding the series.
 */
const MAX_STATUS_CODES = 31;
/** A client that went away before any answer was written (nginx's convention). */
export const CLIENT_CLOSED = 499;

interface Node {
  literal: Map<string, Node>;
  param: Node | null;
  route: number;
}

const newNode = (): Node => ({ literal: new Map(), param: null, route: -1 });

/** Route templates as a segment tree; literal segments win over parameters, as in OpenAPI. */
export class RouteTable {
  private readonly root = newNode();
  readonly templates: readonly string[];

  constructor(templates: readonly string[]) {
    this.templates = templates;
    templates.forEach((t, i) => {
      let n = this.root;
      for (const seg of t.split('/').slice(1)) {
        if (seg.startsWith('{')) n = n.param ??= newNode();
        else {
          let next = n.literal.get(seg);
          if (!next) n.literal.set(seg, (next = newNode()));
          n = next;
        }
      }
      n.route = i;
    });
  }

  /** Index of the template matching `url` (query ignored, one trailing slash ignored), or -1. */
  match(url: string): number {
    const q = url.indexOf('?');
    let p = q === -1 ? url : url.slice(0, q);
    if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
    if (p.charCodeAt(0) !== 47 /* / */) return -1;
    return walk(this.root, p.split('/'), 1);
  }
}

function walk(n: Node, segs: string[], i: number): number {
  if (i === segs.length) return n.route;
  const s = segs[i];
  if (s === '') return -1;
  const lit = n.literal.get(s);
  if (lit) {
    const r = walk(lit, segs, i + 1);
    if (r !== -1) return r;
  }
  return n.param ? walk(n.param, segs, i + 1) : -1;
}

// Per-response bookkeeping, on the response object itself so one shared listener can read it.
const STARTED = Symbol('sluice.http.started');
const SERIES = Symbol('sluice.http.series');
type Tracked = ServerResponse & { [STARTED]?: number; [SERIES]?: number };

/** Running totals of every answered request; `track()` is the only per-request call. */
export class HttpRequestCounts {
  readonly table: RouteTable;
  private readonly routes: number;
  /** Status code → slot (-1: none yet); slot MAX_STATUS_CODES is "other". */
  private readonly statusSlot = new Int8Array(600).fill(-1);
  readonly statusCodes: number[] = [];
  private readonly s = MAX_STATUS_CODES + 1;
  /** [series][status slot] where series = route * M + method; route `routes` is UNMATCHED. */
  readonly requests: Float64Array;
  readonly durations: Histograms;
  readonly streams: Histograms;
  private readonly streamRoute: Uint8Array;
  private readonly onClose: (this: Tracked) => void;

  constructor(templates: readonly string[] = ROUTE_TEMPLATES, private readonly now: () => number = () => performance.now()) {
    this.table = new RouteTable(templates);
    this.routes = templates.length;
    const series = (this.routes + 1) * M;
    this.requests = new Float64Array(series * this.s);
    this.durations = new Histograms(series, REQUEST_BUCKETS_S);
    this.streams = new Histograms(series, STREAM_BUCKETS_S);
    this.streamRoute = new Uint8Array(this.routes + 1);
    templates.forEach((t, i) => (this.streamRoute[i] = STREAM_ROUTES.has(t) ? 1 : 0));
    const counts = this;
    this.onClose = function (this: Tracked) {
      counts.record(this);
    };
  }

  /** Starts timing a request; counted once its response closes. A second call for the same response is ignored. */
  track(req: IncomingMessage, res: ServerResponse): void {
    const r = res as Tracked;
    if (r[STARTED] !== undefined) return;
    r[STARTED] = this.now();
    const route = this.table.match(req.url ?? '/');
    r[SERIES] = (route === -1 ? this.routes : route) * M + methodIndex(req.method);
    res.on('close', this.onClose);
  }

  private record(res: Tracked): void {
    const series = res[SERIES] as number;
    const seconds = (this.now() - (res[STARTED] as number)) / 1000;
    // Closed before any answer: the client left (a cut-short long-poll, a dropped connection).
    const status = res.headersSent ? res.statusCode : CLIENT_CLOSED;
    this.requests[series * this.s + this.slotOf(status)]++;
    const route = (series / M) | 0;
    if (status === 200 && this.streamRoute[route] === 1) this.streams.observe(series, seconds);
    else this.durations.observe(series, seconds);
  }

  private slotOf(status: number): number {
    if (status < 100 || status >= 600) return MAX_STATUS_CODES;
    let slot = this.statusSlot[status];
    if (slot === -1) {
      slot = this.statusCodes.length < MAX_STATUS_CODES ? this.statusCodes.push(status) - 1 : MAX_STATUS_CODES;
      this.statusSlot[status] = slot;
    }
    return slot;
  }

  /** Labels of a series index. */
  labels(series: number): { method: string; route: string } {
    const route = (series / M) | 0;
    return { method: METHODS[series % M], route: route === this.routes ? UNMATCHED : this.table.templates[route] };
  }

  /** Every (series, status, count) with a non-zero count. */
  *requestTotals(): Generator<[number, string, number]> {
    const s = this.s;
    for (let i = 0; i < this.requests.length; i++) {
      const v = this.requests[i];
      if (v === 0) continue;
      const slot = i % s;
      yield [(i / s) | 0, slot === MAX_STATUS_CODES ? 'other' : String(this.statusCodes[slot]), v];
    }
  }
}

/** Fixed-bucket histograms, one per series, in flat arrays. */
export class Histograms {
  readonly counts: Float64Array;
  readonly sums: Float64Array;
  readonly totals: Float64Array;
  private readonly width: number;

  constructor(series: number, readonly bounds: readonly number[]) {
    this.width = bounds.length + 1;
    this.counts = new Float64Array(series * this.width);
    this.sums = new Float64Array(series);
    this.totals = new Float64Array(series);
  }

  observe(series: number, seconds: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && seconds > b[i]) i++;
    this.counts[series * this.width + i]++;
    this.sums[series] += seconds > 0 ? seconds : 0;
    this.totals[series]++;
  }

  /** Cumulative bucket counts of one series (the last is +Inf). */
  cumulative(series: number): number[] {
    const out: number[] = new Array(this.width);
    let acc = 0;
    for (let i = 0; i < this.width; i++) out[i] = acc += this.counts[series * this.width + i];
    return out;
  }
}

type Value = { metricName?: string; labels: Record<string, string | number>; value: number };

/** A metric prom-client reads by calling get() at scrape time (no per-request prom-client work). */
function scraped(registry: Registry, name: string, help: string, type: 'counter' | 'histogram', values: () => Value[]): void {
  const metric = {
    name,
    help,
    type,
    reset() {},
    async get() {
      return { name, help, type, values: values(), aggregator: 'sum' };
    },
  };
  registry.registerMetric(metric as unknown as Metric);
}

function histogramValues(name: string, h: Histograms, labelsOf: (series: number) => Record<string, string>): Value[] {
  const out: Value[] = [];
  for (let series = 0; series < h.totals.length; series++) {
    if (h.totals[series] === 0) continue;
    const labels = labelsOf(series);
    h.cumulative(series).forEach((value, i) => out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: i < h.bounds.length ? h.bounds[i] : '+Inf' }, value }));
    out.push({ metricName: `${name}_sum`, labels, value: h.sums[series] });
    out.push({ metricName: `${name}_count`, labels, value: h.totals[series] });
  }
  return out;
}

export function registerHttpMetrics(registry: Registry, counts: HttpRequestCounts): void {
  scraped(registry, 'sluice_gateway_http_requests_total', 'HTTP requests answered, by route template, method and status (counted when the response closes; 499: the client left before any answer)', 'counter', () => {
    const out: Value[] = [];
    for (const [series, status, value] of counts.requestTotals()) out.push({ labels: { ...counts.labels(series), status }, value });
    return out;
  });
  const duration = 'sluice_gateway_http_request_duration_seconds';
  scraped(registry, duration, 'Time from request to response closed, by route template and method (SSE streams excluded: see sluice_gateway_http_stream_duration_seconds)', 'histogram', () =>
    histogramValues(duration, counts.durations, (s) => counts.labels(s)),
  );
  const stream = 'sluice_gateway_http_stream_duration_seconds';
  scraped(registry, stream, 'How long Server-Sent Events streams stayed open, by route template and method, observed when each ends', 'histogram', () =>
    histogramValues(stream, counts.streams, (s) => counts.labels(s)),
  );
}
