// The narrow interface through which topics and channels see their overflow storage.
// Production uses the segment-file DiskQueue; tests and #ephemeral queues may use MemoryBackend.

export interface BackendStats {
  /** Records written and not yet read. */
  depth: number;
  /** Records found damaged (bad length or checksum) and skipped since the queue was opened. */
  corrupt: number;
}

/**
 * A FIFO of opaque records. Calls are synchronous: `put` appends to a write buffer, `flush`
 * hands buffered records to the OS (and fsyncs per the sync policy), `readNext` returns the
 * oldest unread record. Records put but not flushed are visible to `readNext` as well.
 */
export interface BackendQueue {
  put(record: Uint8Array): void;
  /** Writes buffered records to the file; fsyncs when the sync policy says so (or `forceSync`). */
  flush(forceSync?: boolean): void;
  /** The oldest unread record, or null when the queue is empty. The Buffer belongs to the caller. */
  readNext(): Buffer | null;
  depth(): number;
  stats(): BackendStats;
  /** Drops every record (files removed), keeps the queue usable. */
  empty(): void;
  /** Flushes, fsyncs, persists metadata; the queue is unusable afterwards. */
  close(): void;
  /** Closes and removes every file of this queue. */
  delete(): void;
}

/** An in-memory BackendQueue (for tests and as the reference the contract suite checks against). */
export class MemoryBackend implements BackendQueue {
  private items: Buffer[] = [];
  private head = 0;

  put(record: Uint8Array): void {
    this.items.push(Buffer.from(record));
  }
  flush(): void {}
  readNext(): Buffer | null {
    if (this.head >= this.items.length) return null;
    const r = this.items[this.head];
    this.items[this.head++] = undefined as unknown as Buffer;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return r;
  }
  depth(): number {
    return this.items.length - this.head;
  }
  stats(): BackendStats {
    return { depth: this.depth(), corrupt: 0 };
  }
  empty(): void {
    this.items = [];
    this.head = 0;
  }
  close(): void {}
  delete(): void {
    this.empty();
  }
}
