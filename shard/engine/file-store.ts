// The production Store: metadata in `sluice.dat` (JSON, written atomically), one DiskQueue per
// topic and channel, and `<queue>.state.dat` files holding what a clean shutdown saved.

import fs from 'node:fs';
import path from 'node:path';
import type { BackendQueue } from './backend';
import { DiskQueue } from './disk-queue';
import { FileJournal, Journal } from './journal';
import { decodeRecord, encodeRecord } from './record';
import type { SavedKind, SavedMessage, ShardMetadata, Store } from './store';

export interface FileStoreOptions {
  dataPath: string;
  maxBytesPerFile: number;
  maxMsgSize: number;
  syncEvery: number;
  syncTimeoutMs: number;
  onCorrupt?: (info: { file: string; offset: number; reason: string }) => void;
  /** Keep a crash journal of in-flight and deferred messages per channel (durable mode; default off). */
  journal?: boolean;
}

const METADATA_FILE = 'sluice.dat';
const STATE_MAGIC = Buffer.from('SLUICE-STATE-1\n');
const KINDS: SavedKind[] = ['ready', 'deferred', 'in_flight'];

/** Writes a file so that a crash leaves either the old or the new content, never a mix. */
export function writeFileAtomic(file: string, data: Buffer | string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

export class FileStore implements Store {
  constructor(private readonly o: FileStoreOptions) {
    fs.mkdirSync(o.dataPath, { recursive: true });
  }

  private file(name: string): string {
    return path.join(this.o.dataPath, name);
  }

  loadMetadata(): ShardMetadata | null {
    let text: string;
    try {
      text = fs.readFileSync(this.file(METADATA_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const md = JSON.parse(text) as ShardMetadata;
    if (!md || !Array.isArray(md.topics)) throw new Error(`${METADATA_FILE}: not shard metadata`);
    return md;
  }

  saveMetadata(md: ShardMetadata): void {
    writeFileAtomic(this.file(METADATA_FILE), JSON.stringify(md));
  }

  openBackend(queueName: string): BackendQueue {
    return DiskQueue.open({
      dataPath: this.o.dataPath,
      name: queueName,
      maxBytesPerFile: this.o.maxBytesPerFile,
      // a record is the message plus its header; anything claiming more is damage
      maxRecordSize: this.o.maxMsgSize + 64,
      syncEvery: this.o.syncEvery,
      syncTimeoutMs: this.o.syncTimeoutMs,
      onCorrupt: this.o.onCorrupt,
    });
  }

  /** Layout: magic, then per entry [1B kind][8B dueWall][2B token length][token][4B record length][record]. */
  save(queueName: string, saved: readonly SavedMessage[]): void {
    const file = this.file(`${queueName}.state.dat`);
    if (saved.length === 0) {
      fs.rmSync(file, { force: true });
      return;
    }
    const parts: Buffer[] = [STATE_MAGIC];
    for (const s of saved) {
      const rec = Buffer.from(encodeRecord(s.message));
      const token = Buffer.from(s.token, 'latin1');
      const head = Buffer.allocUnsafe(1 + 8 + 2 + token.length + 4);
      head[0] = KINDS.indexOf(s.kind);
      head.writeDoubleBE(s.dueWall, 1);
      head.writeUInt16BE(token.length, 9);
      token.copy(head, 11);
      head.writeUInt32BE(rec.length, 11 + token.length);
      parts.push(head, rec);
    }
    writeFileAtomic(file, Buffer.concat(parts));
  }

  takeSaved(queueName: string): SavedMessage[] {
    const file = this.file(`${queueName}.state.dat`);
    let buf: Buffer;
    try {
      buf = fs.readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out = parseState(buf);
    // Once loaded the messages live in memory again; a stale file would resurrect finished ones.
    fs.rmSync(file, { force: true });
    return out;
  }

  openJournal(queueName: string): Journal | null {
    return this.o.journal ? new FileJournal({ dataPath: this.o.dataPath, queueName, syncEvery: this.o.syncEvery }) : null;
  }

  removeQueue(queueName: string): void {
    fs.rmSync(this.file(`${queueName}.state.dat`), { force: true });
    fs.rmSync(this.file(`${queueName}.journal.dat`), { force: true });
  }
}

/** Reads a state file; a damaged tail is ignored rather than failing the start-up. */
function parseState(buf: Buffer): SavedMessage[] {
  const out: SavedMessage[] = [];
  if (!buf.subarray(0, STATE_MAGIC.length).equals(STATE_MAGIC)) return out;
  let off = STATE_MAGIC.length;
  while (off + 15 <= buf.length) {
    const kind = KINDS[buf[off]];
    const dueWall = buf.readDoubleBE(off + 1);
    const tokenLen = buf.readUInt16BE(off + 9);
    const token = buf.toString('latin1', off + 11, off + 11 + tokenLen);
    const recOff = off + 11 + tokenLen;
    if (recOff + 4 > buf.length) break;
    const recLen = buf.readUInt32BE(recOff);
    const end = recOff + 4 + recLen;
    if (!kind || end > buf.length) break;
    const message = decodeRecord(Buffer.from(buf.subarray(recOff + 4, end)));
    if (message) out.push({ kind, dueWall, token, message });
    off = end;
  }
  return out;
}
