// Consuming over HTTP, the service behind the long-poll, SSE and receipt endpoints: the groups of
// local demand (consumers.ts), one hub per shard polling for them (hub.ts), receipts signed and
// verified (receipts.ts), settling coalesced per shard (settle.ts), and the bookkeeping that lets
// an SSE stream's credit come back when its messages are acked, requeued, expire or are settled
// through another gateway. Holds leases only while handing them out; nothing survives a restart,
// and nothing needs to: an unsettled lease expires at its shard and the message is redelivered.

import type { Logger } from '../runtime/logger';
import { Group, Lease } from './consumers';
import { DEFAULT_HUB_OPTIONS, HubOptions, ShardHub } from './hub';
import type { ChannelConfig, LeaseClient, SettleItem, SettleOp, SettleOutcome } from './lease-client';
import { ReceiptFields, ReceiptSigner } from './receipts';
import { homeOf } from './routing';
import { DEFAULT_SETTLER_OPTIONS, Settler } from './settle';
import type { Topology } from './topology';

export interface ConsumeOptions {
  /** Shared by every gateway of a cluster; the first signs, all verify. Empty: consuming is off. */
  receiptSecrets: string[];
  defaultLeaseMs: number;
  minLeaseMs: number;
  maxLeaseMs: number;
  /** Longest long-poll wait a request may ask for. */
  maxWaitMs: number;
  defaultWaitMs: number;
  /** Largest `max` of one long-poll, and largest `max_in_flight` of one stream. */
  maxMessages: number;
  maxInFlight: number;
  /** How long leased messages nobody took are kept for the next subscriber before going back. */
  holdMs: number;
  /** How often a stream whose credit is used up asks its shards which of its messages were settled elsewhere. */
  reconcileMs: number;
  /** SSE keep-alive comment interval. */
  keepAliveMs: number;
  /** How new topics are placed (same as the publisher's), so consumers poll where publishers write. */
  placementCount: number;
  hub: HubOptions;
}

export const DEFAULT_CONSUME_OPTIONS: ConsumeOptions = {
  receiptSecrets: [],
  defaultLeaseMs: 60_000,
  minLeaseMs: 100,
  maxLeaseMs: 15 * 60_000,
  maxWaitMs: 30_000,
  defaultWaitMs: 20_000,
  maxMessages: 1000,
  maxInFlight: 2500,
  holdMs: 1000,
  reconcileMs: 250,
  keepAliveMs: 15_000,
  placementCount: 2,
  hub: DEFAULT_HUB_OPTIONS,
};

/** A stream (or anything else) holding delivered, unsettled leases that this service tracks. */
export interface Holder {
  /** The delivery named by `key` was settled (acked, requeued, or found gone): its credit is back. */
  settled(key: string): void;
  /** The delivery was touched through this gateway; its lease now ends `leaseMs` from now. */
  touched(key: string, leaseMs: number): void;
}

/** An open subscription the service sweeps (lease expiry, reconcile), keeps alive and ends on close. */
export interface Subscription {
  /** Called every 100 ms: lease expiry, reconciling credit, keep-alive comments when due. */
  sweep(now: number): void;
  /** Ends it (the gateway is closing); resolves when its leases were given back. */
  end(): Promise<void>;
}

export type ResultCode = 'OK' | 'RECEIPT_INVALID' | 'RECEIPT_STALE' | 'NOT_IN_FLIGHT' | 'SHARD_UNKNOWN' | 'SHARD_UNAVAILABLE' | 'FORBIDDEN';

export interface SettleRequest {
  receipt: string;
  delayMs?: number;
  leaseMs?: number;
}

export interface SettleResult {
  receipt: string;
  status: ResultCode;
  /** After a touch: the lease left, in ms. */
  leaseMs?: number;
}

export function deliveryKey(shard: string, id: string, token: string): string {
  return shard + '\n' + id + '\n' + token;
}

export interface ConsumeDeps {
  topology: Topology;
  logger: Logger;
  clientFor(address: string): LeaseClient;
  /** Monotonic ms. */
  now?: () => number;
}

export class Consumption {
  readonly signer: ReceiptSigner | null;
  readonly settler = new Settler(DEFAULT_SETTLER_OPTIONS);
  private readonly groups = new Map<string, Group>();
  private readonly byShard = new Map<string, Set<Group>>();
  private readonly hubs = new Map<string, ShardHub>();
  private readonly holders = new Map<string, Holder>();
  private readonly subs = new Set<Subscription>();
  private readonly configured = new Map<string, { value: string; at: number }>();
  private knownShards = new Set<string>();
  private topologyVersion = -1;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing = false;
  /** False once a shard said it has no /sluice/lease/status (an older shard): credit then comes back on expiry only. */
  statusSupported = true;
  readonly now: () => number;
  /** Running totals, for metrics and tests. */
  readonly counts = { delivered: 0, settled: 0, released: 0, requeuedOnClose: 0 };

  constructor(readonly opts: ConsumeOptions, private readonly deps: ConsumeDeps) {
    this.signer = opts.receiptSecrets.length > 0 ? new ReceiptSigner(opts.receiptSecrets) : null;
    this.now = deps.now ?? (() => performance.now());
  }

  get enabled(): boolean {
    return this.signer !== null;
  }

  start(): void {
    if (!this.enabled || this.sweepTimer) return;
    this.syncTopology();
    this.sweepTimer = setInterval(() => this.sweep(), 100);
    this.sweepTimer.unref();
  }

  // ---- groups and hubs ----

  private homeOf(topic: string): string[] {
    const t = this.deps.topology;
    return homeOf(topic, t.nodes(), t.shardsOf(topic), this.opts.placementCount);
  }

  /** The group for a channel and lease length (created on first use); its shards are the topic's home. */
  group(topic: string, channel: string, leaseMs: number): Group {
    this.syncTopology();
    const key = topic + '\u0000' + channel + '\u0000' + leaseMs;
    let g = this.groups.get(key);
    if (!g) {
      g = new Group(key, topic, channel, leaseMs, this.hooks, this.opts.holdMs);
      this.groups.set(key, g);
      this.place(g, this.homeOf(topic));
      // Subscribing creates the channel on every shard of the topic, so that what is published
      // after the subscribe returned reaches it, whether or not a poll covered it yet.
      g.ready = Promise.all(g.shards.map((s) => this.deps.clientFor(s).createChannel(topic, channel).catch(() => undefined))).then(() => undefined);
    }
    return g;
  }

  private readonly hooks = {
    wake: (g: Group) => {
      for (const s of g.shards) this.hub(s).wake(g);
    },
    release: (g: Group, leases: Lease[]) => {
      this.counts.released += leases.length;
      this.giveBack(g.topic, g.channel, leases, true);
    },
    now: () => this.now(),
  };

  private place(g: Group, shards: string[]): void {
    for (const s of g.shards) {
      if (shards.includes(s)) continue;
      this.byShard.get(s)?.delete(g);
      this.hubs.get(s)?.forget(g);
    }
    for (const s of shards) {
      let set = this.byShard.get(s);
      if (!set) this.byShard.set(s, (set = new Set()));
      set.add(g);
    }
    const added = shards.filter((s) => !g.shards.includes(s));
    g.shards = shards;
    if (added.length > 0 && g.demand() > 0) for (const s of added) this.hub(s).wake(g);
  }

  private hub(address: string): ShardHub {
    let h = this.hubs.get(address);
    if (!h) {
      h = new ShardHub(address, this.deps.clientFor(address), { now: this.now }, this.opts.hub, this.deps.logger);
      this.hubs.set(address, h);
    }
    return h;
  }

  /** Follows the lookups: groups move to their topic's current home, hubs of vanished shards stop. */
  syncTopology(): void {
    const t = this.deps.topology;
    if (t.version === this.topologyVersion) return;
    this.topologyVersion = t.version;
    this.knownShards = new Set(t.nodes());
    for (const g of this.groups.values()) this.place(g, this.homeOf(g.topic));
    for (const [address, h] of this.hubs) {
      if (this.knownShards.has(address)) continue;
      void h.close();
      this.hubs.delete(address);
      this.byShard.delete(address);
    }
  }

  /** Whether a receipt's shard is one the lookups (or --shard-http-address) name. */
  knows(shard: string): boolean {
    this.syncTopology();
    return this.knownShards.has(shard);
  }

  // ---- handing out ----

  /** Signs a receipt for a lease of `g` and counts it delivered. */
  receiptFor(g: Group, l: Lease): string {
    this.counts.delivered++;
    return this.signer!.sign({ shard: l.shard, topic: g.topic, channel: g.channel, id: l.msg.id, token: l.msg.token });
  }

  track(key: string, h: Holder): void {
    this.holders.set(key, h);
  }

  untrack(key: string): void {
    this.holders.delete(key);
  }

  subscribe(s: Subscription): void {
    this.subs.add(s);
  }

  unsubscribe(s: Subscription): void {
    this.subs.delete(s);
  }

  get subscriptionCount(): number {
    return this.subs.size;
  }

  /**
   * Gives leases back to their shards at once (requeue, delay 0). `undelivered`: no consumer ever
   * saw them (a long-poll whose client left before the answer, surplus), so it is not an attempt.
   */
  giveBack(topic: string, channel: string, leases: readonly Lease[], undelivered: boolean): Promise<unknown> {
    return this.perShard(topic, channel, 'requeue', leases, (l) => ({ id: l.msg.id, token: l.msg.token, delayMs: 0, undelivered }));
  }

  /** Asks the shards whether these leases are still in flight with these tokens (read-only). */
  async stillLeased(topic: string, channel: string, leases: readonly Lease[]): Promise<SettleOutcome[]> {
    const out = await this.perShard(topic, channel, 'status', leases, (l) => ({ id: l.msg.id, token: l.msg.token }));
    if (out.some((o) => o.status.startsWith('SHARD_REFUSED:'))) {
      if (this.statusSupported) this.deps.logger.warn('a shard has no lease status route; stream credit returns on lease expiry only', {});
      this.statusSupported = false;
    }
    return out;
  }

  /** One coalesced settle per shard for leases of one channel; outcomes in the leases' order. */
  private async perShard(topic: string, channel: string, op: SettleOp, leases: readonly Lease[], item: (l: Lease) => SettleItem): Promise<SettleOutcome[]> {
    const byShard = new Map<string, number[]>();
    leases.forEach((l, i) => (byShard.get(l.shard) ?? byShard.set(l.shard, []).get(l.shard)!).push(i));
    const out = new Array<SettleOutcome>(leases.length);
    await Promise.all(
      [...byShard].map(async ([shard, idx]) => {
        const got = await this.settler.settleAll(this.deps.clientFor(shard), op, topic, channel, idx.map((i) => item(leases[i])));
        idx.forEach((i, k) => (out[i] = got[k]));
      }),
    );
    return out;
  }

  // ---- settling by receipt ----

  /** Verifies each receipt, checks it with `allowed`, and settles it on its shard; one result each, in order. */
  async settle(op: Exclude<SettleOp, 'status'>, reqs: readonly SettleRequest[], allowed: (f: ReceiptFields) => boolean): Promise<SettleResult[]> {
    const signer = this.signer!;
    const results = new Array<SettleResult>(reqs.length);
    // Receipts that pass, grouped by shard, topic and channel: one coalesced call per group.
    const lanes = new Map<string, { f: ReceiptFields; idx: number[]; fields: ReceiptFields[] }>();
    for (let i = 0; i < reqs.length; i++) {
      const r = reqs[i];
      const f = signer.verify(r.receipt);
      if (typeof f === 'string') results[i] = { receipt: r.receipt, status: 'RECEIPT_INVALID' };
      else if (!allowed(f)) results[i] = { receipt: r.receipt, status: 'FORBIDDEN' };
      else if (!this.knows(f.shard)) results[i] = { receipt: r.receipt, status: 'SHARD_UNKNOWN' };
      else {
        const key = f.shard + '\u0000' + f.topic + '\u0000' + f.channel;
        let lane = lanes.get(key);
        if (!lane) lanes.set(key, (lane = { f, idx: [], fields: [] }));
        lane.idx.push(i);
        lane.fields.push(f);
      }
    }
    await Promise.all(
      [...lanes.values()].map(async (lane) => {
        const items = lane.fields.map((f, k): SettleItem => {
          const r = reqs[lane.idx[k]];
          const item: SettleItem = { id: f.id, token: f.token };
          if (op === 'requeue') item.delayMs = r.delayMs ?? 0;
          if (op === 'touch' && r.leaseMs !== undefined) item.leaseMs = r.leaseMs;
          return item;
        });
        const outcomes = await this.settler.settleAll(this.deps.clientFor(lane.f.shard), op, lane.f.topic, lane.f.channel, items);
        outcomes.forEach((o, k) => {
          const i = lane.idx[k];
          const f = lane.fields[k];
          const status = resultOf(o.status);
          const key = deliveryKey(f.shard, f.id, f.token);
          const holder = this.holders.get(key);
          if (holder && status !== 'SHARD_UNAVAILABLE') {
            if (op === 'touch' && status === 'OK') holder.touched(key, o.leaseMs ?? reqs[i].leaseMs ?? 0);
            else if (op !== 'touch' || status !== 'OK') holder.settled(key);
          }
          if (status === 'OK') this.counts.settled++;
          const res: SettleResult = { receipt: reqs[i].receipt, status };
          if (op === 'touch' && status === 'OK' && o.leaseMs !== undefined) res.leaseMs = o.leaseMs;
          results[i] = res;
        });
      }),
    );
    return results;
  }

  // ---- channel settings (max attempts, dead-letter topic) ----

  /** Reads the settings from every shard of the topic's home that has the channel. */
  async channelSettings(topic: string, channel: string): Promise<{ address: string; config: ChannelConfig | null; error?: string }[]> {
    this.syncTopology();
    return Promise.all(
      this.homeOf(topic).map(async (address) => {
        try {
          return { address, config: await this.deps.clientFor(address).channelConfig(topic, channel) };
        } catch (err) {
          const status = (err as { status?: number })?.status;
          if (status === 404) return { address, config: null };
          return { address, config: null, error: (err as { code?: string })?.code ?? 'SHARD_UNAVAILABLE' };
        }
      }),
    );
  }

  /** Sets max attempts and the dead-letter topic on every shard of the topic's home (creating the channel). */
  async configureChannel(topic: string, channel: string, maxAttempts: number, deadLetterTopic: string): Promise<{ address: string; config: ChannelConfig | null; error?: string }[]> {
    this.syncTopology();
    const out = await Promise.all(
      this.homeOf(topic).map(async (address) => {
        try {
          return { address, config: await this.deps.clientFor(address).channelConfig(topic, channel, { maxAttempts, deadLetterTopic }) };
        } catch (err) {
          return { address, config: null, error: (err as { code?: string })?.code ?? 'SHARD_UNAVAILABLE' };
        }
      }),
    );
    if (out.every((r) => r.config !== null)) this.configured.set(topic + '\u0000' + channel, { value: maxAttempts + '\u0000' + deadLetterTopic, at: this.now() });
    return out;
  }

  /** For `max_attempts` on a subscribe: configures the channel unless this gateway did so recently. */
  async ensureConfigured(topic: string, channel: string, maxAttempts: number, deadLetterTopic: string): Promise<boolean> {
    const c = this.configured.get(topic + '\u0000' + channel);
    if (c && c.value === maxAttempts + '\u0000' + deadLetterTopic && this.now() - c.at < 60_000) return true;
    const out = await this.configureChannel(topic, channel, maxAttempts, deadLetterTopic);
    return out.every((r) => r.config !== null);
  }

  // ---- housekeeping ----

  private sweeps = 0;

  private sweep(): void {
    this.syncTopology();
    const now = this.now();
    for (const s of this.subs) s.sweep(now);
    // Groups left unused are dropped once a second (there may be tens of thousands of them).
    if (++this.sweeps % 10 !== 0) return;
    for (const [key, g] of this.groups) {
      if (g.idleSince > 0 && now - g.idleSince > 10_000 && g.waiters.length === 0 && g.surplusCount === 0) {
        this.groups.delete(key);
        for (const s of g.shards) {
          this.byShard.get(s)?.delete(g);
          this.hubs.get(s)?.forget(g);
        }
      }
    }
  }

  get groupCount(): number {
    return this.groups.size;
  }

  /** The groups with subscribers or held messages now, for reading only (the consumer report counts them). */
  activeGroups(): readonly Group[] {
    const out: Group[] = [];
    for (const g of this.groups.values()) if (g.waiters.length > 0 || g.surplusCount > 0) out.push(g);
    return out;
  }

  hubCounts(): Record<string, { polls: number; restarts: number; failures: number; messages: number; polling: boolean; lanes: number }> {
    const out: Record<string, { polls: number; restarts: number; failures: number; messages: number; polling: boolean; lanes: number }> = {};
    for (const [a, h] of this.hubs) out[a] = { ...h.counts, polling: h.polling, lanes: h.laneCount };
    return out;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /**
   * Stops polling, ends every subscription (its unacked messages requeued at once) and gives
   * back every message leased but not handed out; then closes the shard connections' users.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.all([...this.hubs.values()].map((h) => h.close()));
    await Promise.all([...this.subs].map((s) => s.end()));
    const back: Promise<unknown>[] = [];
    for (const g of this.groups.values()) {
      const held = g.releaseAll();
      if (held.length > 0) back.push(this.giveBack(g.topic, g.channel, held, true));
    }
    await Promise.all(back);
  }
}

function resultOf(shardStatus: string): ResultCode {
  switch (shardStatus) {
    case 'OK':
      return 'OK';
    case 'NOT_IN_FLIGHT':
      return 'NOT_IN_FLIGHT';
    case 'STALE_LEASE':
    case 'NOT_OWNER':
      return 'RECEIPT_STALE';
    default:
      return 'SHARD_UNAVAILABLE';
  }
}
