// The HTTP load generator the publishing benchmarks share: `connections` keep-alive connections,
// one request in flight on each, the same POST again and again for `seconds`, run in worker
// threads (each script re-enters itself as the worker: see `serveLoadWorker`), so generating load
// does not compete with the measuring thread.

import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Pool } from 'undici';

export interface Load {
  origin: string;
  path: string;
  body: Buffer | string;
  contentType: string;
  connections: number;
  seconds: number;
}

export interface Tally {
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  /** Latency (ms) of every 64th successful request. */
  latencies: number[];
}

async function generate(load: Load): Promise<Tally> {
  const pool = new Pool(load.origin, { connections: load.connections, pipelining: 1 });
  const t: Tally = { ok: 0, failed: 0, statuses: {}, latencies: [] };
  const end = Date.now() + load.seconds * 1000;
  const headers = { 'content-type': load.contentType };
  const body = Buffer.from(load.body);
  const one = async () => {
    while (Date.now() < end) {
      const start = performance.now();
      try {
        const res = await pool.request({ path: load.path, method: 'POST', body, headers });
        await res.body.dump();
        if (res.statusCode === 200) t.ok++;
        else {
          t.failed++;
          t.statuses[res.statusCode] = (t.statuses[res.statusCode] ?? 0) + 1;
        }
      } catch (err) {
        t.failed++;
        const k = (err as { code?: string }).code ?? 'error';
        t.statuses[k] = (t.statuses[k] ?? 0) + 1;
      }
      if ((t.ok & 63) === 0) t.latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: load.connections }, one));
  await pool.close();
  return t;
}

/** Call at the top level of a script that uses runLoad: in its worker threads, generates the load. */
export function serveLoadWorker(): void {
  if (!isMainThread) void generate(workerData as Load).then((t) => parentPort!.postMessage(t));
}

/** Runs `load` split over `workers` threads of `script` (the caller's __filename) and sums what they counted. */
export async function runLoad(script: string, load: Load, workers = 1): Promise<{ rate: number; tally: Tally }> {
  const per = Math.max(1, Math.floor(load.connections / workers));
  const tallies = await Promise.all(
    Array.from({ length: workers }, () => new Promise<Tally>((resolve, reject) => {
      const w = new Worker(script, { workerData: { ...load, connections: per } });
      w.once('message', resolve);
      w.once('error', reject);
    })),
  );
  const tally: Tally = { ok: 0, failed: 0, statuses: {}, latencies: [] };
  for (const t of tallies) {
    tally.ok += t.ok;
    tally.failed += t.failed;
    for (const [k, v] of Object.entries(t.statuses)) tally.statuses[k] = (tally.statuses[k] ?? 0) + v;
    tally.latencies.push(...t.latencies);
  }
  return { rate: tally.ok / load.seconds, tally };
}
