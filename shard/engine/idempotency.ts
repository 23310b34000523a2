// The idempotency window: which message id a (topic, idempotency key) was published as, for a
// while. Entries live `windowMs` from their first publish; memory is bounded by `maxKeys`, the
// least recently used key going first. Pure: time comes from the injected monotonic clock.
// A clean shutdown saves the window (`saved`) and the next start restores it (`restore`), so a
// publisher retrying across a shard restart still gets the first message's id; a crash forgets it.

import type { Clock } from './clock';

export interface IdempotencyOptions {
  windowMs: number;
  maxKeys: number;
}

interface Entry {
  id: string;
  expires: number;
}

/** A remembered key as saved at shutdown: due times as wall-clock ms, which survive a restart. */
export interface SavedIdempotencyKey {
  topic: string;
  key: string;
  id: string;
  expiresWall: number;
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

  /** The live keys, least recently used first, with wall-clock expiry times. */
  saved(): SavedIdempotencyKey[] {
    const now = this.clock.now();
    const wall = this.clock.wallNow();
    const out: SavedIdempotencyKey[] = [];
    for (const [k, e] of this.entries) {
      if (e.expires <= now) continue;
      const nl = k.indexOf('\n');
      out.push({ topic: k.slice(0, nl), key: k.slice(nl + 1), id: e.id, expiresWall: wall + (e.expires - now) });
    }
    return out;
  }

  /**
   * Adds keys saved by `saved()` (in their order), skipping those already expired by the wall
   * clock. A key never outlives the window it was given: if the wall clock stepped back while the
   * shard was down, its remaining time is capped at the window.
   */
  restore(keys: readonly SavedIdempotencyKey[]): void {
    if (this.opts.windowMs <= 0 || this.opts.maxKeys <= 0) return;
    const now = this.clock.now();
    const wall = this.clock.wallNow();
    for (const s of keys) {
      const left = Math.min(s.expiresWall - wall, this.opts.windowMs);
      if (!(left > 0)) continue;
      const k = IdempotencyWindow.keyOf(s.topic, s.key);
      this.entries.delete(k);
      this.entries.set(k, { id: s.id, expires: now + left });
    }
    while (this.entries.size > this.opts.maxKeys) this.entries.delete(this.entries.keys().next().value as string);
  }
}
