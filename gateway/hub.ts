// One hub per shard: a few outstanding pull-many long-polls to that shard ("lanes") covering
// every channel (group) with local demand, each channel asked for its whole free credit. The
// shard answers a poll as soon as any of its channels has something; the hub hands the messages
// to the groups and polls again. An answer ends the whole poll and the next one resends its list,
// so channels are split: one *hot* lane for the channels that had messages from this shard in the
// last few seconds, and *cold* lanes of at most `coldLaneSize` channels each for the rest. A busy
// channel then never makes the gateway resend ten thousand idle ones (browser tabs) per message,
// and a new subscriber restarts only its own lane. A lane is not re-issued sooner than ~0.05 ms
// per channel it covers, so resending idle lists stays a small share of the work however many
// idle subscribers there are. New demand on a channel no live poll covers restarts its lane
// promptly (an abort: the shard requeues, without counting an attempt, whatever it had handed to
// that poll). So the gateway↔shard work grows with messages and with changes in demand, not with
// idle subscribers.

import type { Logger } from '../runtime/logger';
import type { Group, Lease } from './consumers';
import type { LeaseClient, LeasedMessage, PullSpec } from './lease-client';

export interface HubOptions {
  /** How long one pull-many waits at the shard (below the shard's 60 s cap). */
  pollWaitMs: number;
  /** Shortest time between two poll starts when restarting for new demand (batches bursts). */
  restartDelayMs: number;
  /** More per channel a poll covers, between two starts of its lane (a poll resends its list). */
  restartDelayPerGroupMs: number;
  /** A channel that had messages from this shard this recently is polled in the hot lane. */
  hotWindowMs: number;
  /** Most channels in one cold lane. */
  coldLaneSize: number;
  /** Backoff after a failed poll: first and longest. */
  minBackoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_HUB_OPTIONS: HubOptions = {
  pollWaitMs: 25_000,
  restartDelayMs: 5,
  restartDelayPerGroupMs: 0.05,
  hotWindowMs: 5000,
  coldLaneSize: 2000,
  minBackoffMs: 100,
  maxBackoffMs: 5000,
};

/** The shard's caps on one pull-many (lease-api.ts). */
export const MAX_PULL = 5000;
export const MAX_PULLS_PER_REQUEST = 10_000;

export interface HubSource {
  now(): number;
}

interface Poll {
  ac: AbortController;
  covered: Set<Group>;
  startedAt: number;
  /** The shard's answer has started arriving: too late to abort without losing it. */
  answered: boolean;
  restarting: boolean;
}

/** One poll loop of a hub: the hot lane, or a cold lane with its members. */
class Lane {
  poll: Poll | null = null;
  scheduled = false;
  restartTimer: NodeJS.Timeout | undefined;
  /** Waiting before the next start (backoff, or the pacing of a large poll). */
  delayTimer: NodeJS.Timeout | undefined;
  backoff = 0;
  lastStart = 0;
  lastSize = 0;
  running: Promise<void> = Promise.resolve();
  /** Cold lanes: the groups this lane asks for. */
  readonly members = new Set<Group>();

  constructor(readonly hot: boolean) {}

  /** A live (not yet answered) poll of this lane asks for `g`. */
  covers(g: Group): boolean {
    return this.poll !== null && !this.poll.answered && this.poll.covered.has(g);
  }
}

export class ShardHub {
  private readonly hotLane = new Lane(true);
  private readonly coldLanes: Lane[] = [];
  private readonly coldOf = new Map<Group, Lane>();
  /** Groups that had messages from this shard, and when (monotonic ms). */
  private readonly lastMessage = new Map<Group, number>();
  private closed = false;
  /** Running totals, for metrics and tests. */
  readonly counts = { polls: 0, restarts: 0, failures: 0, messages: 0 };

  constructor(
    readonly address: string,
    private readonly client: LeaseClient,
    private readonly source: HubSource,
    private readonly opts: HubOptions,
    private readonly logger: Logger,
  ) {}

  private lanes(): Lane[] {
    return [this.hotLane, ...this.coldLanes];
  }

  get polling(): boolean {
    return this.lanes().some((l) => l.poll !== null);
  }

  get laneCount(): number {
    return 1 + this.coldLanes.length;
  }

  private isHot(g: Group, now: number): boolean {
    const t = this.lastMessage.get(g);
    return t !== undefined && now - t < this.opts.hotWindowMs;
  }

  private coveredNow(g: Group): boolean {
    if (this.hotLane.covers(g)) return true;
    const c = this.coldOf.get(g);
    return c !== undefined && c.covers(g);
  }

  /** A group of this shard has new demand. */
  wake(g: Group): void {
    if (this.closed || this.coveredNow(g)) return;
    if (this.isHot(g, this.source.now())) this.wakeLane(this.hotLane, g);
    else this.wakeLane(this.coldLaneFor(g), g);
  }

  /** The group is gone (no subscribers for a while): no lane asks for it any more. */
  forget(g: Group): void {
    this.lastMessage.delete(g);
    const c = this.coldOf.get(g);
    if (c) {
      c.members.delete(g);
      this.coldOf.delete(g);
    }
  }

  private coldLaneFor(g: Group): Lane {
    let lane = this.coldOf.get(g);
    if (lane) return lane;
    lane = this.coldLanes.find((l) => l.members.size < this.opts.coldLaneSize);
    if (!lane) this.coldLanes.push((lane = new Lane(false)));
    lane.members.add(g);
    this.coldOf.set(g, lane);
    return lane;
  }

  private spacing(size: number): number {
    return size * this.opts.restartDelayPerGroupMs;
  }

  private wakeLane(lane: Lane, g: Group): void {
    const p = lane.poll;
    if (!p) return this.schedule(lane);
    if (p.covered.has(g) || p.answered || p.restarting) return;
    // The outstanding poll does not ask for this group: restart it, batching bursts of new demand.
    p.restarting = true;
    const spacing = Math.max(this.opts.restartDelayMs, this.spacing(p.covered.size));
    const wait = Math.max(0, p.startedAt + spacing - this.source.now());
    lane.restartTimer = setTimeout(() => {
      lane.restartTimer = undefined;
      if (lane.poll === p && !p.answered) {
        this.counts.restarts++;
        p.ac.abort();
      }
    }, wait);
  }

  private schedule(lane: Lane): void {
    if (lane.scheduled || lane.poll || lane.delayTimer || this.closed) return;
    // A large poll is not re-issued sooner than its pacing allows (its list is resent each time).
    const wait = lane.lastStart + this.spacing(lane.lastSize) - this.source.now();
    if (wait > 1) {
      lane.delayTimer = setTimeout(() => {
        lane.delayTimer = undefined;
        this.schedule(lane);
      }, wait);
      return;
    }
    lane.scheduled = true;
    setImmediate(() => {
      lane.scheduled = false;
      lane.running = this.run(lane);
    });
  }

  /** What a lane asks for: the hot lane its recent groups, a cold lane its members that are not hot. */
  private asks(lane: Lane): { groups: Group[]; specs: PullSpec[] } {
    const now = this.source.now();
    const groups: Group[] = [];
    const specs: PullSpec[] = [];
    const consider = (g: Group) => {
      if (specs.length >= MAX_PULLS_PER_REQUEST) return;
      for (const other of this.lanes()) if (other !== lane && other.covers(g)) return;
      const d = g.demand();
      if (d <= 0) return;
      groups.push(g);
      specs.push({ topic: g.topic, channel: g.channel, max: Math.min(d, MAX_PULL), leaseMs: g.leaseMs });
    };
    if (lane.hot) {
      for (const [g, t] of this.lastMessage) {
        if (now - t >= this.opts.hotWindowMs) {
          // Gone quiet: from now on a cold lane asks for it.
          this.lastMessage.delete(g);
          if (g.demand() > 0) this.wake(g);
        } else consider(g);
      }
    } else {
      for (const g of lane.members) if (!this.isHot(g, now)) consider(g);
    }
    return { groups, specs };
  }

  private async run(lane: Lane): Promise<void> {
    if (lane.poll || this.closed) return;
    const { groups, specs } = this.asks(lane);
    if (groups.length === 0) return;
    const p: Poll = { ac: new AbortController(), covered: new Set(groups), startedAt: this.source.now(), answered: false, restarting: false };
    lane.poll = p;
    lane.lastStart = p.startedAt;
    lane.lastSize = groups.length;
    this.counts.polls++;
    let failed = false;
    const becameHot: Group[] = [];
    try {
      const results = await this.client.pullMany(specs, this.opts.pollWaitMs, p.ac.signal, () => (p.answered = true));
      p.answered = true;
      const now = this.source.now();
      for (let i = 0; i < groups.length; i++) {
        const got = results[i];
        if (got.length === 0) continue;
        this.counts.messages += got.length;
        if (!lane.hot) becameHot.push(groups[i]);
        this.lastMessage.set(groups[i], now);
        groups[i].deliver(got.map((m: LeasedMessage): Lease => ({ shard: this.address, msg: m, expiresAt: now + m.leaseMs, receivedAt: now })));
      }
      lane.backoff = 0;
    } catch (err) {
      if (!p.ac.signal.aborted) {
        failed = true;
        this.counts.failures++;
        lane.backoff = lane.backoff === 0 ? this.opts.minBackoffMs : Math.min(lane.backoff * 2, this.opts.maxBackoffMs);
        this.logger.warn('pull from shard failed; retrying', { shard: this.address, error: err instanceof Error ? err.message : String(err), retry_ms: lane.backoff });
      }
    } finally {
      if (lane.restartTimer) clearTimeout(lane.restartTimer);
      lane.restartTimer = undefined;
      lane.poll = null;
    }
    if (this.closed) return;
    if (failed) {
      lane.delayTimer = setTimeout(() => {
        lane.delayTimer = undefined;
        this.schedule(lane);
      }, lane.backoff);
      lane.delayTimer.unref?.();
      return;
    }
    // Groups that just had messages are asked for by the hot lane from now on.
    for (const g of becameHot) if (g.demand() > 0) this.wakeLane(this.hotLane, g);
    this.schedule(lane);
  }

  /**
   * Stops polling. A poll still waiting is aborted (the shard requeues what it had handed to it);
   * one whose answer is arriving is let finish, so its messages reach the groups, and the caller
   * gives them back. Resolves when no poll is left.
   */
  async close(): Promise<void> {
    this.closed = true;
    const lanes = this.lanes();
    for (const lane of lanes) {
      if (lane.restartTimer) clearTimeout(lane.restartTimer);
      if (lane.delayTimer) clearTimeout(lane.delayTimer);
      if (lane.poll && !lane.poll.answered) lane.poll.ac.abort();
    }
    await Promise.all(lanes.map((l) => l.running));
  }
}
