// What topics and channels receive from the engine that owns them: options, clock, storage,
// and the callbacks through which they report changes upward (so they never import the engine).

import type { Clock } from './clock';
import type { Store } from './store';

export interface EngineOptions {
  /** Messages kept in memory per topic and per channel before overflowing to the backend. */
  memQueueSize: number;
  /** Default time a delivered message stays in flight (nsqd --msg-timeout). */
  msgTimeoutMs: number;
  /** Upper bound for any in-flight duration, touches included (nsqd --max-msg-timeout). */
  maxMsgTimeoutMs: number;
  /** Upper bound for a requeue delay or a deferred publish (nsqd --max-req-timeout). */
  maxReqTimeoutMs: number;
  /** How long an #ephemeral channel used only through leases survives without any pull. */
  ephemeralLeaseGraceMs: number;
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  memQueueSize: 10000,
  msgTimeoutMs: 60_000,
  maxMsgTimeoutMs: 15 * 60_000,
  maxReqTimeoutMs: 60 * 60_000,
  ephemeralLeaseGraceMs: 30_000,
};

export interface EngineContext {
  readonly opts: EngineOptions;
  readonly clock: Clock;
  readonly store: Store;
  /** A token unique to one lease delivery. */
  newToken(): string;
  /** An #ephemeral channel has no consumers left. */
  channelIdle(ch: { readonly topicName: string; readonly name: string; readonly deleted: boolean }): void;
  /** Topics, channels or paused flags changed: persist the metadata. */
  metadataChanged(): void;
  /** Runs `fn` soon, after pending I/O (setImmediate in production). */
  schedule(fn: () => void): void;
  channelCreated(topic: string, channel: string): void;
  channelDeleted(topic: string, channel: string): void;
  /** Publishes a dead-lettered message's envelope to `topic`. */
  deadLetter(topic: string, body: Buffer): void;
}
