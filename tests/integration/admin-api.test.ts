// The admin API (what nsqadmin does) against real processes: a lookup, two shards registered with
// it and a gateway with API keys. Aggregated counts are fresh reads of every shard's /stats;
// actions reach every shard holding the target and leave an audit record naming the key, never
// holding it; everything needs the admin scope.

import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { Consumer } from '../../client';
import { GatewayProcess, startGateway } from '../helpers/gateway';
import { Running, startProgram, tempDir, waitFor } from '../helpers/process';
import { call, ShardProcess, startShard } from '../helpers/shard';

const ADMIN_KEY = 'admin-key-0123456789abcdef';
const PUB_KEY = 'publish-key-0123456789abcdef';
const dir = tempDir('sluice-admin-');
let lookup: Running;
const shards: ShardProcess[] = [];
let gw: GatewayProcess;
const admin = { authorization: `Bearer ${ADMIN_KEY}` };
const publisher = { authorization: `Bearer ${PUB_KEY}` };

beforeAll(async () => {
  const sha = (k: string) => createHash('sha256').update(k).digest('hex');
  const keys = path.join(dir.path, 'keys.json');
  writeFileSync(keys, JSON.stringify({ keys: [{ name: 'ops', sha256: sha(ADMIN_KEY), scopes: ['admin'] }, { name: 'ci', sha256: sha(PUB_KEY), scopes: ['publish:*'] }] }));
  lookup = await startProgram(['lookup', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0', '--broadcast-address', '127.0.0.1']);
  const started = await Promise.all([1, 2].map((i) => startShard(['--broadcast-address', '127.0.0.1', '--node-id', String(i), '--lookupd-tcp-address', lookup.addresses.tcp])));
  shards.push(...started);
  gw = await startGateway(['--lookupd-http-address', lookup.addresses.http, '--lookupd-poll-interval', '200ms', '--auth-file', keys]);
  await waitFor(async () => (await gw.call('/v1/admin/shards', 'GET', undefined, admin)).json().shards?.length === 2, 10_000, 'the gateway to know both shards');
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  await Promise.all(shards.map((s) => s.stop()));
  await lookup?.stop();
  dir.remove();
});

async function shardChannel(s: ShardProcess, topic: string, channel: string): Promise<Record<string, unknown> | undefined> {
  const st = (await call(s.url(`/stats?format=json&topic=${topic}`))).json();
  return st.topics[0]?.channels.find((c: { channel_name: string }) => c.channel_name === channel);
}

describe('admin API', () => {
  it('answers the aggregated depth of a topic right after publishing to both shards', async () => {
    // two batches without keys: the first goes to one shard of the topic's home, the next to the other
    const used = new Set<string>();
    for (const n of [3, 4]) {
      const r = await gw.call('/v1/topics/adm-depth/batch', 'POST', JSON.stringify(Array.from({ length: n }, (_, i) => ({ body: `m${i}` }))), { ...publisher, 'content-type': 'application/json' });
      expect(r.status).toBe(200);
      used.add(r.json().results[0].shard);
    }
    expect(used.size).toBe(2);
    const r = await gw.call('/v1/admin/topics/adm-depth', 'GET', undefined, admin);
    expect(r.status).toBe(200);
    const t = r.json().topic;
    expect(t).toMatchObject({ name: 'adm-depth', depth: 7, total_depth: 7, message_count: 7, paused: false });
    expect(t.shards.map((s: { shard: string }) => s.shard).sort()).toEqual([...used].sort());
    // the cluster list has it too, and every shard answered
    const all = (await gw.call('/v1/admin/topics', 'GET', undefined, admin)).json();
    expect(all.topics.find((x: { name: string }) => x.name === 'adm-depth').depth).toBe(7);
    expect(all.shards.every((s: { ok: boolean }) => s.ok)).toBe(true);
  });

  it('pauses a channel on every shard holding it, logs an audit record, and refuses keys without admin', async () => {
    const topic = 'adm-pause';
    for (const s of shards) expect((await call(s.url(`/topic/create?topic=${topic}`), 'POST')).status).toBe(200);
    await waitFor(async () => (await gw.call(`/v1/admin/topics/${topic}`, 'GET', undefined, admin)).json().topic?.shards.length === 2, 5000, 'the topic on both shards');
    const create = await gw.call(`/v1/admin/topics/${topic}/channels/work/create`, 'POST', undefined, admin);
    expect(create.status).toBe(200);
    expect(create.json().steps).toHaveLength(2);

    // no key, a key without admin, a cross-site browser request: refused, nothing changes
    expect((await gw.call(`/v1/admin/topics/${topic}/channels/work/pause`, 'POST')).status).toBe(401);
    const forbidden = await gw.call(`/v1/admin/topics/${topic}/channels/work/pause`, 'POST', undefined, publisher);
    expect(forbidden.status).toBe(403);
    expect(forbidden.json().error.code).toBe('FORBIDDEN');
    expect((await gw.call(`/v1/admin/topics/${topic}/channels/work/pause`, 'POST', undefined, { ...admin, origin: 'http://evil.example' })).status).toBe(403);
    expect((await gw.call('/v1/admin/topics', 'GET', undefined, publisher)).status).toBe(403);
    for (const s of shards) expect((await shardChannel(s, topic, 'work'))?.paused).toBe(false);

    const r = await gw.call(`/v1/admin/topics/${topic}/channels/work/pause`, 'POST', undefined, admin);
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ action: 'channel.pause', topic, channel: 'work', result: 'ok' });
    for (const s of shards) expect((await shardChannel(s, topic, 'work'))?.paused).toBe(true);
    const view = (await gw.call(`/v1/admin/topics/${topic}/channels/work`, 'GET', undefined, admin)).json();
    expect(view.channel).toMatchObject({ name: 'work', paused: true });
    expect(view.channel.paused_shards).toHaveLength(2);

    const rec = await waitFor(() => gw.logs.find((l) => l.audit === true && l.action === 'channel.pause'), 5000, 'the audit record');
    expect(rec).toMatchObject({ audit: true, who: 'ops', action: 'channel.pause', target: { topic, channel: 'work' }, result: 'ok' });
    expect((rec.steps as unknown[]).length).toBe(2);
    expect(gw.stderr()).not.toContain(ADMIN_KEY);
    expect(gw.stderr()).not.toContain(PUB_KEY);

    // the channel's consumers are the shards' TCP clients, as /stats lists them
    const consumer = new Consumer({ topic, channel: 'work', nsqdTcpAddresses: [shards[0].addresses.tcp], userAgent: 'admin-test/1' });
    await consumer.start();
    try {
      const withClient = await waitFor(async () => {
        const c = (await gw.call(`/v1/admin/topics/${topic}/channels/work`, 'GET', undefined, admin)).json().channel;
        return c.client_count === 1 ? c : null;
      }, 5000, 'the consumer in the channel view');
      const row = withClient.shards.find((r: { shard: string }) => r.shard === shards[0].http);
      expect(row.clients).toEqual([expect.objectContaining({ user_agent: 'admin-test/1', remote_address: expect.stringMatching(/^127\.0\.0\.1:/) })]);
    } finally {
      await consumer.close();
    }

    // a channel nobody holds: 404, and the action is still audited as not_found
    const missing = await gw.call(`/v1/admin/topics/${topic}/channels/nope/pause`, 'POST', undefined, admin);
    expect(missing.status).toBe(404);
    expect(missing.json().error.code).toBe('CHANNEL_NOT_FOUND');
  });

  it('passes GET /stats, /info, /ping and /metrics through to a known shard only', async () => {
    const s = shards[0];
    const stats = await gw.call(`/v1/admin/shards/${s.http}/stats?format=json&topic=adm-depth`, 'GET', undefined, admin);
    expect(stats.status).toBe(200);
    expect(stats.json()).toEqual(expect.objectContaining({ version: expect.any(String), health: 'OK' }));
    expect((await gw.call(`/v1/admin/shards/${s.http}/ping`, 'GET', undefined, admin)).text).toBe('OK');
    expect((await gw.call(`/v1/admin/shards/${s.http}/info`, 'GET', undefined, admin)).json().http_port).toBe(Number(s.http.split(':')[1]));
    expect((await gw.call(`/v1/admin/shards/${s.http}/metrics`, 'GET', undefined, admin)).text).toContain('# TYPE');
    expect((await gw.call(`/v1/admin/shards/${s.http}/config`, 'GET', undefined, admin)).status).toBe(404);
    expect((await gw.call(`/v1/admin/shards/127.0.0.1:1/stats`, 'GET', undefined, admin)).json().error.code).toBe('SHARD_NOT_FOUND');
    expect((await gw.call(`/v1/admin/shards/${s.http}/stats`, 'POST', undefined, admin)).status).toBe(404);
    expect((await gw.call(`/v1/admin/shards/${s.http}/stats`, 'GET', undefined, publisher)).status).toBe(403);

    const list = (await gw.call('/v1/admin/shards', 'GET', undefined, admin)).json().shards;
    expect(list[0]).toMatchObject({ ok: true, breaker: 'closed', health: 'OK', version: expect.any(String), uptime_s: expect.any(Number) });
    const lookups = (await gw.call('/v1/admin/lookups', 'GET', undefined, admin)).json().lookups;
    expect(lookups).toEqual([expect.objectContaining({ address: lookup.addresses.http, ok: true, nodes: 2, last_poll_ok: true })]);
  });

  it('serves the pages without a key, with a strict Content-Security-Policy', async () => {
    const redirect = await gw.call('/admin');
    expect(redirect.status).toBe(302);
    expect(redirect.headers.location).toBe('/admin/');
    const page = await gw.call('/admin/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(String(page.headers['content-security-policy'])).toContain("script-src 'self'");
    for (const f of ['admin.js', 'admin.css']) expect((await gw.call(`/admin/${f}`)).status).toBe(200);
    expect((await gw.call('/admin/keys.json')).status).toBe(404);
    expect((await gw.call('/admin/..%2Fapp.ts')).status).toBe(404);
  });

  it('streams snapshots over SSE from one shared poll, and tombstones a shard at the lookup', async () => {
    const ac = new AbortController();
    const res = await request(gw.url('/v1/admin/events'), { headers: admin, signal: ac.signal });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/event-stream');
    let text = '';
    const snapshot = await new Promise<{ topics: { name: string; depth: number; rate: number | null }[] }>((resolve, reject) => {
      res.body.on('data', (d: Buffer) => {
        text += d.toString();
        const m = /event: snapshot\ndata: (.*)\n\n/.exec(text);
        if (m) resolve(JSON.parse(m[1]));
      });
      res.body.on('error', reject);
    });
    ac.abort();
    expect(text).toContain('event: hello');
    expect(snapshot.topics.find((t) => t.name === 'adm-depth')?.depth).toBe(7);

    const target = shards[1].http;
    const r = await gw.call(`/v1/admin/topics/adm-depth/tombstone?shard=${target}`, 'POST', undefined, admin);
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ action: 'topic.tombstone', result: 'ok', steps: [{ target: lookup.addresses.http, ok: true }] });
    const nodes = (await call(`http://${lookup.addresses.http}/nodes`)).json().producers as { http_port: number; topics: string[]; tombstones: boolean[] }[];
    const node = nodes.find((n) => `127.0.0.1:${n.http_port}` === target)!;
    expect(node.tombstones[node.topics.indexOf('adm-depth')]).toBe(true);
    expect((await gw.call(`/v1/admin/topics/adm-depth/tombstone?shard=127.0.0.1:1`, 'POST', undefined, admin)).status).toBe(404);
  });
});
