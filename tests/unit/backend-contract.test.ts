// Runs the BackendQueue contract against every implementation: the in-memory reference and the
// disk queue (with large segments, and with tiny segments and an fsync on every flush).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryBackend } from '../../shard/engine/backend';
import { DiskQueue, DiskQueueOptions } from '../../shard/engine/disk-queue';
import { backendContract, BackendHarness } from '../helpers/backend-contract';

backendContract('MemoryBackend', () => {
  const queue = new MemoryBackend();
  return { queue, reopen: () => queue, cleanup: () => undefined };
});

function diskHarness(over: Partial<DiskQueueOptions>): () => BackendHarness {
  return () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-contract-'));
    const opts: DiskQueueOptions = {
      dataPath: dir,
      name: 'orders:archive',
      maxBytesPerFile: 1 << 20,
      maxRecordSize: 1 << 20,
      syncEvery: 2500,
      syncTimeoutMs: 2000,
      ...over,
    };
    return { queue: DiskQueue.open(opts), reopen: () => DiskQueue.open(opts), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  };
}

backendContract('DiskQueue', diskHarness({}));
backendContract('DiskQueue (16 KiB segments, syncEvery=1)', diskHarness({ maxBytesPerFile: 16 << 10, syncEvery: 1 }));
