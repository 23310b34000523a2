// The gateway as a library, driven by supertest: the same suite runs against the Express app
// (library use) and the front handler that `sluice gateway` listens with, over two in-process
// shards. Every answer is checked against openapi.yaml; bodies are read back from the shards.

import { createHash, createHmac } from 'node:crypto';
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { createGateway, Gateway } from '../../gateway/app';
import { Auth } from '../../gateway/auth';
import { Schemas } from '../../gateway/schemas';
import { parseWebhookConfig } from '../../gateway/webhooks';
import { expectDocumented, checkRef, schemaRefs } from '../helpers/openapi';
import { InProcessShard, startInProcessShard } from '../helpers/gateway';
import { tempDir, waitFor } from '../helpers/process';

const schemas = new Schemas();
const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const MAX_MSG = 64 * 1024;

let shards: InProcessShard[] = [];
let open: Gateway;
let secured: Gateway;
const dirs: { remove(): void }[] = [];

beforeAll(async () => {
  shards = [await startInProcessShard(['--node-id', '1']), await startInProcessShard(['--node-id', '2'])];
  const schemaDir = tempDir('sluice-topic-schemas-');
  dirs.push(schemaDir);
  mkdirSync(schemaDir.path, { recursive: true });
  writeFileSync(
    path.join(schemaDir.path, 'typed.json'),
    JSON.stringify({ type: 'object', required: ['order_id'], properties: { order_id: { type: 'integer' } } }),
  );
  const webhooks = parseWebhookConfig(
    { topics: { 'gh-events': { provider: 'github', secret: 'gh-secret' }, 'raw-hooks': { envelope: false } } },
    schemas.webhookConfig,
    {},
  );
  const common = { shardHttpAddresses: shards.map((s) => s.http), topicSchemas: schemaDir.path, maxMsgSize: MAX_MSG, maxBodySize: 256 * 1024, maxDeferMs: 3_600_000 };
  open = createGateway(common, { webhooks });
  secured = createGateway(common, {
    webhooks,
    auth: Auth.fromDocument(
      {
        keys: [
          { name: 'writer', sha256: hex('writer-key'), scopes: ['publish:orders*'] },
          { name: 'root', sha256: hex('root-key'), scopes: ['admin'] },
        ],
      },
      schemas.authFile,
    ),
  });
  await open.start();
  await secured.start();
});

afterAll(async () => {
  await open?.close();
  await secured?.close();
  for (const s of shards) await s.close();
  for (const d of dirs) d.remove();
});

/** Creates channel `c` for the topic on both shards, so what is published can be read back. */
function watch(topic: string): void {
  for (const s of shards) s.shard.engine.channel(topic, 'c');
}

async function drain(topic: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const s of shards) {
    const msgs = await s.shard.engine.pull(topic, 'c', { max: 1000, leaseMs: 60_000, waitMs: 50 });
    out.push(...msgs.map((m) => m.body));
  }
  return out;
}

function deferredCount(topic: string): number {
  return shards.reduce((n, s) => n + (s.shard.engine.findChannel(topic, 'c')?.stats().deferred_count ?? 0), 0);
}

type Target = [string, () => http.RequestListener | Gateway['app']];
const targets: Target[] = [
  ['Express app', () => open.app],
  ['front handler', () => open.handler],
];

describe('openapi.yaml', () => {
  it('refers only to schema files that exist and compile', () => {
    const refs = schemaRefs();
    expect(refs.length).toBeGreaterThan(5);
    for (const r of refs) checkRef(r);
  });
});

describe.each(targets)('gateway API through the %s', (name, target) => {
  const t = (base: string) => `${base}-${name.replace(/\W/g, '')}`;
  const agent = () => request(target());
  const doc = (method: string, template: string, res: request.Response) => {
    expectDocumented(method, template, { status: res.status, headers: res.headers, body: res.body, text: res.text });
    return res;
  };

  it('publishes one message of any type, bytes kept exactly, and answers its id and shard', async () => {
    const topic = t('single');
    watch(topic);
    const bytes = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) bytes[i] = i;
    const res = doc('post', '/v1/topics/{topic}/messages', await agent().post(`/v1/topics/${topic}/messages`).set('Content-Type', 'application/octet-stream').send(bytes));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ topic, duplicate: false });
    expect(shards.map((s) => s.http)).toContain(res.body.shard);
    const text = doc('post', '/v1/topics/{topic}/messages', await agent().post(`/v1/topics/${topic}/messages`).set('Content-Type', 'text/plain').send('héllo'));
    expect(text.body.id).not.toBe(res.body.id);
    const got = await drain(topic);
    expect(got.map((b) => b.toString('hex')).sort()).toEqual([bytes.toString('hex'), Buffer.from('héllo').toString('hex')].sort());
  });

  it('defers a message', async () => {
    const topic = t('deferred');
    watch(topic);
    doc('post', '/v1/topics/{topic}/messages', await agent().post(`/v1/topics/${topic}/messages?defer=60000`).send('later').expect(200));
    expect(deferredCount(topic)).toBe(1);
    expect(await drain(topic)).toEqual([]);
  });

  it('publishes a JSON batch and an NDJSON batch with per-message bodies, defer and keys', async () => {
    const topic = t('batch');
    watch(topic);
    const items = [{ body: 'plain text' }, { body: { order_id: 7, total: 1.5 } }, { body_base64: Buffer.from([0, 1, 2, 255]).toString('base64') }, { body: 'soon', defer: 60000 }, { body: 'k', key: 'customer-1' }];
    const res = doc('post', '/v1/topics/{topic}/batch', await agent().post(`/v1/topics/${topic}/batch`).send(items).expect(200));
    expect(res.body.count).toBe(5);
    expect(new Set(res.body.results.map((r: { id: string }) => r.id)).size).toBe(5);
    const nd = [{ body: 'line one' }, { body: [1, 2] }].map((x) => JSON.stringify(x)).join('\n') + '\n\n';
    const res2 = doc('post', '/v1/topics/{topic}/batch', await agent().post(`/v1/topics/${topic}/batch`).set('Content-Type', 'application/x-ndjson').send(nd).expect(200));
    expect(res2.body.count).toBe(2);
    const got = (await drain(topic)).map((b) => b.toString('latin1')).sort();
    expect(got).toEqual(['plain text', '{"order_id":7,"total":1.5}', Buffer.from([0, 1, 2, 255]).toString('latin1'), 'k', 'line one', '[1,2]'].sort());
    expect(deferredCount(topic)).toBe(1);
  });

  it('keeps a routing key on one shard and spreads other keys', async () => {
    const topic = t('keyed');
    const shardsOf = async (key: string, n: number) => {
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) seen.add((await agent().post(`/v1/topics/${topic}/messages?key=${key}`).send(`m${i}`).expect(200)).body.shard);
      return seen;
    };
    expect((await shardsOf('customer-42', 10)).size).toBe(1);
    const firsts = new Set<string>();
    for (let k = 0; k < 16; k++) for (const s of await shardsOf(`c-${k}`, 1)) firsts.add(s);
    expect(firsts.size).toBe(2);
  });

  it('publishes a repeated Idempotency-Key once and answers the first id', async () => {
    const topic = t('idem');
    watch(topic);
    const send = () => agent().post(`/v1/topics/${topic}/messages`).set('Idempotency-Key', 'order-1001').send('charge');
    const first = doc('post', '/v1/topics/{topic}/messages', await send().expect(200));
    const again = doc('post', '/v1/topics/{topic}/messages', await send().expect(200));
    expect(again.body).toEqual({ ...first.body, duplicate: true });
    const batch = await agent().post(`/v1/topics/${topic}/batch`).set('Idempotency-Key', 'b-1').send([{ body: 'x' }, { body: 'y' }]).expect(200);
    const batchAgain = await agent().post(`/v1/topics/${topic}/batch`).set('Idempotency-Key', 'b-1').send([{ body: 'x' }, { body: 'y' }]).expect(200);
    expect(batchAgain.body.results.map((r: { id: string }) => r.id)).toEqual(batch.body.results.map((r: { id: string }) => r.id));
    expect(batchAgain.body.results.every((r: { duplicate: boolean }) => r.duplicate)).toBe(true);
    expect((await drain(topic)).map(String).sort()).toEqual(['charge', 'x', 'y']);
  });

  it('enforces a topic schema with 422 and ajv errors; other topics take any bytes', async () => {
    const ok = await agent().post('/v1/topics/typed/messages').send('{"order_id":1}');
    doc('post', '/v1/topics/{topic}/messages', ok);
    expect(ok.status).toBe(200);
    const bad = doc('post', '/v1/topics/{topic}/messages', await agent().post('/v1/topics/typed/messages').send('{"order_id":"one"}'));
    expect([bad.status, bad.body.error.code]).toEqual([422, 'SCHEMA_MISMATCH']);
    expect(bad.body.error.details.errors[0]).toMatchObject({ instancePath: '/order_id', keyword: 'type' });
    const notJson = await agent().post('/v1/topics/typed/messages').send('nope');
    expect([notJson.status, notJson.body.error.code]).toEqual([422, 'SCHEMA_MISMATCH']);
    const batch = doc('post', '/v1/topics/{topic}/batch', await agent().post('/v1/topics/typed/batch').send([{ body: { order_id: 1 } }, { body: { order_id: 'x' } }]));
    expect([batch.status, batch.body.error.code, batch.body.error.details.index]).toEqual([422, 'SCHEMA_MISMATCH', 1]);
    await agent().post(`/v1/topics/${t('untyped')}/messages`).send('not json at all').expect(200);
  });

  it('answers every error with its status and the one JSON shape', async () => {
    const big = Buffer.alloc(MAX_MSG + 1, 1);
    const cases: [string, string, () => request.Test, number, string][] = [
      ['post', '/v1/topics/{topic}/messages', () => agent().post('/v1/topics/bad!name/messages').send('x'), 400, 'INVALID_TOPIC'],
      ['post', '/v1/topics/{topic}/messages', () => agent().post('/v1/topics/ok/messages').set('Content-Type', 'text/plain').send(''), 400, 'MSG_EMPTY'],
      ['post', '/v1/topics/{topic}/messages', () => agent().post('/v1/topics/ok/messages?defer=soon').send('x'), 400, 'INVALID_DEFER'],
      ['post', '/v1/topics/{topic}/messages', () => agent().post('/v1/topics/ok/messages?defer=3600001').send('x'), 400, 'INVALID_DEFER'],
      ['post', '/v1/topics/{topic}/messages', () => agent().post('/v1/topics/ok/messages?key=').send('x'), 400, 'INVALID_KEY'],
      ['post', '/v1/topics/{topic}/messages', () => agent().post('/v1/topics/ok/messages').set('Idempotency-Key', 'x'.repeat(201)).send('x'), 400, 'INVALID_IDEMPOTENCY_KEY'],
      ['post', '/v1/topics/{topic}/batch', () => agent().post('/v1/topics/ok/batch').set('Content-Type', 'application/json').send('[{"body":'), 400, 'INVALID_JSON'],
      ['post', '/v1/topics/{topic}/batch', () => agent().post('/v1/topics/ok/batch').set('Content-Type', 'application/x-ndjson').send('{"body":1}\n{oops'), 400, 'INVALID_JSON'],
      ['get', '/nope', () => agent().get('/nope'), 404, 'NOT_FOUND'],
      ['get', '/v1/topics/{topic}', () => agent().get('/v1/topics/never-published'), 404, 'TOPIC_NOT_FOUND'],
      ['put', '/v1/topics/{topic}/messages', () => agent().put('/v1/topics/ok/messages').send('x'), 405, 'METHOD_NOT_ALLOWED'],
      ['post', '/v1/topics/{topic}/messages', () => agent().post('/v1/topics/ok/messages').set('Content-Type', 'application/octet-stream').send(big), 413, 'MSG_TOO_BIG'],
      ['post', '/v1/topics/{topic}/batch', () => agent().post('/v1/topics/ok/batch').set('Content-Type', 'application/json').send(Buffer.alloc(256 * 1024 + 1, 32)), 413, 'BODY_TOO_BIG'],
      ['post', '/v1/topics/{topic}/batch', () => agent().post('/v1/topics/ok/batch').send([{ body_base64: big.toString('base64') }]), 413, 'MSG_TOO_BIG'],
      ['post', '/v1/topics/{topic}/batch', () => agent().post('/v1/topics/ok/batch').set('Content-Type', 'text/plain').send('a\nb'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['post', '/v1/topics/{topic}/batch', () => agent().post('/v1/topics/ok/batch').send([{ body: 'a' }, { nobody: 1 }]), 422, 'VALIDATION_FAILED'],
      ['post', '/v1/topics/{topic}/batch', () => agent().post('/v1/topics/ok/batch').send([]), 422, 'VALIDATION_FAILED'],
    ];
    for (const [method, template, send, status, code] of cases) {
      const res = await send();
      expect([template, res.status, res.body?.error?.code]).toEqual([template, status, code]);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      doc(method, template, res);
    }
    const invalidItem = await agent().post('/v1/topics/ok/batch').send([{ body: 'a' }, { body: 'b' }, { nobody: 1 }]);
    expect(invalidItem.body.error.details.index).toBe(2);
  });

  it('takes webhooks: checks signatures, keeps the event headers in an envelope, publishes a redelivery once', async () => {
    const topic = 'gh-events';
    watch(topic);
    const payload = Buffer.from('{"action":"opened","number":1.50}');
    const sig = 'sha256=' + createHmac('sha256', 'gh-secret').update(payload).digest('hex');
    const send = (headers: Record<string, string>) => agent().post(`/v1/webhooks/${topic}`).set('Content-Type', 'application/json').set(headers).send(payload.toString());
    const delivery = `d-${name.length}`;
    const ok = doc('post', '/v1/webhooks/{topic}', await send({ 'X-Hub-Signature-256': sig, 'X-GitHub-Event': 'issues', 'X-GitHub-Delivery': delivery }));
    expect(ok.status).toBe(200);
    const again = doc('post', '/v1/webhooks/{topic}', await send({ 'X-Hub-Signature-256': sig, 'X-GitHub-Event': 'issues', 'X-GitHub-Delivery': delivery }));
    expect(again.body).toMatchObject({ id: ok.body.id, duplicate: true });
    const wrong = doc('post', '/v1/webhooks/{topic}', await send({ 'X-Hub-Signature-256': 'sha256=' + '0'.repeat(64) }));
    expect([wrong.status, wrong.body.error.code]).toEqual([401, 'SIGNATURE_INVALID']);
    const missing = doc('post', '/v1/webhooks/{topic}', await send({}));
    expect([missing.status, missing.body.error.code]).toEqual([401, 'SIGNATURE_MISSING']);
    const [stored] = await drain(topic);
    expect(stored.toString()).toContain('"body":{"action":"opened","number":1.50}}');
    expect(JSON.parse(stored.toString()).webhook).toMatchObject({ source: 'github', event: 'issues', delivery, content_type: 'application/json' });
    // A topic configured without an envelope stores the body as sent.
    watch('raw-hooks');
    await agent().post('/v1/webhooks/raw-hooks').set('Content-Type', 'application/x-www-form-urlencoded').send('a=1&b=2').expect(200);
    expect((await drain('raw-hooks')).map(String)).toEqual(['a=1&b=2']);
  });

  it('lists topics and shards, and answers liveness and readiness', async () => {
    const topics = doc('get', '/v1/topics', await agent().get('/v1/topics').expect(200));
    expect(topics.body.topics.map((x: { name: string }) => x.name)).toContain(t('single'));
    const one = doc('get', '/v1/topics/{topic}', await agent().get(`/v1/topics/${t('single')}`).expect(200));
    expect(one.body.shards.length).toBeGreaterThan(0);
    const list = doc('get', '/v1/shards', await agent().get('/v1/shards').expect(200));
    expect(list.body.shards.map((s: { address: string; breaker: string }) => [s.address, s.breaker]).sort()).toEqual(shards.map((s) => [s.http, 'closed']).sort());
    doc('get', '/healthz', await agent().get('/healthz').expect(200));
    doc('get', '/readyz', await agent().get('/readyz').expect(200));
    const metrics = doc('get', '/metrics', await agent().get('/metrics').expect(200));
    expect(metrics.text).toMatch(/^sluice_gateway_published_messages_total [1-9]\d*$/m);
    expect(metrics.text).toContain(`sluice_gateway_shard_breaker_open{shard="${shards[0].http}"} 0`);
    const spec = await agent().get('/openapi.yaml').expect(200);
    expect(spec.text).toMatch(/^openapi: 3\.1\.0/);
  });
});

describe('auth (--auth-file)', () => {
  const agent = () => request(secured.handler);
  const doc = (method: string, template: string, res: request.Response) => {
    expectDocumented(method, template, { status: res.status, headers: res.headers, body: res.body, text: res.text });
    return res;
  };

  it('needs a valid Bearer key (401) with the right scope (403)', async () => {
    const none = doc('post', '/v1/topics/{topic}/messages', await agent().post('/v1/topics/orders/messages').send('x'));
    expect([none.status, none.body.error.code, none.headers['www-authenticate']]).toEqual([401, 'UNAUTHENTICATED', 'Bearer']);
    const wrong = await agent().post('/v1/topics/orders/messages').set('Authorization', 'Bearer not-a-key').send('x');
    expect([wrong.status, wrong.body.error.code]).toEqual([401, 'UNAUTHENTICATED']);
    const scoped = doc('post', '/v1/topics/{topic}/messages', await agent().post('/v1/topics/payments/messages').set('Authorization', 'Bearer writer-key').send('x'));
    expect([scoped.status, scoped.body.error.code]).toEqual([403, 'FORBIDDEN']);
    await agent().post('/v1/topics/orders.eu/messages').set('Authorization', 'Bearer writer-key').send('x').expect(200);
    const batch = await agent().post('/v1/topics/payments/batch').set('Authorization', 'Bearer writer-key').send([{ body: 'x' }]);
    expect(batch.status).toBe(403);
    const shardsList = doc('get', '/v1/shards', await agent().get('/v1/shards').set('Authorization', 'Bearer writer-key'));
    expect(shardsList.status).toBe(403);
    await agent().get('/v1/shards').set('Authorization', 'Bearer root-key').expect(200);
    expect((await agent().get('/v1/topics')).status).toBe(401);
    await agent().get('/healthz').expect(200);
  });

  it('takes a key in ?token= on webhook URLs only; a signed topic needs only its signature', async () => {
    await agent().post('/v1/webhooks/orders-hooks?token=writer-key').send('{"a":1}').expect(200);
    expect((await agent().post('/v1/webhooks/orders-hooks?token=bad').send('{}')).status).toBe(401);
    expect((await agent().post('/v1/topics/orders/messages?token=writer-key').send('x')).status).toBe(401);
    const payload = '{"zen":"hi"}';
    const sig = 'sha256=' + createHmac('sha256', 'gh-secret').update(payload).digest('hex');
    await agent().post('/v1/webhooks/gh-events').set('X-Hub-Signature-256', sig).set('Content-Type', 'application/json').send(payload).expect(200);
  });
});

describe('overload and shard failures', () => {
  let stall: http.Server;
  let stallAddress: string;
  const pending: http.ServerResponse[] = [];
  let aborted = 0;

  beforeAll(async () => {
    stall = http.createServer((_req, res) => {
      pending.push(res);
      res.on('close', () => aborted++);
    });
    await new Promise<void>((r) => stall.listen(0, '127.0.0.1', () => r()));
    stallAddress = `127.0.0.1:${(stall.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    for (const r of pending) r.destroy();
    await new Promise((r) => stall.close(r));
  });

  it('answers 429 with Retry-After when too many publishes wait, and 503 when no shard can take them', async () => {
    const gw = createGateway({ shardHttpAddresses: [stallAddress], publisher: { placementCount: 1, maxPending: 1, maxInFlight: 1, maxBatchMessages: 10, maxBatchBytes: 1 << 20 }, shard: { connections: 2, timeoutMs: 60_000, resetMs: 1000, errorThresholdPercentage: 50, volumeThreshold: 1 } });
    await gw.start();
    const first = request(gw.handler).post('/v1/topics/t/messages').send('waits').then((r) => r);
    while (gw.publisher.pendingCount === 0) await new Promise((r) => setTimeout(r, 5));
    const res = await request(gw.handler).post('/v1/topics/t/messages').send('x');
    expectDocumented('post', '/v1/topics/{topic}/messages', { status: res.status, headers: res.headers, body: res.body });
    expect([res.status, res.body.error.code, res.headers['retry-after']]).toEqual([429, 'TOO_MANY_REQUESTS', '1']);
    for (const r of pending.splice(0)) r.destroy();
    expect((await first).status).toBe(503);
    await gw.close();

    const none = createGateway({});
    await none.start();
    const noShard = await request(none.handler).post('/v1/topics/t/messages').send('x');
    expectDocumented('post', '/v1/topics/{topic}/messages', { status: noShard.status, headers: noShard.headers, body: noShard.body });
    expect([noShard.status, noShard.body.error.code]).toEqual([503, 'NO_SHARD']);
    expect((await request(none.handler).get('/readyz')).status).toBe(503);
    await none.close();
  });

  it('aborts a shard call that times out and publishes on the other shard', async () => {
    const gw = createGateway({ shardHttpAddresses: [stallAddress, shards[0].http], shard: { connections: 4, timeoutMs: 300, resetMs: 60_000, errorThresholdPercentage: 50, volumeThreshold: 1 } });
    await gw.start();
    const before = pending.length;
    const abortedBefore = aborted;
    // Key chosen so the stalled shard ranks first for it.
    let key = 0;
    while (gw.publisher.order('to', `k${key}`)[0] !== stallAddress) key++;
    const res = await request(gw.handler).post(`/v1/topics/to/messages?key=k${key}`).send('x');
    expect([res.status, res.body.shard]).toEqual([200, shards[0].http]);
    expect(pending.length).toBe(before + 1);
    // The timed-out request was aborted on the wire: the stalled server saw its connection close.
    await waitFor(() => aborted > abortedBefore, 2000, 'the stalled request to be aborted');
    const list = await request(gw.handler).get('/v1/shards');
    expect(list.body.shards.find((s: { address: string }) => s.address === stallAddress).breaker).toBe('open');
    await gw.close();
  });
});
