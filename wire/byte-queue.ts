// Bytes received but not yet decoded, for decoders fed arbitrary chunks. Appends go into spare
// room of one buffer (grown by doubling, slid to the front when the consumed head is in the
// way), so a peer trickling one byte at a time costs linear copying, not quadratic. While nothing
// is held a chunk is decoded as given, not copied; `settle()` (at the end of each push) copies a
// left-over tail out of it and shrinks an outgrown buffer, so between pushes the queue holds
// at most max(64 KiB, 4 × the unconsumed bytes) and no reference to the caller's chunk.

const EMPTY = Buffer.alloc(0);
const MIN_ROOM = 256;
const SHRINK_ABOVE = 64 * 1024;

export class ByteQueue {
  private store: Buffer = EMPTY;
  private start = 0;
  private end = 0;
  // whether `store` is our own buffer (else it is the caller's chunk, which we never write to)
  private owned = false;
  private view: Buffer = EMPTY;

  /** The unconsumed bytes (valid until the next append, consume or clear). */
  get bytes(): Buffer {
    return this.view;
  }

  get length(): number {
    return this.end - this.start;
  }

  /** Bytes of the buffer the queue owns (its memory cost between pushes). */
  get retainedBytes(): number {
    return this.owned ? this.store.length : 0;
  }

  append(chunk: Buffer): void {
    if (this.start === this.end) {
      this.store = chunk;
      this.start = 0;
      this.end = chunk.length;
      this.owned = false;
    } else {
      if (!this.owned || this.store.length - this.end < chunk.length) {
        const held = this.end - this.start;
        const need = held + chunk.length;
        const room = this.owned && this.store.length >= 2 * need ? this.store : Buffer.allocUnsafe(Math.max(MIN_ROOM, 2 * need));
        this.store.copy(room, 0, this.start, this.end); // memmove when room is store
        this.store = room;
        this.start = 0;
        this.end = held;
        this.owned = true;
      }
      chunk.copy(this.store, this.end);
      this.end += chunk.length;
    }
    this.view = this.store.subarray(this.start, this.end);
  }

  consume(n: number): void {
    this.start = Math.min(this.start + n, this.end);
    if (this.start === this.end) this.clear();
    else this.view = this.store.subarray(this.start, this.end);
  }

  /** Call once a push has been decoded: see the header. */
  settle(): void {
    const held = this.end - this.start;
    if (held === 0) return this.clear();
    if (this.owned && (this.store.length <= SHRINK_ABOVE || this.store.length <= 4 * held)) return;
    const room = Buffer.allocUnsafe(Math.max(MIN_ROOM, 2 * held));
    this.store.copy(room, 0, this.start, this.end);
    this.store = room;
    this.start = 0;
    this.end = held;
    this.owned = true;
    this.view = this.store.subarray(0, held);
  }

  clear(): void {
    this.store = this.view = EMPTY;
    this.start = this.end = 0;
    this.owned = false;
  }
}
