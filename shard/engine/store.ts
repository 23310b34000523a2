// What the engine persists, behind one narrow interface: shard metadata (topics, channels,
// paused flags), a backend queue per topic/channel, and the state saved at a clean shutdown
// (in-memory, in-flight and deferred messages with their due times). MemoryStore is for tests.

import type { BackendQueue } from './backend';
import { MemoryBackend } from './backend';
import type { Journal } from './journal';
import type { Message } from './message';

export interface ChannelMetadata {
  name: string;
  paused: boolean;
  max_attempts?: number;
  dead_letter_topic?: string;
}
export interface TopicMetadata {
  name: string;
  paused: boolean;
  channels: ChannelMetadata[];
}
export interface ShardMetadata {
  version: string;
  topics: TopicMetadata[];
}

export type SavedKind = 'ready' | 'deferred' | 'in_flight';

/** A message saved at shutdown. Due times are wall-clock ms so they mean the same after a restart. */
export interface SavedMessage {
  kind: SavedKind;
  /** deferred: when to deliver; in_flight: when the lease expires; ready: 0. */
  dueWall: number;
  /** in_flight: the lease token, so a lease holder can still finish it after the restart. */
  token: string;
  message: Message;
}

export interface Store {
  loadMetadata(): ShardMetadata | null;
  saveMetadata(md: ShardMetadata): void;
  /** `queueName` is "topic" or "topic:channel". */
  openBackend(queueName: string): BackendQueue;
  /** Returns and forgets what was saved for this queue at the last clean shutdown. */
  takeSaved(queueName: string): SavedMessage[];
  save(queueName: string, saved: readonly SavedMessage[]): void;
  /** The crash journal for a channel's in-flight and deferred messages; null when not in durable mode. */
  openJournal(queueName: string): Journal | null;
  /** Removes everything stored for this queue (backend files and saved state). */
  removeQueue(queueName: string): void;
}

/** Keeps everything in memory; reusing one instance across engines simulates a clean restart. */
export class MemoryStore implements Store {
  metadata: ShardMetadata | null = null;
  readonly backends = new Map<string, MemoryBackend>();
  readonly saved = new Map<string, SavedMessage[]>();

  loadMetadata(): ShardMetadata | null {
    return this.metadata ? (JSON.parse(JSON.stringify(this.metadata)) as ShardMetadata) : null;
  }
  saveMetadata(md: ShardMetadata): void {
    this.metadata = JSON.parse(JSON.stringify(md)) as ShardMetadata;
  }
  openBackend(queueName: string): BackendQueue {
    let b = this.backends.get(queueName);
    if (!b) this.backends.set(queueName, (b = new MemoryBackend()));
    return b;
  }
  takeSaved(queueName: string): SavedMessage[] {
    const s = this.saved.get(queueName) ?? [];
    this.saved.delete(queueName);
    return s;
  }
  save(queueName: string, saved: readonly SavedMessage[]): void {
    if (saved.length) this.saved.set(queueName, [...saved]);
  }
  openJournal(): Journal | null {
    return null;
  }
  removeQueue(queueName: string): void {
    this.backends.get(queueName)?.delete();
    this.backends.delete(queueName);
    this.saved.delete(queueName);
  }
}
