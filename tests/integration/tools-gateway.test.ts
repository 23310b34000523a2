// Every utility in gateway mode (--gateway), as real processes against a lookup, two shards and a
// gateway on 127.0.0.1: pub publishes every stdin line (counted on the shards, also through a
// rate-limited gateway answering 429), tail prints what is published, to-http delivers every
// message to an endpoint that fails sometimes and leaves the channel empty, to-file loses nothing
// across a restart, stat prints the depth; an API key works, a wrong one fails clearly.

import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { GatewayProcess } from '../helpers/gateway';
import { tempDir, waitFor } from '../helpers/process';
import { call } from '../helpers/shard';
import { channelStats, drained, exitCode, mpub, prepareTopic, spawnTool, startCluster, type Cluster } from '../helpers/tools';

let c: Cluster;
let gw: GatewayProcess;
let gwUrl: string;

beforeAll(async () => {
  c = await startCluster();
  gw = await c.addGateway();
  gwUrl = `http://${gw.http}`;
}, 60_000);

afterAll(async () => {
  await c?.close();
});

/** Messages the topic has taken in, summed over both shards. */
async function publishedOnShards(topic: string): Promise<number> {
  let n = 0;
  for (const s of c.shards) {
    const doc = (await call(s.url(`/stats?format=json&topic=${encodeURIComponent(topic)}`))).json() as { topics: Array<{ topic_name: string; message_count: number }> };
    n += doc.topics.find((t) => t.topic_name === topic)?.message_count ?? 0;
  }
  return n;
}

/** The channel exists on both shards (the gateway creates it on the first poll). */
async function channelOnEveryShard(topic: string, match: (channel: string) => boolean): Promise<boolean> {
  for (const s of c.shards) {
    const doc = (await call(s.url(`/stats?format=json&topic=${encodeURIComponent(topic)}`))).json() as { topics: Array<{ channels: Array<{ channel_name: string }> }> };
    if (!(doc.topics[0]?.channels ?? []).some((ch) => match(ch.channel_name))) return false;
  }
  return true;
}

describe('sluice pub --gateway', () => {
  it('publishes every stdin line through the gateway, in batches', async () => {
    const lines = Array.from({ length: 500 }, (_, i) => `gw-line-${i}`);
    const pub = spawnTool(['pub', '--topic', 'gw-pub', '--gateway', gwUrl, '--batch-size', '40', '--progress-interval', '50ms'], lines.join('\n') + '\n');
    expect(await exitCode(pub, 20_000)).toBe(0);
    expect(pub.logs().find((l) => l.message === 'done')).toMatchObject({ published: 500 });
    await waitFor(async () => (await publishedOnShards('gw-pub')) === 500, 5000, '500 messages on the shards');
  });

  it('keeps every byte: text, JSON-looking and invalid UTF-8 lines come back out of to-file --gateway as sent', async () => {
    await prepareTopic(c, 'gw-bytes', 'bytes');
    const lines = [Buffer.from('plain'), Buffer.from('ünïcödé ✓ "quoted" \\ back'), Buffer.from([0xff, 0xfe, 0x41, 0x00, 0x80]), Buffer.from('{"json":true}')];
    const pub = spawnTool(['pub', '--topic', 'gw-bytes', '--gateway', gwUrl], Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')])));
    expect(await exitCode(pub)).toBe(0);
    const out = tempDir('sluice-gw-bytes-');
    const sink = spawnTool(['to-file', '--topic', 'gw-bytes', '--channel', 'bytes', '--gateway', gwUrl, '--output-dir', out.path, '--sync-interval', '50ms']);
    try {
      await waitFor(() => drained(c, 'gw-bytes', 'bytes'), 15_000, 'the four messages written and finished');
      expect(await sink.stop()).toBe(0);
      const written = Buffer.concat(readdirSync(out.path).map((f) => readFileSync(path.join(out.path, f))));
      const got = [];
      for (let at = 0; at < written.length; ) {
        const nl = written.indexOf(10, at);
        got.push(written.subarray(at, nl).toString('hex'));
        at = nl + 1;
      }
      expect(got.sort()).toEqual(lines.map((l) => l.toString('hex')).sort());
    } finally {
      await sink.stop();
      out.remove();
    }
  });

  it('waits as a rate-limited gateway’s 429 and Retry-After ask, and still publishes every line', async () => {
    const limited = await c.addGateway(['--rate-limit', '4', '--rate-burst', '2']);
    const lines = Array.from({ length: 60 }, (_, i) => `limited-${i}`);
    const pub = spawnTool(['pub', '--topic', 'gw-pub-limited', '--gateway', `http://${limited.http}`, '--batch-size', '10', '--in-flight', '2'], lines.join('\n'));
    expect(await exitCode(pub, 30_000)).toBe(0);
    const resent = pub.logs().filter((l) => l.message === 'batch not accepted, sending it again');
    expect(resent.length).toBeGreaterThan(0);
    expect(resent.every((l) => /HTTP 429 RATE_LIMITED/.test(String(l.error)) && l.wait_ms === 1000)).toBe(true); // as Retry-After: 1 asked
    await waitFor(async () => (await publishedOnShards('gw-pub-limited')) === 60, 5000, '60 messages on the shards');
  });

  it('refuses --gateway together with shard flags, and a URL that is not http(s)', async () => {
    const both = spawnTool(['pub', '--topic', 'x', '--gateway', gwUrl, '--lookupd-http-address', c.lookupHttp]);
    expect(await exitCode(both)).toBe(1);
    expect(both.stderr()).toContain('give either --gateway or --lookupd-http-address or --nsqd-tcp-address, not both');
    const ftp = spawnTool(['tail', '--topic', 'x', '--gateway', 'ftp://127.0.0.1:21']);
    expect(await exitCode(ftp)).toBe(1);
    expect(ftp.stderr()).toContain('must be http:// or https://');
    const none = spawnTool(['stat', '--topic', 'x']);
    expect(await exitCode(none)).toBe(1);
    expect(none.stderr()).toContain('give --gateway or --lookupd-http-address or --nsqd-http-address');
  });
});

describe('sluice tail --gateway', () => {
  it('prints the messages published on every shard and stops after -n', async () => {
    await prepareTopic(c, 'gw-tail');
    const tail = spawnTool(['tail', '--topic', 'gw-tail', '--gateway', gwUrl, '--print-topic', '-n', '6']);
    await waitFor(() => channelOnEveryShard('gw-tail', (ch) => /^tail\d{6}#ephemeral$/.test(ch)), 10_000, 'tail’s channel on both shards');
    await mpub(c.shards[0], 'gw-tail', ['a1', 'a2', 'a3']);
    await mpub(c.shards[1], 'gw-tail', ['b1', 'b2', 'b3']);
    expect(await exitCode(tail, 15_000)).toBe(0);
    expect(tail.stdout().split('\n').filter(Boolean).sort()).toEqual(['a1', 'a2', 'a3', 'b1', 'b2', 'b3'].map((m) => `gw-tail | ${m}`));
    expect(tail.logs().find((l) => l.message === 'done')).toMatchObject({ messages: 6 });
  });
});

/** An endpoint on 127.0.0.1:0 recording every request; `fail(n, body)` decides which ones get a 500. */
async function endpoint(fail: (n: number, body: string) => boolean) {
  const requests: Array<{ body: string; status: number }> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const status = fail(requests.length + 1, body) ? 500 : 200;
      requests.push({ body, status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    requests,
    delivered: () => new Set(requests.filter((r) => r.status === 200).map((r) => r.body)),
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
}

describe('sluice to-http --gateway', () => {
  it('delivers every message to an endpoint failing every third request, requeueing and retrying the failures', async () => {
    const ep = await endpoint((n) => n % 3 === 0);
    await prepareTopic(c, 'gw-hook', 'nsq_to_http');
    const sent = Array.from({ length: 40 }, (_, i) => `hook-${i}`);
    await mpub(c.shards[0], 'gw-hook', sent.slice(0, 20));
    await mpub(c.shards[1], 'gw-hook', sent.slice(20));
    const tool = spawnTool([
      'to-http', '--topic', 'gw-hook', '--gateway', gwUrl, '--post', ep.url, '--allow-private-targets',
      '--concurrency', '4', '--backoff', '20ms', '--max-backoff', '100ms', '--max-attempts', '20', '--progress-interval', '100ms',
    ]);
    try {
      await waitFor(() => ep.delivered().size === sent.length, 30_000, 'every message delivered').catch((err: Error) => {
        throw new Error(`${err.message}\n${tool.stderr()}`);
      });
      await waitFor(() => drained(c, 'gw-hook', 'nsq_to_http'), 10_000, 'nothing left in depth, in flight or deferred on the shards');
      const failed = ep.requests.filter((r) => r.status === 500).map((r) => r.body);
      expect(failed.length).toBeGreaterThan(0);
      for (const body of failed) expect(ep.delivered().has(body)).toBe(true);
      expect(new Set(ep.requests.map((r) => r.body))).toEqual(new Set(sent));
      for (const s of c.shards) expect((await channelStats(s, 'gw-hook', 'nsq_to_http'))?.requeue_count).toBeGreaterThan(0);
      // progress is reported in gateway mode too
      await waitFor(() => tool.logs().some((l) => l.message === 'progress' && l.delivered === sent.length), 5000, 'a progress line with every delivery');
    } finally {
      expect(await tool.stop()).toBe(0);
      await ep.close();
    }
  });
});

function linesIn(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => readFileSync(path.join(dir, name)).toString().split('\n').filter(Boolean));
}

describe('sluice to-file --gateway', () => {
  it('loses nothing across a SIGTERM and restart in the middle of a steady publish', async () => {
    const out = tempDir('sluice-gw-to-file-');
    await prepareTopic(c, 'gw-archive', 'nsq_to_file');
    const args = ['to-file', '--topic', 'gw-archive', '--gateway', gwUrl, '--output-dir', out.path, '--rotate-bytes', '2000', '--sync-interval', '100ms'];
    let published = 0;
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        const batch = Array.from({ length: 20 }, (_, i) => `g-${published + i}`);
        await mpub(c.shards[(published / 20) % 2], 'gw-archive', batch);
        published += batch.length;
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      const first = spawnTool(args);
      await waitFor(() => linesIn(out.path).length >= 400, 20_000, 'the first run to write some');
      expect(await first.stop('SIGTERM')).toBe(0); // while messages keep coming
      const afterFirst = published;

      const second = spawnTool(args);
      await waitFor(() => published >= afterFirst + 400, 10_000, 'more published during the second run');
      publishing = false;
      await publisher;
      await waitFor(() => drained(c, 'gw-archive', 'nsq_to_file'), 20_000, 'channel drained');
      expect(await second.stop('SIGTERM')).toBe(0);

      const seen = new Set(linesIn(out.path));
      expect(Array.from({ length: published }, (_, i) => `g-${i}`).filter((m) => !seen.has(m))).toEqual([]);
      expect(readdirSync(out.path).length).toBeGreaterThan(2);
    } finally {
      publishing = false;
      await publisher.catch(() => undefined);
      out.remove();
    }
  });
});

describe('sluice stat --gateway', () => {
  it('prints rows with the depth summed over the shards, for a channel and for the topic', async () => {
    await prepareTopic(c, 'gw-stat', 'held');
    await mpub(c.shards[0], 'gw-stat', ['1', '2', '3']);
    await mpub(c.shards[1], 'gw-stat', ['4', '5', '6', '7']);
    const stat = spawnTool(['stat', '--topic', 'gw-stat', '--channel', 'held', '--gateway', gwUrl, '--interval', '100ms', '-n', '2']);
    expect(await exitCode(stat)).toBe(0);
    const rows = stat.stdout().split('\n').filter((l) => /^\s*(-|\d+)\s+(-|\d+) \|/.test(l));
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row.split('|')[1].trim().split(/\s+/).slice(0, 3)).toEqual(['7', '7', '0']); // total, mem, disk
    expect(rows[1].split('|')[2].trim().split(/\s+/)[2]).toBe('7'); // msgs

    const topic = spawnTool(['stat', '--topic', 'gw-stat', '--gateway', gwUrl, '-n', '1']);
    expect(await exitCode(topic)).toBe(0);
    const row = topic.stdout().split('\n').find((l) => /^\s*- +- \|/.test(l))!;
    expect(row.split('|')[1].trim().split(/\s+/)[0]).toBe('0'); // the topic's own depth: all went to the channel
    expect(row.split('|')[2].trim().split(/\s+/)[2]).toBe('7');
  });
});

describe('gateway mode with API keys', () => {
  const KEY = 'tools-key-0123456789abcdef';
  let secured: GatewayProcess;
  let dir: { path: string; remove(): void };

  beforeAll(async () => {
    dir = tempDir('sluice-gw-auth-');
    const hash = createHash('sha256').update(KEY).digest('hex');
    writeFileSync(path.join(dir.path, 'auth.json'), JSON.stringify({ keys: [{ name: 'tools', sha256: hash, scopes: ['admin'] }] }));
    secured = await c.addGateway(['--auth-file', path.join(dir.path, 'auth.json'), '--http-address', '127.0.0.1:0']);
  });

  afterAll(() => dir?.remove());

  it('works with the right key (flag or environment) and never logs it', async () => {
    const url = `http://${secured.http}`;
    await prepareTopic(c, 'gw-auth', 'auth-read');
    const pub = spawnTool(['pub', '--topic', 'gw-auth', '--gateway', url, '--gateway-token', KEY, '--log-level', 'debug'], 'k1\nk2\nk3\n');
    expect(await exitCode(pub)).toBe(0);
    await waitFor(async () => (await publishedOnShards('gw-auth')) === 3, 5000, 'three messages on the shards');
    const tail = spawnTool(['tail', '--topic', 'gw-auth', '--channel', 'auth-read', '--gateway', url, '-n', '3', '--log-level', 'debug'], undefined, { SLUICE_GATEWAY_TOKEN: KEY });
    expect(await exitCode(tail, 15_000)).toBe(0);
    expect(tail.stdout().split('\n').filter(Boolean).sort()).toEqual(['k1', 'k2', 'k3']);
    const stat = spawnTool(['stat', '--topic', 'gw-auth', '--channel', 'auth-read', '--gateway', url, '-n', '1'], undefined, { SLUICE_GATEWAY_TOKEN: KEY });
    expect(await exitCode(stat)).toBe(0);
    for (const t of [pub, tail, stat]) expect(t.stderr()).not.toContain(KEY);
  });

  it('fails clearly, with a non-zero exit, on a wrong key', async () => {
    const url = `http://${secured.http}`;
    const pub = spawnTool(['pub', '--topic', 'gw-auth', '--gateway', url, '--gateway-token', 'wrong-key'], 'x\n');
    expect(await exitCode(pub)).toBe(1);
    expect(pub.logs().find((l) => l.message === 'publish failed')).toMatchObject({ status: 401, api_code: 'UNAUTHENTICATED' });
    const tail = spawnTool(['tail', '--topic', 'gw-auth', '--gateway', url, '--gateway-token', 'wrong-key']);
    expect(await exitCode(tail)).toBe(1);
    expect(tail.logs().find((l) => l.message === 'failed to start')?.error).toMatch(/HTTP 401 UNAUTHENTICATED/);
    const stat = spawnTool(['stat', '--topic', 'gw-auth', '--gateway', url]);
    expect(await exitCode(stat)).toBe(1);
    expect(stat.logs().find((l) => l.message === 'the gateway refused the request')).toMatchObject({ status: 401 });
    for (const t of [pub, tail, stat]) expect(t.stderr()).not.toContain('wrong-key');
  });
});
