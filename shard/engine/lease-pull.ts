// Pulls through the lease API: one pending pull is a consumer on each channel it asks, and a
// group answers as soon as any of them received something (or the wait ends). One long-poll can
// thus wait on many channels at once, so a gateway needs one request per shard, not per subscriber.

import type { Channel, Consumer } from './channel';
import { LEASE_OWNER, Message } from './message';

class ChannelPull implements Consumer {
  readonly id = LEASE_OWNER;
  inFlightCount = 0;
  readonly got: Message[] = [];
  done = false;

  constructor(readonly msgTimeoutMs: number, private readonly max: number, readonly channel: Channel, private readonly group: PullGroup) {}

  capacity(): number {
    return this.done ? 0 : this.max - this.got.length;
  }

  deliver(m: Message): void {
    this.got.push(m);
    this.group.delivered();
  }

  channelGone(): void {
    this.group.settle();
  }

  leave(): void {
    if (this.done) return;
    this.done = true;
    this.channel.removeConsumer(this);
  }
}

export interface PullRequest {
  channel: Channel;
  max: number;
  leaseMs: number;
}

export class PullGroup {
  private readonly pulls: ChannelPull[];
  private settled = false;
  private notified = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(requests: readonly PullRequest[], private readonly resolve: (got: Message[][]) => void) {
    this.pulls = requests.map((r) => new ChannelPull(r.leaseMs, Math.max(1, r.max), r.channel, this));
  }

  /** Offers the pull to every channel; answers at once if anything was ready or `waitMs` is 0. */
  start(waitMs: number, signal?: AbortSignal): void {
    if (signal?.aborted) return this.settle();
    signal?.addEventListener('abort', () => this.abandon(), { once: true });
    for (const p of this.pulls) if (!this.settled) p.channel.addConsumer(p);
    if (this.settled || this.notified) return;
    if (waitMs > 0 && this.pulls.every((p) => !p.channel.deleted)) this.timer = setTimeout(() => this.settle(), waitMs);
    else this.settle();
  }

  delivered(): void {
    if (this.notified) return;
    this.notified = true;
    // Let the current pump hand over everything that is ready before answering.
    queueMicrotask(() => this.settle());
  }

  settle(): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer) clearTimeout(this.timer);
    for (const p of this.pulls) p.leave();
    this.resolve(this.pulls.map((p) => p.got));
  }

  /** The caller went away before the answer: nothing it was handed may wait out its lease. */
  private abandon(): void {
    if (this.settled) return;
    const handed = this.pulls.map((p) => p.got.splice(0));
    this.settle();
    this.pulls.forEach((p, i) => {
      for (const m of handed[i]) p.channel.requeue(m.id, LEASE_OWNER, 0, m.token, true);
    });
  }
}
