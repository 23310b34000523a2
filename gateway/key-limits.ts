// Per-key admission for the publish endpoints: a token bucket (--rate-limit per second, up to
// --rate-burst at once) and a cap on requests in progress (--key-concurrency) for each API key,
// so one key cannot starve the others. Over either limit: 429 RATE_LIMITED with Retry-After.

import type { ServerResponse } from 'node:http';
import { GatewayError } from './errors';

export interface KeyLimitOptions {
  /** Requests per second per key; 0 = no rate limit. */
  ratePerSec: number;
  /** Bucket size: requests a key may make at once after being idle (default: one second's worth). */
  burst: number;
  /** Requests in progress at once per key; 0 = unlimited. */
  maxConcurrent: number;
}

interface Bucket {
  tokens: number;
  at: number;
  active: number;
}

// Without API keys the limits apply per client address; this bounds that map.
const MAX_TRACKED = 10_000;

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
   * Admits one request of `key` (an API key's name, or the client address without auth) or
   * throws RATE_LIMITED; an admitted request counts as in progress until its response closes.
   */
  admit(key: string, res: ServerResponse): void {
    if (!this.enabled) return;
    const b = this.bucket(key);
    if (this.o.ratePerSec > 0) {
      const t = this.now();
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.o.ratePerSec);
      b.at = t;
      if (b.tokens < 1) {
        const waitMs = ((1 - b.tokens) / this.o.ratePerSec) * 1000;
        throw new GatewayError('RATE_LIMITED', { limit: 'rate', retry_after_s: Math.max(1, Math.ceil(waitMs / 1000)) });
      }
    }
    if (this.o.maxConcurrent > 0) {
      if (b.active >= this.o.maxConcurrent) throw new GatewayError('RATE_LIMITED', { limit: 'concurrency', retry_after_s: 1 });
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

  private bucket(key: string): Bucket {
    let b = this.buckets.get(key);
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
      this.buckets.set(key, b);
    }
    return b;
  }
}
