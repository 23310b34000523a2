// Consuming through one gateway over HTTP: SSE and long-poll delivery + ack throughput, the RSS of
// 10,000 idle SSE streams (on a few channels, and each on its own #ephemeral channel, as browser
// tabs), how many shard polls those idle streams cost, and publish→SSE latency at 1k msg/s.
// Starts a real cluster on 127.0.0.1 (one lookup, two shards, one gateway) from dist/bin/sluice.js.
// Clients are plain undici / node:http: SSE parsed by hand, receipts acked in batches.
//
// Usage (after `npm run build`):
//   node dist/bench/gateway-consume.js [--messages 400000] [--size 100] [--streams 4] [--pollers 8]
//        [--max-in-flight 2500] [--idle 10000] [--latency-seconds 10] [--only sse,lp,mix,latency,idle]
//        [--gateway-node-args --cpu-prof,--cpu-prof-dir=/tmp/prof] [--shard-node-args …]

import { ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Pool, request } from 'undici';
import { arg, cpuSeconds, start } from './harness';

const SECRET = 'bench-receipt-secret-0123456789abcdef';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMiB(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

function pct(xs: number[], p: number): string {
  if (xs.length === 0) return '-';
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2) + ' ms';
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** Acks receipts in batches of up to 1000, at most `parallel` requests at once per acker. */
class Acker {
  private queue: string[] = [];
  private inFlight = 0;
  acked = 0;
  failed = 0;
  constructor(private readonly pool: Pool, private readonly parallel = 2) {}
  add(receipts: string[]): void {
    for (const r of receipts) this.queue.push(r);
    this.pump();
  }
  private pump(): void {
    while (this.inFlight < this.parallel && this.queue.length > 0) {
      const batch = this.queue.splice(0, 1000);
      this.inFlight++;
      const body = '{"receipts":["' + batch.join('","') + '"]}';
      this.pool
        .request({ path: '/v1/receipts/ack', method: 'POST', body, headers: { 'content-type': 'application/json' } })
        .then(async (res) => {
          const text = await res.body.text();
          if (res.statusCode !== 200) this.failed += batch.length;
          else {
            const ok = Number(/"ok":(\d+)/.exec(text)?.[1] ?? 0);
            this.acked += ok;
            this.failed += batch.length - ok;
          }
        })
        .catch(() => (this.failed += batch.length))
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }
}

const RECEIPT = /^id: (.+)$/gm;

/** An SSE stream read by hand: every event's id (the receipt) goes to `onReceipts`. */
function sse(origin: string, p: string, onReceipts: (r: string[], text: string) => void): { close(): void; opened: Promise<void> } {
  const ac = new AbortController();
  let opened!: () => void;
  const openedP = new Promise<void>((r) => (opened = r));
  void request(origin + p, { method: 'GET', signal: ac.signal, bodyTimeout: 0, headersTimeout: 0 })
    .then(async (res) => {
      opened();
      let buf = '';
      for await (const chunk of res.body) {
        buf += (chunk as Buffer).toString('utf8');
        const end = buf.lastIndexOf('\n\n');
        if (end === -1) continue;
        const text = buf.slice(0, end + 2);
        buf = buf.slice(end + 2);
        const got: string[] = [];
        for (const m of text.matchAll(RECEIPT)) got.push(m[1]);
        if (got.length > 0) onReceipts(got, text);
      }
    })
    .catch(() => undefined);
  return { close: () => ac.abort(), opened: openedP };
}

interface Cluster {
  gateway: string;
  gw: ChildProcess;
  shards: { child: ChildProcess; addr: Record<string, string> }[];
  metric(name: string): Promise<number>;
}

async function preload(c: Cluster, topic: string, channels: string[], n: number, size: number): Promise<void> {
  for (const s of c.shards) {
    await request(`http://${s.addr.http}/topic/create?topic=${topic}`, { method: 'POST' }).then((r) => r.body.dump());
    for (const ch of channels) await request(`http://${s.addr.http}/channel/create?topic=${topic}&channel=${ch}`, { method: 'POST' }).then((r) => r.body.dump());
  }
  const body = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ i, pad: 'x'.repeat(Math.max(0, size - 20)) }).slice(0, Math.max(size, 12))).join('\n');
  const jobs: Promise<void>[] = [];
  for (let sent = 0, k = 0; sent < n; sent += 5000, k++) {
    const s = c.shards[k % c.shards.length];
    jobs.push(request(`http://${s.addr.http}/mpub?topic=${topic}`, { method: 'POST', body }).then((r) => r.body.dump()));
    if (jobs.length >= 4) await Promise.all(jobs.splice(0));
  }
  await Promise.all(jobs);
}

/** Drains `n` messages through SSE streams and/or long-pollers, acking everything; returns the rates. */
async function drain(c: Cluster, label: string, topic: string, channel: string, n: number, streams: number, pollers: number, maxInFlight: number): Promise<string> {
  const pool = new Pool(c.gateway, { connections: 64, pipelining: 1 });
  const ackers: Acker[] = [];
  const closers: (() => void)[] = [];
  let received = 0;
  const cpu0 = { gw: cpuSeconds(c.gw.pid), shards: c.shards.reduce((a, s) => a + cpuSeconds(s.child.pid), 0), self: process.cpuUsage() };
  const t0 = performance.now();
  for (let i = 0; i < streams; i++) {
    const a = new Acker(pool, 2);
    ackers.push(a);
    const s = sse(c.gateway, `/v1/topics/${topic}/channels/${channel}/stream?max_in_flight=${maxInFlight}&lease_ms=60000`, (r) => {
      received += r.length;
      a.add(r);
    });
    closers.push(s.close);
  }
  let stop = false;
  const loops: Promise<void>[] = [];
  for (let i = 0; i < pollers; i++) {
    const a = new Acker(pool, 1);
    ackers.push(a);
    loops.push(
      (async () => {
        while (!stop) {
          const res = await pool.request({ path: `/v1/topics/${topic}/channels/${channel}/messages?max=1000&wait_ms=500&lease_ms=60000`, method: 'POST' });
          const text = await res.body.text();
          const got = [...text.matchAll(/"receipt":"([^"]+)"/g)].map((m) => m[1]);
          received += got.length;
          if (got.length > 0) a.add(got);
        }
      })().catch(() => undefined),
    );
  }
  const acked = () => ackers.reduce((x, a) => x + a.acked, 0);
  const deadline = Date.now() + 300_000;
  while (acked() < n && Date.now() < deadline) await sleep(20);
  const secs = (performance.now() - t0) / 1000;
  stop = true;
  for (const cl of closers) cl();
  await Promise.all(loops);
  const total = acked();
  const failed = ackers.reduce((x, a) => x + a.failed, 0);
  const gwCpu = cpuSeconds(c.gw.pid) - cpu0.gw;
  const shardCpu = c.shards.reduce((a, s) => a + cpuSeconds(s.child.pid), 0) - cpu0.shards;
  const self = process.cpuUsage(cpu0.self);
  await pool.close();
  const us = (x: number) => ((x * 1e6) / Math.max(1, total)).toFixed(1);
  return `${label}: ${fmt(total / secs)} msg/s delivered and acked (${fmt(total)} in ${secs.toFixed(1)} s; received ${fmt(received)}, ack failures ${failed}); CPU per message: gateway ${us(gwCpu)} µs, shards ${us(shardCpu)} µs, clients ${us((self.user + self.system) / 1e6)} µs`;
}

/** Publishes at `rate` msg/s through the gateway and measures publish→SSE event latency. */
async function latency(c: Cluster, topic: string, seconds: number, rate: number): Promise<string> {
  const pool = new Pool(c.gateway, { connections: 32, pipelining: 1 });
  const acker = new Acker(pool, 2);
  const lat: number[] = [];
  const sent = new Map<number, number>();
  const s = sse(c.gateway, `/v1/topics/${topic}/channels/lat/stream?max_in_flight=500&encoding=text`, (r, text) => {
    const now = performance.now();
    for (const m of text.matchAll(/"body":"seq (\d+)"/g)) {
      const t = sent.get(Number(m[1]));
      if (t !== undefined) lat.push(now - t);
    }
    acker.add(r);
  });
  await s.opened;
  // Warm the topic and the stream up first (topic placement, lookups, JIT).
  for (let i = 0; i < 50; i++) await pool.request({ path: `/v1/topics/${topic}/messages`, method: 'POST', body: 'warm' }).then((r) => r.body.dump());
  await sleep(500);
  const n = seconds * rate;
  const t0 = performance.now();
  const jobs: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    sent.set(i, performance.now());
    jobs.push(pool.request({ path: `/v1/topics/${topic}/messages`, method: 'POST', body: `seq ${i}` }).then((r) => r.body.dump()));
  }
  await Promise.all(jobs);
  const deadline = Date.now() + 10_000;
  while (lat.length < n && Date.now() < deadline) await sleep(20);
  s.close();
  await pool.close();
  return `publish→SSE latency at ${fmt(rate)} msg/s for ${seconds} s: p50 ${pct(lat, 50)}, p99 ${pct(lat, 99)}, max ${pct(lat, 100)} (${fmt(lat.length)}/${fmt(n)} received)`;
}

/** The idle-stream client: runs in its own process, opens N SSE streams, reports, waits to be killed. */
async function idleClient(): Promise<void> {
  const origin = arg('origin', '');
  const n = Number(arg('n', '10000'));
  const mode = arg('mode', 'shared');
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  let open = 0;
  let events = 0;
  let failed = 0;
  const reasons: Record<string, number> = {};
  const fail = (why: string) => {
    failed++;
    reasons[why] = (reasons[why] ?? 0) + 1;
  };
  const url = new URL(origin);
  for (let i = 0; i < n; i++) {
    const channel = mode === 'tabs' ? `tab-${i}%23ephemeral` : `idle-${i % 100}`;
    const req = http.get({ host: url.hostname, port: url.port, path: `/v1/topics/${mode === 'tabs' ? 'tabs' : 'idle'}/channels/${channel}/stream?max_in_flight=10`, agent }, (res) => {
      if (res.statusCode === 200) open++;
      else fail('HTTP ' + res.statusCode);
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        const k = d.split('event: message').length - 1;
        events += k;
      });
    });
    req.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
    if (i % 500 === 499) await sleep(50);
  }
  const t0 = Date.now();
  while (open + failed < n && Date.now() - t0 < 60_000) await sleep(50);
  process.stdout.write(JSON.stringify({ open, failed, reasons }) + '\n');
  setInterval(() => process.stdout.write(JSON.stringify({ open, failed, events, reasons }) + '\n'), 200);
}

async function idle(c: Cluster, n: number, mode: 'shared' | 'tabs', whileHeld?: () => Promise<string>): Promise<string> {
  const rss0 = rssMiB(c.gw.pid);
  const polls0 = await c.metric('sluice_gateway_consume_shard_polls_total');
  const t0 = Date.now();
  const child = spawn(process.execPath, [__filename, '--idle-client', '--origin', c.gateway, '--n', String(n), '--mode', mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  let last: { open: number; failed: number; events?: number; reasons?: Record<string, number> } = { open: 0, failed: 0 };
  const lines: string[] = [];
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    for (const l of d.split('\n').filter(Boolean)) {
      lines.push(l);
      last = JSON.parse(l) as typeof last;
    }
  });
  while (lines.length === 0 && Date.now() - t0 < 90_000) await sleep(100);
  const openSecs = (Date.now() - t0) / 1000;
  await sleep(2000);
  const polls1 = await c.metric('sluice_gateway_consume_shard_polls_total');
  const rss1 = rssMiB(c.gw.pid);
  const cpu1 = cpuSeconds(c.gw.pid);
  // Held idle: how many shard polls and how much CPU do they cost?
  await sleep(10_000);
  const polls2 = await c.metric('sluice_gateway_consume_shard_polls_total');
  const cpu2 = cpuSeconds(c.gw.pid);
  const rss2 = rssMiB(c.gw.pid);
  const held = whileHeld ? '; while they are held, ' + (await whileHeld()) : '';
  let fanout = '';
  if (mode === 'tabs') {
    // One message to a topic with n ephemeral channels: every stream gets its own copy.
    const before = last.events ?? 0;
    const tp = performance.now();
    await request(c.gateway + '/v1/topics/tabs/messages', { method: 'POST', body: '{"hello":"tabs"}' }).then((r) => r.body.dump());
    while ((last.events ?? 0) - before < last.open && performance.now() - tp < 30_000) await sleep(10);
    fanout = `; one message fanned out to ${fmt((last.events ?? 0) - before)} streams in ${(performance.now() - tp).toFixed(0)} ms`;
  }
  child.kill('SIGKILL');
  await sleep(2000);
  const rss3 = rssMiB(c.gw.pid);
  return `${fmt(last.open)} idle SSE streams (${mode === 'tabs' ? 'each on its own #ephemeral channel' : 'over 100 channels'}; ${last.failed} failed${last.failed ? ' ' + JSON.stringify(last.reasons) : ''}) opened in ${openSecs.toFixed(1)} s: gateway RSS ${rss0} → ${rss1} MiB (${rss2} MiB after 10 s idle, ${rss3} MiB after they closed); shard polls while opening ${polls1 - polls0}, while held idle 10 s ${polls2 - polls1}; gateway CPU while idle ${((cpu2 - cpu1) * 100 / 10).toFixed(1)} %${fanout}${held}`;
}

async function main(): Promise<void> {
  const n = Number(arg('messages', '400000'));
  const size = Number(arg('size', '100'));
  const streams = Number(arg('streams', '4'));
  const pollers = Number(arg('pollers', '8'));
  const maxInFlight = Number(arg('max-in-flight', '2500'));
  const idleN = Number(arg('idle', '10000'));
  const latSecs = Number(arg('latency-seconds', '10'));
  const only = arg('only', 'sse,lp,mix,latency,idle').split(',');
  const dirs = [mkdtempSync(path.join(tmpdir(), 'sluice-bench-gc-')), mkdtempSync(path.join(tmpdir(), 'sluice-bench-gc-'))];
  const procs: ChildProcess[] = [];
  const rows: string[] = [];
  const out = (line: string) => {
    rows.push(line);
    process.stdout.write(line + '\n');
  };
  try {
    const lookup = await start(['lookup', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0']);
    procs.push(lookup.child);
    const shards: Cluster['shards'] = [];
    for (let i = 0; i < 2; i++) {
      const s = await start(['shard', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0', '--data-path', dirs[i], '--broadcast-address', '127.0.0.1',
        '--node-id', String(i + 1), '--lookupd-tcp-address', lookup.addr.tcp, '--mem-queue-size', '2000000', '--lease-grace', '5s'], arg('shard-node-args', '').split(',').filter(Boolean));
      procs.push(s.child);
      shards.push(s);
    }
    // --gateway-node-args "--cpu-prof,--cpu-prof-dir=/tmp/prof" profiles the gateway.
    const gwNodeArgs = arg('gateway-node-args', '').split(',').filter(Boolean);
    const gw = await start(['gateway', '--http-address', '127.0.0.1:0', '--lookupd-http-address', lookup.addr.http, '--lookupd-poll-interval', '1s', '--receipt-secret', SECRET], gwNodeArgs);
    procs.push(gw.child);
    const gateway = `http://${gw.addr.http}`;
    const metric = async (name: string) => {
      const text = await (await request(gateway + '/metrics')).body.text();
      let sum = 0;
      for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
      return sum;
    };
    const c: Cluster = { gateway, gw: gw.child, shards, metric };
    for (let i = 0; i < 100; i++) {
      const j = (await (await request(gateway + '/readyz')).body.json()) as { shards?: number };
      if (j.shards === 2) break;
      await sleep(100);
    }
    const channels = ['warm', ...(['sse', 'lp', 'mix'].filter((x) => only.includes(x)))];
    if (channels.length > 1) {
      const tp = performance.now();
      await preload(c, 'bench', channels, n, size);
      process.stdout.write(`preloaded ${fmt(n)} messages of ${size} B on channels ${channels.join(', ')} in ${((performance.now() - tp) / 1000).toFixed(1)} s\n`);
      // An unmeasured run first (JIT warm-up, connections).
      await drain(c, 'warm-up', 'bench', 'warm', Math.min(n, 50_000), 2, 2, maxInFlight);
    }
    if (only.includes('sse')) out(await drain(c, `SSE, ${streams} streams, max_in_flight ${maxInFlight}, acks batched (≤1000)`, 'bench', 'sse', n, streams, 0, maxInFlight));
    if (only.includes('lp')) out(await drain(c, `long-poll, ${pollers} pollers, max=1000, acks batched`, 'bench', 'lp', n, 0, pollers, maxInFlight));
    if (only.includes('mix')) out(await drain(c, `SSE + long-poll together (${Math.max(1, streams / 2)} streams + ${Math.max(1, pollers / 2)} pollers)`, 'bench', 'mix', n, Math.max(1, streams / 2), Math.max(1, pollers / 2), maxInFlight));
    if (only.includes('latency')) {
      // A first, unmeasured run warms the whole path up (JIT, connections, topic placement).
      if (!only.includes('sse')) await latency(c, 'latency-warm', Math.min(3, latSecs), 1000);
      out(await latency(c, 'latency', latSecs, 1000));
    }
    if (only.includes('idle')) {
      const modes = arg('idle-modes', 'shared,tabs').split(',');
      if (modes.includes('shared')) out(await idle(c, idleN, 'shared', only.includes('latency') ? () => latency(c, 'latency2', latSecs, 1000) : undefined));
      if (modes.includes('tabs')) out(await idle(c, idleN, 'tabs', only.includes('latency') ? () => latency(c, 'latency3', latSecs, 1000) : undefined));
    }
    process.stdout.write('RESULT ' + JSON.stringify(rows) + '\n');
  } finally {
    await Promise.all(
      procs.reverse().map((p) => new Promise<void>((resolve) => {
        if (p.exitCode !== null) return resolve();
        p.once('exit', () => resolve());
        p.kill('SIGTERM');
        setTimeout(() => p.kill('SIGKILL'), 10_000).unref();
      })),
    );
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

if (process.argv.includes('--idle-client')) void idleClient();
else {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
