// Where a clean shutdown keeps the idempotency window: `idempotency.dat` in the data path (JSON,
// written atomically), read once and removed at the next start so a stale copy is never read
// twice. A file that does not parse is ignored (and removed): forgetting keys is the safe failure.

import fs from 'node:fs';
import path from 'node:path';
import type { SavedIdempotencyKey } from './engine/idempotency';
import { writeFileAtomic } from './engine/file-store';

const FILE = 'idempotency.dat';

type Row = [topic: string, key: string, id: string, expiresWall: number];

export function saveIdempotencyKeys(dataPath: string, keys: readonly SavedIdempotencyKey[]): void {
  const file = path.join(dataPath, FILE);
  if (keys.length === 0) {
    fs.rmSync(file, { force: true });
    return;
  }
  const rows: Row[] = keys.map((k) => [k.topic, k.key, k.id, k.expiresWall]);
  writeFileAtomic(file, JSON.stringify({ version: 1, keys: rows }));
}

/** The saved keys (removing the file), or [] with `problem` set when it was unreadable. */
export function takeIdempotencyKeys(dataPath: string): { keys: SavedIdempotencyKey[]; problem?: string } {
  const file = path.join(dataPath, FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { keys: [] };
    return { keys: [], problem: (err as Error).message };
  }
  fs.rmSync(file, { force: true });
  try {
    const doc = JSON.parse(text) as { version?: unknown; keys?: unknown };
    if (doc.version !== 1 || !Array.isArray(doc.keys)) throw new Error('not a version 1 key list');
    const keys: SavedIdempotencyKey[] = [];
    for (const r of doc.keys as unknown[]) {
      if (!Array.isArray(r) || r.length !== 4 || typeof r[0] !== 'string' || typeof r[1] !== 'string' || typeof r[2] !== 'string' || typeof r[3] !== 'number')
        throw new Error('malformed key row');
      keys.push({ topic: r[0], key: r[1], id: r[2], expiresWall: r[3] });
    }
    return { keys };
  } catch (err) {
    return { keys: [], problem: `${FILE}: ${(err as Error).message}` };
  }
}
