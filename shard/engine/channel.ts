// A channel: its own copy of every message of the topic, shared among its consumers.
// It owns the ready queue, the in-flight set (with per-message deadlines) and the deferred set,
// and hands messages to consumers round-robin while they have capacity.

import { LatencyHistogram } from './latency';
import { LEASE_OWNER, Message } from './message';
import { MessageHeap } from './pqueue';
import { ReadyQueue } from './ready-queue';
import type { EngineContext } from './context';
import type { SavedMessage } from './store';
import type { Journal, JournalEntry } from './journal';
import type { NsqdChannelCounts } from '../../wire/nsqd-stats';

/** Something that receives messages from a channel: a TCP connection, or a pending lease pull. */
export interface Consumer {
  /** A connection's id (> 0), or LEASE_OWNER for lease pulls. */
  readonly id: number;
  /** How long a message delivered to it stays in flight before it times out (ms). */
  readonly msgTimeoutMs: number;
  /** Messages currently in flight for it; maintained by the channel. */
  inFlightCount: number;
  /** How many more messages it can take now. */
  capacity(): number;
  deliver(m: Message): void;
  /** The channel was deleted: stop using it. */
  channelGone?(): void;
  /** What /stats shows for it (connections only). */
  describe?(): Record<string, unknown>;
}

export type SettleResult = 'ok' | 'not_in_flight' | 'not_owner' | 'stale';

/** nsqd's channel counters and Sluice's own. */
export interface ChannelStats extends NsqdChannelCounts {
  corrupt_count: number;
  dropped_count: number;
  max_attempts: number;
  dead_letter_topic: string;
  dead_lettered_count: number;
}

function looksLikeJson(body: Buffer): boolean {
  const c = body[0];
  // objects, arrays, strings, numbers, true/false/null — then let JSON.parse decide
  if (c !== 0x7b && c !== 0x5b && c !== 0x22 && !(c >= 0x30 && c <= 0x39) && c !== 0x2d && c !== 0x74 && c !== 0x66 && c !== 0x6e) return false;
  try {
    JSON.parse(body.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

export class Channel {
  readonly ephemeral: boolean;
  readonly queueName: string;
  paused = false;
  deleted = false;
  messageCount = 0;
  requeueCount = 0;
  timeoutCount = 0;
  droppedCount = 0;
  deadLetteredCount = 0;
  /** Publish → finish latency of the messages finished on this channel. */
  readonly latency = new LatencyHistogram();
  maxAttempts = 0;
  deadLetterTopic = '';

  private readonly queue: ReadyQueue;
  private readonly journal: Journal | null;
  private readonly inFlight = new Map<string, Message>();
  private readonly inFlightHeap = new MessageHeap();
  private readonly deferred = new Map<string, Message>();
  private readonly deferredHeap = new MessageHeap();
  private readonly consumers: Consumer[] = [];
  private readonly connections = new Map<number, Consumer>();
  private rr = 0;
  private pumping = false;
  /** Bound once: commit() runs for every message put, and must not allocate a closure each time. */
  private readonly flushQueue = (): void => this.queue.flush();
  private leaseInFlight = 0;
  private lastLeaseActivity = -Infinity;
  private everConsumed = false;

  constructor(readonly topicName: string, readonly name: string, private readonly ctx: EngineContext) {
    this.ephemeral = name.endsWith('#ephemeral');
    this.queueName = `${topicName}:${name}`;
    const backend = this.ephemeral ? null : ctx.store.openBackend(this.queueName);
    this.queue = new ReadyQueue(ctx.opts.memQueueSize, backend);
    this.journal = this.ephemeral ? null : ctx.store.openJournal(this.queueName);
    if (this.journal) this.recoverJournal(this.journal);
    if (!this.ephemeral) this.restore(ctx.store.takeSaved(this.queueName));
    this.commit();
  }

  // ---- input ----

  put(m: Message): void {
    this.messageCount++;
    if (m.deferUntil !== 0) {
      const due = this.publishDue(m);
      if (due > this.ctx.clock.now()) {
        this.addDeferred(m, due);
        this.commit();
        return;
      }
    }
    m.deferUntil = 0;
    m.deferDueMono = 0;
    this.enqueue(m);
    this.pump();
  }

  /**
   * When a deferred publish is due, on the monotonic clock. A message kept in memory since its
   * publish knows exactly. One read back from a disk queue (or saved before a restart) knows only
   * its wall-clock due time, which a clock step since the publish has moved: it is trusted for no
   * longer than the delay asked for at publish, so a clock stepped back cannot hold it for hours
   * (a clock stepped forward can still release it early).
   */
  private publishDue(m: Message): number {
    if (m.deferDueMono !== 0) return m.deferDueMono;
    const left = Math.min(m.deferUntil - this.ctx.clock.wallNow(), m.deferUntil - m.timestamp / 1e6);
    return this.ctx.clock.now() + left;
  }

  putDeferred(m: Message, delayMs: number): void {
    this.messageCount++;
    this.addDeferred(m, this.ctx.clock.now() + delayMs);
    this.commit();
  }

  // ---- consumers ----

  addConsumer(c: Consumer): void {
    this.everConsumed = true;
    this.consumers.push(c);
    if (c.id !== LEASE_OWNER) this.connections.set(c.id, c);
    else this.lastLeaseActivity = this.ctx.clock.now();
    this.pump();
  }

  /** Removes a consumer; a connection's in-flight messages are requeued at once, not at timeout. */
  removeConsumer(c: Consumer): void {
    const i = this.consumers.indexOf(c);
    if (i === -1) return;
    this.consumers.splice(i, 1);
    if (c.id !== LEASE_OWNER) {
      this.connections.delete(c.id);
      if (c.inFlightCount > 0) {
        for (const m of [...this.inFlight.values()]) if (m.ownerId === c.id) this.returnFromFlight(m);
        c.inFlightCount = 0;
        this.pump();
      }
    } else this.lastLeaseActivity = this.ctx.clock.now();
    if (this.isIdle()) this.ctx.channelIdle(this);
  }

  get clientCount(): number {
    return this.connections.size;
  }

  clientStats(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const c of this.connections.values()) if (c.describe) out.push(c.describe());
    return out;
  }

  /** An #ephemeral channel whose consumers have all gone may be deleted (one never consumed stays, as in nsqd). */
  isIdle(): boolean {
    if (!this.ephemeral || !this.everConsumed || this.consumers.length > 0 || this.leaseInFlight > 0) return false;
    return this.ctx.clock.now() - this.lastLeaseActivity >= this.ctx.opts.ephemeralLeaseGraceMs;
  }

  /** Delivers ready messages to consumers with capacity, round-robin. */
  pump(): void {
    if (this.pumping) return;
    if (!this.paused && this.consumers.length > 0) this.deliverReady();
    this.commit();
  }

  private deliverReady(): void {
    this.pumping = true;
    try {
      while (this.queue.depth() > 0) {
        const c = this.nextConsumer();
        if (!c) break;
        const m = this.queue.take();
        if (!m) break;
        if (this.inFlight.has(m.id) || this.deferred.has(m.id)) continue; // a replayed duplicate
        if (this.maxAttempts > 0 && m.attempts >= this.maxAttempts) {
          this.deadLetter(m);
          continue;
        }
        this.startInFlight(m, c);
        c.deliver(m);
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Makes the journal match memory: TAKE records out before the disk queue may forget a message,
   * RETURN records only after its new copy was handed to the disk queue. A no-op without a journal.
   */
  private commit(): void {
    const j = this.journal;
    if (!j) return;
    j.commit(this.flushQueue);
    if (j.compactNeeded) j.rewrite(this.liveEntries());
  }

  private liveEntries(): JournalEntry[] {
    const wallNow = this.ctx.clock.wallNow();
    const now = this.ctx.clock.now();
    const out: JournalEntry[] = [];
    for (const m of this.inFlight.values()) out.push({ seq: m.journalSeq, kind: 'in_flight', dueWall: 0, message: m });
    for (const m of this.deferred.values()) out.push({ seq: m.journalSeq, kind: 'deferred', dueWall: wallNow + (m.pri - now), message: m });
    return out;
  }

  /** After a crash: what was in flight goes back to the queue, deferred messages keep their due time. */
  private recoverJournal(j: Journal): void {
    const now = this.ctx.clock.now();
    const wallNow = this.ctx.clock.wallNow();
    const live: JournalEntry[] = [];
    for (const e of j.replay()) {
      const m = e.message;
      if (e.kind === 'deferred' && e.dueWall > wallNow && !this.deferred.has(m.id)) {
        m.pri = now + (e.dueWall - wallNow);
        m.journalSeq = e.seq;
        this.deferred.set(m.id, m);
        this.deferredHeap.push(m);
        live.push(e);
      } else this.enqueue(m);
    }
    this.queue.flush(true);
    j.rewrite(live);
  }

  /** Sends a message that used up its attempts to the dead-letter topic, recording how it got there. */
  private deadLetter(m: Message): void {
    this.deadLetteredCount++;
    const isJson = looksLikeJson(m.body);
    const envelope = {
      dead_letter: {
        reason: 'max_attempts_exceeded',
        topic: this.topicName,
        channel: this.name,
        message_id: m.id,
        attempts: m.attempts,
        max_attempts: this.maxAttempts,
        timestamp: m.timestamp,
        dead_at: this.ctx.clock.wallNow(),
      },
      body: isJson ? JSON.parse(m.body.toString('utf8')) : null,
      body_base64: m.body.toString('base64'),
    };
    this.ctx.deadLetter(this.deadLetterTopic || `${this.topicName}.dead`, Buffer.from(JSON.stringify(envelope)));
  }

  /** Max attempts (0 = unlimited) and where messages go past it (default `<topic>.dead`). */
  configure(maxAttempts: number, deadLetterTopic: string): void {
    this.maxAttempts = maxAttempts;
    this.deadLetterTopic = deadLetterTopic;
    if (!this.ephemeral) this.ctx.metadataChanged();
  }

  private nextConsumer(): Consumer | null {
    const n = this.consumers.length;
    for (let i = 0; i < n; i++) {
      const idx = (this.rr + i) % n;
      const c = this.consumers[idx];
      if (c.capacity() > 0) {
        this.rr = idx + 1;
        return c;
      }
    }
    return null;
  }

  private startInFlight(m: Message, c: Consumer): void {
    const now = this.ctx.clock.now();
    m.attempts++;
    m.ownerId = c.id;
    m.deliveredAt = now;
    m.timeoutMs = c.msgTimeoutMs;
    m.pri = now + c.msgTimeoutMs;
    if (c.id === LEASE_OWNER) {
      m.token = this.ctx.newToken();
      this.leaseInFlight++;
      this.lastLeaseActivity = now;
    }
    if (this.journal) m.journalSeq = this.journal.take(m, 'in_flight', 0);
    this.inFlight.set(m.id, m);
    this.inFlightHeap.push(m);
    c.inFlightCount++;
  }

  // ---- settling in-flight messages ----

  private check(id: string, ownerId: number, token: string | undefined): Message | SettleResult {
    const m = this.inFlight.get(id);
    if (!m) return 'not_in_flight';
    if (m.ownerId !== ownerId) return 'not_owner';
    if (ownerId === LEASE_OWNER && m.token !== token) return 'stale';
    return m;
  }

  finish(id: string, ownerId: number, token?: string): SettleResult {
    const m = this.check(id, ownerId, token);
    if (typeof m === 'string') return m;
    this.leaveFlight(m);
    this.latency.observe(this.ctx.clock.wallNow() - m.timestamp / 1e6);
    this.pump();
    return 'ok';
  }

  /**
   * Puts an in-flight message back, at once or after `delayMs`. `undelivered`: its holder never
   * handed it to a consumer (a gateway's surplus, a long-poll whose caller left), so the delivery
   * does not count as an attempt (nor as a requeue).
   */
  requeue(id: string, ownerId: number, delayMs: number, token?: string, undelivered = false): SettleResult {
    const m = this.check(id, ownerId, token);
    if (typeof m === 'string') return m;
    if (undelivered) {
      if (m.attempts > 0) m.attempts--;
    } else this.requeueCount++;
    this.leaveFlight(m);
    if (delayMs > 0) this.addDeferred(m, this.ctx.clock.now() + delayMs);
    else this.enqueue(m);
    this.pump();
    return 'ok';
  }

  /** Extends a message's deadline; the whole delivery never exceeds --max-msg-timeout. */
  touch(id: string, ownerId: number, token?: string, extendMs?: number): SettleResult {
    const m = this.check(id, ownerId, token);
    if (typeof m === 'string') return m;
    const now = this.ctx.clock.now();
    m.pri = Math.min(now + (extendMs ?? m.timeoutMs), m.deliveredAt + this.ctx.opts.maxMsgTimeoutMs);
    this.inFlightHeap.update(m);
    if (ownerId === LEASE_OWNER) this.lastLeaseActivity = now;
    return 'ok';
  }

  /** Whether a lease holder's delivery is still in flight with this token (read-only). */
  leaseStatus(id: string, token: string): SettleResult {
    const m = this.check(id, LEASE_OWNER, token);
    return typeof m === 'string' ? m : 'ok';
  }

  /** Lease deadline (monotonic ms) of an in-flight message, for answers to touch. */
  deadlineOf(id: string): number | undefined {
    return this.inFlight.get(id)?.pri;
  }

  private leaveFlight(m: Message): void {
    this.unjournal(m);
    this.inFlight.delete(m.id);
    this.inFlightHeap.remove(m);
    if (m.ownerId === LEASE_OWNER) this.leaseInFlight--;
    else {
      const c = this.connections.get(m.ownerId);
      if (c) c.inFlightCount--;
    }
    m.ownerId = -1;
    m.token = '';
  }

  private unjournal(m: Message): void {
    if (m.journalSeq === 0 || !this.journal) return;
    this.journal.returned(m.journalSeq);
    m.journalSeq = 0;
  }

  private returnFromFlight(m: Message): void {
    this.leaveFlight(m);
    this.enqueue(m);
  }

  private enqueue(m: Message): void {
    if (this.queue.put(m) === 'dropped') this.droppedCount++;
  }

  private addDeferred(m: Message, dueMono: number): void {
    if (this.deferred.has(m.id) || this.inFlight.has(m.id)) return; // a replayed duplicate
    m.deferUntil = 0;
    m.deferDueMono = 0;
    m.pri = dueMono;
    if (this.journal) m.journalSeq = this.journal.take(m, 'deferred', this.ctx.clock.wallNow() + (dueMono - this.ctx.clock.now()));
    this.deferred.set(m.id, m);
    this.deferredHeap.push(m);
  }

  /** Times out overdue in-flight messages and releases due deferred ones. */
  tick(): void {
    const now = this.ctx.clock.now();
    let moved = false;
    for (let m = this.inFlightHeap.peek(); m && m.pri <= now; m = this.inFlightHeap.peek()) {
      this.timeoutCount++;
      this.returnFromFlight(m);
      moved = true;
    }
    for (let m = this.deferredHeap.peek(); m && m.pri <= now; m = this.deferredHeap.peek()) {
      this.deferredHeap.pop();
      this.deferred.delete(m.id);
      this.unjournal(m);
      this.enqueue(m);
      moved = true;
    }
    if (moved) this.pump();
    this.commit();
    this.queue.flush();
    if (this.isIdle()) this.ctx.channelIdle(this);
  }

  // ---- runtime control ----

  pause(): void {
    this.paused = true;
    if (!this.ephemeral) this.ctx.metadataChanged();
  }

  unpause(): void {
    this.paused = false;
    if (!this.ephemeral) this.ctx.metadataChanged();
    this.pump();
  }

  /** Drops every queued, in-flight and deferred message (as nsqd's channel empty does). */
  empty(): void {
    this.queue.empty();
    this.inFlight.clear();
    this.inFlightHeap.clear();
    this.deferred.clear();
    this.deferredHeap.clear();
    this.leaseInFlight = 0;
    for (const c of this.consumers) c.inFlightCount = 0;
    this.journal?.rewrite([]);
  }

  flush(forceSync = false): void {
    this.queue.flush(forceSync);
  }

  /** Removes the channel and everything stored for it; consumers are told it is gone. */
  delete(): void {
    this.deleted = true;
    this.empty();
    this.queue.delete();
    this.journal?.delete();
    this.ctx.store.removeQueue(this.queueName);
    for (const c of this.consumers.splice(0)) c.channelGone?.();
    this.connections.clear();
  }

  // ---- persistence across a clean restart ----

  /** Saves memory, in-flight and deferred messages with their due times, then closes the backend. */
  close(): void {
    if (this.ephemeral || this.deleted) return;
    const now = this.ctx.clock.now();
    const wallNow = this.ctx.clock.wallNow();
    const saved: SavedMessage[] = this.queue.drainMemory().map((message) => ({ kind: 'ready', dueWall: 0, token: '', message }));
    for (const m of this.inFlight.values()) {
      // A connection's messages cannot be settled after a restart; a lease holder's can.
      if (m.ownerId === LEASE_OWNER) saved.push({ kind: 'in_flight', dueWall: wallNow + (m.pri - now), token: m.token, message: m });
      else saved.push({ kind: 'ready', dueWall: 0, token: '', message: m });
    }
    for (const m of this.deferred.values()) saved.push({ kind: 'deferred', dueWall: wallNow + (m.pri - now), token: '', message: m });
    this.ctx.store.save(this.queueName, saved);
    this.queue.close();
    // Everything the journal protected is in the saved state now.
    this.journal?.delete();
  }

  private restore(saved: SavedMessage[]): void {
    const now = this.ctx.clock.now();
    const wallNow = this.ctx.clock.wallNow();
    const ready: Message[] = [];
    for (const s of saved) {
      const m = s.message;
      if (s.kind === 'ready' || (s.kind === 'in_flight' && s.dueWall <= wallNow)) ready.push(m);
      else if (s.kind === 'deferred') this.addDeferred(m, now + Math.max(0, s.dueWall - wallNow));
      else {
        m.ownerId = LEASE_OWNER;
        m.token = s.token;
        m.deliveredAt = now;
        m.timeoutMs = s.dueWall - wallNow;
        m.pri = now + m.timeoutMs;
        if (this.journal) m.journalSeq = this.journal.take(m, 'in_flight', 0);
        this.inFlight.set(m.id, m);
        this.inFlightHeap.push(m);
        this.leaseInFlight++;
      }
    }
    // In durable mode nothing may live only in memory, so they go through the disk queue.
    if (this.journal) for (const m of ready) this.enqueue(m);
    else this.queue.restoreMemory(ready);
  }

  stats(): ChannelStats {
    return {
      channel_name: this.name,
      depth: this.queue.depth(),
      backend_depth: this.queue.backendDepth,
      in_flight_count: this.inFlight.size,
      deferred_count: this.deferred.size,
      message_count: this.messageCount,
      requeue_count: this.requeueCount,
      timeout_count: this.timeoutCount,
      client_count: this.connections.size,
      paused: this.paused,
      corrupt_count: this.queue.stats().corrupt,
      dropped_count: this.droppedCount,
      max_attempts: this.maxAttempts,
      dead_letter_topic: this.maxAttempts > 0 ? this.deadLetterTopic || `${this.topicName}.dead` : '',
      dead_lettered_count: this.deadLetteredCount,
    };
  }

  depth(): number {
    return this.queue.depth();
  }
}
