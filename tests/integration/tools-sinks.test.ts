// `sluice to-http` and `sluice to-file` as real processes against a lookup and two real shards.
// to-http: against a local endpoint that fails every third request, every message arrives at
// least once, failures are retried, --max-attempts is honoured, and a loopback target is refused
// unless --allow-private-targets. to-file: rotating files, a SIGTERM and a restart in the middle
// of a steady publish, and afterwards every published message is in the files.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { tempDir, waitFor } from '../helpers/process';
import { consumersOnEveryShard, drained, exitCode, mpub, prepareTopic, spawnTool, startCluster, type Cluster } from '../helpers/tools';

let c: Cluster;

beforeAll(async () => {
  c = await startCluster();
});

afterAll(async () => {
  await c?.close();
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
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return {
    url,
    requests,
    delivered: () => new Set(requests.filter((r) => r.status === 200).map((r) => r.body)),
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
}

describe('sluice to-http', () => {
  it('delivers every message at least once to an endpoint failing every third request, retrying the failures', async () => {
    const ep = await endpoint((n) => n % 3 === 0);
    await prepareTopic(c, 'hook-t', 'nsq_to_http');
    const sent = Array.from({ length: 40 }, (_, i) => `msg-${i}`);
    await mpub(c.shards[0], 'hook-t', sent.slice(0, 20));
    await mpub(c.shards[1], 'hook-t', sent.slice(20));
    const tool = spawnTool([
      'to-http', '--topic', 'hook-t', '--lookupd-http-address', c.lookupHttp, '--post', ep.url, '--allow-private-targets',
      '--concurrency', '4', '--backoff', '20ms', '--max-backoff', '100ms', '--max-attempts', '20',
    ]);
    try {
      await waitFor(() => ep.delivered().size === sent.length, 20_000, 'every message delivered');
      await waitFor(() => drained(c, 'hook-t', 'nsq_to_http'), 5000, 'channel drained');
      const failed = ep.requests.filter((r) => r.status === 500).map((r) => r.body);
      expect(failed.length).toBeGreaterThan(0);
      // each failed delivery was tried again and then succeeded
      for (const body of failed) expect(ep.delivered().has(body)).toBe(true);
      expect(new Set(ep.requests.map((r) => r.body))).toEqual(new Set(sent));
    } finally {
      expect(await tool.stop()).toBe(0);
      await ep.close();
    }
  });

  it('after --max-attempts failed deliveries, finishes the message and logs it', async () => {
    const ep = await endpoint((_n, body) => body.startsWith('poison'));
    await prepareTopic(c, 'hook-poison', 'nsq_to_http');
    await mpub(c.shards[0], 'hook-poison', ['poison-1', 'fine-1']);
    await mpub(c.shards[1], 'hook-poison', ['poison-2', 'fine-2']);
    const tool = spawnTool([
      'to-http', '--topic', 'hook-poison', '--lookupd-http-address', c.lookupHttp, '--post', ep.url, '--allow-private-targets',
      '--backoff', '10ms', '--max-backoff', '40ms', '--max-attempts', '3',
    ]);
    try {
      await waitFor(() => tool.logs().filter((l) => l.message === 'giving up on a message').length === 2, 15_000, 'both poison messages given up');
      await waitFor(() => drained(c, 'hook-poison', 'nsq_to_http'), 5000, 'channel drained');
      const tries = (body: string) => ep.requests.filter((r) => r.body === body).length;
      expect([tries('poison-1'), tries('poison-2'), tries('fine-1'), tries('fine-2')]).toEqual([3, 3, 1, 1]);
      expect(tool.logs().filter((l) => l.message === 'giving up on a message').map((l) => l.attempts)).toEqual([3, 3]);
    } finally {
      expect(await tool.stop()).toBe(0);
      await ep.close();
    }
  });

  it.each([['127.0.0.1'], ['localhost']])('refuses a loopback target (%s) without --allow-private-targets', async (host) => {
    const ep = await endpoint(() => false);
    const url = ep.url.replace('127.0.0.1', host);
    const tool = spawnTool(['to-http', '--topic', 'hook-t', '--lookupd-http-address', c.lookupHttp, '--post', url]);
    try {
      expect(await exitCode(tool)).toBe(1);
      expect(tool.stderr()).toMatch(/refusing .*loopback/);
      expect(ep.requests).toEqual([]);
    } finally {
      await ep.close();
    }
  });
});

/** Every line of every file in `dir` (gzip files unpacked). */
function linesIn(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const raw = readFileSync(path.join(dir, name));
    return (name.endsWith('.gz') ? zlib.gunzipSync(raw) : raw).toString().split('\n').filter(Boolean);
  });
}

describe('sluice to-file', () => {
  it('rotates files and loses nothing across a SIGTERM and restart in the middle of a steady publish', async () => {
    const out = tempDir('sluice-to-file-');
    await prepareTopic(c, 'archive', 'nsq_to_file');
    const args = ['to-file', '--topic', 'archive', '--lookupd-http-address', c.lookupHttp, '--output-dir', out.path, '--rotate-bytes', '1000', '--sync-interval', '100ms'];
    const subscribed = () => waitFor(() => consumersOnEveryShard(c, 'archive', (ch) => ch === 'nsq_to_file'), 10_000, 'to-file subscribed');

    // a steady publisher: 20 messages every 10 ms, alternating shards
    let published = 0;
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        const batch = Array.from({ length: 20 }, (_, i) => `m-${published + i}`);
        await mpub(c.shards[(published / 20) % 2], 'archive', batch);
        published += batch.length;
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    try {
      const first = spawnTool(args);
      await subscribed();
      await waitFor(() => linesIn(out.path).length >= 400, 15_000, 'the first run to write some');
      expect(await first.stop('SIGTERM')).toBe(0); // while messages keep coming
      const afterFirst = published;

      const second = spawnTool([...args, '--gzip']);
      await subscribed();
      await waitFor(() => published >= afterFirst + 400, 10_000, 'more published during the second run');
      publishing = false;
      await publisher;
      await waitFor(() => drained(c, 'archive', 'nsq_to_file'), 15_000, 'channel drained');
      expect(await second.stop('SIGTERM')).toBe(0);

      const seen = new Set(linesIn(out.path));
      const missing = Array.from({ length: published }, (_, i) => `m-${i}`).filter((m) => !seen.has(m));
      expect(missing).toEqual([]);
      const files = readdirSync(out.path);
      expect(files.filter((f) => f.endsWith('.log')).length).toBeGreaterThan(1); // rotated in the first run
      expect(files.filter((f) => f.endsWith('.log.gz')).length).toBeGreaterThan(1); // and in the second
      expect(files.every((f) => /^archive\.[^.]+\.\d{8}T\d{6}Z\.\d{4}\.log(\.gz)?$/.test(f))).toBe(true);
    } finally {
      publishing = false;
      await publisher.catch(() => undefined);
      out.remove();
    }
  });
});
