// The local demand for one channel (topic, channel, lease length): the subscribers waiting on it
// in this gateway — long-poll requests and SSE streams — and the leased messages the shards have
// answered but no subscriber has taken yet ("surplus"). Every shard hub asks its shard for the
// group's whole free credit, so a group may receive more than it can hand out; the surplus goes
// to the next subscriber with credit (oldest first) and, when nobody takes it within a short hold,
// back to its shard without counting an attempt. No I/O here: the hub and the service do that.

import type { LeasedMessage } from './lease-client';

/** A message leased from one shard for this gateway. */
export interface Lease {
  shard: string;
  msg: LeasedMessage;
  /** Monotonic ms when the shard's lease ends (as far as this gateway knows). */
  expiresAt: number;
  /** Monotonic ms when it reached the gateway. */
  receivedAt: number;
}

/** A subscriber: takes messages while it has credit. */
export interface Waiter {
  /** How many messages it takes now (0 when full, paused or done). */
  free(): number;
  /** Hands it messages, never more than free() said. */
  take(leases: Lease[], group: Group): void;
}

export interface GroupHooks {
  /** The group's free credit rose: the hubs of its shards should ask for messages. */
  wake(g: Group): void;
  /** Leased messages nobody took within the hold: give them back to their shards (not an attempt). */
  release(g: Group, leases: Lease[]): void;
  now(): number;
}

export class Group {
  readonly waiters: Waiter[] = [];
  /** Leased, not yet handed out, oldest first; entries before `head` are spent. */
  private readonly held: Lease[] = [];
  private head = 0;
  /** The shards of the topic's home (kept current by the service). */
  shards: readonly string[] = [];
  /** Monotonic ms since the group has had neither waiters nor surplus (for clean-up), or 0. */
  idleSince = 0;
  private rr = 0;
  private holdTimer: NodeJS.Timeout | undefined;
  /** Monotonic ms until which surplus is held even with no subscriber (one is expected back). */
  private holdUntil = 0;
  private changePending = false;
  /** Resolves once the channel exists on the shards of the topic (subscribing creates it). */
  ready: Promise<void> = Promise.resolve();
  /** Running totals, for metrics and tests. */
  readonly counts = { received: 0, handed: 0, released: 0 };

  constructor(
    readonly key: string,
    readonly topic: string,
    readonly channel: string,
    readonly leaseMs: number,
    private readonly hooks: GroupHooks,
    private readonly holdMs: number,
  ) {}

  /** Leased messages waiting here for a subscriber. */
  get surplus(): readonly Lease[] {
    return this.held.slice(this.head);
  }

  get surplusCount(): number {
    return this.held.length - this.head;
  }

  /** Sum of the waiters' credit, less what is already waiting here. */
  demand(): number {
    let d = 0;
    for (const w of this.waiters) d += w.free();
    return Math.max(0, d - this.surplusCount);
  }

  add(w: Waiter): void {
    this.waiters.push(w);
    this.idleSince = 0;
    this.applyChange();
  }

  /**
   * `comingBack`: the subscriber is likely to ask again soon (a long-poll that was just answered),
   * so what the shards still send for it is held briefly; otherwise (a stream closed, a client
   * gone) nothing is held for a group left without subscribers.
   */
  remove(w: Waiter, comingBack = false): void {
    const i = this.waiters.indexOf(w);
    if (i === -1) return;
    this.waiters.splice(i, 1);
    if (this.rr > i) this.rr--;
    if (comingBack) this.holdUntil = this.hooks.now() + this.holdMs;
    else if (this.waiters.length === 0) this.holdUntil = 0;
    if (this.waiters.length === 0 && this.holdUntil === 0 && this.surplusCount > 0) this.releaseNow();
    this.markIdle();
  }

  /**
   * A waiter's credit rose (an ack, a drained socket): serve it from the surplus, then ask the
   * shards. Coalesced to once per tick, since acks arrive by the thousand.
   */
  changed(): void {
    if (this.changePending) return;
    this.changePending = true;
    queueMicrotask(() => {
      this.changePending = false;
      this.applyChange();
    });
  }

  private applyChange(): void {
    if (this.surplusCount > 0) this.dispatch([]);
    if (this.demand() > 0) this.hooks.wake(this);
  }

  /** Messages from a shard: round-robin over the waiters with credit (one at a time), surplus first. */
  deliver(leases: Lease[]): void {
    this.counts.received += leases.length;
    this.dispatch(leases);
  }

  private dispatch(fresh: Lease[]): void {
    const now = this.hooks.now();
    const n = this.waiters.length;
    let f = 0;
    if (n > 0) {
      const credit = new Array<number>(n);
      const batches = new Array<Lease[] | undefined>(n);
      let open = 0;
      for (let k = 0; k < n; k++) {
        credit[k] = this.waiters[k].free();
        if (credit[k] > 0) open++;
      }
      let i = this.rr % n;
      const give = (l: Lease) => {
        while (credit[i] === 0) i = (i + 1) % n;
        (batches[i] ??= []).push(l);
        if (--credit[i] === 0) open--;
        i = (i + 1) % n;
      };
      // The oldest first; anything whose lease already ended is the shard's again and is dropped.
      while (open > 0 && this.head < this.held.length) {
        const l = this.held[this.head++];
        if (l.expiresAt > now) give(l);
      }
      while (open > 0 && f < fresh.length) give(fresh[f++]);
      this.rr = i;
      // Snapshot: a waiter may leave the group while taking (a long-poll answers and goes).
      const ws = this.waiters.slice();
      for (let k = 0; k < n; k++) {
        const b = batches[k];
        if (b) {
          this.counts.handed += b.length;
          ws[k].take(b, this);
        }
      }
    }
    for (; f < fresh.length; f++) this.held.push(fresh[f]);
    this.compact();
    if (this.surplusCount > 0) {
      // Held for subscribers that are here (only full for now) or coming back; else given back at once.
      if (this.waiters.length === 0 && now >= this.holdUntil) this.releaseNow();
      else this.armHold();
    }
    this.markIdle();
  }

  private compact(): void {
    if (this.head === this.held.length) {
      this.held.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.held.length) {
      this.held.splice(0, this.head);
      this.head = 0;
    }
  }

  private holdFor(): number {
    return Math.min(this.holdMs, this.leaseMs / 4);
  }

  private armHold(): void {
    if (this.holdTimer || this.surplusCount === 0) return;
    const oldest = this.held[this.head];
    const wait = Math.max(0, oldest.receivedAt + this.holdFor() - this.hooks.now());
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined;
      this.releaseHeld();
    }, wait);
    this.holdTimer.unref?.();
  }

  /** Gives back what has waited here longer than the hold (not an attempt). */
  private releaseHeld(): void {
    const now = this.hooks.now();
    const hold = this.holdFor();
    const out: Lease[] = [];
    while (this.head < this.held.length && this.held[this.head].receivedAt + hold <= now) {
      const l = this.held[this.head++];
      if (l.expiresAt > now) out.push(l);
    }
    this.compact();
    this.counts.released += out.length;
    if (out.length > 0) this.hooks.release(this, out);
    this.armHold();
    this.markIdle();
  }

  private releaseNow(): void {
    const out = this.releaseAll();
    this.counts.released += out.length;
    if (out.length > 0) this.hooks.release(this, out);
  }

  /** Takes every held message out (to be given back: the gateway is closing, or nobody is left). */
  releaseAll(): Lease[] {
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    const now = this.hooks.now();
    const out = this.held.slice(this.head).filter((l) => l.expiresAt > now);
    this.held.length = 0;
    this.head = 0;
    return out;
  }

  private markIdle(): void {
    if (this.waiters.length === 0 && this.surplusCount === 0 && this.idleSince === 0) this.idleSince = this.hooks.now() || 1;
  }
}
