// Tells each shard, every few seconds, which HTTP consumers this gateway has on that shard's
// channels (SSE streams, waiting long-polls, what it holds in flight for them), so the admin can
// list consumers of every kind from the shards' /stats. One request per shard per interval and
// nothing per message: a full report the first time (or when the shard lost track), then deltas
// of what changed — an empty delta is the heartbeat that keeps the shard's entries alive (they
// expire after ttl_ms). A shard left without consumers gets one empty report that clears, then
// nothing; closing the gateway clears every shard at once.

import { randomInt } from 'node:crypto';
import { Agent, request } from 'undici';
import type { Logger } from '../runtime/logger';
import { channelKey, CONSUMER_REPORT_PATH, ConsumerReport, ReportedChannel, ReportedGateway } from '../wire/consumer-report';
import type { Group } from './consumers';
import { SseStream } from './sse';

export interface ConsumerReportOptions {
  /** How often each shard is told (0: never). */
  intervalMs: number;
  /** How long a shard keeps the entries without hearing again; 0: three intervals. */
  ttlMs: number;
  /** Budget of one report request. */
  timeoutMs: number;
}

export const DEFAULT_CONSUMER_REPORT_OPTIONS: ConsumerReportOptions = { intervalMs: 5000, ttlMs: 0, timeoutMs: 2000 };

/** Sends one report body to a shard; resolves with the shard's status (and body, for the log). */
export type SendReport = (shard: string, body: string, signal: AbortSignal) => Promise<{ status: number; text: string }>;

export interface ConsumerReportDeps {
  /** The consuming side's groups with subscribers (Consumption.activeGroups). */
  groups(): readonly Group[];
  /** The shards this gateway knows now. */
  shards(): readonly string[];
  /** Who this gateway is (known once it listens). */
  identity(): ReportedGateway;
  send: SendReport;
  logger: Logger;
}

type Counts = Map<string, ReportedChannel>;

/**
 * The HTTP consumers per shard and channel. A group is reported to every shard of its topic's
 * home (it pulls from each), so each shard sees the gateway's whole count for the channel; groups
 * of one channel with different lease lengths are added up.
 */
export function countConsumers(groups: readonly Group[]): Map<string, Counts> {
  const out = new Map<string, Counts>();
  for (const g of groups) {
    let streams = 0;
    let longPolls = 0;
    let inFlight = 0;
    for (const w of g.waiters) {
      if (w instanceof SseStream) {
        streams++;
        inFlight += w.unacked;
      } else longPolls++;
    }
    const held = g.surplusCount;
    if (streams + longPolls + inFlight + held === 0) continue;
    const key = channelKey(g.topic, g.channel);
    for (const shard of g.shards) {
      let counts = out.get(shard);
      if (!counts) out.set(shard, (counts = new Map()));
      const c = counts.get(key);
      if (c) {
        c.streams += streams;
        c.long_polls += longPolls;
        c.in_flight += inFlight;
        c.held += held;
      } else counts.set(key, { topic: g.topic, channel: g.channel, streams, long_polls: longPolls, in_flight: inFlight, held });
    }
  }
  return out;
}

/** What changed from `before` to `now`: new or different entries, and removed ones as all zeros. */
export function diffCounts(before: Counts, now: Counts): ReportedChannel[] {
  const out: ReportedChannel[] = [];
  for (const [k, c] of now) {
    const b = before.get(k);
    if (!b || b.streams !== c.streams || b.long_polls !== c.long_polls || b.in_flight !== c.in_flight || b.held !== c.held) out.push(c);
  }
  for (const [k, b] of before) if (!now.has(k)) out.push({ topic: b.topic, channel: b.channel, streams: 0, long_polls: 0, in_flight: 0, held: 0 });
  return out;
}

interface ShardState {
  /** The version the shard holds (after our last acknowledged report). */
  version: number;
  /** What the shard holds for us, or null when unknown (first report, or the last one failed): send in full. */
  acked: Counts | null;
  pending: Promise<void> | null;
  failing: boolean;
  /** Rounds left to skip: a shard without the report route (a stock nsqd) is asked again only now and then. */
  skip: number;
}

/** Rounds a shard that answered 404 (no report route) is left alone before it is tried again. */
const UNSUPPORTED_SKIP = 12;

class ShardAnswer extends Error {
  constructor(readonly status: number) {
    super(`shard answered ${status}`);
  }
}

const NONE: Counts = new Map();

export class ConsumerReporter {
  private readonly states = new Map<string, ShardState>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Running totals, for tests and metrics. */
  readonly counts = { full: 0, delta: 0, failed: 0 };

  constructor(private readonly opts: ConsumerReportOptions, private readonly deps: ConsumerReportDeps) {}

  get ttlMs(): number {
    return this.opts.ttlMs > 0 ? this.opts.ttlMs : Math.max(1000, 3 * this.opts.intervalMs);
  }

  start(): void {
    if (this.opts.intervalMs <= 0 || this.timer || this.closed) return;
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  /** One round: every shard with consumers (or with entries to clear) is sent one report. */
  tick(): Promise<void> {
    const perShard = countConsumers(this.deps.groups());
    const known = new Set(this.deps.shards());
    const rounds: Promise<void>[] = [];
    for (const shard of new Set([...perShard.keys(), ...this.states.keys()])) {
      // A shard the lookups no longer name is left alone: what it holds for us expires.
      if (!known.has(shard)) {
        this.states.delete(shard);
        continue;
      }
      const p = this.reportTo(shard, perShard.get(shard) ?? NONE);
      if (p) rounds.push(p);
    }
    return Promise.all(rounds).then(() => undefined);
  }

  private reportTo(shard: string, now: Counts): Promise<void> | null {
    let st = this.states.get(shard);
    if (st?.pending) return null;
    if (now.size === 0 && !st) return null;
    if (st && st.skip > 0) {
      st.skip--;
      return null;
    }
    if (!st) this.states.set(shard, (st = { version: randomInt(1, 2 ** 31), acked: null, pending: null, failing: false, skip: 0 }));
    const state = st;
    state.pending = this.exchange(shard, state, now).finally(() => (state.pending = null));
    return state.pending;
  }

  private async exchange(shard: string, st: ShardState, now: Counts): Promise<void> {
    try {
      if (st.acked !== null && now.size > 0) {
        const changes = diffCounts(st.acked, now);
        const version = changes.length > 0 ? st.version + 1 : st.version;
        const status = await this.send(shard, { gateway: this.deps.identity(), ttl_ms: this.ttlMs, version, base: st.version, changes });
        this.counts.delta++;
        if (status === 200) return this.acknowledged(shard, st, version, now);
        // 409: the shard restarted, let the entries expire or dropped a deleted channel's: resend in full.
        if (status !== 409) throw new ShardAnswer(status);
      }
      const version = st.version + 1;
      const status = await this.send(shard, { gateway: this.deps.identity(), ttl_ms: this.ttlMs, version, channels: [...now.values()] });
      this.counts.full++;
      if (status !== 200) throw new ShardAnswer(status);
      this.acknowledged(shard, st, version, now);
    } catch (err) {
      this.counts.failed++;
      st.acked = null;
      if (err instanceof ShardAnswer && err.status === 404) st.skip = UNSUPPORTED_SKIP;
      // An empty report that did not arrive is not retried: the shard's entries expire on their own.
      if (now.size === 0) this.states.delete(shard);
      if (!st.failing) this.deps.logger.warn('consumer report to shard failed', { shard, error: err instanceof Error ? err.message : String(err) });
      st.failing = true;
    }
  }

  private acknowledged(shard: string, st: ShardState, version: number, now: Counts): void {
    if (st.failing) this.deps.logger.info('consumer reports reach the shard again', { shard });
    st.failing = false;
    st.version = version;
    st.acked = now;
    // Nothing left to report: the shard has forgotten us, and we stop sending.
    if (now.size === 0) this.states.delete(shard);
  }

  private async send(shard: string, report: ConsumerReport): Promise<number> {
    const res = await this.deps.send(shard, JSON.stringify(report), AbortSignal.timeout(this.opts.timeoutMs));
    return res.status;
  }

  /** Stops reporting and tells every shard that holds something for us to forget it (bounded by the timeout). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all([...this.states.values()].map((s) => s.pending));
    const shards = [...this.states.keys()];
    this.states.clear();
    await Promise.allSettled(shards.map((shard) => this.send(shard, { gateway: this.deps.identity(), ttl_ms: this.ttlMs, version: 0, channels: [] })));
  }
}

/** Reports over HTTP: one keep-alive connection per shard, apart from the publish and lease pools. */
export function httpReportSender(timeoutMs: number): { send: SendReport; close(): Promise<void> } {
  const agent = new Agent({ connections: 1, keepAliveTimeout: 30_000, connectTimeout: timeoutMs });
  return {
    async send(shard, body, signal) {
      const res = await request(`http://${shard}${CONSUMER_REPORT_PATH}`, { method: 'POST', body, headers: { 'content-type': 'application/json' }, dispatcher: agent, signal });
      return { status: res.statusCode, text: await res.body.text() };
    },
    close: () => agent.close(),
  };
}
