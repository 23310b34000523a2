// One client per shard: an undici Pool (keep-alive connections) behind an opossum circuit
// breaker. A 4xx answer is the caller's fault and does not trip the breaker; a timeout aborts
// the request on the wire, not just the promise.

import CircuitBreaker from 'opossum';
import { Pool } from 'undici';
import type { Logger } from '../runtime/logger';

export interface ShardClientOptions {
  connections: number;
  timeoutMs: number;
  /** How long an open breaker waits before letting one trial call through (half-open). */
  resetMs: number;
  /** Percentage of failed calls in the rolling window that opens the breaker. */
  errorThresholdPercentage: number;
  /** Calls needed in the rolling window before the breaker may open. */
  volumeThreshold: number;
}

export const DEFAULT_SHARD_CLIENT_OPTIONS: ShardClientOptions = {
  connections: 32,
  timeoutMs: 5000,
  resetMs: 5000,
  errorThresholdPercentage: 50,
  volumeThreshold: 3,
};

export type BreakerState = 'closed' | 'open' | 'half_open';

/** A shard's answer that was not 2xx; `retryable` when another shard may succeed. */
export class ShardError extends Error {
  constructor(readonly status: number, readonly code: string, readonly details: Record<string, unknown> = {}) {
    super(code);
  }
  get clientFault(): boolean {
    return this.status >= 400 && this.status < 500;
  }
}

export interface MpubAnswer {
  ids: string[];
  duplicates: number[];
}

interface Call {
  path: string;
  body: Buffer;
  ac: AbortController;
}

/** Whether the failure could have happened after the shard stored the message (a retry may duplicate it). */
export function maybeStored(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return !(code === 'ECONNREFUSED' || code === 'EOPENBREAKER' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH');
}

export class ShardClient {
  private readonly pool: Pool;
  private readonly breaker: CircuitBreaker<[Call], MpubAnswer>;
  private lastState: BreakerState = 'closed';

  constructor(readonly address: string, opts: ShardClientOptions, private readonly logger: Logger) {
    this.pool = new Pool(`http://${address}`, {
      connections: opts.connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: Math.min(opts.timeoutMs, 5000),
    });
    this.breaker = new CircuitBreaker((c: Call) => this.send(c), {
      timeout: opts.timeoutMs,
      resetTimeout: opts.resetMs,
      errorThresholdPercentage: opts.errorThresholdPercentage,
      volumeThreshold: opts.volumeThreshold,
      rollingCountTimeout: 10_000,
      errorFilter: (err) => err instanceof ShardError && err.clientFault,
      name: address,
    });
    // opossum only rejects the promise on timeout; abort the request so the socket is freed.
    this.breaker.on('timeout', (_err: unknown, _latency: unknown, args: unknown) => (args as [Call])[0].ac.abort());
    const report = (state: BreakerState) => () => {
      if (state === this.lastState) return;
      this.lastState = state;
      this.logger.warn('shard breaker ' + state, { shard: address });
    };
    this.breaker.on('open', report('open'));
    this.breaker.on('halfOpen', report('half_open'));
    this.breaker.on('close', report('closed'));
    // Nothing listening at the address: the shard is down, whatever the rolling percentage says
    // (after a busy spell, hundreds of earlier successes would keep the breaker shut for seconds).
    this.breaker.on('failure', (err: unknown) => {
      if ((err as { code?: string })?.code === 'ECONNREFUSED' && !this.breaker.opened) this.breaker.open();
    });
  }

  get state(): BreakerState {
    return this.breaker.opened ? 'open' : this.breaker.halfOpen ? 'half_open' : 'closed';
  }

  /** Publishes a batch frame (wire/sluice-batch.ts) to the topic; resolves with one id per message. */
  mpub(topic: string, frame: Buffer): Promise<MpubAnswer> {
    return this.breaker.fire({ path: '/sluice/mpub?topic=' + encodeURIComponent(topic), body: frame, ac: new AbortController() });
  }

  private async send(c: Call): Promise<MpubAnswer> {
    const res = await this.pool.request({
      path: c.path,
      method: 'POST',
      body: c.body,
      headers: { 'content-type': 'application/octet-stream' },
      signal: c.ac.signal,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      let code = 'SHARD_HTTP_' + res.statusCode;
      let details: Record<string, unknown> = {};
      try {
        const parsed = JSON.parse(text) as { message?: unknown; index?: unknown };
        if (typeof parsed.message === 'string') code = parsed.message;
        if (typeof parsed.index === 'number') details = { index: parsed.index };
      } catch {
        /* not JSON: keep the status code */
      }
      throw new ShardError(res.statusCode, code, details);
    }
    const parsed = JSON.parse(text) as Partial<MpubAnswer>;
    if (!Array.isArray(parsed.ids) || !Array.isArray(parsed.duplicates)) throw new ShardError(502, 'BAD_SHARD_ANSWER');
    return parsed as MpubAnswer;
  }

  async close(): Promise<void> {
    this.breaker.shutdown();
    await this.pool.close().catch(() => undefined);
  }
}
