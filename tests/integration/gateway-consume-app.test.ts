// The consuming API of a gateway (as a library, over two in-process shards) at its edges: consuming
// off without a receipt secret, parameter checks, auth with header / ?token= / cookie and scopes
// per receipt, CORS with an exact allowlist, SSE headers and keep-alives, the example page, channel
// settings, the Express app, and a long-poll whose client leaves. Answers checked against openapi.yaml.

import { createHash } from 'node:crypto';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { createGateway, Gateway } from '../../gateway/app';
import { Auth } from '../../gateway/auth';
import { Schemas } from '../../gateway/schemas';
import { call, Answer } from '../helpers/shard';
import { expectDocumented } from '../helpers/openapi';
import { InProcessShard, startGateway, startInProcessShard } from '../helpers/gateway';
import { tempDir, waitFor } from '../helpers/process';

const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const SECRET = 'app-test-receipt-secret-0123456789';
const ORIGIN = 'https://app.example.com';

let shards: InProcessShard[] = [];
let gw: Gateway;
let off: Gateway;
let base = '';
let offBase = '';

beforeAll(async () => {
  shards = [await startInProcessShard(['--node-id', '1']), await startInProcessShard(['--node-id', '2'])];
  const auth = Auth.fromDocument(
    {
      keys: [
        { name: 'reader', sha256: hex('reader-key'), scopes: ['consume:orders/billing*', 'consume:orders/tab-*'] },
        { name: 'writer', sha256: hex('writer-key'), scopes: ['publish:orders'] },
        { name: 'root', sha256: hex('root-key'), scopes: ['admin'] },
      ],
    },
    new Schemas().authFile,
  );
  const common = { httpAddress: '127.0.0.1:0', shardHttpAddresses: shards.map((s) => s.http) };
  gw = createGateway({ ...common, corsOrigins: [ORIGIN], consume: { receiptSecrets: [SECRET], keepAliveMs: 100 } }, { auth });
  off = createGateway(common);
  base = 'http://' + (await gw.start()).http;
  offBase = 'http://' + (await off.start()).http;
});

afterAll(async () => {
  await gw?.close();
  await off?.close();
  for (const s of shards) await s.close();
});

const READER = { authorization: 'Bearer reader-key' };
const ROOT = { authorization: 'Bearer root-key' };

function documented(method: string, template: string, r: Answer): void {
  expectDocumented(method, template, { status: r.status, headers: r.headers, text: r.text });
}

const LP = '/v1/topics/{topic}/channels/{channel}/messages';

function channelOnBothShards(channel: string): Promise<unknown> {
  return waitFor(() => shards.every((s) => s.shard.engine.findChannel('orders', channel)), 3000, `channel ${channel} on both shards`);
}

describe('consuming API edges', () => {
  it('is off without a receipt secret', async () => {
    const r = await call(offBase + '/v1/topics/orders/channels/billing/messages?wait_ms=0', 'POST');
    documented('post', LP, r);
    expect(r.status).toBe(503);
    expect(r.json().error.code).toBe('CONSUME_DISABLED');
  });

  it('checks names and parameters', async () => {
    const cases: [string, string, number, string][] = [
      ['POST', '/v1/topics/orders/channels/bad!name/messages', 400, 'INVALID_CHANNEL'],
      ['POST', '/v1/topics/b@d/channels/billing/messages', 400, 'INVALID_TOPIC'],
      ['POST', '/v1/topics/orders/channels/billing/messages?max=0', 400, 'INVALID_PARAMETER'],
      ['POST', '/v1/topics/orders/channels/billing/messages?max=100000', 400, 'INVALID_PARAMETER'],
      ['POST', '/v1/topics/orders/channels/billing/messages?wait_ms=9999999', 400, 'INVALID_PARAMETER'],
      ['POST', '/v1/topics/orders/channels/billing/messages?lease_ms=5', 400, 'INVALID_PARAMETER'],
      ['POST', '/v1/topics/orders/channels/billing/messages?encoding=xml', 400, 'INVALID_PARAMETER'],
      ['POST', '/v1/topics/orders/channels/billing/messages?max_attempts=3&dead_letter_topic=orders', 400, 'INVALID_DEAD_LETTER_TOPIC'],
      ['GET', '/v1/topics/orders/channels/billing/stream?max_in_flight=0', 400, 'INVALID_PARAMETER'],
      ['GET', '/v1/topics/orders/channels/billing/messages', 405, 'METHOD_NOT_ALLOWED'],
    ];
    for (const [method, p, status, code] of cases) {
      const r = await call(base + p, method, undefined, READER);
      expect([p, r.status, r.json().error.code]).toEqual([p, status, code]);
      if (status !== 405) documented(method, p.includes('/stream') ? '/v1/topics/{topic}/channels/{channel}/stream' : LP, r);
    }
    const bad: [string, string | undefined, Record<string, string>, number, string][] = [
      ['/v1/receipts/ack', 'not json', { 'content-type': 'application/json' }, 400, 'INVALID_JSON'],
      ['/v1/receipts/ack', '{"receipts":"x"}', { 'content-type': 'application/json' }, 422, 'VALIDATION_FAILED'],
      ['/v1/receipts/ack', '{"receipts":[]}', { 'content-type': 'application/json' }, 422, 'VALIDATION_FAILED'],
      ['/v1/receipts/ack', 'x', { 'content-type': 'text/plain' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['/v1/receipts/requeue?receipt=abc&delay_ms=x', undefined, {}, 400, 'INVALID_PARAMETER'],
      ['/v1/receipts/ack?receipt=abc', undefined, {}, 400, 'RECEIPT_INVALID'],
    ];
    for (const [p, body, headers, status, code] of bad) {
      const r = await call(base + p, 'POST', body, { ...READER, ...headers });
      expect([p, r.status, r.json().error.code]).toEqual([p, status, code]);
      documented('post', p.split('?')[0], r);
    }
    expect((await call(base + '/v1/receipts/frobnicate', 'POST', undefined, READER)).json().error.code).toBe('NOT_FOUND');
  });

  it('authenticates by header, ?token= or cookie, and checks the consume scope of every receipt', async () => {
    const p = '/v1/topics/orders/channels/billing/messages?wait_ms=0';
    expect((await call(base + p, 'POST')).status).toBe(401);
    const forbidden = await call(base + p, 'POST', undefined, { authorization: 'Bearer writer-key' });
    documented('post', LP, forbidden);
    expect(forbidden.json().error.code).toBe('FORBIDDEN');
    expect((await call(base + '/v1/topics/orders/channels/shipping/messages?wait_ms=0', 'POST', undefined, READER)).status).toBe(403);
    expect((await call(base + p, 'POST', undefined, READER)).status).toBe(200);
    expect((await call(base + p + '&token=reader-key', 'POST')).status).toBe(200);
    expect((await call(base + p, 'POST', undefined, { cookie: 'other=1; sluice_token=reader-key' })).status).toBe(200);

    // a receipt for orders/admin-only, acked with the reader key: refused; with the admin key: fine
    const polled = call(base + '/v1/topics/orders/channels/admin-only/messages?wait_ms=5000', 'POST', undefined, ROOT);
    await channelOnBothShards('admin-only');
    await call(base + '/v1/topics/orders/messages', 'POST', 'secret stuff', ROOT);
    const receipt = (await polled).json().messages[0].receipt as string;
    const single = await call(base + '/v1/receipts/ack?receipt=' + receipt, 'POST', undefined, READER);
    documented('post', '/v1/receipts/ack', single);
    expect([single.status, single.json().error.code]).toEqual([403, 'FORBIDDEN']);
    const batch = await call(base + '/v1/receipts/ack', 'POST', JSON.stringify({ receipts: [receipt] }), { ...READER, 'content-type': 'application/json' });
    expect(batch.json().results).toEqual([{ status: 'FORBIDDEN' }]);
    const ok = await call(base + '/v1/receipts/ack?receipt=' + receipt, 'POST', undefined, ROOT);
    documented('post', '/v1/receipts/ack', ok);
    expect(ok.json()).toEqual({ status: 'OK' });
  });

  it('CORS: an allowed origin is echoed with credentials and Vary: Origin, never *; others are refused', async () => {
    const pre = await call(base + '/v1/receipts/ack', 'OPTIONS', undefined, { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' });
    expect(pre.status).toBe(204);
    expect(pre.headers).toMatchObject({ 'access-control-allow-origin': ORIGIN, 'access-control-allow-credentials': 'true', vary: 'Origin' });
    expect(pre.headers['access-control-allow-methods']).toContain('POST');
    expect(pre.headers['access-control-allow-headers']).toBe('authorization, content-type');
    const denied = await call(base + '/v1/receipts/ack', 'OPTIONS', undefined, { origin: 'https://evil.example', 'access-control-request-method': 'POST' });
    expect(denied.status).toBe(403);
    expect(denied.headers['access-control-allow-origin']).toBeUndefined();
    const get = await call(base + '/v1/topics/orders/channels/billing/messages?wait_ms=0', 'POST', undefined, { ...READER, origin: ORIGIN });
    expect(get.headers).toMatchObject({ 'access-control-allow-origin': ORIGIN, vary: 'Origin' });
    const other = await call(base + '/healthz', 'GET', undefined, { origin: 'https://evil.example' });
    expect(other.status).toBe(200);
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    expect(other.headers.vary).toBe('Origin');
    expect((await call(base + '/healthz')).headers['access-control-allow-origin']).toBeUndefined();
  });

  it('streams with the headers proxies need, keep-alive comments, and one JSON line per event', async () => {
    const chunks: string[] = [];
    const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.get(base + '/v1/topics/orders/channels/tab-1%23ephemeral/stream?token=reader-key&encoding=text', resolve).on('error', reject),
    );
    res.setEncoding('utf8');
    res.on('data', (d: string) => chunks.push(d));
    expect(res.statusCode).toBe(200);
    expect(res.headers).toMatchObject({ 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no', connection: 'keep-alive' });
    await waitFor(() => chunks.join('').includes(': keep-alive'), 3000, 'a keep-alive comment');
    await call(base + '/v1/topics/orders/messages', 'POST', 'line one\n\nevent: forged\ndata: x', ROOT);
    await waitFor(() => chunks.join('').includes('event: message'), 5000, 'an event');
    const text = chunks.join('');
    const ev = text.slice(text.indexOf('event: message')).split('\n\n')[0].split('\n');
    expect(ev[0]).toBe('event: message');
    expect(ev[1]).toMatch(/^id: [A-Za-z0-9_-]+$/);
    const data = JSON.parse(ev[2].slice('data: '.length));
    expect(data).toMatchObject({ encoding: 'text', body: 'line one\n\nevent: forged\ndata: x', attempts: 1, receipt: ev[1].slice(4) });
    expect(text).not.toContain('event: forged\n');
    res.destroy();
  });

  it('serves the example page and the channel settings', async () => {
    const page = await call(base + '/example');
    documented('get', '/example', page);
    expect(page.status).toBe(200);
    expect(page.text).toContain('new EventSource(');
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");

    const p = '/v1/topics/orders/channels/billing-settings';
    const missing = await call(base + p, 'GET', undefined, READER);
    documented('get', '/v1/topics/{topic}/channels/{channel}', missing);
    expect(missing.json().error.code).toBe('CHANNEL_NOT_FOUND');
    const badBody = await call(base + p, 'PUT', JSON.stringify({ max_attempts: -1 }), { ...READER, 'content-type': 'application/json' });
    documented('put', '/v1/topics/{topic}/channels/{channel}', badBody);
    expect(badBody.json().error.code).toBe('VALIDATION_FAILED');
    const self = await call(base + p, 'PUT', JSON.stringify({ max_attempts: 3, dead_letter_topic: 'orders' }), { ...READER, 'content-type': 'application/json' });
    expect(self.json().error.code).toBe('INVALID_DEAD_LETTER_TOPIC');
    const put = await call(base + p, 'PUT', JSON.stringify({ max_attempts: 3, dead_letter_topic: 'orders-dlq' }), { ...READER, 'content-type': 'application/json' });
    documented('put', '/v1/topics/{topic}/channels/{channel}', put);
    expect(put.json()).toMatchObject({ topic: 'orders', channel: 'billing-settings', max_attempts: 3, dead_letter_topic: 'orders-dlq', dead_lettered_count: 0 });
    const got = await call(base + p, 'GET', undefined, READER);
    documented('get', '/v1/topics/{topic}/channels/{channel}', got);
    expect(got.json()).toEqual(put.json());
    for (const s of shards) expect(s.shard.engine.findChannel('orders', 'billing-settings')!.stats()).toMatchObject({ max_attempts: 3, dead_letter_topic: 'orders-dlq' });
  });

  it('serves the consuming endpoints from the Express app too (library use)', async () => {
    const r = await request(gw.app).post('/v1/topics/orders/channels/billing-lib/messages?wait_ms=0').set(READER);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ topic: 'orders', channel: 'billing-lib', messages: [] });
    const pre = await request(gw.app).options('/v1/receipts/ack').set({ origin: ORIGIN, 'access-control-request-method': 'POST' });
    expect(pre.status).toBe(204);
  });

  it('a long-poll whose client leaves takes nothing with it', async () => {
    const ac = new AbortController();
    const gone = fetch(base + '/v1/topics/orders/channels/billing-gone/messages?wait_ms=5000', { method: 'POST', headers: READER, signal: ac.signal }).catch(() => undefined);
    await channelOnBothShards('billing-gone'); // subscribing created it
    ac.abort();
    await gone;
    await new Promise((r) => setTimeout(r, 50));
    await call(base + '/v1/topics/orders/messages', 'POST', 'after', ROOT);
    const r = await call(base + '/v1/topics/orders/channels/billing-gone/messages?wait_ms=3000', 'POST', undefined, READER);
    expect(r.json().messages).toHaveLength(1);
    expect(r.json().messages[0]).toMatchObject({ attempts: 1, body: 'YWZ0ZXI=', encoding: 'base64' });
  });
});

describe('a gateway process', () => {
  it('refuses a short receipt secret, and never logs ?token= (debug logs every request)', async () => {
    await expect(startGateway(['--receipt-secret', 'short', '--shard-http-address', shards[0].http])).rejects.toThrow(/receipt-secret/);
    const dir = tempDir('sluice-gw-auth-');
    const file = path.join(dir.path, 'keys.json');
    writeFileSync(file, JSON.stringify({ keys: [{ name: 'r', sha256: hex('very-secret-reader-key'), scopes: ['consume:*/*'] }] }));
    const p = await startGateway(['--receipt-secret', SECRET, '--shard-http-address', shards[0].http, '--auth-file', file, '--http-address', '127.0.0.1:0', '--log-level', 'debug']);
    try {
      const r = await p.call('/v1/topics/logs/channels/c/messages?wait_ms=0&token=very-secret-reader-key', 'POST');
      expect(r.status).toBe(200);
      await waitFor(() => p.stderr().includes('/v1/topics/logs/channels/c/messages'), 3000, 'the request log line');
      expect(p.stderr()).not.toContain('very-secret-reader-key');
      expect(p.stderr()).not.toContain(SECRET);
    } finally {
      await p.stop();
      dir.remove();
    }
  });
});
