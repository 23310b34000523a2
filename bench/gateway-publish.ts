// Publishing through the gateway over HTTP, the way nsqd's own HTTP /pub is measured: one message
// per request on many keep-alive connections, and batches. Starts a real cluster on 127.0.0.1
// (one lookup, two shards registering with it, one gateway) from dist/bin/sluice.js, then runs a
// small undici load generator in worker threads for a fixed time.
//
// Usage (after `npm run build`):
//   node dist/bench/gateway-publish.js [--seconds 10] [--connections 64] [--size 200]
//        [--batch 100] [--workers 1] [--warmup 2] [--only shard-pub,pub,batch,ndjson]
//        [--gateway-node-args --cpu-prof,--cpu-prof-dir=/tmp/prof] [--shard-node-args …]

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { request } from 'undici';
import { arg, cpuSeconds, start } from './harness';
import { runLoad, serveLoadWorker, type Tally } from './load';

serveLoadWorker();

function pct(xs: number[], p: number): string {
  if (xs.length === 0) return '-';
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2) + ' ms';
}

async function main(): Promise<void> {
  const seconds = Number(arg('seconds', '10'));
  const connections = Number(arg('connections', '64'));
  const size = Number(arg('size', '200'));
  const batch = Number(arg('batch', '100'));
  const workers = Number(arg('workers', '1'));
  const only = arg('only', 'shard-pub,pub,batch,ndjson').split(',');
  const dirs = [mkdtempSync(path.join(tmpdir(), 'sluice-bench-gw-')), mkdtempSync(path.join(tmpdir(), 'sluice-bench-gw-'))];
  const procs: ChildProcess[] = [];
  try {
    const lookup = await start(['lookup', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0']);
    procs.push(lookup.child);
    const shards: { child: ChildProcess; addr: Record<string, string> }[] = [];
    for (let i = 0; i < 2; i++) {
      const s = await start(['shard', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0', '--data-path', dirs[i], '--broadcast-address', '127.0.0.1',
        '--node-id', String(i + 1), '--lookupd-tcp-address', lookup.addr.tcp, '--mem-queue-size', '100000'], arg('shard-node-args', '').split(',').filter(Boolean));
      procs.push(s.child);
      shards.push(s);
    }
    const gw = await start(['gateway', '--http-address', '127.0.0.1:0', '--lookupd-http-address', lookup.addr.http, '--lookupd-poll-interval', '1s'], arg('gateway-node-args', '').split(',').filter(Boolean));
    procs.push(gw.child);
    const gateway = `http://${gw.addr.http}`;
    // Let the lookup see both shards before the gateway places topics.
    for (let i = 0; i < 100; i++) {
      const r = await request(gateway + '/readyz');
      const j = (await r.body.json()) as { shards?: number };
      if (j.shards === 2) break;
      await new Promise((r2) => setTimeout(r2, 100));
    }
    const message = 'x'.repeat(size);
    const rows: string[] = [];
    const metricsOf = async () => {
      const text = await (await request(gateway + '/metrics')).body.text();
      const num = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
      return { calls: num('sluice_gateway_shard_calls_total'), published: num('sluice_gateway_published_messages_total') };
    };
    // CPU used per request by the gateway and the shards: a figure that holds even when other
    // work shares the machine (throughput alone does not).
    const warmup = Number(arg('warmup', '2'));
    const measured = async (name: string, unit: string, perReq: number, run: (seconds?: number) => Promise<{ rate: number; tally: Tally }>) => {
      // A short unmeasured run first, so JIT warm-up and connection set-up are not in the figures.
      if (warmup > 0) await run(warmup);
      const before = { gw: cpuSeconds(gw.child.pid), shards: shards.reduce((n, s) => n + cpuSeconds(s.child.pid), 0), self: process.cpuUsage(), ...(await metricsOf()) };
      const r = await run();
      const reqs = r.tally.ok;
      const us = (sec: number) => (reqs > 0 ? ((sec * 1e6) / reqs).toFixed(0) : '-');
      const perMsg = (sec: number) => (reqs > 0 ? ((sec * 1e6) / (reqs * perReq)).toFixed(2) : '-');
      const gwCpu = cpuSeconds(gw.child.pid) - before.gw;
      const shardCpu = shards.reduce((n, s) => n + cpuSeconds(s.child.pid), 0) - before.shards;
      const self = process.cpuUsage(before.self);
      const loadCpu = (self.user + self.system) / 1e6;
      const m = await metricsOf();
      const calls = m.calls - before.calls;
      const line = `${name}: ${Math.round(r.rate).toLocaleString('en-US')} req/s` + (calls > 0 ? ` (${((m.published - before.published) / calls).toFixed(1)} msg per shard call)` : '') + (perReq > 1 ? ` = ${Math.round(r.rate * perReq).toLocaleString('en-US')} ${unit}` : '') +
        `, p50 ${pct(r.tally.latencies, 50)}, p99 ${pct(r.tally.latencies, 99)}, CPU per request: gateway ${us(gwCpu)} µs, shards ${us(shardCpu)} µs, load generator ${us(loadCpu)} µs` +
        (perReq > 1 ? `; per message: gateway ${perMsg(gwCpu)} µs, shards ${perMsg(shardCpu)} µs, load generator ${perMsg(loadCpu)} µs` : '') + `, failed ${r.tally.failed} ${JSON.stringify(r.tally.statuses)}`;
      rows.push(line);
      process.stdout.write(line + '\n');
    };
    const base = { connections, seconds };
    if (only.includes('shard-pub')) {
      await measured(`shard /pub direct (nsqd-compatible), ${connections} conns, ${size} B`, '', 1, (secs) =>
        runLoad(__filename, { ...base, seconds: secs ?? seconds, origin: `http://${shards[0].addr.http}`, path: '/pub?topic=bench-direct', body: message, contentType: 'application/octet-stream' }, workers));
    }
    if (only.includes('pub')) {
      await measured(`gateway POST /v1/topics/T/messages, ${connections} conns, ${size} B`, '', 1, (secs) =>
        runLoad(__filename, { ...base, seconds: secs ?? seconds, origin: gateway, path: '/v1/topics/bench-pub/messages', body: message, contentType: 'application/octet-stream' }, workers));
    }
    if (only.includes('batch')) {
      const body = JSON.stringify(Array.from({ length: batch }, () => ({ body: message })));
      await measured(`gateway POST /v1/topics/T/batch (JSON, ${batch} x ${size} B), ${Math.min(connections, 16)} conns`, 'msg/s', batch, (secs) =>
        runLoad(__filename, { ...base, seconds: secs ?? seconds, connections: Math.min(connections, 16), origin: gateway, path: '/v1/topics/bench-batch/batch', body, contentType: 'application/json' }, workers));
    }
    if (only.includes('ndjson')) {
      const body = Array.from({ length: batch }, () => JSON.stringify({ body: message })).join('\n');
      await measured(`gateway POST /v1/topics/T/batch (NDJSON, ${batch} x ${size} B), ${Math.min(connections, 16)} conns`, 'msg/s', batch, (secs) =>
        runLoad(__filename, { ...base, seconds: secs ?? seconds, connections: Math.min(connections, 16), origin: gateway, path: '/v1/topics/bench-ndjson/batch', body, contentType: 'application/x-ndjson' }, workers));
    }
    process.stdout.write('RESULT ' + JSON.stringify(rows) + '\n');
  } finally {
    await Promise.all(
      procs.reverse().map((p) => new Promise<void>((resolve) => {
        if (p.exitCode !== null) return resolve();
        p.once('exit', () => resolve());
        p.kill('SIGTERM');
      })),
    );
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
