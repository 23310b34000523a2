// `npm run bench`: runs every benchmark in sequence, each in its own process, and prints a table.
// The TCP runs start a real shard (dist/bin/sluice.js) the way nsq's bench.sh starts nsqd:
// --mem-queue-size 1000000, topic and channel created first, then bench_writer's load, then
// bench_reader's draining what was published; then PUB one per round trip, delivery latency at
// RDY 1, and MPUB on a shard with --mem-queue-size 0 (everything through disk). The other
// scripts in bench/ run after that with their defaults. `--runfor N`: the writers' seconds (10).

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { flagValue } from './nsq-client';

interface Row {
  bench: string;
  result: string;
}

interface Result {
  name: string;
  rate?: number;
  p50?: number;
  p99?: number;
  messages: number;
  seconds?: number;
}

const HERE = path.resolve(__dirname);
const CLI = path.resolve(__dirname, '../bin/sluice.js');
/** Scripts driven by tcpBenches (or helpers), not run on their own. */
const DRIVEN = new Set(['run.js', 'harness.js', 'load.js', 'nsq-client.js', 'tcp-writer.js', 'tcp-reader.js', 'tcp-latency.js']);

function runScript(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(HERE, script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      process.stdout.write(d);
    });
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${script} exited with ${code}`))));
  });
}

function resultOf(out: string): Result {
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error('no RESULT line');
  return JSON.parse(line.slice('RESULT '.length)) as Result;
}

function row(r: Result): Row {
  if (r.p50 !== undefined) return { bench: r.name, result: `p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99!.toFixed(3)} ms (${r.messages} messages)` };
  return { bench: r.name, result: `${Math.round(r.rate!).toLocaleString('en-US')} msg/s (${r.messages.toLocaleString('en-US')} in ${r.seconds!.toFixed(1)} s)` };
}

async function startShard(dataPath: string, memQueueSize: number): Promise<{ stop(): Promise<void>; tcp: string; http: string }> {
  const child = spawn(
    process.execPath,
    [CLI, 'shard', '--http-address', '127.0.0.1:0', '--tcp-address', '127.0.0.1:0', '--data-path', dataPath, '--mem-queue-size', String(memQueueSize)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const addresses = await new Promise<{ tcp: string; http: string }>((resolve, reject) => {
    let buf = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      buf += d;
      for (const line of buf.split('\n')) {
        try {
          const rec = JSON.parse(line) as { message?: string; tcp: string; http: string };
          if (rec.message === 'listening') resolve(rec);
        } catch {
          /* a partial line */
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`shard exited with ${code}: ${buf}`)));
  });
  return {
    ...addresses,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function post(url: string): Promise<void> {
  const res = await request(url, { method: 'POST' });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode}`);
}

async function withShard(memQueueSize: number, fn: (s: { tcp: string; http: string }) => Promise<Row[]>): Promise<Row[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-bench-shard-'));
  const shard = await startShard(dir, memQueueSize);
  try {
    return await fn(shard);
  } finally {
    await shard.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function tcpBenches(runfor: string): Promise<Row[]> {
  const rows = await withShard(1_000_000, async (s) => {
    await post(`http://${s.http}/topic/create?topic=sub_bench`);
    await post(`http://${s.http}/channel/create?topic=sub_bench&channel=ch`);
    const out: Row[] = [];
    out.push(row(resultOf(await runScript('tcp-writer.js', ['--tcp', s.tcp, '--runfor', runfor]))));
    out.push(row(resultOf(await runScript('tcp-reader.js', ['--tcp', s.tcp, '--http', s.http, '--runfor', '60']))));
    out.push(row(resultOf(await runScript('tcp-writer.js', ['--tcp', s.tcp, '--runfor', runfor, '--topic', 'pub_bench', '--batch-size', '1']))));
    out.push(row(resultOf(await runScript('tcp-latency.js', ['--tcp', s.tcp]))));
    return out;
  });
  rows.push(
    ...(await withShard(0, async (s) => [
      row(resultOf(await runScript('tcp-writer.js', ['--tcp', s.tcp, '--runfor', runfor, '--label', ', --mem-queue-size 0']))),
    ])),
  );
  return rows;
}

/**
 * Scripts without RESULT lines print one human line per case, "name  rate unit/s (detail)";
 * any other lines of a script are joined into one row.
 */
function linesOf(out: string, prefix: string): Row[] {
  const lines = out.split('\n').filter((l) => l.trim() !== '');
  const results = lines.filter((l) => l.startsWith('RESULT '));
  if (results.length > 0) return results.flatMap((l) => rowsOfResult(JSON.parse(l.slice(7)) as unknown, prefix));
  const rows: Row[] = [];
  const rest: string[] = [];
  for (const l of lines) {
    const m = /^(.*?)(?::\s+|\s{2,})([\d,.]+ \S+\/s.*)$/.exec(l.trim());
    if (m) rows.push({ bench: `${prefix}: ${m[1].trim()}`, result: m[2].replace(/\s+/g, ' ') });
    else rest.push(l.trim().replace(/\s+/g, ' '));
  }
  if (rest.length > 0) rows.push({ bench: prefix, result: rest.join('; ') });
  return rows;
}

/** A RESULT line is one of ours ({name, rate | p50, …}) or a list of "case: result" strings. */
function rowsOfResult(json: unknown, prefix: string): Row[] {
  if (Array.isArray(json)) {
    return json.map((x) => {
      const text = String(x);
      const i = text.indexOf(': ');
      return i < 0 ? { bench: prefix, result: text } : { bench: `${prefix}: ${text.slice(0, i)}`, result: text.slice(i + 2) };
    });
  }
  const r = json as Result;
  if (typeof r.rate === 'number' || typeof r.p50 === 'number') return [row(r)];
  return [{ bench: prefix, result: JSON.stringify(json) }];
}

async function main(): Promise<void> {
  const runfor = flagValue('runfor', '10');
  const rows: Row[] = await tcpBenches(runfor);
  const others = readdirSync(HERE).filter((f) => f.endsWith('.js') && !DRIVEN.has(f)).sort();
  for (const script of others) {
    try {
      rows.push(...linesOf(await runScript(script, []), script.replace(/\.js$/, '')));
    } catch (err) {
      rows.push({ bench: script, result: `failed: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
  const w = Math.max(...rows.map((r) => r.bench.length));
  process.stdout.write(`\n| ${'benchmark'.padEnd(w)} | result |\n|${'-'.repeat(w + 2)}|--------|\n`);
  for (const r of rows) process.stdout.write(`| ${r.bench.padEnd(w)} | ${r.result} |\n`);
  process.stdout.write(`\n${new Date().toISOString()}, node ${process.version}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
