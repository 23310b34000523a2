// The idempotency window: which message id a (topic, idempotency key) was published as, for a
// while. Entries live `windowMs` from their first publish; memory is bounded by `maxKeys`, the
// least recently used key going first. Pure: time comes from the injected monotonic clock.

import type { Clock } from './clock';

export interface IdempotencyOptions {
  windowMs: number;
  maxKeys: number;
}

interface Entry {
  id: string;
  expires: number;
}

export class IdempotencyWindow {
  // A Map iterates in insertion order; re-inserting on use keeps the least recently used first.
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly opts: IdempotencyOptions, private readonly clock: Clock) {}

  get size(): number {
    return this.entries.size;
  }

  private static keyOf(topic: string, key: string): string {
    return topic + '\n' + key;
  }

  /** The id first published under this key, if that was within the window. */
  get(topic: string, key: string): string | undefined {
    const k = IdempotencyWindow.keyOf(topic, key);
    const e = this.entries.get(k);
    if (!e) return undefined;
    if (e.expires <= this.clock.now()) {
      this.entries.delete(k);
      return undefined;
    }
    this.entries.delete(k);
    this.entries.set(k, e);
    return e.id;
  }

  /** Records a publish; evicts the least recently used keys beyond `maxKeys`. */
  remember(topic: string, key: string, id: string): void {
    if (this.opts.windowMs <= 0 || this.opts.maxKeys <= 0) return;
    const k = IdempotencyWindow.keyOf(topic, key);
    this.entries.delete(k);
    const now = this.clock.now();
    this.entries.set(k, { id, expires: now + this.opts.windowMs });
    // Amortised clean-up: expired keys at the cold end go without waiting to be evicted.
    for (let i = 0; i < 2; i++) {
      const first = this.entries.entries().next().value as [string, Entry];
      if (first[1].expires > now) break;
      this.entries.delete(first[0]);
    }
    while (this.entries.size > this.opts.maxKeys) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}
