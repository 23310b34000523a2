// A topic: the stream publishers write to. With channels (and not paused) each message is copied
// to every channel at once; otherwise messages wait in the topic's own queue (memory, then disk)
// and are drained into the channels in slices once a channel exists or the topic is unpaused.

import { Channel } from './channel';
import type { EngineContext } from './context';
import type { Message } from './message';
import { ReadyQueue } from './ready-queue';
import type { SavedMessage } from './store';
import type { ChannelStats } from './channel';

/** How many buffered messages one drain slice moves before yielding to other work. */
const DRAIN_SLICE = 2000;

export interface TopicStats {
  topic_name: string;
  depth: number;
  backend_depth: number;
  message_count: number;
  message_bytes: number;
  paused: boolean;
  corrupt_count: number;
  dropped_count: number;
  channels: ChannelStats[];
}

export class Topic {
  readonly ephemeral: boolean;
  readonly channels = new Map<string, Channel>();
  paused = false;
  deleted = false;
  /** While held, messages wait in the topic (used while asking lookups which channels it needs). */
  private held = false;
  messageCount = 0;
  messageBytes = 0;
  droppedCount = 0;
  private readonly queue: ReadyQueue;
  private drainScheduled = false;

  constructor(readonly name: string, private readonly ctx: EngineContext) {
    this.ephemeral = name.endsWith('#ephemeral');
    this.queue = new ReadyQueue(ctx.opts.memQueueSize, this.ephemeral ? null : ctx.store.openBackend(name));
    if (!this.ephemeral) this.queue.restoreMemory(ctx.store.takeSaved(name).map((s) => s.message));
  }

  put(m: Message): void {
    this.messageCount++;
    this.messageBytes += m.body.length;
    if (this.paused || this.held || this.channels.size === 0 || this.queue.depth() > 0) {
      if (this.queue.put(m) === 'dropped') this.droppedCount++;
      this.scheduleDrain();
      return;
    }
    this.fanOut(m);
  }

  private fanOut(m: Message): void {
    // Copies are taken before the original is handed on, since a channel updates what it holds.
    const last = this.channels.size;
    let i = 0;
    for (const ch of this.channels.values()) ch.put(++i === last ? m : m.copy());
  }

  private scheduleDrain(): void {
    if (this.drainScheduled || this.paused || this.held || this.channels.size === 0 || this.queue.depth() === 0) return;
    this.drainScheduled = true;
    this.ctx.schedule(() => {
      this.drainScheduled = false;
      if (this.deleted) return;
      this.drainSlice(DRAIN_SLICE);
      this.scheduleDrain();
    });
  }

  /** Moves up to `max` buffered messages into the channels; returns how many moved. */
  drainSlice(max: number): number {
    let moved = 0;
    while (moved < max && !this.paused && !this.held && this.channels.size > 0) {
      const m = this.queue.take();
      if (!m) break;
      this.fanOut(m);
      moved++;
    }
    if (moved > 0) this.flush();
    return moved;
  }

  getChannel(name: string): Channel {
    let ch = this.channels.get(name);
    if (!ch) {
      ch = new Channel(this.name, name, this.ctx);
      this.channels.set(name, ch);
      if (!ch.ephemeral) this.ctx.metadataChanged();
      this.ctx.channelCreated(this.name, name);
      this.scheduleDrain();
    }
    return ch;
  }

  deleteChannel(name: string): boolean {
    const ch = this.channels.get(name);
    if (!ch) return false;
    this.channels.delete(name);
    ch.delete();
    if (!ch.ephemeral) this.ctx.metadataChanged();
    this.ctx.channelDeleted(this.name, name);
    return true;
  }

  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    this.scheduleDrain();
  }

  pause(): void {
    this.paused = true;
    this.ctx.metadataChanged();
  }

  unpause(): void {
    this.paused = false;
    this.ctx.metadataChanged();
    this.scheduleDrain();
  }

  /** Drops the messages buffered in the topic itself (channels keep theirs, as in nsqd). */
  empty(): void {
    this.queue.empty();
  }

  flush(forceSync = false): void {
    this.queue.flush(forceSync);
    for (const ch of this.channels.values()) ch.flush(forceSync);
  }

  tick(): void {
    this.queue.flush();
    for (const ch of this.channels.values()) ch.tick();
  }

  depth(): number {
    return this.queue.depth();
  }

  delete(): void {
    this.deleted = true;
    for (const name of [...this.channels.keys()]) this.deleteChannel(name);
    this.queue.delete();
    this.ctx.store.removeQueue(this.name);
  }

  close(): void {
    if (this.deleted) return;
    for (const ch of this.channels.values()) ch.close();
    if (this.ephemeral) return;
    const saved: SavedMessage[] = this.queue.drainMemory().map((message) => ({ kind: 'ready', dueWall: 0, token: '', message }));
    this.ctx.store.save(this.name, saved);
    this.queue.close();
  }

  stats(channelFilter?: string): TopicStats {
    const channels: ChannelStats[] = [];
    for (const ch of this.channels.values()) if (channelFilter === undefined || ch.name === channelFilter) channels.push(ch.stats());
    return {
      topic_name: this.name,
      depth: this.queue.depth(),
      backend_depth: this.queue.backendDepth,
      message_count: this.messageCount,
      message_bytes: this.messageBytes,
      paused: this.paused,
      corrupt_count: this.queue.stats().corrupt,
      dropped_count: this.droppedCount,
      channels,
    };
  }
}
