// The durable half of to-file: records (message body + '\n') appended in memory, then written to
// rotating files and fsynced by sync(); and the Archiver, which finishes a message only after a
// sync that covers it has completed. With --gzip each sync writes one complete gzip member, so a
// file is a valid gzip stream after every sync, even if the process dies before closing it.

import { constants as FS, promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';

const gzip = promisify(zlib.gzip);
const NL = Buffer.from('\n');

export interface FileSinkOptions {
  dir: string;
  /** First part of every file name (e.g. "<topic>.<host>"). */
  prefix: string;
  gzip: boolean;
  gzipLevel?: number;
  /** Start a new file once this many record bytes (before compression) are in it; 0: never. */
  rotateBytes: number;
  /** Start a new file once the current one is this old (ms); 0: never. */
  rotateIntervalMs: number;
  /** Wall clock for file names; monotonic clock for file age. */
  now?: () => number;
  monotonic?: () => number;
}

interface OpenFile {
  handle: fsp.FileHandle;
  name: string;
  bytes: number;
  openedAt: number;
}

/** Ready-made records appended and not yet synced are held in memory, in order. */
export class FileSink {
  private buffered: Buffer[] = [];
  private bufferedLen = 0;
  private file: OpenFile | null = null;
  private seq = 0;
  private readonly now: () => number;
  private readonly mono: () => number;
  /** Every file this sink created, in order (base names). */
  readonly created: string[] = [];

  constructor(private readonly o: FileSinkOptions) {
    this.now = o.now ?? Date.now;
    this.mono = o.monotonic ?? (() => performance.now());
  }

  append(body: Buffer): void {
    this.buffered.push(body, NL);
    this.bufferedLen += body.length + 1;
  }

  get bufferedBytes(): number {
    return this.bufferedLen;
  }

  /** The current file would pass --rotate-bytes with what is buffered: sync soon. */
  rotationDue(): boolean {
    return this.o.rotateBytes > 0 && (this.file?.bytes ?? 0) + this.bufferedLen >= this.o.rotateBytes;
  }

  /**
   * Writes every record appended before this call, fsyncs, and rotates where due (by size at a
   * record boundary, by age at the end). Resolves once those records are on disk. After a failure
   * the current file is abandoned (a failed fsync cannot be retried safely) and the next sync
   * starts a new file; the caller decides what to do with the records it covered.
   */
  async sync(): Promise<void> {
    const records = this.buffered;
    this.buffered = [];
    this.bufferedLen = 0;
    try {
      let i = 0;
      while (i < records.length) {
        const f = this.file ?? (await this.open());
        // records come in (body, '\n') pairs; take pairs until the file reaches rotateBytes
        const start = i;
        let bytes = 0;
        while (i < records.length && !(this.o.rotateBytes > 0 && i > start && f.bytes + bytes >= this.o.rotateBytes)) {
          bytes += records[i].length + records[i + 1].length;
          i += 2;
        }
        await this.write(f, records.slice(start, i), bytes);
        if (this.o.rotateBytes > 0 && f.bytes >= this.o.rotateBytes) await this.closeFile();
      }
      if (this.file && this.o.rotateIntervalMs > 0 && this.mono() - this.file.openedAt >= this.o.rotateIntervalMs) await this.closeFile();
    } catch (err) {
      const f = this.file;
      this.file = null;
      await f?.handle.close().catch(() => undefined);
      throw err;
    }
  }

  /** Syncs what is buffered and closes the current file. */
  async close(): Promise<void> {
    await this.sync();
    await this.closeFile();
  }

  private async write(f: OpenFile, parts: Buffer[], bytes: number): Promise<void> {
    const plain = Buffer.concat(parts, bytes);
    const data = this.o.gzip ? await gzip(plain, { level: this.o.gzipLevel ?? 6 }) : plain;
    let off = 0;
    while (off < data.length) off += (await f.handle.write(data, off, data.length - off)).bytesWritten;
    await f.handle.sync();
    f.bytes += bytes;
  }

  private async closeFile(): Promise<void> {
    const f = this.file;
    this.file = null;
    if (f) await f.handle.close();
  }

  /** A new file, never an existing one (O_EXCL), and its directory entry made durable. */
  private async open(): Promise<OpenFile> {
    const stamp = new Date(this.now()).toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
    for (;;) {
      const name = `${this.o.prefix}.${stamp}.${String(this.seq++).padStart(4, '0')}.log${this.o.gzip ? '.gz' : ''}`;
      let handle: fsp.FileHandle;
      try {
        handle = await fsp.open(path.join(this.o.dir, name), FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o644);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      await syncDir(this.o.dir);
      this.created.push(name);
      this.file = { handle, name, bytes: 0, openedAt: this.mono() };
      return this.file;
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await fsp.open(dir, FS.O_RDONLY);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** What the archiver needs of a message (the client's Message has it). */
export interface Archivable {
  readonly body: Buffer;
  finish(): boolean;
  requeue(delayMs?: number, backoff?: boolean): boolean;
}

export interface SinkLike {
  append(body: Buffer): void;
  rotationDue(): boolean;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Messages in, files out: each message is appended, and finished only after a sync that covers
 * it resolves. Syncs run one at a time, when `syncEvery` messages wait, when the file is due to
 * rotate, or when flush() is called (at an interval, and on close). If a sync fails, the
 * messages it covered are requeued (they may then be in the files twice: at least once).
 */
export class Archiver {
  private pending: Archivable[] = [];
  private chain: Promise<void> = Promise.resolve();
  private queued = false;

  constructor(
    private readonly sink: SinkLike,
    private readonly syncEvery: number,
    private readonly hooks: { written(messages: number): void; failed(err: unknown, messages: number): void },
  ) {}

  get waiting(): number {
    return this.pending.length;
  }

  add(m: Archivable): void {
    this.sink.append(m.body);
    this.pending.push(m);
    if (this.pending.length >= this.syncEvery || this.sink.rotationDue()) void this.flush();
  }

  /** Resolves when everything added before the call is on disk and finished (or requeued after a failure). */
  flush(): Promise<void> {
    if (!this.queued) {
      // one sync waiting behind the running one is enough: it will take everything added by then
      this.queued = true;
      this.chain = this.chain.then(() => this.syncNow());
    }
    return this.chain;
  }

  async close(): Promise<void> {
    await this.flush();
    await this.sink.close();
  }

  private async syncNow(): Promise<void> {
    this.queued = false;
    const batch = this.pending;
    this.pending = [];
    try {
      await this.sink.sync(); // takes exactly the records of `batch`, appended before this point
    } catch (err) {
      for (const m of batch) m.requeue(undefined, true);
      this.hooks.failed(err, batch.length);
      return;
    }
    for (const m of batch) m.finish();
    if (batch.length > 0) this.hooks.written(batch.length);
  }
}
