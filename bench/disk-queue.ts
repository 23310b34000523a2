// Measures the disk queue alone: put+flush N records of a given size, then read them all back.
// Usage (after `npm run build`): node dist/bench/disk-queue.js [records=1000000] [bytes=200]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DiskQueue } from '../shard/engine/disk-queue';

function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString('en-US')} records/s`;
}

function main(): void {
  const n = Number(process.argv[2] ?? 1_000_000);
  const size = Number(process.argv[3] ?? 200);
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-bench-dq-'));
  const opts = { dataPath: dir, name: 'bench', maxBytesPerFile: 100 << 20, maxRecordSize: 1 << 20, syncEvery: 2500, syncTimeoutMs: 2000 };
  try {
    const q = DiskQueue.open(opts);
    const record = Buffer.alloc(size, 0x61);
    let t = performance.now();
    for (let i = 0; i < n; i++) {
      record.writeUInt32BE(i, 0);
      q.put(record);
      if (i % 200 === 199) q.flush(); // as a shard flushes after each MPUB of 200
    }
    q.flush(true);
    const putMs = performance.now() - t;

    t = performance.now();
    let read = 0;
    for (let r = q.readNext(); r !== null; r = q.readNext()) {
      if (r.readUInt32BE(0) !== read) throw new Error(`record ${read} out of order`);
      read++;
    }
    const readMs = performance.now() - t;
    q.close();
    const mb = (n * (size + 8)) / (1 << 20);
    process.stdout.write(`put+flush ${n} × ${size} B: ${rate(n, putMs)} (${(mb / (putMs / 1000)).toFixed(0)} MiB/s)\n`);
    process.stdout.write(`read back ${read}: ${rate(read, readMs)} (${(mb / (readMs / 1000)).toFixed(0)} MiB/s)\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
