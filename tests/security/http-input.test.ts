// Hostile HTTP input against real shard, gateway and lookup processes: oversized bodies (declared
// and chunked), broken and deeply nested JSON, wrong content types, bad names, and slowloris
// connections, which are closed by the header timeout while other clients carry on.

import net from 'node:net';
import { call, startShard, ShardProcess } from '../helpers/shard';
import { startGateway, GatewayProcess } from '../helpers/gateway';
import { startLookup, LookupProcess } from '../helpers/lookup';
import { tempDir, waitFor } from '../helpers/process';

const MAX_MSG = 1024;
const MAX_BODY = 4096;
const TIMEOUTS = ['--header-timeout', '1s', '--request-timeout', '3s'];

/** Sends raw bytes and resolves with everything the server answered once it closes (or after `ms`). */
function raw(addr: string, data: string | Buffer, ms = 5000): Promise<string> {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    let out = '';
    const timer = setTimeout(() => s.destroy(), ms);
    s.on('data', (d) => (out += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.write(data);
  });
}

const statusOf = (answer: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);

/** A chunked POST whose chunks add up to `size` bytes. */
function chunkedPost(addr: string, path: string, size: number, contentType = 'application/octet-stream'): Promise<string> {
  const chunk = 'x'.repeat(256);
  let body = '';
  for (let left = size; left > 0; left -= chunk.length) {
    const c = chunk.slice(0, Math.min(chunk.length, left));
    body += `${c.length.toString(16)}\r\n${c}\r\n`;
  }
  body += '0\r\n\r\n';
  return raw(addr, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${contentType}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body}`);
}

describe('hostile HTTP input', () => {
  const dir = tempDir();
  let shard: ShardProcess;
  let gateway: GatewayProcess;
  let lookup: LookupProcess;

  beforeAll(async () => {
    [shard, lookup] = await Promise.all([
      startShard(['--max-msg-size', String(MAX_MSG), '--max-body-size', String(MAX_BODY), ...TIMEOUTS], dir.path),
      startLookup(TIMEOUTS),
    ]);
    gateway = await startGateway(['--shard-http-address', shard.http, '--max-msg-size', String(MAX_MSG), '--max-body-size', String(MAX_BODY), ...TIMEOUTS]);
    await call(shard.url('/topic/create?topic=ok'), 'POST');
  });
  afterAll(async () => {
    await Promise.all([gateway?.stop(), shard?.stop(), lookup?.stop()]);
    dir.remove();
  });

  describe('bodies of max+1 bytes', () => {
    it('shard /pub and /mpub refuse them with 413, declared or chunked', async () => {
      const big = 'x'.repeat(MAX_MSG + 1);
      expect((await call(shard.url('/pub?topic=ok'), 'POST', big)).json()).toEqual({ message: 'MSG_TOO_BIG' });
      expect(statusOf(await chunkedPost(shard.http, '/pub?topic=ok', MAX_MSG + 1))).toBe(413);
      expect((await call(shard.url('/mpub?topic=ok'), 'POST', 'y'.repeat(MAX_BODY + 1))).status).toBe(413);
      expect(statusOf(await chunkedPost(shard.http, '/mpub?topic=ok', MAX_BODY + 1))).toBe(413);
      expect(statusOf(await chunkedPost(shard.http, '/sluice/pub?topic=ok', MAX_MSG + 1))).toBe(413);
      // exactly the limit is fine
      expect((await call(shard.url('/pub?topic=ok'), 'POST', 'x'.repeat(MAX_MSG))).text).toBe('OK');
    });

    it('gateway publish endpoints refuse them with 413, declared or chunked', async () => {
      const one = await gateway.call('/v1/topics/ok/messages', 'POST', 'x'.repeat(MAX_MSG + 1));
      expect([one.status, one.json().error.code]).toEqual([413, 'MSG_TOO_BIG']);
      expect(statusOf(await chunkedPost(gateway.http, '/v1/topics/ok/messages', MAX_MSG + 1))).toBe(413);
      const batch = await gateway.call('/v1/topics/ok/batch', 'POST', 'x'.repeat(MAX_BODY + 1), { 'content-type': 'application/json' });
      expect([batch.status, batch.json().error.code]).toEqual([413, 'BODY_TOO_BIG']);
      expect(statusOf(await chunkedPost(gateway.http, '/v1/topics/ok/batch', MAX_BODY + 1, 'application/json'))).toBe(413);
    });
  });

  describe('malformed JSON and content types (gateway batch)', () => {
    const post = (body: string, type = 'application/json') => gateway.call('/v1/topics/ok/batch', 'POST', body, { 'content-type': type });

    it('invalid JSON is a 400 INVALID_JSON, never a 500', async () => {
      for (const body of ['[', '{"body":', '[{"body":"a"},]', '\u0000', '[{"body":"\ud800"}', 'null null']) {
        const r = await post(body);
        expect(r.status).toBe(400);
        expect(r.json().error.code).toBe('INVALID_JSON');
      }
      const nd = await post('{"body":"a"}\n{oops}\n', 'application/x-ndjson');
      expect([nd.status, nd.json().error.code, nd.json().error.details.index]).toEqual([400, 'INVALID_JSON', 1]);
    });

    it('deeply nested JSON (100k levels) is refused cleanly and the gateway keeps serving', async () => {
      const depth = 100_000;
      const nested = '['.repeat(depth) + ']'.repeat(depth);
      const big = await gateway.call('/v1/topics/ok/batch', 'POST', `[{"body":${nested}}]`, { 'content-type': 'application/json' });
      // over the 4 KiB limit here: refused on size before any parsing
      expect(big.status).toBe(413);
      // within the size limit at the shard's default: run a gateway with a roomy limit
      const roomy = await startGateway(['--shard-http-address', shard.http, ...TIMEOUTS]);
      try {
        for (const body of [`[{"body":${nested}}]`, nested, `{"a":`.repeat(depth) + '1' + '}'.repeat(depth)]) {
          const r = await roomy.call('/v1/topics/ok/batch', 'POST', body, { 'content-type': 'application/json' });
          expect(r.status).toBeGreaterThanOrEqual(400);
          expect(r.status).toBeLessThan(500);
        }
        const r = await roomy.call('/v1/topics/ok/messages', 'POST', '{"fine":true}');
        expect(r.status).toBe(200);
      } finally {
        await roomy.stop();
        expect(roomy.stderr()).not.toMatch(/Maximum call stack|RangeError/);
      }
    });

    it('wrong content types are 415 on the batch endpoint', async () => {
      for (const type of ['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/jsonx']) {
        const r = await post('[{"body":"a"}]', type);
        expect([type, r.status, r.json().error.code]).toEqual([type, 415, 'UNSUPPORTED_MEDIA_TYPE']);
      }
      const none = await gateway.call('/v1/topics/ok/batch', 'POST', '[{"body":"a"}]');
      expect(none.status).toBe(415);
    });
  });

  describe('bad names', () => {
    const BAD = ['', 'x'.repeat(65), 'ünïcode', '../x', 'a%00b', 'a\u0000b', '%2e%2e%2fx', 'a b', 'a/b', '#ephemeral', 'a#b'];

    it('the shard refuses every bad topic and channel name with 400 and stores nothing', async () => {
      for (const name of BAD) {
        const q = encodeURIComponent(name);
        const pub = await call(shard.url(`/pub?topic=${q}`), 'POST', 'x');
        expect([name, pub.status]).toEqual([name, 400]);
        expect(['MISSING_ARG_TOPIC', 'INVALID_TOPIC']).toContain(pub.json().message);
        const ch = await call(shard.url(`/channel/create?topic=ok&channel=${q}`), 'POST');
        expect([name, ch.status]).toEqual([name, 400]);
      }
      // percent-encoding decoded once only: %252e stays a literal '%2e', which is invalid
      expect((await call(shard.url('/pub?topic=%252e%252e'), 'POST', 'x')).status).toBe(400);
      const topics = (await call(shard.url('/stats?format=json'))).json().topics.map((t: { topic_name: string }) => t.topic_name);
      expect(topics).toEqual(['ok']);
    });

    it('the gateway refuses every bad topic name with 400 INVALID_TOPIC (or 404 for a path that no longer matches)', async () => {
      for (const name of BAD) {
        const r = await gateway.call(`/v1/topics/${encodeURIComponent(name)}/messages`, 'POST', 'x');
        expect([name, r.status < 500]).toEqual([name, true]);
        expect([400, 404]).toContain(r.status);
        if (r.status === 400) expect(r.json().error.code).toBe('INVALID_TOPIC');
      }
      // raw (not encoded) traversal and NUL in the path
      for (const path of ['/v1/topics/../x/messages', '/v1/topics/%2e%2e%2fx/messages', '/v1/topics/a%00/messages', '/v1/topics/%/messages']) {
        const answer = await raw(gateway.http, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`);
        expect([path, statusOf(answer) >= 400 && statusOf(answer) < 500]).toEqual([path, true]);
      }
      // '..' is a valid NSQ name ('.' is allowed); it only ever prefixes a file name, never a path
      const dots = await raw(gateway.http, 'POST /v1/topics/%2e%2e/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx');
      expect(statusOf(dots)).toBe(200);
      expect(require('node:fs').readdirSync(dir.path).every((f: string) => !f.includes('/'))).toBe(true);
    });
  });

  describe('slowloris', () => {
    it('shard, gateway and lookup close a connection whose headers trickle in, while other clients are served', async () => {
      const targets: [string, string][] = [
        ['shard', shard.http],
        ['gateway', gateway.http],
        ['lookup', lookup.addresses.http],
      ];
      const results = await Promise.all(
        targets.map(async ([name, addr]) => {
          const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
          const s = net.connect(port, host);
          s.on('error', () => undefined);
          const started = Date.now();
          let closed = false;
          s.on('close', () => (closed = true));
          s.write('GET /ping HTTP/1.1\r\nHost: x\r\n');
          // one header byte every 200 ms, never finishing; bounded to 30 bytes (6 s)
          let sent = 0;
          const trickle = setInterval(() => {
            if (closed || sent++ >= 30) return clearInterval(trickle);
            s.write('X');
          }, 200);
          // meanwhile, an ordinary client is unaffected
          const ok = await call(`http://${addr}${name === 'gateway' ? '/healthz' : '/ping'}`);
          expect([name, ok.status]).toEqual([name, 200]);
          await waitFor(() => closed, 8000, `${name} to close the slow connection`);
          clearInterval(trickle);
          s.destroy();
          return [name, Date.now() - started] as const;
        }),
      );
      for (const [name, ms] of results) {
        // header timeout 1 s, checked about every 250 ms: closed well before node's 60 s default
        expect([name, ms < 5000]).toEqual([name, true]);
      }
    });
  });
});
