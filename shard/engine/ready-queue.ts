// The queue of messages ready for delivery in a topic or channel: up to `memQueueSize` in memory,
// the rest in a backend (disk). FIFO is kept across the boundary: once anything is on disk, new
// messages go to disk too until it drains, so memory never overtakes older messages on disk.

import type { BackendQueue } from './backend';
import type { Message } from './message';
import { decodeRecord, encodeRecord } from './record';

export type PutResult = 'memory' | 'disk' | 'dropped';

export class ReadyQueue {
  private ring: (Message | undefined)[] = [];
  private head = 0;
  private count = 0;
  /** Records the backend handed back that could not be decoded (skipped). */
  undecodable = 0;

  /** `backend` null means memory only (#ephemeral): messages beyond memQueueSize are dropped. */
  constructor(private readonly memQueueSize: number, private readonly backend: BackendQueue | null) {}

  get memoryDepth(): number {
    return this.count;
  }

  get backendDepth(): number {
    return this.backend ? this.backend.depth() : 0;
  }

  depth(): number {
    return this.count + this.backendDepth;
  }

  put(m: Message): PutResult {
    if (this.count < this.memQueueSize && this.backendDepth === 0) {
      this.pushMemory(m);
      return 'memory';
    }
    if (!this.backend) return 'dropped';
    this.backend.put(encodeRecord(m));
    return 'disk';
  }

  take(): Message | null {
    if (this.count > 0) {
      const m = this.ring[this.head]!;
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.ring.length;
      this.count--;
      return m;
    }
    if (!this.backend) return null;
    for (;;) {
      const rec = this.backend.readNext();
      if (rec === null) return null;
      const m = decodeRecord(rec);
      if (m) return m;
      this.undecodable++;
    }
  }

  /** Hands buffered backend writes to the OS (and fsyncs per the backend's policy). */
  flush(forceSync = false): void {
    this.backend?.flush(forceSync);
  }

  /** Drops every queued message. */
  empty(): void {
    this.ring = [];
    this.head = 0;
    this.count = 0;
    this.backend?.empty();
  }

  /** Removes and returns the in-memory messages, oldest first (persisted separately at shutdown). */
  drainMemory(): Message[] {
    const out: Message[] = [];
    while (this.count > 0) out.push(this.take()!);
    return out;
  }

  /**
   * Puts messages saved at shutdown back in memory ahead of the disk backlog, where they were.
   * May exceed memQueueSize by what the shard held when it stopped.
   */
  restoreMemory(msgs: readonly Message[]): void {
    for (const m of msgs) this.pushMemory(m, true);
  }

  /** Closes the backend; memory must have been drained (and saved) by the caller. */
  close(): void {
    this.backend?.close();
  }

  delete(): void {
    this.empty();
    this.backend?.delete();
  }

  stats(): { corrupt: number } {
    return { corrupt: (this.backend ? this.backend.stats().corrupt : 0) + this.undecodable };
  }

  private pushMemory(m: Message, beyondCap = false): void {
    if (this.count === this.ring.length) this.grow(beyondCap);
    this.ring[(this.head + this.count) % this.ring.length] = m;
    this.count++;
  }

  private grow(beyondCap: boolean): void {
    const doubled = Math.max(16, this.ring.length * 2);
    const size = beyondCap ? doubled : Math.min(doubled, Math.max(16, this.memQueueSize));
    const next: (Message | undefined)[] = new Array(size);
    for (let i = 0; i < this.count; i++) next[i] = this.ring[(this.head + i) % this.ring.length];
    this.ring = next;
    this.head = 0;
  }
}
