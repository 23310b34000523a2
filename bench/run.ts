// `npm run bench`: runs every benchmark in sequence, each in its own process, and prints a table.
// The TCP runs start a real shard (dist/bin/sluice.js) the way nsq's bench.sh starts nsqd:
// --mem-queue-size 1000000, topic and channel created first, then the writer, then the reader
// draining what the writer published. `--runfor N` sets the writer's seconds (default 10).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { flagValue } from './nsq-client';

interface Row {
  bench: string;
  result: string;
}

const DIST = path.resolve(__dirname);
const CLI = path.resolve(__dirname, '../bin/sluice.js');

function runScript(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(DIST, script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      process.stdout.write(d);
    });
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${script} exited with ${code}`))));
  });
}

function resultOf(out: string): { name: string; rate: number; messages: number; seconds: number } {
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error('no RESULT line');
  return JSON.parse(line.slice('RESULT '.length)) as { name: string; rate: number; messages: number; seconds: number };
}

async function startShard(dataPath: string): Promise<{ stop(): Promise<void>; tcp: string; http: string }> {
  const child = spawn(process.execPath, [CLI, 'shard', '--http-address', '127.0.0.1:0', '--tcp-address', '127.0.0.1:0', '--data-path', dataPath, '--mem-queue-size', '1000000'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
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
          /* partial line */
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

async function tcpBenches(runfor: string): Promise<Row[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-bench-shard-'));
  const shard = await startShard(dir);
  try {
    await post(`http://${shard.http}/topic/create?topic=sub_bench`);
    await post(`http://${shard.http}/channel/create?topic=sub_bench&channel=ch`);
    const w = resultOf(await runScript('tcp-writer.js', ['--tcp', shard.tcp, '--runfor', runfor]));
    const r = resultOf(await runScript('tcp-reader.js', ['--tcp', shard.tcp, '--http', shard.http, '--runfor', '60']));
    const fmt = (x: { rate: number; messages: number; seconds: number }) =>
      `${Math.round(x.rate).toLocaleString('en-US')} msg/s (${x.messages.toLocaleString('en-US')} in ${x.seconds.toFixed(1)} s)`;
    return [
      { bench: w.name, result: fmt(w) },
      { bench: r.name, result: fmt(r) },
    ];
  } finally {
    await shard.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The older micro-benchmarks print one human line per case: "name  rate unit/s (detail)". */
function linesOf(out: string, prefix: string): Row[] {
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m = /^(.*?)(?::\s+|\s{2,})([\d,]+ \S+\/s.*)$/.exec(l.trim());
      return m ? { bench: `${prefix}: ${m[1].trim()}`, result: m[2] } : { bench: prefix, result: l.trim() };
    });
}

async function main(): Promise<void> {
  const runfor = flagValue('runfor', '10');
  const rows: Row[] = [];
  rows.push(...(await tcpBenches(runfor)));
  rows.push(...linesOf(await runScript('codec.js', []), 'codec'));
  rows.push(...linesOf(await runScript('disk-queue.js', []), 'disk queue'));
  const w = Math.max(...rows.map((r) => r.bench.length));
  process.stdout.write(`\n${'benchmark'.padEnd(w)} | result\n${'-'.repeat(w)}-|-${'-'.repeat(40)}\n`);
  for (const r of rows) process.stdout.write(`${r.bench.padEnd(w)} | ${r.result}\n`);
  process.stdout.write(`\n${new Date().toISOString()}, node ${process.version}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
