// The overflow storage behind a topic or channel: a FIFO of CRC-framed records in numbered
// segment files (nsqd's diskqueue layout), with atomic metadata and recovery from crashes and damage.
//
// Durability contract. Each record is framed [4B length BE][4B crc32 of data BE][data] and never
// spans segments. `flush()` hands buffered records to the OS; an fsync of the write segment plus an
// atomic metadata replace (tmp file, fsync, rename, fsync dir) happens every `syncEvery` records,
// on `flush(true)`, every `syncTimeoutMs` while dirty (finishing a read segment makes it dirty), and on
// `close()`. After a crash everything fsynced comes back, and so does anything flushed that the OS
// wrote out: open() scans forward from the metadata's write position. Delivery is AT LEAST ONCE:
// records read after the last metadata save are read again after a crash.
//
// Damage (impossible length, crc mismatch, truncated tail) is skipped, counted in stats().corrupt,
// reported through onCorrupt, and reading resynchronises on the next valid frame. Damaged bytes are
// never overwritten: a damaged write segment is left behind at open, and a damaged segment is
// renamed to `<file>.bad` (never removed by this queue) instead of being deleted once read.
// depth() is exact unless one damaged stretch destroyed several records (then it is high until the
// reader catches up, which resets it to 0). Damage found at open was never counted in depth; its
// offsets are kept (in an optional 4th metadata line) so skipping it later does not lower depth.

import fs from 'node:fs';
import path from 'node:path';
import type { BackendQueue, BackendStats } from './backend';
import { damageReason, fileSize, fsyncDir, HEADER, keepAsBad, removeQuietly, SegmentReader, writeFrame } from './disk-segment';

export interface DiskQueueOptions {
  /** Directory holding the files (must exist). */
  dataPath: string;
  /** "topic" or "topic:channel"; never contains '/'. */
  name: string;
  /** nsqd --max-bytes-per-file: a segment is rolled before a record would take it past this. */
  maxBytesPerFile: number;
  /** Largest valid record; a frame claiming more is damage. */
  maxRecordSize: number;
  /** nsqd --sync-every: fsync once this many records were put since the last fsync. */
  syncEvery: number;
  /** nsqd --sync-timeout: fsync at least this often while dirty (0 disables the timer). */
  syncTimeoutMs: number;
  /** Damaged records, and metadata/segment problems found at open (the latter not counted in corrupt). */
  onCorrupt?: (info: { file: string; offset: number; reason: string }) => void;
}

interface Meta {
  depth: number;
  readFileNum: number;
  readPos: number;
  writeFileNum: number;
  writePos: number;
  uncounted: string[];
}

const WRITE_BATCH = 1 << 20;
const INITIAL_WRITE_BUFFER = 64 << 10;

export class DiskQueue implements BackendQueue {
  private depthCount = 0;
  private corruptCount = 0;
  private readFileNum = 0;
  private readPos = 0;
  private writeFileNum = 0;
  /** End of the bytes handed to the OS in the write segment (buffered bytes come after). */
  private writePos = 0;
  private readFd: number | null = null;
  /** Segments read to the end, removed once the metadata that moved past them is persisted. */
  private readonly retired: { file: string; damaged: boolean }[] = [];
  /** Size of a finished read segment, -1 until known. */
  private readSize = -1;
  private readDamaged = false;
  private readonly reader: SegmentReader;
  private writeFd: number | null = null;
  private wbuf: Buffer | null = null;
  private pendingLen = 0;
  private unsyncedRecords = 0;
  /** Something (a put or a read) is not yet reflected in the persisted metadata. */
  private dirty = false;
  private syncTimer: NodeJS.Timeout | null = null;
  private backgroundError: Error | null = null;
  private closed = false;
  /** Damage found while counting at open: it was never part of depth, so skipping it must not lower depth. */
  private readonly uncounted = new Set<string>();

  static open(opts: DiskQueueOptions): DiskQueue {
    const q = new DiskQueue(opts);
    q.recover();
    return q;
  }

  private constructor(private readonly opts: DiskQueueOptions) {
    if (!(opts.maxBytesPerFile > 0) || !(opts.maxRecordSize > 0) || opts.maxRecordSize > 0xffffffff) throw new RangeError('bad disk queue sizes');
    if (!(opts.syncEvery >= 1) || !(opts.syncTimeoutMs >= 0)) throw new RangeError('bad disk queue sync policy');
    if (opts.name.includes('/') || opts.name === '') throw new RangeError(`bad disk queue name ${JSON.stringify(opts.name)}`);
    this.reader = new SegmentReader(opts.maxRecordSize);
  }

  put(record: Uint8Array): void {
    this.assertOpen();
    const len = record.length;
    if (len === 0 || len > this.opts.maxRecordSize) throw new RangeError(`record of ${len} bytes (must be 1..${this.opts.maxRecordSize})`);
    const frame = HEADER + len;
    const used = this.writePos + this.pendingLen;
    if (used > 0 && used + frame > this.opts.maxBytesPerFile) this.rollWriteFile();
    const buf = this.reserve(frame);
    const at = this.pendingLen;
    writeFrame(buf, at, record);
    this.pendingLen += frame;
    this.depthCount++;
    this.unsyncedRecords++;
    this.markDirty();
    if (this.pendingLen >= WRITE_BATCH) this.writeOut();
  }

  flush(forceSync = false): void {
    this.assertOpen();
    this.rethrowBackgroundError();
    this.writeOut();
    if (forceSync ? this.dirty : this.unsyncedRecords >= this.opts.syncEvery) this.sync();
  }

  readNext(): Buffer | null {
    this.assertOpen();
    for (;;) {
      const end = this.readEnd();
      if (this.readPos < end) {
        const rec = this.readAt(end);
        if (rec !== null) return rec;
      } else if (this.readFileNum < this.writeFileNum) {
        this.finishReadFile();
      } else if (this.pendingLen > 0) {
        this.writeOut();
      } else {
        if (this.depthCount !== 0) this.markDirty(); // an overcount after damage ends here
        this.depthCount = 0;
        this.uncounted.clear();
        return null;
      }
    }
  }

  depth(): number {
    return this.depthCount;
  }

  stats(): BackendStats {
    return { depth: this.depthCount, corrupt: this.corruptCount };
  }

  empty(): void {
    this.assertOpen();
    this.closeFiles();
    for (const n of this.listSegments()) removeQuietly(this.segmentPath(n));
    this.pendingLen = 0;
    this.depthCount = 0;
    this.uncounted.clear();
    // Numbers keep increasing, so nothing can mistake an old file for a new one.
    this.writeFileNum++;
    this.readFileNum = this.writeFileNum;
    this.readPos = this.writePos = 0;
    this.persistMeta();
    this.markClean();
  }

  close(): void {
    if (this.closed) return;
    try {
      this.rethrowBackgroundError();
      this.sync();
    } finally {
      this.shutDown();
    }
  }

  delete(): void {
    this.shutDown();
    for (const n of this.listSegments()) removeQuietly(this.segmentPath(n));
    removeQuietly(this.metaPath());
    removeQuietly(this.metaPath() + '.tmp');
  }

  /** Simulates a crash (for tests): drops files and timer without writing; unflushed records are lost. */
  abandonForTest(): void {
    this.shutDown();
  }

  // ---- writing ----

  private reserve(n: number): Buffer {
    const need = this.pendingLen + n;
    if (this.wbuf !== null && this.wbuf.length >= need) return this.wbuf;
    const next = Buffer.allocUnsafe(Math.max(need, INITIAL_WRITE_BUFFER, 2 * (this.wbuf?.length ?? 0)));
    if (this.wbuf !== null) this.wbuf.copy(next, 0, 0, this.pendingLen);
    return (this.wbuf = next);
  }

  /** Hands the buffered frames to the OS with one write (no fsync). */
  private writeOut(): void {
    if (this.pendingLen === 0) return;
    const fd = this.writeFd ?? (this.writeFd = fs.openSync(this.segmentPath(this.writeFileNum), 'a'));
    const buf = this.wbuf as Buffer;
    let off = 0;
    try {
      while (off < this.pendingLen) off += fs.writeSync(fd, buf, off, this.pendingLen - off);
    } catch (err) {
      if (off > 0) this.abandonTornWrite();
      throw err;
    }
    this.writePos += this.pendingLen;
    this.pendingLen = 0;
  }

  /** A write failed halfway (e.g. ENOSPC): the torn frames stay as damage that was never counted,
   * and the whole buffer is retried in a fresh segment rather than after the garbage. */
  private abandonTornWrite(): void {
    this.uncounted.add(damageKey(this.writeFileNum, this.writePos));
    fs.closeSync(this.writeFd as number);
    this.writeFd = null;
    this.writeFileNum++;
    this.writePos = 0;
  }

  private rollWriteFile(): void {
    this.writeOut();
    if (this.writeFd !== null) {
      // Earlier segments are durable before we move on, so recovery only needs to scan forward.
      fs.fsyncSync(this.writeFd);
      fs.closeSync(this.writeFd);
      this.writeFd = null;
    }
    this.writeFileNum++;
    this.writePos = 0;
  }

  /** Writes out, fsyncs the write segment and persists the metadata that now matches it. */
  private sync(): void {
    this.writeOut();
    if (this.writeFd !== null && this.unsyncedRecords > 0) fs.fsyncSync(this.writeFd);
    this.persistMeta();
    this.markClean();
    this.removeRetired();
  }

  private persistMeta(): void {
    // nsqd's three lines; the optional fourth only exists while damage found at open is unread.
    let m = `${this.depthCount}\n${this.readFileNum},${this.readPos}\n${this.writeFileNum},${this.writePos}\n`;
    if (this.uncounted.size > 0) m += `${[...this.uncounted].join(' ')}\n`;
    const tmp = this.metaPath() + '.tmp';
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, m);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.metaPath());
    fsyncDir(this.opts.dataPath);
  }

  private markDirty(): void {
    this.dirty = true;
    if (this.syncTimer !== null || this.opts.syncTimeoutMs <= 0) return;
    this.syncTimer = setTimeout(() => this.onSyncTimer(), this.opts.syncTimeoutMs);
    this.syncTimer.unref();
  }

  private markClean(): void {
    this.unsyncedRecords = 0;
    this.dirty = false;
    if (this.syncTimer !== null) clearTimeout(this.syncTimer);
    this.syncTimer = null;
  }

  private onSyncTimer(): void {
    this.syncTimer = null;
    if (this.closed || !this.dirty) return;
    try {
      this.sync();
      // A queue that went quiet gives its buffers back; a busy one re-grows them cheaply.
      this.wbuf = null;
      this.reader.release();
    } catch (err) {
      this.backgroundError = err instanceof Error ? err : new Error(String(err));
    }
  }

  // ---- reading ----

  private readEnd(): number {
    if (this.readFileNum === this.writeFileNum) return this.writePos;
    if (this.readSize < 0) {
      this.readSize = fileSize(this.segmentPath(this.readFileNum));
      if (this.readSize < 0) this.report(this.segmentPath(this.readFileNum), 0, 'segment missing');
      this.readSize = Math.max(0, this.readSize);
    }
    return this.readSize;
  }

  private readAt(end: number): Buffer | null {
    if (this.readFd === null) {
      this.readFd = fs.openSync(this.segmentPath(this.readFileNum), 'r');
      this.reader.attach(this.readFd, end);
    }
    this.reader.end = end;
    const len = this.reader.frameAt(this.readPos);
    if (len < 0) {
      this.skipDamage(len, end);
      return null;
    }
    const out = this.reader.copyData(this.readPos, len);
    this.readPos += HEADER + len;
    if (this.depthCount > 0) this.depthCount--;
    this.markDirty();
    return out;
  }

  private skipDamage(code: number, end: number): void {
    const at = this.readPos;
    const next = this.reader.resync(at + 1);
    // A file shorter than we believed: what is missing is gone, carry on after it.
    this.readPos = this.reader.end < end ? end : next;
    this.readDamaged = true;
    this.corruptCount++;
    if (!this.uncounted.delete(damageKey(this.readFileNum, at)) && this.depthCount > 0) this.depthCount--;
    this.markDirty();
    this.report(this.segmentPath(this.readFileNum), at, damageReason(code));
  }

  private finishReadFile(): void {
    const done = this.segmentPath(this.readFileNum);
    const damaged = this.readDamaged;
    this.closeReadFile();
    this.readFileNum++;
    this.readPos = 0;
    // The file goes only after metadata has moved past it (never pointing at a deleted segment),
    // and that happens at the next sync, not here inside a read: the caller may still have to
    // record elsewhere (the channel's journal) what it just read before the queue may forget it.
    this.retired.push({ file: done, damaged });
    this.markDirty();
  }

  /** Removes (or keeps as .bad) read segments the persisted metadata has moved past. */
  private removeRetired(): void {
    for (const r of this.retired.splice(0)) {
      if (r.damaged) keepAsBad(r.file);
      else removeQuietly(r.file);
    }
  }

  private closeReadFile(): void {
    if (this.readFd !== null) fs.closeSync(this.readFd);
    this.readFd = null;
    this.readSize = -1;
    this.readDamaged = false;
  }

  // ---- opening ----

  private recover(): void {
    const files = this.listSegments();
    const meta = this.loadMeta(files.length > 0);
    const problem = meta === null ? null : this.metaProblem(meta, new Set(files));
    let base = 0;
    if (meta !== null && problem === null) {
      const atEnd = meta.readFileNum === meta.writeFileNum && meta.readPos === meta.writePos;
      base = atEnd ? 0 : meta.depth;
      for (const k of meta.uncounted) this.uncounted.add(k);
      this.readFileNum = meta.readFileNum;
      this.readPos = meta.readPos;
      this.countForward(meta.writeFileNum, meta.writePos, files);
    } else {
      if (problem !== null) this.report(this.metaPath(), 0, `${problem}; recounting from the segments`);
      this.readFileNum = meta?.readFileNum ?? files[0] ?? 0;
      this.readPos = meta?.readPos ?? 0;
      this.countForward(this.readFileNum, this.readPos, files);
    }
    this.depthCount += base;
    const rebuilt = meta === null ? files.length > 0 : problem !== null;
    if (rebuilt || this.dirty) this.persistMeta();
    this.markClean();
  }

  /** Counts the valid records from (fileNum, pos) to the end of the last segment into depth, and
   * leaves the write position there, or in a new segment if that tail is damaged. */
  private countForward(fileNum: number, pos: number, files: number[]): void {
    let damaged = false;
    this.writeFileNum = fileNum;
    this.writePos = pos;
    for (const n of [fileNum, ...files.filter((f) => f > fileNum)]) {
      const from = n === fileNum ? pos : 0;
      const size = Math.max(0, fileSize(this.segmentPath(n)));
      damaged = size < from;
      if (damaged) this.report(this.segmentPath(n), size, 'segment shorter than the metadata says');
      else damaged = this.scanSegment(n, from, size);
      this.writeFileNum = n;
      this.writePos = size;
    }
    if (damaged) {
      this.writeFileNum++;
      this.writePos = 0;
    }
  }

  /** Counts valid frames in [from, size) into depth; returns whether any damage was found. */
  private scanSegment(n: number, from: number, size: number): boolean {
    if (from >= size) return false;
    let damaged = false;
    const fd = fs.openSync(this.segmentPath(n), 'r');
    try {
      this.reader.attach(fd, size);
      for (let pos = from; pos < this.reader.end; ) {
        const len = this.reader.frameAt(pos);
        if (len > 0) {
          this.depthCount++;
          this.dirty = true;
          pos += HEADER + len;
          continue;
        }
        damaged = this.dirty = true;
        this.uncounted.add(damageKey(n, pos));
        pos = this.reader.resync(pos + 1);
      }
    } finally {
      fs.closeSync(fd);
      this.reader.release();
    }
    return damaged;
  }

  private loadMeta(haveSegments: boolean): Meta | null {
    let text: string;
    try {
      text = fs.readFileSync(this.metaPath(), 'latin1');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      if (haveSegments) this.report(this.metaPath(), 0, 'metadata missing; recounting from the segments');
      return null;
    }
    const m = /^(\d{1,15})\n(\d{1,15}),(\d{1,15})\n(\d{1,15}),(\d{1,15})(?:\n([\d: ]*))?\n?$/.exec(text);
    const uncounted = (m?.[6] ?? '').split(' ').filter((k) => k !== '');
    const meta = m && { depth: +m[1], readFileNum: +m[2], readPos: +m[3], writeFileNum: +m[4], writePos: +m[5], uncounted };
    const ordered = meta && (meta.readFileNum < meta.writeFileNum || (meta.readFileNum === meta.writeFileNum && meta.readPos <= meta.writePos));
    if (meta && ordered && uncounted.every((k) => /^\d{1,15}:\d{1,15}$/.test(k))) return meta;
    this.report(this.metaPath(), 0, 'unreadable metadata; recounting from the segments');
    return null;
  }

  /** Why the metadata cannot be trusted as it stands, or null when it matches the files. */
  private metaProblem(m: Meta, files: Set<number>): string | null {
    if (m.writeFileNum - m.readFileNum > files.size) return 'metadata names segments that do not exist';
    for (let n = m.readFileNum; n < m.writeFileNum; n++) if (!files.has(n)) return `segment ${n} missing`;
    if (m.readFileNum < m.writeFileNum && fileSize(this.segmentPath(m.readFileNum)) < m.readPos) return 'read segment shorter than the metadata says';
    if (Math.max(0, fileSize(this.segmentPath(m.writeFileNum))) < m.writePos) return 'write segment shorter than the metadata says';
    return null;
  }

  // ---- files ----

  private segmentPath(n: number): string {
    return path.join(this.opts.dataPath, `${this.opts.name}.diskqueue.${String(n).padStart(6, '0')}.dat`);
  }

  private metaPath(): string {
    return path.join(this.opts.dataPath, `${this.opts.name}.diskqueue.meta.dat`);
  }

  /** Numbers of this queue's segment files, ascending. */
  private listSegments(): number[] {
    const prefix = `${this.opts.name}.diskqueue.`;
    const out: number[] = [];
    for (const f of fs.readdirSync(this.opts.dataPath)) {
      if (!f.startsWith(prefix)) continue;
      const m = /^(\d{6,15})\.dat$/.exec(f.slice(prefix.length));
      if (m) out.push(Number(m[1]));
    }
    return out.sort((a, b) => a - b);
  }

  private closeFiles(): void {
    this.closeReadFile();
    this.reader.release();
    if (this.writeFd !== null) fs.closeSync(this.writeFd);
    this.writeFd = null;
  }

  private shutDown(): void {
    if (this.closed) return;
    this.closed = true;
    this.markClean();
    this.closeFiles();
    this.wbuf = null;
    this.pendingLen = 0;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`disk queue ${this.opts.name} is closed`);
  }

  private rethrowBackgroundError(): void {
    const err = this.backgroundError;
    this.backgroundError = null;
    if (err) throw err;
  }

  private report(file: string, offset: number, reason: string): void {
    this.opts.onCorrupt?.({ file, offset, reason });
  }
}

function damageKey(fileNum: number, pos: number): string {
  return `${fileNum}:${pos}`;
}
