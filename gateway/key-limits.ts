// Per-key admission: a token bucket (--rate-limit per second, up to --rate-burst at once) and a
// cap on requests in progress (--key-concurrency) for each API key (or client address without
// --auth-file), so one key cannot starve the others. Over either limit: 429 RATE_LIMITED with
// Retry-After.
//
// Each endpoint family has its own buckets, each as large as the flags say: publishes, consuming
// (long-polls and SSE streams) and receipts (ack/requeue/touch). A consumer's open streams and
// waiting long-polls hold concurrency slots for as long as they last (that is the per-key
// connection limit); in one shared budget they would refuse the same key's publishes, and —
// worse — the acks that give a stream its credit back, so a key with one slot and one stream could
// never ack. Separate budgets keep each family's limit meaningful on its own.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from './auth';
import { GatewayError } from './errors';

export interface KeyLimitOptions {
  /** Requests per second per key and family; 0 = no rate limit. */
  ratePerSec: number;
  /** Bucket size: requests a key may make at once after being idle (default: one second's worth). */
  burst: number;
  /** Requests in progress (open streams included) at once per key and family; 0 = unlimited. */
  maxConcurrent: number;
}

/** Endpoint families with separate budgets (see the header). */
export type LimitFamily = 'publish' | 'consume' | 'receipts';

interface Bucket {
  tokens: number;
  at: number;
  active: number;
}

// Without API keys the limits apply per client address; this bounds that map.
const MAX_TRACKED = 10_000;

/** Whom a request counts against: the API key's name, or the client address when the gateway is open. */
export function limitKey(p: Principal | null, req: IncomingMessage): string {
  return p ? `key:${p.name}` : `addr:${req.socket.remoteAddress ?? ''}`;
}

export class KeyLimits {
  private readonly buckets = new Map<string, Bucket>();
  private readonly burst: number;

  constructor(private readonly o: KeyLimitOptions, private readonly now: () => number = () => performance.now()) {
    this.burst = o.burst > 0 ? o.burst : Math.max(1, Math.ceil(o.ratePerSec));
  }

  get enabled(): boolean {
    return this.o.ratePerSec > 0 || this.o.maxConcurrent > 0;
  }

  /**
   * Admits one request of `key` (from limitKey) to `family`'s budget or throws RATE_LIMITED; an
   * admitted request counts as in progress until its response closes (for an SSE stream: until
   * the stream ends or its client goes away).
   */
  admit(family: LimitFamily, key: string, res: ServerResponse): void {
    if (!this.enabled) return;
    const b = this.bucket(family + ' ' + key);
    if (this.o.ratePerSec > 0) {
      const t = this.now();
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.o.ratePerSec);
      b.at = t;
      if (b.tokens < 1) {
        const waitMs = ((1 - b.tokens) / this.o.ratePerSec) * 1000;
        throw new GatewayError('RATE_LIMITED', { limit: 'rate', family, retry_after_s: Math.max(1, Math.ceil(waitMs / 1000)) });
      }
    }
    // A response already torn down may have emitted 'close' before we could listen for it; it
    // is not counted rather than holding a slot forever.
    if (this.o.maxConcurrent > 0 && !res.destroyed) {
      if (b.active >= this.o.maxConcurrent) throw new GatewayError('RATE_LIMITED', { limit: 'concurrency', family, retry_after_s: 1 });
      b.active++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        b.active--;
      };
      res.once('close', release); // emitted once the response is done or the connection is gone
    }
    if (this.o.ratePerSec > 0) b.tokens -= 1;
  }

  private bucket(id: string): Bucket {
    let b = this.buckets.get(id);
    if (!b) {
      if (this.buckets.size >= MAX_TRACKED) {
        // forget an idle key (its bucket refills to full anyway once idle long enough)
        for (const [k, v] of this.buckets) {
          if (v.active === 0) {
            this.buckets.delete(k);
            break;
          }
        }
      }
      b = { tokens: this.burst, at: this.now(), active: 0 };
      this.buckets.set(id, b);
    }
    return b;
  }
}
