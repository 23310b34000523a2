// GatewayConsumer: consumes a topic/channel through a Sluice gateway over HTTP and hands out the
// same Message as the TCP Consumer, with the same events, so a tool need not know which it has.
//
// Long-poll (POST …/channels/{c}/messages), not SSE: each poll asks for exactly the credit that
// is free (max = max-in-flight − in flight), so flow control stays on our side and needs no
// reconciling with the gateway; a poll is a plain request that undici retries, times out and
// aborts like any other; and the batch answers (up to 1000 messages) cost one request per batch
// rather than one event per message. Bodies are asked for as base64, so bytes come back exact.
// Settling is batched: acks, requeues and touches wait a few ms (or until a batch is full) and go
// as one POST /v1/receipts/{ack,requeue,touch} each (see receipt-batcher.ts).

import { EventEmitter } from 'node:events';
import { isValidName } from '../wire/names';
import type { WireMessage } from '../wire/message';
import { BackoffState, exponentialDelay, type BackoffAction } from './backoff';
import { ClientError, errorText, GatewayCallError } from './errors';
import { GatewayHttp, retryDelayMs } from './gateway-http';
import { Message, type MessageSettler } from './message';
import { RECEIPT_PATTERN, ReceiptBatcher, SETTLE_OPS, settleBody, sortResults, type PendingReceipt, type SettleOp } from './receipt-batcher';
import { emitDelivery, type DeliveryCounts, type DeliveryOptions, type MessageSource } from './source';

export interface GatewayConsumerOptions extends DeliveryOptions {
  /** The gateway's base URL (http:// or https://). */
  gatewayUrl: string;
  /** API key (sent as a Bearer header). */
  token?: string;
  /** Lease asked for each message (default: the gateway's --consume-lease). */
  leaseMs?: number;
  /** Longest wait of one long-poll when nothing is ready (default 20 s). */
  waitMs?: number;
  /** Deadline of a request beyond its wait (default 15 s). */
  requestTimeoutMs?: number;
  /** close() waits this long for in-flight messages to be settled before requeueing the rest (default 30 s). */
  closeTimeoutMs?: number;
  /** Receipts wait at most this long to be sent with others (default 5 ms). */
  flushMs?: number;
  /** Most receipts in one settle request (default 500). */
  maxReceiptBatch?: number;
  userAgent?: string;
  /** Monotonic clock in ms (default performance.now). */
  now?: () => number;
}

export interface GatewayConsumerStats extends DeliveryCounts {
  inFlight: number;
  backoffLevel: number;
}

/** A consumed message as the gateway sends it (consume-message.json), its body decoded. */
export interface ConsumedMessage extends WireMessage {
  receipt: string;
  leaseMs: number;
}

/** Reads a long-poll answer (consume-result.json), checking every field before trusting it. */
export function parseConsumeResult(text: string): ConsumedMessage[] {
  const doc = JSON.parse(text) as { messages?: unknown };
  if (!Array.isArray(doc.messages)) throw new ClientError('PROTOCOL', 'consume answer has no messages list');
  return doc.messages.map((raw: unknown): ConsumedMessage => {
    const m = (raw ?? {}) as Record<string, unknown>;
    const { id, attempts, timestamp, receipt, lease_ms: leaseMs, encoding, body } = m;
    if (typeof id !== 'string' || id.length !== 16) throw new ClientError('PROTOCOL', 'consumed message without a 16-character id');
    if (typeof attempts !== 'number' || !Number.isInteger(attempts) || attempts < 1) throw new ClientError('PROTOCOL', `message ${id}: bad attempts`);
    if (typeof timestamp !== 'number' || typeof leaseMs !== 'number') throw new ClientError('PROTOCOL', `message ${id}: bad timestamp or lease_ms`);
    if (typeof receipt !== 'string' || !RECEIPT_PATTERN.test(receipt)) throw new ClientError('PROTOCOL', `message ${id}: bad receipt`);
    return { id, attempts, timestamp, receipt, leaseMs, body: decodeBody(id, encoding, body) };
  });
}

function decodeBody(id: string, encoding: unknown, body: unknown): Buffer {
  if (encoding === 'base64' && typeof body === 'string') return Buffer.from(body, 'base64');
  if (encoding === 'text' && typeof body === 'string') return Buffer.from(body, 'utf8');
  if (encoding === 'json' && body !== undefined) return Buffer.from(JSON.stringify(body), 'utf8');
  throw new ClientError('PROTOCOL', `message ${id}: body with unknown encoding ${JSON.stringify(encoding)}`);
}

/** Answers that mean the request itself is wrong (bad key, no scope, consuming off): start() fails on them. */
function isFatal(err: unknown): boolean {
  if (!(err instanceof GatewayCallError)) return false;
  return err.status === 400 || err.status === 401 || err.status === 403 || err.status === 404 || err.apiCode === 'CONSUME_DISABLED';
}

const MAX_POLL = 1000; // the gateway's largest `max`
const SETTLE_TRIES = 3; // sends of a receipt whose shard did not answer
const SETTLE_RETRIES = 5; // resends of a whole batch after a failed request
/**
 * On close, an outstanding poll gets this long to finish before it is aborted: a busy channel
 * answers within it (and its messages are emitted), an idle one is cut off. An answer already
 * written when the abort lands is lost to us and comes back when its lease ends.
 */
const CLOSE_POLL_GRACE_MS = 250;

export class GatewayConsumer extends EventEmitter implements MessageSource, MessageSettler {
  readonly topic: string;
  readonly channel: string;
  private readonly http: GatewayHttp;
  private readonly pollPath: string;
  private readonly inFlight = new Map<Message, string>();
  private readonly batcher: ReceiptBatcher;
  private readonly backoff: BackoffState;
  private readonly settling = new Set<Promise<void>>();
  private readonly maxInFlight: number;
  private started = false;
  private closing: Promise<void> | null = null;
  private poll: { abort: AbortController; done: Promise<void> } | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private backoffTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private connected = false;
  private idle: (() => void) | null = null;
  private readonly counts = { received: 0, finished: 0, requeued: 0, discarded: 0 };
  private readonly now: () => number;

  constructor(private readonly o: GatewayConsumerOptions) {
    super();
    this.now = o.now ?? (() => performance.now());
    if (!isValidName(o.topic)) throw new RangeError(`invalid topic name ${JSON.stringify(o.topic)}`);
    if (!isValidName(o.channel)) throw new RangeError(`invalid channel name ${JSON.stringify(o.channel)}`);
    this.topic = o.topic;
    this.channel = o.channel;
    this.maxInFlight = Math.max(1, Math.floor(o.maxInFlight ?? 1));
    this.http = new GatewayHttp({ url: o.gatewayUrl, token: o.token, userAgent: o.userAgent, connections: 4 });
    this.batcher = new ReceiptBatcher(o.maxReceiptBatch ?? 500);
    this.backoff = new BackoffState(o.backoffMultiplierMs ?? 1000, o.maxBackoffMs ?? 120_000);
    let query = '&encoding=base64';
    if (o.leaseMs !== undefined) query += `&lease_ms=${Math.round(o.leaseMs)}`;
    this.pollPath = `/v1/topics/${encodeURIComponent(o.topic)}/channels/${encodeURIComponent(o.channel)}/messages?` + query.slice(1);
  }

  /** The gateway's base URL (no credentials). */
  get address(): string {
    return this.http.base;
  }

  /**
   * Polls once without waiting and goes on in the background. Rejects (and lets go of the
   * gateway) when that first answer says the request can never work: a refused key, a missing
   * scope, a bad name, consuming turned off. An unreachable or busy gateway is retried instead.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    try {
      await this.pollOnce(this.credit(this.now()) || 1, 0, true);
    } catch (err) {
      this.closing = Promise.resolve();
      await this.http.destroy();
      throw err;
    }
    this.schedulePoll();
  }

  stats(): GatewayConsumerStats {
    return { inFlight: this.inFlight.size, ...this.counts, backoffLevel: this.backoff.level };
  }

  /**
   * Stops polling (a poll still bringing messages is let finish, and its messages are emitted),
   * waits until every message in flight has been settled — or `closeTimeoutMs` — requeues what
   * is left so it is delivered again at once, sends the last receipts and closes the connections.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- MessageSettler: what a Message calls ----

  finish(m: Message): boolean {
    const receipt = this.release(m);
    if (receipt === undefined) return false;
    this.counts.finished++;
    this.queue('ack', { receipt, tries: 0 });
    this.applyBackoff(this.backoff.signal(true, this.now()));
    this.schedulePoll();
    return true;
  }

  requeue(m: Message, delayMs: number, backoff: boolean): boolean {
    const receipt = this.release(m);
    if (receipt === undefined) return false;
    this.counts.requeued++;
    this.queue('requeue', { receipt, delayMs, tries: 0 });
    if (backoff) this.applyBackoff(this.backoff.signal(false, this.now()));
    this.schedulePoll();
    return true;
  }

  touch(m: Message): boolean {
    const receipt = this.inFlight.get(m);
    if (receipt === undefined) return false;
    this.queue('touch', { receipt, tries: 0 });
    return true;
  }

  defaultRequeueDelayMs(m: Message): number {
    return Math.min(this.o.maxRequeueDelayMs ?? 900_000, (this.o.requeueDelayMs ?? 90_000) * m.attempts);
  }

  private release(m: Message): string | undefined {
    const receipt = this.inFlight.get(m);
    if (receipt === undefined) return undefined;
    this.inFlight.delete(m);
    if (this.inFlight.size === 0) this.idle?.();
    return receipt;
  }

  // ---- polling ----

  /** Messages to ask for now: the free credit, but not a trickle while most of it is taken. */
  private credit(now: number): number {
    if (this.backoff.inPause(now)) return 0;
    const limit = this.backoff.active() ? 1 : this.maxInFlight;
    const free = limit - this.inFlight.size;
    if (free <= 0) return 0;
    // a busy consumer asks again once a quarter of its window is free, not for each message settled
    if (this.inFlight.size > 0 && free < Math.ceil(limit / 4)) return 0;
    return Math.min(free, MAX_POLL);
  }

  private schedulePoll(): void {
    if (!this.started || this.closing || this.poll || this.pollTimer) return;
    const max = this.credit(this.now());
    if (max > 0) void this.pollOnce(max, this.o.waitMs ?? 20_000, false).catch(() => undefined);
  }

  private pollOnce(max: number, waitMs: number, first: boolean): Promise<void> {
    const abort = new AbortController();
    const done = this.fetchMessages(max, waitMs, abort.signal, first).finally(() => {
      this.poll = null;
      if (!first) this.schedulePoll(); // start() goes on after the first poll itself
    });
    this.poll = { abort, done: done.catch(() => undefined) };
    return done;
  }

  private async fetchMessages(max: number, waitMs: number, signal: AbortSignal, first: boolean): Promise<void> {
    let messages: ConsumedMessage[];
    try {
      const answer = await this.http.call('POST', `${this.pollPath}&max=${max}&wait_ms=${waitMs}`, { timeoutMs: waitMs + (this.o.requestTimeoutMs ?? 15_000), signal });
      messages = parseConsumeResult(answer.text);
    } catch (err) {
      if (signal.aborted) return;
      if (first && isFatal(err)) throw err;
      this.pollFailed(err);
      return;
    }
    this.failures = 0;
    if (!this.connected) {
      this.connected = true;
      this.emit('connected', this.http.base);
    }
    for (const w of messages) this.deliver(w);
  }

  private deliver(w: ConsumedMessage): void {
    const m = new Message(w, this.topic, this.channel, this.http.base, w.leaseMs, this);
    this.inFlight.set(m, w.receipt);
    emitDelivery(this, m, this.o.maxAttempts ?? 0, this.counts);
  }

  private pollFailed(err: unknown): void {
    const e = err instanceof ClientError ? err : new ClientError('PROTOCOL', errorText(err));
    this.failures++;
    if (this.connected) {
      this.connected = false;
      this.emit('disconnected', this.http.base, e);
    }
    this.report(e);
    if (this.closing) return;
    // busy or unreachable: as the gateway asks, or doubling; anything else (a revoked key…): doubling, longer
    const wait = retryDelayMs(this.failures, e, 500, 30_000) ?? exponentialDelay(this.failures, 2000, 60_000, 0.3);
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      this.schedulePoll();
    }, wait);
  }

  private applyBackoff(a: BackoffAction): void {
    if (a.kind === 'none') return;
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    this.backoffTimer = null;
    if (a.kind === 'pause') {
      this.emit('backoff', a.level, a.ms);
      this.pollAfterPause(a.ms);
    }
  }

  /** Polls once the pause is over (a timer may fire a little before this.now() says it is: then it waits again). */
  private pollAfterPause(ms: number): void {
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = null;
      if (this.backoff.inPause(this.now())) this.pollAfterPause(1);
      else this.schedulePoll();
    }, ms + 1);
  }

  // ---- settling ----

  private queue(op: SettleOp, item: PendingReceipt): void {
    if (this.batcher.add(op, item)) this.send(op);
    else this.flushTimer ??= setTimeout(() => this.flushAll(), this.o.flushMs ?? 5);
  }

  private flushAll(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    for (const op of SETTLE_OPS) while (this.send(op));
  }

  /** Sends the next batch of `op`; false when none waits. */
  private send(op: SettleOp): boolean {
    const items = this.batcher.take(op);
    if (!items) return false;
    const p = this.settle(op, items).finally(() => this.settling.delete(p));
    this.settling.add(p);
    return true;
  }

  private async settle(op: SettleOp, items: PendingReceipt[]): Promise<void> {
    for (let attempt = 1; items.length > 0; attempt++) {
      try {
        const answer = await this.http.call('POST', `/v1/receipts/${op}`, { body: settleBody(op, items), contentType: 'application/json', timeoutMs: this.o.requestTimeoutMs ?? 15_000 });
        const out = sortResults(answer.text, items, SETTLE_TRIES);
        if (out.refused.length > 0) {
          const byStatus: Record<string, number> = {};
          for (const r of out.refused) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
          this.report(new ClientError('SETTLE_FAILED', `${op}: ${out.refused.length} of ${items.length} receipts refused ${JSON.stringify(byStatus)}; those messages will be delivered again`));
        }
        items = out.retry;
        if (items.length > 0) await sleep(exponentialDelay(attempt, 200, 2000));
      } catch (err) {
        const wait = attempt <= SETTLE_RETRIES ? retryDelayMs(attempt, err, 200, 5000) : null;
        if (wait === null) {
          this.report(new ClientError(err instanceof ClientError ? err.code : 'PROTOCOL', `${op} of ${items.length} receipts failed (their messages will be delivered again): ${errorText(err)}`));
          return;
        }
        await sleep(wait);
      }
    }
  }

  private report(err: ClientError): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private async shutdown(): Promise<void> {
    for (const t of [this.pollTimer, this.backoffTimer]) if (t) clearTimeout(t);
    this.pollTimer = this.backoffTimer = null;
    const poll = this.poll;
    if (poll) {
      const grace = setTimeout(() => poll.abort.abort(), CLOSE_POLL_GRACE_MS);
      await poll.done;
      clearTimeout(grace);
    }
    if (this.inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.idle = resolve;
        timer = setTimeout(resolve, this.o.closeTimeoutMs ?? 30_000);
      });
      clearTimeout(timer);
    }
    for (const m of [...this.inFlight.keys()]) m.requeue(0, false);
    while (this.batcher.size > 0 || this.settling.size > 0) {
      this.flushAll();
      await Promise.all([...this.settling]);
    }
    if (this.connected) this.emit('disconnected', this.http.base, null);
    await this.http.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
