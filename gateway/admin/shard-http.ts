// The admin side's HTTP client for shards and lookups: one small undici Pool per shard (apart from
// the publish pools, so a slow /stats never queues behind publishes) behind its own opossum
// breaker. Every call has a deadline that aborts it on the wire; a 4xx is the caller's fault and
// does not count against the shard. Shards whose breaker (this one or the publisher's) is open
// are not called at all.

import CircuitBreaker from 'opossum';
import { Pool, request } from 'undici';
import type { Logger } from '../../runtime/logger';

export interface HttpAnswer {
  status: number;
  contentType: string;
  body: Buffer;
}

/** A call that got no usable answer; `answer` is set when the shard did answer (a 5xx). */
export class CallError extends Error {
  constructor(readonly code: string, readonly answer?: HttpAnswer) {
    super(code);
  }
}

export interface AdminHttpOptions {
  timeoutMs: number;
  connections: number;
  resetMs: number;
  /** Largest answer read (a /stats with thousands of clients is a few MiB). */
  maxBytes: number;
}

export const DEFAULT_ADMIN_HTTP_OPTIONS: AdminHttpOptions = { timeoutMs: 1500, connections: 4, resetMs: 5000, maxBytes: 32 * 1024 * 1024 };

interface Req {
  method: 'GET' | 'POST';
  path: string;
}

function codeOf(err: unknown): string {
  if (err instanceof CallError) return err.code;
  const e = err as { code?: string; name?: string };
  if (e?.name === 'TimeoutError' || e?.code === 'UND_ERR_ABORTED' || e?.name === 'AbortError') return 'TIMEOUT';
  return e?.code ?? 'ERROR';
}

async function readAnswer(statusCode: number, headers: Record<string, string | string[] | undefined>, body: { arrayBuffer(): Promise<ArrayBuffer> }, maxBytes: number): Promise<HttpAnswer> {
  const len = Number(headers['content-length'] ?? 0);
  if (len > maxBytes) throw new CallError('ANSWER_TOO_BIG');
  const ct = headers['content-type'];
  return { status: statusCode, contentType: (Array.isArray(ct) ? ct[0] : ct) ?? 'application/octet-stream', body: Buffer.from(await body.arrayBuffer()) };
}

export class AdminShardClient {
  private readonly pool: Pool;
  private readonly breaker: CircuitBreaker<[Req], HttpAnswer>;

  constructor(readonly address: string, private readonly opts: AdminHttpOptions, logger: Logger) {
    this.pool = new Pool(`http://${address}`, { connections: opts.connections, keepAliveTimeout: 30_000, connectTimeout: opts.timeoutMs });
    this.breaker = new CircuitBreaker((r: Req) => this.send(r), {
      timeout: false,
      resetTimeout: opts.resetMs,
      errorThresholdPercentage: 50,
      volumeThreshold: 3,
      rollingCountTimeout: 10_000,
      errorFilter: (err) => err instanceof CallError && err.answer !== undefined && err.answer.status < 500,
      name: 'admin:' + address,
    });
    this.breaker.on('open', () => logger.warn('admin: shard breaker open', { shard: address }));
    this.breaker.on('failure', (err: unknown) => {
      if ((err as { code?: string })?.code === 'ECONNREFUSED' && !this.breaker.opened) this.breaker.open();
    });
  }

  get open(): boolean {
    return this.breaker.opened;
  }

  /** Resolves with a 2xx answer; anything else rejects with a CallError (its answer when there was one). */
  async call(method: 'GET' | 'POST', path: string): Promise<HttpAnswer> {
    try {
      return await this.breaker.fire({ method, path });
    } catch (err) {
      if (err instanceof CallError) throw err;
      throw new CallError(codeOf(err) === 'EOPENBREAKER' ? 'BREAKER_OPEN' : codeOf(err));
    }
  }

  private async send(r: Req): Promise<HttpAnswer> {
    let res;
    try {
      res = await this.pool.request({ method: r.method, path: r.path, signal: AbortSignal.timeout(this.opts.timeoutMs) });
    } catch (err) {
      throw new CallError(codeOf(err));
    }
    const answer = await readAnswer(res.statusCode, res.headers, res.body, this.opts.maxBytes);
    if (res.statusCode >= 300) throw new CallError('SHARD_HTTP_' + res.statusCode, answer);
    return answer;
  }

  async close(): Promise<void> {
    this.breaker.shutdown();
    await this.pool.close().catch(() => undefined);
  }
}

/** The admin clients of every shard seen, and the one-off calls to lookups. */
export class AdminHttp {
  private readonly clients = new Map<string, AdminShardClient>();

  constructor(
    readonly opts: AdminHttpOptions,
    private readonly logger: Logger,
    /** The publisher's breaker for a shard is open (it knows the shard is down). */
    private readonly publishBreakerOpen: (address: string) => boolean,
  ) {}

  client(address: string): AdminShardClient {
    let c = this.clients.get(address);
    if (!c) this.clients.set(address, (c = new AdminShardClient(address, this.opts, this.logger)));
    return c;
  }

  /** 'open' when either breaker is open: then the shard is not called. */
  breaker(address: string): 'open' | 'closed' {
    return this.publishBreakerOpen(address) || this.clients.get(address)?.open ? 'open' : 'closed';
  }

  shard(address: string, method: 'GET' | 'POST', path: string): Promise<HttpAnswer> {
    if (this.breaker(address) === 'open') return Promise.reject(new CallError('BREAKER_OPEN'));
    return this.client(address).call(method, path);
  }

  async lookup(address: string, method: 'GET' | 'POST', path: string): Promise<HttpAnswer> {
    const base = /^https?:\/\//.test(address) ? address.replace(/\/+$/, '') : `http://${address}`;
    let res;
    try {
      res = await request(base + path, { method, signal: AbortSignal.timeout(this.opts.timeoutMs) });
    } catch (err) {
      throw new CallError(codeOf(err));
    }
    const answer = await readAnswer(res.statusCode, res.headers, res.body, this.opts.maxBytes);
    if (res.statusCode >= 300) throw new CallError('LOOKUP_HTTP_' + res.statusCode, answer);
    return answer;
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close()));
  }
}

export function json(a: HttpAnswer): unknown {
  return JSON.parse(a.body.toString('utf8')) as unknown;
}

export function errorCode(err: unknown): string {
  return codeOf(err);
}
