// Publishing: pick a shard for each message (routing.ts), coalesce the single publishes bound
// for the same shard and topic into one /sluice/mpub call, and when a shard fails, send what it
// did not take to the next shard in the message's order. Holds no message beyond the call.

import type { Logger } from '../runtime/logger';
import { BatchMessage, encodeBatch } from '../wire/sluice-batch';
import { GatewayError } from './errors';
import { homeOf, route } from './routing';
import { maybeStored, MpubAnswer, ShardClient, ShardError } from './shards';
import type { Topology } from './topology';

export interface OutMessage extends BatchMessage {
  /** Routing key; the idempotency key routes when there is none. */
  key?: string;
}

export interface PublishResult {
  id: string;
  shard: string;
  duplicate: boolean;
}

export interface PublisherOptions {
  placementCount: number;
  /** Most single publishes queued in this gateway (over every shard) before answering 429. */
  maxPending: number;
  /** Most /sluice/mpub calls in flight per shard and topic; publishes queue behind them. */
  maxInFlight: number;
  /** Largest coalesced call, in messages and in bytes. */
  maxBatchMessages: number;
  maxBatchBytes: number;
}

export const DEFAULT_PUBLISHER_OPTIONS: PublisherOptions = {
  placementCount: 2,
  maxPending: 20_000,
  maxInFlight: 1,
  maxBatchMessages: 1000,
  maxBatchBytes: 1024 * 1024,
};

export interface ShardPool {
  get(address: string): ShardClient;
  isUnavailable(address: string): boolean;
}

/** One single publish waiting for its call. */
interface Pending {
  topic: string;
  msg: OutMessage;
  tried: string[];
  resolve(r: PublishResult): void;
  reject(e: unknown): void;
}

/** The coalescing queue of one shard and topic. */
interface Lane {
  shard: string;
  topic: string;
  queue: Pending[];
  inFlight: number;
  scheduled: boolean;
}

export class Publisher {
  private readonly lanes = new Map<string, Map<string, Lane>>();
  private readonly turns = new Map<string, number>();
  private readonly homes = new Map<string, { version: number; home: string[] }>();
  private pending = 0;
  /** Running totals, read by /metrics at scrape time (plain numbers: nothing on the hot path). */
  readonly counts = {
    /** Messages a shard acknowledged (duplicates included). */
    published: 0,
    /** Calls to shards, and those that failed (any reason but a 4xx). */
    shardCalls: 0,
    shardCallFailures: 0,
    /** Failed calls that may have stored their messages before failing over (possible duplicates). */
    ambiguousFailures: 0,
  };

  constructor(
    private readonly topology: Topology,
    private readonly shards: ShardPool,
    private readonly opts: PublisherOptions,
    private readonly logger: Logger,
  ) {}

  private homeOf(topic: string): string[] {
    let h = this.homes.get(topic);
    if (!h || h.version !== this.topology.version) {
      if (this.homes.size > 100_000) this.homes.clear();
      h = { version: this.topology.version, home: homeOf(topic, this.topology.nodes(), this.topology.shardsOf(topic), this.opts.placementCount) };
      this.homes.set(topic, h);
    }
    return h.home;
  }

  private nextTurn(topic: string): number {
    const turn = (this.turns.get(topic) ?? 0) + 1;
    if (this.turns.size > 100_000) this.turns.clear();
    this.turns.set(topic, turn > 1e9 ? 0 : turn);
    return turn;
  }

  /** The shards to try for one message, best first. */
  order(topic: string, key: string | undefined): string[] {
    return route({
      topic,
      nodes: this.topology.nodes(),
      home: this.homeOf(topic),
      key,
      turn: key === undefined ? this.nextTurn(topic) : 0,
      unavailable: (n) => this.shards.isUnavailable(n),
    });
  }

  /** Publishes one message; concurrent ones to the same shard and topic share a call. */
  publishOne(topic: string, msg: OutMessage): Promise<PublishResult> {
    if (this.pending >= this.opts.maxPending) return Promise.reject(new GatewayError('TOO_MANY_REQUESTS', { pending: this.pending }));
    if (this.topology.nodes().length === 0) return Promise.reject(new GatewayError('NO_SHARD'));
    this.pending++;
    return new Promise<PublishResult>((resolve, reject) => {
      const p: Pending = {
        topic,
        msg,
        tried: [],
        resolve: (r) => {
          this.pending--;
          resolve(r);
        },
        reject: (e) => {
          this.pending--;
          reject(e);
        },
      };
      this.dispatch(p);
    });
  }

  private dispatch(p: Pending): void {
    const key = p.msg.key ?? p.msg.idempotencyKey;
    let next: string | undefined;
    if (key === undefined && p.tried.length === 0) {
      // The common case, without building the whole order: the next shard of the topic's home.
      const home = this.homeOf(p.topic);
      if (home.length > 0) {
        next = home[this.nextTurn(p.topic) % home.length];
        if (this.shards.isUnavailable(next)) next = undefined;
      }
    }
    next ??= this.order(p.topic, key).find((n) => !p.tried.includes(n));
    if (next === undefined) {
      p.reject(new GatewayError(p.tried.length ? 'SHARD_UNAVAILABLE' : 'NO_SHARD', { tried: p.tried }));
      return;
    }
    p.tried.push(next);
    let byTopic = this.lanes.get(next);
    if (!byTopic) this.lanes.set(next, (byTopic = new Map()));
    let lane = byTopic.get(p.topic);
    if (!lane) byTopic.set(p.topic, (lane = { shard: next, topic: p.topic, queue: [], inFlight: 0, scheduled: false }));
    lane.queue.push(p);
    this.schedule(lane);
  }

  private schedule(lane: Lane): void {
    if (lane.scheduled || lane.inFlight >= this.opts.maxInFlight || lane.queue.length === 0) return;
    lane.scheduled = true;
    // Wait for the rest of this turn of the event loop: publishes that arrived together go together.
    setImmediate(() => {
      lane.scheduled = false;
      while (lane.queue.length > 0 && lane.inFlight < this.opts.maxInFlight) this.flush(lane);
    });
  }

  private flush(lane: Lane): void {
    const batch: Pending[] = [];
    let bytes = 0;
    while (lane.queue.length > 0 && batch.length < this.opts.maxBatchMessages) {
      const p = lane.queue[0];
      if (batch.length > 0 && bytes + p.msg.body.length > this.opts.maxBatchBytes) break;
      bytes += p.msg.body.length;
      batch.push(lane.queue.shift()!);
    }
    lane.inFlight++;
    const msgs = batch.map((p) => p.msg);
    this.call(lane.shard, lane.topic, msgs).then(
      (answer) => {
        lane.inFlight--;
        for (let i = 0; i < batch.length; i++) batch[i].resolve({ id: answer.ids[i], shard: lane.shard, duplicate: answer.duplicates.includes(i) });
        this.afterCall(lane);
      },
      (err: unknown) => {
        lane.inFlight--;
        if (err instanceof ShardError && err.clientFault) for (const p of batch) p.reject(shardToClient(err));
        else for (const p of batch) this.dispatch(p);
        this.afterCall(lane);
      },
    );
  }

  private afterCall(lane: Lane): void {
    if (lane.queue.length > 0) this.schedule(lane);
    else if (lane.inFlight === 0) this.lanes.get(lane.shard)?.delete(lane.topic);
  }

  /** One shard call; learns the topic's new home on success and counts ambiguous failures. */
  private async call(shard: string, topic: string, msgs: readonly OutMessage[]): Promise<MpubAnswer> {
    this.counts.shardCalls++;
    try {
      const answer = await this.shards.get(shard).mpub(topic, encodeBatch(msgs));
      if (answer.ids.length !== msgs.length) throw new ShardError(502, 'BAD_SHARD_ANSWER');
      this.topology.learn(shard, topic);
      this.counts.published += msgs.length;
      return answer;
    } catch (err) {
      if (!(err instanceof ShardError && err.clientFault)) {
        this.counts.shardCallFailures++;
        if (maybeStored(err)) this.counts.ambiguousFailures++;
        this.logger.debug('shard call failed', { shard, topic, error: err instanceof Error ? err.message : String(err) });
      }
      throw err;
    }
  }

  /**
   * Publishes a client's batch. Messages are grouped by the shard they route to; each group is one
   * all-or-nothing call (failing over as a whole), so a batch without keys lands on one shard.
   */
  async publishBatch(topic: string, msgs: readonly OutMessage[], routeKey?: string): Promise<PublishResult[]> {
    if (this.topology.nodes().length === 0) throw new GatewayError('NO_SHARD');
    const groups = new Map<string, { idx: number[]; order: string[] }>();
    const batchOrder = this.order(topic, routeKey);
    for (let i = 0; i < msgs.length; i++) {
      const key = msgs[i].key ?? (routeKey === undefined ? msgs[i].idempotencyKey : undefined);
      const order = key === undefined ? batchOrder : this.order(topic, key);
      let g = groups.get(order[0]);
      if (!g) groups.set(order[0], (g = { idx: [], order }));
      g.idx.push(i);
    }
    const results: PublishResult[] = new Array(msgs.length);
    const failures: GatewayError[] = [];
    await Promise.all(
      [...groups.values()].map(async ({ idx, order }) => {
        const group = idx.map((i) => msgs[i]);
        let lastErr: unknown;
        for (const shard of order) {
          try {
            const answer = await this.call(shard, topic, group);
            idx.forEach((i, j) => (results[i] = { id: answer.ids[j], shard, duplicate: answer.duplicates.includes(j) }));
            return;
          } catch (err) {
            if (err instanceof ShardError && err.clientFault) {
              failures.push(shardToClient(err, idx));
              return;
            }
            lastErr = err;
          }
        }
        failures.push(new GatewayError('SHARD_UNAVAILABLE', { tried: order, error: lastErr instanceof Error ? lastErr.message : String(lastErr) }));
      }),
    );
    if (failures.length > 0) {
      // Groups that did land are named, so the caller can resend only the rest.
      const published = [];
      for (let i = 0; i < results.length; i++) if (results[i]) published.push({ index: i, ...results[i] });
      const err = failures[0];
      throw new GatewayError(err.code, { ...err.details, published });
    }
    return results;
  }

  get pendingCount(): number {
    return this.pending;
  }
}

/** A shard's 4xx is a problem with the request: report it to the client as ours. */
function shardToClient(err: ShardError, indexes?: number[]): GatewayError {
  const details: Record<string, unknown> = { shard_code: err.code };
  if (typeof err.details.index === 'number' && indexes) details.index = indexes[err.details.index];
  switch (err.code) {
    case 'MSG_TOO_BIG':
    case 'BODY_TOO_BIG':
    case 'BAD_MESSAGE':
      return new GatewayError('MSG_TOO_BIG', details);
    case 'INVALID_TOPIC':
      return new GatewayError('INVALID_TOPIC', details);
    case 'INVALID_DEFER':
      return new GatewayError('INVALID_DEFER', details);
    case 'INVALID_IDEMPOTENCY_KEY':
      return new GatewayError('INVALID_IDEMPOTENCY_KEY', details);
    default:
      return new GatewayError('INVALID_BODY', details);
  }
}
