// Consumer: subscribes to a topic/channel on every node that holds it — found by polling lookups'
// /lookup, or given as fixed TCP addresses — spreads max_in_flight over the connections as RDY,
// backs off after failures, reconnects, and closes cleanly with CLS. Messages are emitted with
// finish / requeue / touch; nothing is finished automatically.

import { EventEmitter } from 'node:events';
import { parseHostPort } from '../runtime/config';
import { isValidName } from '../wire/names';
import { exponentialDelay, BackoffState, type BackoffAction } from './backoff';
import type { ConnectionOptions } from './connection';
import { ClientError, errorText } from './errors';
import { ConsumerLink, type LinkOwner } from './consumer-link';
import { lookupTopic } from './lookup';
import { Message } from './message';
import { planRdy } from './rdy';
import { emitDelivery, type DeliveryCounts, type DeliveryOptions, type MessageSource } from './source';

export interface ConsumerOptions extends ConnectionOptions, DeliveryOptions {
  /** Lookups to poll for the nodes holding the topic ("host:port" or "http://host:port"). */
  lookupdHttpAddresses?: string[];
  /** Nodes to connect to directly ("host:port" of their TCP protocol V2). */
  nsqdTcpAddresses?: string[];
  /** How often lookups are asked again (ms, default 60 s, each wait shortened by up to 30% at random). */
  lookupdPollIntervalMs?: number;
  lookupdTimeoutMs?: number;
  /**
   * With fewer slots than connections (or while backing off), a connection idle this long hands
   * its RDY on (default 1 s: a shard with messages sends at once), and one that has held it this
   * long hands it on even if busy (default 10 s), so no shard starves.
   */
  lowRdyIdleMs?: number;
  maxRdyHoldMs?: number;
  /** How often RDY is re-planned so slots can rotate (default 500 ms). */
  rdyRedistributeIntervalMs?: number;
  /** Reconnect waits: first and longest (default 1 s and 60 s). */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** close() waits this long for in-flight messages to be settled before dropping connections (default 30 s). */
  closeTimeoutMs?: number;
}

export interface ConsumerStats extends DeliveryCounts {
  connections: number;
  inFlight: number;
  backoffLevel: number;
}

export interface Consumer {
  on(event: 'message' | 'discard', fn: (m: Message) => void): this;
  on(event: 'connected', fn: (address: string) => void): this;
  on(event: 'disconnected', fn: (address: string, err: Error | null) => void): this;
  /** Lookup failures, refused connections, E_FIN_FAILED…; emitted only if someone listens. */
  on(event: 'error', fn: (err: ClientError) => void): this;
  on(event: 'backoff', fn: (level: number, pauseMs: number) => void): this;
}

export class Consumer extends EventEmitter implements LinkOwner, MessageSource {
  readonly topic: string;
  readonly channel: string;
  private readonly links = new Map<string, ConsumerLink>();
  private readonly connecting = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly reconnectTimers = new Map<string, NodeJS.Timeout>();
  private discovered = new Set<string>();
  private readonly backoff: BackoffState;
  private maxInFlight: number;
  private pollTimer: NodeJS.Timeout | null = null;
  private rdyTimer: NodeJS.Timeout | null = null;
  private backoffTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  private readonly counts = { received: 0, finished: 0, requeued: 0, discarded: 0 };

  constructor(private readonly o: ConsumerOptions) {
    super();
    if (!isValidName(o.topic)) throw new RangeError(`invalid topic name ${JSON.stringify(o.topic)}`);
    if (!isValidName(o.channel)) throw new RangeError(`invalid channel name ${JSON.stringify(o.channel)}`);
    const lookups = o.lookupdHttpAddresses ?? [];
    const nodes = o.nsqdTcpAddresses ?? [];
    if (lookups.length + nodes.length === 0) throw new RangeError('give lookupdHttpAddresses or nsqdTcpAddresses');
    for (const a of nodes) parseHostPort(a);
    this.topic = o.topic;
    this.channel = o.channel;
    this.maxInFlight = o.maxInFlight ?? 1;
    this.backoff = new BackoffState(o.backoffMultiplierMs ?? 1000, o.maxBackoffMs ?? 120_000);
  }

  /** Connects to the fixed nodes and asks the lookups once; resolves when those attempts are over (connected or not). */
  async start(): Promise<void> {
    if (this.rdyTimer) return;
    this.rdyTimer = setInterval(() => this.rebalance(), this.o.rdyRedistributeIntervalMs ?? 500);
    const first = (this.o.nsqdTcpAddresses ?? []).map((a) => this.connectTo(a));
    if ((this.o.lookupdHttpAddresses ?? []).length > 0) first.push(this.poll());
    await Promise.all(first);
  }

  stats(): ConsumerStats {
    let inFlight = 0;
    for (const l of this.links.values()) inFlight += l.inFlight;
    return { connections: this.links.size, inFlight, ...this.counts, backoffLevel: this.backoff.level };
  }

  /** Changes max_in_flight; RDY is re-planned at once. */
  setMaxInFlight(n: number): void {
    this.maxInFlight = Math.max(0, Math.floor(n));
    this.rebalance();
  }

  /**
   * Stops taking messages (CLS on every connection), waits until every message in flight has
   * been finished or requeued — messages already on their way are still emitted — or until
   * `closeTimeoutMs`, then drops the connections (the server requeues what is left at once).
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- LinkOwner: what a connection reports ----

  linkSubscribed(): void {
    this.rebalance();
  }

  linkMessage(link: ConsumerLink, m: Message): void {
    emitDelivery(this, m, this.o.maxAttempts ?? 0, this.counts);
  }

  linkSettled(kind: 'finish' | 'requeue', backoff: boolean): void {
    if (kind === 'finish') this.counts.finished++;
    else this.counts.requeued++;
    if (kind === 'finish' || backoff) this.applyBackoff(this.backoff.signal(kind === 'finish', performance.now()));
  }

  linkError(err: ClientError): void {
    this.report(err);
  }

  linkClosed(link: ConsumerLink, err: Error | null): void {
    if (this.links.get(link.address) === link) this.links.delete(link.address);
    this.emit('disconnected', link.address, err);
    if (this.closing) return;
    this.rebalance();
    this.scheduleReconnect(link.address);
  }

  requeueDelay(attempts: number): number {
    return Math.min(this.o.maxRequeueDelayMs ?? 900_000, (this.o.requeueDelayMs ?? 90_000) * attempts);
  }

  // ---- connections ----

  private async connectTo(address: string): Promise<void> {
    if (this.closing || this.links.has(address) || this.connecting.has(address)) return;
    this.connecting.add(address);
    try {
      const link = await ConsumerLink.open(address, this.o, this);
      if (this.closing) {
        link.destroy();
        return;
      }
      this.failures.delete(address);
      this.links.set(address, link);
      this.emit('connected', address);
    } catch (err) {
      this.report(err instanceof ClientError ? err : new ClientError('CONNECT_FAILED', `${address}: ${errorText(err)}`));
      this.failures.set(address, (this.failures.get(address) ?? 0) + 1);
      this.scheduleReconnect(address);
    } finally {
      this.connecting.delete(address);
    }
  }

  /** Fixed nodes are retried for ever; discovered ones while the lookups still list them. */
  private scheduleReconnect(address: string): void {
    if (this.closing || this.reconnectTimers.has(address)) return;
    const fixed = (this.o.nsqdTcpAddresses ?? []).includes(address);
    if (!fixed && !this.discovered.has(address)) return;
    const attempt = (this.failures.get(address) ?? 0) + 1;
    const wait = exponentialDelay(attempt, this.o.reconnectBaseMs ?? 1000, this.o.reconnectMaxMs ?? 60_000, 0.3);
    this.reconnectTimers.set(
      address,
      setTimeout(() => {
        this.reconnectTimers.delete(address);
        if (fixed || this.discovered.has(address)) void this.connectTo(address);
      }, wait),
    );
  }

  private async poll(): Promise<void> {
    const found = await lookupTopic(this.o.lookupdHttpAddresses ?? [], this.topic, this.o.lookupdTimeoutMs ?? 5000);
    for (const err of found.errors) this.report(err);
    if (this.closing) return;
    // Keep the previous list while no lookup answers: an outage of the lookups is not an outage of the nodes.
    if (found.errors.length < (this.o.lookupdHttpAddresses ?? []).length) this.discovered = new Set(found.nodes.map((n) => n.tcpAddress));
    const attempts = [...this.discovered].map((a) => this.connectTo(a));
    const interval = this.o.lookupdPollIntervalMs ?? 60_000;
    this.pollTimer = setTimeout(() => void this.poll(), Math.round(interval * (1 - 0.3 * Math.random())));
    await Promise.all(attempts);
  }

  // ---- RDY and backoff ----

  private applyBackoff(a: BackoffAction): void {
    if (a.kind === 'none') return;
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    this.backoffTimer = null;
    if (a.kind === 'pause') {
      this.emit('backoff', a.level, a.ms);
      this.backoffTimer = setTimeout(() => {
        this.backoffTimer = null;
        this.rebalance();
      }, a.ms);
    }
    this.rebalance();
  }

  /** Sends RDY wherever the plan differs from what the connection has. */
  private rebalance(): void {
    const now = performance.now();
    const live = [...this.links.values()].filter((l) => l.subscribed && !l.closing);
    const rotation = { now, idleMs: this.o.lowRdyIdleMs ?? 1000, maxHoldMs: this.o.maxRdyHoldMs ?? 10_000 };
    let plan: number[];
    if (this.closing || this.backoff.inPause(now)) plan = live.map(() => 0);
    else if (this.backoff.active()) plan = planRdy(live, { ...rotation, maxInFlight: Math.min(1, this.maxInFlight) });
    else plan = planRdy(live, { ...rotation, maxInFlight: this.maxInFlight });
    live.forEach((l, i) => l.setRdy(plan[i], now));
  }

  private report(err: ClientError): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private async shutdown(): Promise<void> {
    for (const t of [this.pollTimer, this.rdyTimer, this.backoffTimer, ...this.reconnectTimers.values()]) if (t) clearTimeout(t);
    this.reconnectTimers.clear();
    const links = [...this.links.values()];
    await Promise.all(links.map((l) => l.close(this.o.closeTimeoutMs ?? 30_000)));
  }
}
