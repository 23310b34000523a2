// The HTTP side of the gateway clients: one undici Pool of keep-alive connections to one gateway,
// the API key sent as a Bearer header (never in a URL, so it cannot reach a log line), gateway
// error answers turned into GatewayCallError values, and the retry policy (pure) that every
// gateway call shares: 429 and 502/503/504 honour Retry-After, connection failures back off.

import { Pool } from 'undici';
import { exponentialDelay } from './backoff';
import { ClientError, errorText, GatewayCallError } from './errors';

export interface GatewayHttpOptions {
  /** Base URL of the gateway: http:// or https://, optionally with a path prefix. */
  url: string;
  /** API key, sent as `Authorization: Bearer <key>` ('' or undefined: none). */
  token?: string;
  /** Keep-alive connections to the gateway (default 8). */
  connections?: number;
  userAgent?: string;
}

export interface Answer {
  status: number;
  text: string;
}

/** Checks a gateway URL: http or https only, no credentials, query or fragment. Throws RangeError. */
export function parseGatewayUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RangeError(`invalid gateway URL "${text}" (want e.g. http://127.0.0.1:4180)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RangeError(`gateway URL must be http:// or https://, got "${url.protocol}"`);
  if (url.username || url.password) throw new RangeError('gateway URL may not carry credentials: use --gateway-token');
  if (url.search || url.hash) throw new RangeError('gateway URL may not have a query or fragment');
  return url;
}

/** A Retry-After value (seconds, or an HTTP date) as milliseconds from `nowMs`; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return null;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

const RETRY_STATUS = new Set([429, 502, 503, 504]);
/** The longest Retry-After honoured as given; a longer one is capped (a typo in a proxy should not stall us for hours). */
const MAX_RETRY_AFTER_MS = 60_000;

/** Whether retrying the same call may succeed: the gateway was busy or unreachable. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof GatewayCallError) return RETRY_STATUS.has(err.status);
  return err instanceof ClientError && (err.code === 'CONNECT_FAILED' || err.code === 'CONNECTION_CLOSED' || err.code === 'TIMEOUT');
}

/**
 * How long to wait before retry number `attempt` (1 = the first retry) after `err`, or null when
 * `err` is not worth retrying. Retry-After wins when the gateway sent one; otherwise the delay
 * doubles from `baseMs` up to `maxMs`, shortened at random by up to 30% so clients spread out.
 */
export function retryDelayMs(attempt: number, err: unknown, baseMs: number, maxMs: number, random: () => number = Math.random): number | null {
  if (!isRetryable(err)) return null;
  if (err instanceof GatewayCallError && err.retryAfterS !== null) return Math.min(err.retryAfterS * 1000, MAX_RETRY_AFTER_MS);
  return exponentialDelay(attempt, baseMs, maxMs, 0.3, random);
}

/** Network failure codes meaning nothing was sent (the connection never opened). */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

export class GatewayHttp {
  /** Base URL without a trailing slash (no credentials: it is safe to log). */
  readonly base: string;
  private readonly prefix: string;
  private readonly pool: Pool;
  private readonly headers: Record<string, string>;

  constructor(o: GatewayHttpOptions) {
    const url = parseGatewayUrl(o.url);
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.base = url.origin + this.prefix;
    this.pool = new Pool(url.origin, { connections: o.connections ?? 8, keepAliveTimeout: 30_000 });
    this.headers = { 'user-agent': o.userAgent ?? 'sluice-client' };
    if (o.token) this.headers.authorization = `Bearer ${o.token}`;
  }

  /**
   * One request. Resolves with a 2xx answer; throws GatewayCallError for an error answer,
   * ClientError CONNECT_FAILED (nothing was sent), CONNECTION_CLOSED (it may have been applied),
   * TIMEOUT, or CLOSED when `signal` aborted it.
   */
  async call(method: 'GET' | 'POST', path: string, o: { body?: string; contentType?: string; timeoutMs: number; signal?: AbortSignal }): Promise<Answer> {
    const headers = o.contentType ? { ...this.headers, 'content-type': o.contentType } : this.headers;
    let status: number;
    let retryAfter: string | string[] | undefined;
    let text: string;
    try {
      const res = await this.pool.request({ method, path: this.prefix + path, headers, body: o.body, signal: o.signal, headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs });
      status = res.statusCode;
      retryAfter = res.headers['retry-after'];
      text = await res.body.text();
    } catch (err) {
      if (o.signal?.aborted) throw new ClientError('CLOSED', `${method} ${path}: aborted`);
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && NOT_CONNECTED.has(code)) throw new ClientError('CONNECT_FAILED', `${this.base}: ${errorText(err)}`);
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') throw new ClientError('TIMEOUT', `${method} ${path}: no answer within ${o.timeoutMs} ms`);
      throw new ClientError('CONNECTION_CLOSED', `${method} ${path}: ${errorText(err)}`);
    }
    if (status >= 200 && status < 300) return { status, text };
    const { code, message } = errorBody(text);
    const after = parseRetryAfter(retryAfter, Date.now());
    throw new GatewayCallError(status, code, `${method} ${path}: HTTP ${status}${code ? ' ' + code : ''}${message ? ': ' + message : ''}`, after === null ? null : after / 1000);
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  /** Drops every connection at once (requests in progress fail). */
  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}

/** The gateway's one error shape, `{"error":{"code","message"}}`, read defensively. */
function errorBody(text: string): { code: string; message: string } {
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
    return { code: typeof e?.code === 'string' ? e.code : '', message: typeof e?.message === 'string' ? e.message : '' };
  } catch {
    return { code: '', message: text.slice(0, 200) };
  }
}
