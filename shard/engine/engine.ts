// The shard's storage and delivery engine: topics by name, publishing, lease pulls and the
// periodic scan that times out in-flight messages and releases deferred ones. No sockets here;
// the TCP and HTTP layers turn requests into calls on it.

import { randomBytes } from 'node:crypto';
import { IdGenerator } from '../../wire/message';
import { isValidName } from '../../wire/names';
import { Channel, SettleResult } from './channel';
import { PullGroup } from './lease-pull';
import { Clock, systemClock } from './clock';
import { DEFAULT_ENGINE_OPTIONS, EngineContext, EngineOptions } from './context';
import { LEASE_OWNER, Message } from './message';
import type { ShardMetadata, Store } from './store';
import { Topic } from './topic';

export const ENGINE_VERSION = '1.3.0';
/** How often in-flight timeouts and deferred due times are checked (nsqd's queue scan: 100 ms). */
export const SCAN_INTERVAL_MS = 100;

export interface EngineDeps {
  store: Store;
  clock?: Clock;
  /** 0..1023; part of every message id, so two shards never mint the same id. */
  workerId?: number;
  schedule?: (fn: () => void) => void;
  /**
   * Called when a topic is created at runtime (not when loaded at start-up): answers the channels
   * the topic has elsewhere in the cluster, which are created before any message flows, so none
   * of them misses the first messages. Until it settles, the topic buffers.
   */
  channelsElsewhere?: (topic: string) => Promise<string[]>;
  /** Told when writes to storage start failing (once until they succeed again). */
  onStorageError?: (err: Error) => void;
}

/** A failed file system call (ENOSPC, EIO, EDQUOT…): the shard stays up and reports it. */
export function isStorageError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/** Told about topics and channels appearing and going (registration with lookups listens). */
export interface EngineListener {
  topicCreated?(topic: string): void;
  topicDeleted?(topic: string): void;
  channelCreated?(topic: string, channel: string): void;
  channelDeleted?(topic: string, channel: string): void;
}

export interface PullOptions {
  max: number;
  leaseMs: number;
  /** How long to wait for a first message when none is ready (long-poll); 0 answers at once. */
  waitMs: number;
  signal?: AbortSignal;
}

export interface ManyPullRequest {
  topic: string;
  channel: string;
  max: number;
  leaseMs: number;
}

export class EngineError extends Error {
  constructor(readonly code: string, message?: string) {
    super(message ?? code);
  }
}

export class Engine {
  readonly topics = new Map<string, Topic>();
  readonly opts: EngineOptions;
  readonly startTime = Date.now();
  private readonly ctx: EngineContext;
  private readonly ids: IdGenerator;
  private readonly store: Store;
  private readonly clock: Clock;
  private scanTimer: NodeJS.Timeout | undefined;
  private tokenSeq = 0;
  private readonly tokenPrefix = randomBytes(4).toString('hex');
  private loading = false;
  private closed = false;
  private readonly listeners: EngineListener[] = [];
  private readonly channelsElsewhere?: (topic: string) => Promise<string[]>;
  private readonly onStorageError?: (err: Error) => void;
  /** The last storage failure, until a later write succeeds (nsqd's SetHealth). */
  private storageError: string | null = null;

  constructor(opts: Partial<EngineOptions>, deps: EngineDeps) {
    this.opts = { ...DEFAULT_ENGINE_OPTIONS, ...opts };
    this.store = deps.store;
    this.clock = deps.clock ?? systemClock;
    this.ids = new IdGenerator(deps.workerId ?? 0, () => this.clock.wallNow());
    this.ctx = {
      opts: this.opts,
      clock: this.clock,
      store: this.store,
      newToken: () => this.tokenPrefix + (++this.tokenSeq).toString(36),
      channelIdle: (ch) => this.reapEphemeral(ch),
      metadataChanged: () => this.saveMetadata(),
      // a scheduled drain that hits a full disk must not end the process: it is reported instead
      schedule: ((sched: (fn: () => void) => void) => (fn: () => void) => sched(() => this.survivingStorage(fn)))(deps.schedule ?? ((fn) => setImmediate(fn))),
      channelCreated: (t, c) => this.emit((l) => l.channelCreated?.(t, c)),
      channelDeleted: (t, c) => this.emit((l) => l.channelDeleted?.(t, c)),
      // Synchronous, so a dead letter is stored before the message leaves its channel; a channel's
      // pump guards itself against re-entry, so even a channel dead-lettering into its own topic is safe.
      deadLetter: (topic, body) => this.publishDeadLetter(topic, body),
    };
    this.channelsElsewhere = deps.channelsElsewhere;
    this.onStorageError = deps.onStorageError;
    this.load();
  }

  addListener(l: EngineListener): void {
    this.listeners.push(l);
  }

  private emit(fn: (l: EngineListener) => void): void {
    for (const l of this.listeners) fn(l);
  }

  /** Starts the periodic scan (timeouts, deferred messages, backend flushes). */
  start(): void {
    if (!this.scanTimer) this.scanTimer = setInterval(() => this.tick(), SCAN_INTERVAL_MS);
  }

  // ---- topics and channels ----

  topic(name: string): Topic {
    let t = this.topics.get(name);
    if (!t) {
      if (!isValidName(name)) throw new EngineError('INVALID_TOPIC');
      t = new Topic(name, this.ctx);
      this.topics.set(name, t);
      if (!t.ephemeral) this.saveMetadata();
      this.emit((l) => l.topicCreated?.(name));
      if (!this.loading && this.channelsElsewhere) this.adoptChannels(t, this.channelsElsewhere);
    }
    return t;
  }

  private adoptChannels(t: Topic, ask: (topic: string) => Promise<string[]>): void {
    t.hold();
    ask(t.name).then(
      (names) => {
        if (t.deleted) return;
        for (const c of names) if (isValidName(c)) t.getChannel(c);
        t.release();
      },
      () => t.release(),
    );
  }

  findTopic(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  channel(topicName: string, channelName: string): Channel {
    if (!isValidName(channelName)) throw new EngineError('INVALID_CHANNEL');
    return this.topic(topicName).getChannel(channelName);
  }

  findChannel(topicName: string, channelName: string): Channel | undefined {
    return this.topics.get(topicName)?.channels.get(channelName);
  }

  deleteTopic(name: string): boolean {
    const t = this.topics.get(name);
    if (!t) return false;
    this.topics.delete(name);
    t.delete();
    if (!t.ephemeral) this.saveMetadata();
    this.emit((l) => l.topicDeleted?.(name));
    return true;
  }

  deleteChannel(topicName: string, channelName: string): boolean {
    const t = this.topics.get(topicName);
    if (!t || !t.deleteChannel(channelName)) return false;
    if (t.ephemeral && t.channels.size === 0) this.deleteTopic(topicName);
    return true;
  }

  private reapEphemeral(ch: { readonly topicName: string; readonly name: string; readonly deleted: boolean }): void {
    if (this.closed || ch.deleted) return;
    this.deleteChannel(ch.topicName, ch.name);
  }

  // ---- publishing ----

  /** A new message stamped with `wallMs` (read once per publish call: a batch shares its time). */
  private newMessage(body: Buffer, wallMs: number): Message {
    return new Message(this.ids.nextAt(wallMs), body, wallMs * 1e6);
  }

  /** "OK", or the last storage failure (e.g. a full disk) until a later write succeeds. */
  health(): string {
    return this.storageError === null ? 'OK' : `NOK - ${this.storageError}`;
  }

  /**
   * Publishes one message (deferred by `deferMs` when > 0); returns it once it is stored. A
   * storage failure throws EngineError('PUB_FAILED'): the publish must not be acknowledged.
   */
  publish(topicName: string, body: Buffer, deferMs = 0): Message {
    const t = this.topic(topicName);
    return this.storing(t, () => {
      const m = this.newMessage(body, this.clock.wallNow());
      if (deferMs > 0) {
        // the wall-clock due time is what a disk queue or a restart keeps; the monotonic one is
        // what counts while the message stays in memory (a wall-clock step cannot move it)
        m.deferUntil = this.clock.wallNow() + deferMs;
        m.deferDueMono = this.clock.now() + deferMs;
      }
      t.put(m);
      t.flush();
      return m;
    });
  }

  /** Publishes a batch; all of it is stored before the call returns (MPUB is all or nothing upstream). */
  publishMany(topicName: string, bodies: readonly Buffer[]): Message[] {
    const t = this.topic(topicName);
    return this.storing(t, () => {
      const out: Message[] = new Array(bodies.length);
      const wallMs = this.clock.wallNow();
      for (let i = 0; i < bodies.length; i++) {
        const m = this.newMessage(bodies[i], wallMs);
        t.put(m);
        out[i] = m;
      }
      t.flush();
      return out;
    });
  }

  /**
   * Runs a publish, turning a storage failure into PUB_FAILED and the unhealthy state. While
   * storage is failing, writes still buffered from earlier are retried first and a new message is
   * refused if they still fail, so a full disk does not grow memory with refused publishes.
   * (A refused publish may still land later: its record can be buffered when the write fails.)
   */
  private storing<T>(t: Topic, fn: () => T): T {
    try {
      if (this.storageError !== null) t.flush();
      const v = fn();
      this.storageError = null;
      return v;
    } catch (err) {
      if (!isStorageError(err)) throw err;
      this.storageFailed(err);
      throw new EngineError('PUB_FAILED', err.message);
    }
  }

  /** Runs background work (scan, drain); a storage failure is recorded and reported, not thrown. */
  private survivingStorage(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (!isStorageError(err)) throw err;
      this.storageFailed(err);
    }
  }

  private storageFailed(err: Error): void {
    const first = this.storageError === null;
    this.storageError = err.message;
    if (first) this.onStorageError?.(err); // once per failure episode, not on every scan
  }

  private publishDeadLetter(topic: string, body: Buffer): void {
    try {
      this.publish(topic, body);
    } catch {
      // an invalid dead-letter name is refused when the channel is configured; nothing to do here
    }
  }

  // ---- the lease API ----

  /** Leases up to `max` messages for `leaseMs`, waiting up to `waitMs` for the first one. */
  async pull(topicName: string, channelName: string, o: PullOptions): Promise<Message[]> {
    const [got] = await this.pullMany([{ topic: topicName, channel: channelName, max: o.max, leaseMs: o.leaseMs }], o.waitMs, o.signal);
    return got;
  }

  /**
   * One pull across several channels (creating them if needed): answers as soon as any of them
   * had something, with up to each request's `max`, or empty after `waitMs`.
   */
  pullMany(requests: readonly ManyPullRequest[], waitMs: number, signal?: AbortSignal): Promise<Message[][]> {
    const resolved = requests.map((r) => ({
      channel: this.channel(r.topic, r.channel),
      max: r.max,
      leaseMs: Math.min(Math.max(1, r.leaseMs), this.opts.maxMsgTimeoutMs),
    }));
    return new Promise((resolve) => new PullGroup(resolved, resolve).start(waitMs, signal));
  }

  finishLease(topicName: string, channelName: string, id: string, token: string): SettleResult {
    const ch = this.findChannel(topicName, channelName);
    return ch ? ch.finish(id, LEASE_OWNER, token) : 'not_in_flight';
  }

  /** `undelivered`: the lease holder never handed the message to a consumer, so this delivery is not counted. */
  requeueLease(topicName: string, channelName: string, id: string, token: string, delayMs: number, undelivered = false): SettleResult {
    const ch = this.findChannel(topicName, channelName);
    if (!ch) return 'not_in_flight';
    return ch.requeue(id, LEASE_OWNER, Math.min(Math.max(0, delayMs), this.opts.maxReqTimeoutMs), token, undelivered);
  }

  /** Whether a lease is still in flight with this token (changes nothing). */
  leaseStatus(topicName: string, channelName: string, id: string, token: string): SettleResult {
    const ch = this.findChannel(topicName, channelName);
    return ch ? ch.leaseStatus(id, token) : 'not_in_flight';
  }

  touchLease(topicName: string, channelName: string, id: string, token: string, leaseMs?: number): SettleResult {
    const ch = this.findChannel(topicName, channelName);
    return ch ? ch.touch(id, LEASE_OWNER, token, leaseMs) : 'not_in_flight';
  }

  /** Milliseconds left on a message's lease, if it is in flight. */
  leaseRemaining(topicName: string, channelName: string, id: string): number | undefined {
    const due = this.findChannel(topicName, channelName)?.deadlineOf(id);
    return due === undefined ? undefined : Math.max(0, Math.round(due - this.clock.now()));
  }

  // ---- the periodic scan ----

  tick(): void {
    let failed = false;
    for (const t of [...this.topics.values()])
      if (!t.deleted)
        this.survivingStorage(() => {
          try {
            t.tick();
          } catch (err) {
            failed = true;
            throw err;
          }
        });
    // a full scan that wrote without failing means storage works again
    if (!failed) this.storageError = null;
  }

  // ---- persistence ----

  private load(): void {
    const md = this.store.loadMetadata();
    if (!md) return;
    this.loading = true;
    try {
      for (const tm of md.topics) {
        if (!isValidName(tm.name)) continue;
        const t = this.topic(tm.name);
        t.paused = tm.paused;
        for (const cm of tm.channels) {
          if (!isValidName(cm.name)) continue;
          const ch = t.getChannel(cm.name);
          ch.paused = cm.paused;
          if (cm.max_attempts) ch.configure(cm.max_attempts, cm.dead_letter_topic ?? '');
        }
      }
    } finally {
      this.loading = false;
    }
  }

  metadata(): ShardMetadata {
    const topics = [];
    for (const t of this.topics.values()) {
      if (t.ephemeral) continue;
      const channels = [];
      for (const ch of t.channels.values()) {
        if (ch.ephemeral) continue;
        channels.push(ch.maxAttempts > 0 ? { name: ch.name, paused: ch.paused, max_attempts: ch.maxAttempts, dead_letter_topic: ch.deadLetterTopic } : { name: ch.name, paused: ch.paused });
      }
      topics.push({ name: t.name, paused: t.paused, channels });
    }
    return { version: ENGINE_VERSION, topics };
  }

  private saveMetadata(): void {
    if (this.loading || this.closed) return;
    this.store.saveMetadata(this.metadata());
  }

  /** Stops the scan, saves memory, in-flight and deferred messages and the metadata. */
  close(): void {
    if (this.closed) return;
    if (this.scanTimer) clearInterval(this.scanTimer);
    this.scanTimer = undefined;
    this.store.saveMetadata(this.metadata());
    this.closed = true;
    for (const t of this.topics.values()) t.close();
  }
}
