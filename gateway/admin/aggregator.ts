// Reads every known shard's /stats in parallel (each call with a deadline, shards behind an open
// breaker skipped) and merges them. One poll loop per gateway feeds every live viewer (SSE) and
// the rate/depth history; it runs only while someone watches, and a little after, so moving
// between pages keeps the charts.

import type { Logger } from '../../runtime/logger';
import type { Topology } from '../topology';
import { AdminHttp, errorCode, json } from './shard-http';
import { parseStats } from '../../wire/nsqd-stats';
import { aggregate, ClusterSnapshot, History, Rates, ShardResult } from './stats';

export interface AggregatorOptions {
  intervalMs: number;
  historyMs: number;
  /** How long the loop keeps going after the last viewer leaves. */
  idleStopMs: number;
}

export const DEFAULT_AGGREGATOR_OPTIONS: AggregatorOptions = { intervalMs: 2000, historyMs: 10 * 60_000, idleStopMs: 60_000 };

export interface CollectFilter {
  topic?: string;
  channel?: string;
  includeClients?: boolean;
}

export type Viewer = (event: 'snapshot', snapshot: ClusterSnapshot) => void;

export class Aggregator {
  readonly history: History;
  private readonly rates = new Rates();
  private readonly viewers = new Set<Viewer>();
  private timer: NodeJS.Timeout | undefined;
  private lastViewerLeft = 0;
  private closed = false;
  latest: ClusterSnapshot | null = null;

  constructor(
    private readonly topology: Topology,
    private readonly http: AdminHttp,
    private readonly opts: AggregatorOptions,
    private readonly logger: Logger,
    private readonly wallNow: () => number = Date.now,
    private readonly monoNow: () => number = () => performance.now(),
  ) {
    this.history = new History(opts.historyMs);
  }

  /** A fresh read of every known shard (not the loop's last one): what the JSON API answers with. */
  async collect(f: CollectFilter = {}): Promise<ClusterSnapshot> {
    const q = new URLSearchParams({ format: 'json' });
    if (f.topic) q.set('topic', f.topic);
    if (f.topic && f.channel) q.set('channel', f.channel);
    q.set('include_clients', f.includeClients ? 'true' : 'false');
    const path = '/stats?' + q.toString();
    const results = await Promise.all(
      this.topology.nodes().map(async (address): Promise<ShardResult> => {
        const started = performance.now();
        const ms = () => Math.round(performance.now() - started);
        try {
          const stats = parseStats(json(await this.http.shard(address, 'GET', path)));
          return { address, stats, breaker: this.http.breaker(address), ms: ms() };
        } catch (err) {
          return { address, stats: null, error: err instanceof SyntaxError ? 'BAD_SHARD_ANSWER' : errorCode(err), breaker: this.http.breaker(address), ms: ms() };
        }
      }),
    );
    const s = aggregate(results, this.wallNow());
    this.copyRates(s);
    return s;
  }

  /** Rates shown outside the loop are the loop's latest (a fresh read has no interval of its own). */
  private copyRates(s: ClusterSnapshot): void {
    if (!this.latest) return;
    for (const t of s.topics) {
      const lt = this.latest.topics.find((x) => x.name === t.name);
      if (!lt) continue;
      t.rate = lt.rate;
      for (const c of t.channels) c.rate = lt.channels.find((x) => x.name === c.name)?.rate ?? null;
    }
  }

  /** Adds a live viewer (starting the loop); returns the function that removes it. */
  watch(v: Viewer): () => void {
    this.viewers.add(v);
    if (!this.timer && !this.closed) this.schedule(0);
    return () => {
      this.viewers.delete(v);
      if (this.viewers.size === 0) this.lastViewerLeft = this.monoNow();
    };
  }

  get viewerCount(): number {
    return this.viewers.size;
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const started = this.monoNow();
    try {
      const s = await this.collect();
      this.rates.apply(s, this.monoNow());
      this.history.record(s);
      this.latest = s;
      for (const v of this.viewers) {
        try {
          v('snapshot', s);
        } catch (err) {
          this.logger.warn('admin: viewer failed', { error: err instanceof Error ? err.message : String(err) });
        }
      }
    } catch (err) {
      this.logger.warn('admin: poll failed', { error: err instanceof Error ? err.message : String(err) });
    }
    if (this.closed || (this.viewers.size === 0 && this.monoNow() - this.lastViewerLeft >= this.opts.idleStopMs)) {
      this.timer = undefined;
      return;
    }
    this.schedule(Math.max(0, this.opts.intervalMs - (this.monoNow() - started)));
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.viewers.clear();
  }
}
