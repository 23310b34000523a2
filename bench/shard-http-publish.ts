// The shard's own HTTP batch publishing, without a gateway: nsqd-compatible `/mpub` (messages
// separated by newlines, as nsqd's bench posts them) and Sluice's `/sluice/mpub` frame, 100 × 200 B
// per request by default. Starts one real shard from dist/bin/sluice.js on 127.0.0.1, a topic with
// one channel (so each message is fanned out), and drives it from an undici loop in a worker thread.
// Reports msg/s and, steadier on a shared machine, the CPU per message of the shard and of the load
// generator from /proc. The channel is emptied every 200 ms (--empty-every) so that the run
// measures the publish path in memory rather than a growing heap; --mem-queue-size 0 measures
// durable mode (the disk queue and the channel's crash journal) instead. --deliver-first leases
// and finishes one message and publishes one deferred message (on a topic of its own) before the
// load, as a shard that has served consumers has done: V8 lays out later objects by what it has
// seen stored in their fields, so a shard that never delivered anything can measure differently.
//
// Usage (after `npm run build`):
//   node dist/bench/shard-http-publish.js [--seconds 8] [--warmup 2] [--connections 16]
//        [--batch 100] [--size 200] [--only mpub,sluice-mpub] [--empty-every 200 (0: never)]
//        [--mem-queue-size 10000000 (0: every message through the disk queue)] [--deliver-first]
//        [--shard-node-args --cpu-prof,--cpu-prof-dir=/tmp/prof]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { request } from 'undici';
import { arg, cpuSeconds, start } from './harness';
import { runLoad, serveLoadWorker } from './load';

serveLoadWorker();

async function post(url: string): Promise<void> {
  const res = await request(url, { method: 'POST' });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode}`);
}

/** One lease pulled and finished, and one deferred publish, on a topic the load does not use. */
async function deliverFirst(origin: string): Promise<void> {
  const q = 'topic=bench-prime&channel=ch';
  await post(`${origin}/topic/create?topic=bench-prime`);
  await post(`${origin}/channel/create?${q}`);
  const pub = await request(`${origin}/pub?topic=bench-prime`, { method: 'POST', body: 'prime' });
  await pub.body.dump();
  const res = await request(`${origin}/sluice/lease/pull?${q}&max=1&wait_ms=1000`, { method: 'POST' });
  const { messages } = (await res.body.json()) as { messages: { id: string; token: string }[] };
  if (messages.length !== 1) throw new Error('--deliver-first: no message leased');
  await post(`${origin}/sluice/lease/finish?${q}&id=${messages[0].id}&token=${encodeURIComponent(messages[0].token)}`);
  const deferred = await request(`${origin}/pub?topic=bench-prime&defer=10`, { method: 'POST', body: 'later' });
  await deferred.body.dump();
  if (pub.statusCode !== 200 || deferred.statusCode !== 200) throw new Error('--deliver-first: publish failed');
}

/** The frame of wire/sluice-batch.ts, built here so the bench does not depend on the code it measures. */
function sluiceFrame(bodies: Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.alloc(4)];
  parts[0].writeUInt32BE(bodies.length, 0);
  for (const b of bodies) {
    const h = Buffer.alloc(10);
    h.writeUInt32BE(0, 0); // defer_ms
    h.writeUInt16BE(0, 4); // no idempotency key
    h.writeUInt32BE(b.length, 6);
    parts.push(h, b);
  }
  return Buffer.concat(parts);
}

async function main(): Promise<void> {
  const seconds = Number(arg('seconds', '8'));
  const warmup = Number(arg('warmup', '2'));
  const connections = Number(arg('connections', '16'));
  const batch = Number(arg('batch', '100'));
  const size = Number(arg('size', '200'));
  const only = arg('only', 'mpub,sluice-mpub').split(',');
  const emptyEvery = Number(arg('empty-every', '200'));
  const memQueueSize = arg('mem-queue-size', '10000000');
  const nodeArgs = arg('shard-node-args', '').split(',').filter(Boolean);
  const primed = process.argv.includes('--deliver-first');
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-bench-shard-http-'));
  const shard = await start(['shard', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0', '--data-path', dir, '--mem-queue-size', memQueueSize], nodeArgs);
  const origin = `http://${shard.addr.http}`;
  const rows: string[] = [];
  try {
    if (primed) await deliverFirst(origin);
    const bodies = Array.from({ length: batch }, (_, i) => Buffer.from(String(i % 10).repeat(size)));
    const cases: { name: string; key: string; topic: string; path: string; body: Buffer }[] = [
      { name: `shard /mpub (newline-separated, ${batch} x ${size} B)`, key: 'mpub', topic: 'bench-mpub', path: '/mpub?topic=bench-mpub', body: Buffer.from(bodies.map((b) => b.toString()).join('\n')) },
      { name: `shard /sluice/mpub (${batch} x ${size} B, no keys)`, key: 'sluice-mpub', topic: 'bench-smpub', path: '/sluice/mpub?topic=bench-smpub', body: sluiceFrame(bodies) },
    ];
    for (const c of cases) {
      if (!only.includes(c.key)) continue;
      await post(`${origin}/topic/create?topic=${c.topic}`);
      await post(`${origin}/channel/create?topic=${c.topic}&channel=ch`);
      // Keeps the channel's memory queue short; emptying costs one call per interval, not per message.
      let emptying = emptyEvery > 0;
      const emptier = (async () => {
        while (emptying) {
          await new Promise((r) => setTimeout(r, emptyEvery));
          await post(`${origin}/channel/empty?topic=${c.topic}&channel=ch`);
        }
      })();
      try {
        if (warmup > 0) await runLoad(__filename, { origin, path: c.path, body: c.body, contentType: 'application/octet-stream', connections, seconds: warmup });
        const before = { shard: cpuSeconds(shard.child.pid), self: process.cpuUsage() };
        const t = (await runLoad(__filename, { origin, path: c.path, body: c.body, contentType: 'application/octet-stream', connections, seconds })).tally;
        const shardCpu = cpuSeconds(shard.child.pid) - before.shard;
        const self = process.cpuUsage(before.self);
        const msgs = t.ok * batch;
        const us = (sec: number) => (msgs > 0 ? ((sec * 1e6) / msgs).toFixed(2) : '-');
        const line = `${c.name}, ${connections} conns${primed ? ', after a delivery' : ''}: ${Math.round(msgs / seconds).toLocaleString('en-US')} msg/s, CPU per message: shard ${us(shardCpu)} µs, load generator ${us((self.user + self.system) / 1e6)} µs, failed ${t.failed} ${JSON.stringify(t.statuses)}`;
        rows.push(line);
        process.stdout.write(line + '\n');
      } finally {
        emptying = false;
        await emptier;
      }
    }
    process.stdout.write('RESULT ' + JSON.stringify(rows) + '\n');
  } finally {
    await new Promise<void>((resolve) => {
      if (shard.child.exitCode !== null) return resolve();
      shard.child.once('exit', () => resolve());
      shard.child.kill('SIGTERM');
    });
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
