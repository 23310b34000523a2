// One Server-Sent Events stream: a subscriber with a max_in_flight credit. It is sent a message
// only while fewer than that are unacked; the event id is the receipt and `data:` one line of
// JSON. Credit comes back when a message is acked, requeued or touched-out through this gateway,
// when its lease ends (as this gateway counts it), or — for messages settled through another
// gateway — when a stream that has used up its credit asks the shards which of its leases are
// still out (at most every `reconcileMs`, backing off while nothing changed). When the stream
// closes, whatever it holds unacked is requeued at once.

import type { ServerResponse } from 'node:http';
import type { Group, Lease, Waiter } from './consumers';
import { Consumption, deliveryKey, Holder, Subscription } from './consume';
import { Encoding, messageJson, sseEvent } from './render';

export const SSE_HEADERS: Record<string, string> = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  // no-transform: proxies must not compress or rewrite; X-Accel-Buffering: nginx must not buffer.
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
  Connection: 'keep-alive',
};

const MAX_RECONCILE_BACKOFF = 16;
const NO_BODY = Buffer.alloc(0);

export class SseStream implements Waiter, Holder, Subscription {
  /** Delivered and unsettled, in delivery order (which, for one lease length, is expiry order). */
  private readonly inFlight = new Map<string, Lease>();
  private blocked = false;
  private closed = false;
  private reconciling = false;
  private reconcileAt = 0;
  private reconcileBackoff = 1;
  private closing: Promise<unknown> | undefined;
  /** Monotonic ms of the next keep-alive comment (pushed back by every write). */
  private keepAliveAt = 0;
  /** Messages sent on this stream. */
  sent = 0;

  constructor(
    private readonly svc: Consumption,
    private readonly group: Group,
    private readonly res: ServerResponse,
    private readonly maxInFlight: number,
    private readonly encoding: Encoding,
  ) {}

  /** Writes the headers and the first comment, and joins the group. */
  open(retryMs: number): void {
    const sock = this.res.socket;
    sock?.setNoDelay(true);
    sock?.setTimeout(0);
    this.res.writeHead(200, SSE_HEADERS);
    this.res.write('retry: ' + retryMs + '\n: sluice ' + this.group.topic + '/' + this.group.channel + '\n\n');
    // Jittered, so that streams opened together do not all write their keep-alives in one burst.
    this.keepAliveAt = this.svc.now() + this.svc.opts.keepAliveMs * (0.5 + Math.random() / 2);
    this.res.on('close', () => void this.close());
    this.res.on('error', () => void this.close());
    this.svc.subscribe(this);
    this.group.add(this);
  }

  get unacked(): number {
    return this.inFlight.size;
  }

  free(): number {
    return this.closed || this.blocked ? 0 : Math.max(0, this.maxInFlight - this.inFlight.size);
  }

  take(leases: Lease[], g: Group): void {
    if (this.closed) {
      void this.svc.giveBack(g.topic, g.channel, leases, true);
      return;
    }
    const now = this.svc.now();
    let out = '';
    for (const l of leases) {
      const receipt = this.svc.receiptFor(g, l);
      const key = deliveryKey(l.shard, l.msg.id, l.msg.token);
      this.inFlight.set(key, l);
      this.svc.track(key, this);
      out += sseEvent(receipt, messageJson(l.msg, receipt, l.expiresAt - now, this.encoding));
      // Rendered: the body is not needed again, and holding it (a view of the shard's whole
      // pull-many answer) would keep that answer alive for as long as this message stays unacked.
      l.msg.body = NO_BODY;
    }
    this.sent += leases.length;
    this.keepAliveAt = now + this.svc.opts.keepAliveMs;
    // One write per batch: the events leave in as few packets as the socket allows.
    if (!this.res.write(out)) {
      this.blocked = true;
      this.res.once('drain', () => {
        this.blocked = false;
        if (!this.closed) this.group.changed();
      });
    }
  }

  settled(key: string): void {
    const wasFull = this.free() === 0;
    if (!this.inFlight.delete(key)) return;
    this.svc.untrack(key);
    this.reconcileBackoff = 1;
    if (wasFull && !this.closed) this.group.changed();
  }

  touched(key: string, leaseMs: number): void {
    const l = this.inFlight.get(key);
    if (!l) return;
    l.expiresAt = this.svc.now() + leaseMs;
    // Re-inserted at the end: the map stays in (roughly) expiry order.
    this.inFlight.delete(key);
    this.inFlight.set(key, l);
  }

  sweep(now: number): void {
    if (this.closed) return;
    if (now >= this.keepAliveAt) this.keepAlive(now);
    if (this.inFlight.size === 0) return;
    const wasFull = this.free() === 0;
    let freed = false;
    for (const [key, l] of this.inFlight) {
      if (l.expiresAt > now) break;
      // The lease ended: the shard puts the message back, and this stream's credit is back.
      this.inFlight.delete(key);
      this.svc.untrack(key);
      freed = true;
    }
    if (freed && wasFull) this.group.changed();
    if (this.inFlight.size >= this.maxInFlight && this.svc.statusSupported && !this.reconciling && now >= this.reconcileAt) {
      const oldest = this.inFlight.values().next().value as Lease;
      if (now - oldest.receivedAt >= this.svc.opts.reconcileMs) void this.reconcile();
    }
  }

  /** Asks the shards which of this stream's leases are still out; the others were settled elsewhere. */
  private async reconcile(): Promise<void> {
    this.reconciling = true;
    const entries = [...this.inFlight];
    try {
      const outcomes = await this.svc.stillLeased(this.group.topic, this.group.channel, entries.map(([, l]) => l));
      const now = this.svc.now();
      let freed = 0;
      outcomes.forEach((o, i) => {
        const [key, l] = entries[i];
        if (o.status === 'OK') {
          if (o.leaseMs !== undefined) l.expiresAt = now + o.leaseMs;
        } else if (o.status === 'NOT_IN_FLIGHT' || o.status === 'STALE_LEASE' || o.status === 'NOT_OWNER') {
          if (this.inFlight.has(key)) freed++;
          this.settled(key);
        }
      });
      this.reconcileBackoff = freed > 0 ? 1 : Math.min(this.reconcileBackoff * 2, MAX_RECONCILE_BACKOFF);
    } finally {
      this.reconciling = false;
      this.reconcileAt = this.svc.now() + this.svc.opts.reconcileMs * this.reconcileBackoff;
    }
  }

  /** A comment line, so proxies and browsers see traffic on an idle stream. */
  keepAlive(now = this.svc.now()): void {
    this.keepAliveAt = now + this.svc.opts.keepAliveMs;
    if (!this.closed && !this.blocked) this.res.write(': keep-alive\n\n');
  }

  /** The client went away (or the gateway is closing): leave the group, requeue what it holds. */
  close(): Promise<unknown> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.group.remove(this);
    this.svc.unsubscribe(this);
    const held = [...this.inFlight];
    this.inFlight.clear();
    for (const [key] of held) this.svc.untrack(key);
    this.svc.counts.requeuedOnClose += held.length;
    this.closing = held.length > 0 ? this.svc.giveBack(this.group.topic, this.group.channel, held.map(([, l]) => l), false) : Promise.resolve();
    return this.closing;
  }

  async end(): Promise<void> {
    const done = this.close();
    if (!this.res.writableEnded) this.res.end();
    await done;
  }
}
