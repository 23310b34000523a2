// The in-flight journal of a durable channel (--mem-queue-size 0): every message that leaves the
// disk queue for in flight or deferred is recorded (TAKE, with its body and due time) until it is
// finished or back in the queue (RETURN). After a crash, what was taken and not returned comes
// back, so a kill -9 loses neither in-flight nor deferred messages.
//
// Ordering (what makes it safe): TAKE records reach the OS before the disk queue may persist a
// read position past the message; RETURN records only after the message's new copy was handed to
// the disk queue. Records are matched by a sequence number, so their order in the file is free.
// Frames are [4B length][4B crc32][data]; a torn tail after a crash is ignored.

import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { Message } from './message';
import { decodeRecord, encodeRecord } from './record';

export type JournalKind = 'in_flight' | 'deferred';

export interface JournalEntry {
  seq: number;
  kind: JournalKind;
  /** Deferred: wall-clock due time; in flight: 0. */
  dueWall: number;
  message: Message;
}

/** What the channel uses; MemoryJournal and FileJournal implement it. */
export interface Journal {
  /** Records that `m` left the queue; returns the sequence number to hand back to returned(). */
  take(m: Message, kind: JournalKind, dueWall: number): number;
  returned(seq: number): void;
  /**
   * Writes TAKE records, runs `flushQueue` (the disk queue's writes), then writes RETURN records.
   * With no records waiting it does nothing: the queue's writes then go out with the topic's flush
   * at the end of the publish call (or the channel's tick), not once per message.
   */
  commit(flushQueue: () => void): void;
  /** Entries taken and never returned, from a previous run. */
  replay(): JournalEntry[];
  /** Replaces the whole journal with these live entries (atomically), e.g. after replay or to compact. */
  rewrite(live: readonly JournalEntry[]): void;
  /** The file has grown well past what is live: the owner should rewrite() it. */
  readonly compactNeeded: boolean;
  close(): void;
  delete(): void;
}

const TAKE = 1;
const RETURN = 2;
const KINDS: JournalKind[] = ['in_flight', 'deferred'];
const COMPACT_MIN_BYTES = 16 * 1024 * 1024;

/** A reusable, growing byte buffer: records are framed into it without a per-record allocation. */
class Bytes {
  buf = Buffer.allocUnsafe(64 * 1024);
  len = 0;
  count = 0;

  /** Reserves room for a frame with `dataLen` bytes of data; returns where the data starts. */
  begin(dataLen: number): number {
    const need = this.len + 8 + dataLen;
    if (need > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    return this.len + 8;
  }

  /** Seals the frame whose data was written at `start` (length and crc), and counts it. */
  end(start: number, dataLen: number): void {
    this.buf.writeUInt32BE(dataLen, start - 8);
    this.buf.writeUInt32BE(crc32(this.buf.subarray(start, start + dataLen)), start - 4);
    this.len = start + dataLen;
    this.count++;
  }

  reset(): void {
    this.len = 0;
    this.count = 0;
    if (this.buf.length > 1024 * 1024) this.buf = Buffer.allocUnsafe(64 * 1024);
  }
}

function appendTake(out: Bytes, seq: number, m: Message, kind: JournalKind, dueWall: number): void {
  const rec = encodeRecord(m);
  const dataLen = 18 + rec.length;
  const at = out.begin(dataLen);
  const b = out.buf;
  b[at] = TAKE;
  b.writeDoubleBE(seq, at + 1);
  b[at + 9] = KINDS.indexOf(kind);
  b.writeDoubleBE(dueWall, at + 10);
  rec.copy(b, at + 18);
  out.end(at, dataLen);
}

function appendReturn(out: Bytes, seq: number): void {
  const at = out.begin(9);
  out.buf[at] = RETURN;
  out.buf.writeDoubleBE(seq, at + 1);
  out.end(at, 9);
}

/** Parses a journal file's bytes into the entries still live; stops at the first damaged frame. */
export function parseJournal(buf: Buffer): JournalEntry[] {
  const live = new Map<number, JournalEntry>();
  let off = 0;
  while (off + 8 <= buf.length) {
    const len = buf.readUInt32BE(off);
    if (len < 9 || off + 8 + len > buf.length) break;
    const data = buf.subarray(off + 8, off + 8 + len);
    if (crc32(data) !== buf.readUInt32BE(off + 4)) break;
    off += 8 + len;
    const seq = data.readDoubleBE(1);
    if (data[0] === RETURN) live.delete(seq);
    else if (data[0] === TAKE && len > 18) {
      const message = decodeRecord(Buffer.from(data.subarray(18)));
      const kind = KINDS[data[9]];
      if (message && kind) live.set(seq, { seq, kind, dueWall: data.readDoubleBE(10), message });
    }
  }
  return [...live.values()];
}

export interface FileJournalOptions {
  dataPath: string;
  queueName: string;
  /** fsync after this many records (the disk queue's --sync-every). */
  syncEvery: number;
}

export class FileJournal implements Journal {
  private readonly file: string;
  private fd: number;
  private readonly takes = new Bytes();
  private readonly returns = new Bytes();
  private seq = 0;
  private live = 0;
  private bytes = 0;
  private unsynced = 0;

  constructor(private readonly o: FileJournalOptions) {
    this.file = path.join(o.dataPath, `${o.queueName}.journal.dat`);
    this.fd = fs.openSync(this.file, 'a');
    this.bytes = fs.fstatSync(this.fd).size;
  }

  take(m: Message, kind: JournalKind, dueWall: number): number {
    const seq = ++this.seq;
    appendTake(this.takes, seq, m, kind, dueWall);
    this.live++;
    return seq;
  }

  returned(seq: number): void {
    appendReturn(this.returns, seq);
    this.live--;
  }

  commit(flushQueue: () => void): void {
    // Nothing to order: a message put into the queue and not taken needs no write syscall of its own.
    if (this.takes.len === 0 && this.returns.len === 0) return;
    this.write(this.takes);
    flushQueue();
    this.write(this.returns);
    if (this.wantsCompaction()) this.compactNeeded = true;
  }

  /** Set when the file has grown well past what is live; the channel then calls rewrite(). */
  compactNeeded = false;

  private write(out: Bytes): void {
    if (out.len === 0) return;
    let off = 0;
    try {
      while (off < out.len) off += fs.writeSync(this.fd, out.buf, off, out.len - off);
    } catch (err) {
      // A short write (e.g. ENOSPC) would leave a torn frame that ends replay there, hiding every
      // later record: cut the file back so the whole batch can be retried after it.
      if (off > 0) fs.ftruncateSync(this.fd, this.bytes);
      throw err;
    }
    this.bytes += out.len;
    this.unsynced += out.count;
    out.reset();
    if (this.unsynced >= this.o.syncEvery) {
      fs.fsyncSync(this.fd);
      this.unsynced = 0;
    }
  }

  private wantsCompaction(): boolean {
    return this.bytes > COMPACT_MIN_BYTES && this.live * 1024 < this.bytes / 4;
  }

  replay(): JournalEntry[] {
    const entries = parseJournal(fs.readFileSync(this.file));
    for (const e of entries) if (e.seq > this.seq) this.seq = e.seq;
    return entries;
  }

  rewrite(live: readonly JournalEntry[]): void {
    const tmp = `${this.file}.tmp`;
    const out = new Bytes();
    for (const e of live) appendTake(out, e.seq, e.message, e.kind, e.dueWall);
    const fd = fs.openSync(tmp, 'w');
    try {
      if (out.len) fs.writeSync(fd, out.buf, 0, out.len);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'a');
    this.bytes = out.len;
    this.live = live.length;
    this.takes.reset();
    this.returns.reset();
    this.compactNeeded = false;
  }

  close(): void {
    if (this.fd < 0) return;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = -1;
  }

  delete(): void {
    this.close();
    fs.rmSync(this.file, { force: true });
  }
}
