// The gateway as real processes: one lookup, two shards registering with it, two gateways.
// Bodies are read back from the shards through their lease API; answers are checked against
// openapi.yaml. Then the faults: a shard killed under load, every lookup down.

import { createHash, createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { GatewayProcess, startGateway } from '../helpers/gateway';
import { expectDocumented } from '../helpers/openapi';
import { Running, startProgram, tempDir, waitFor } from '../helpers/process';
import { call, ShardProcess, startShard } from '../helpers/shard';

let lookup: Running;
const shards: ShardProcess[] = [];
let gwA: GatewayProcess;
let gwB: GatewayProcess;

const shardArgs = (i: number) => ['--broadcast-address', '127.0.0.1', '--node-id', String(i + 1), '--lookupd-tcp-address', lookup.addresses.tcp];
const gatewayArgs = () => ['--lookupd-http-address', lookup.addresses.http, '--lookupd-poll-interval', '200ms', '--breaker-reset', '500ms', '--shard-timeout', '2s', '--breaker-volume', '1'];

beforeAll(async () => {
  lookup = await startProgram(['lookup', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0']);
  for (let i = 0; i < 2; i++) shards.push(await startShard(shardArgs(i)));
  [gwA, gwB] = [await startGateway(gatewayArgs()), await startGateway(gatewayArgs())];
  for (const gw of [gwA, gwB]) await waitFor(async () => (await gw.call('/readyz')).json().shards === 2, 10_000, 'gateway to see both shards');
});

afterAll(async () => {
  await Promise.all([gwA?.stop(), gwB?.stop()]);
  for (const s of shards) await s.stop();
  await lookup?.stop();
});

/** Creates the topic and a channel `c` on both shards, and waits until both gateways see them. */
async function prepare(topic: string): Promise<void> {
  for (const s of shards) {
    await call(s.url(`/topic/create?topic=${topic}`), 'POST');
    await call(s.url(`/channel/create?topic=${topic}&channel=c`), 'POST');
  }
  for (const gw of [gwA, gwB]) await waitFor(async () => (await gw.call(`/v1/topics/${topic}`)).json().shards?.length === 2, 10_000, `${topic} on both shards`);
}

async function readAll(topic: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const s of shards) {
    const r = await call(s.url(`/sluice/lease/pull?topic=${topic}&channel=c&max=5000&wait_ms=100`), 'POST');
    for (const m of r.json().messages as { body: string }[]) out.push(Buffer.from(m.body, 'base64'));
  }
  return out;
}

function documented(method: string, template: string, r: { status: number; headers: Record<string, unknown>; text: string }) {
  expectDocumented(method, template, { status: r.status, headers: r.headers, text: r.text });
}

describe('gateway processes over a lookup and two shards', () => {
  it('publishes single, binary, deferred, JSON batch and NDJSON messages, byte for byte', async () => {
    await prepare('gc-pub');
    const binary = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7) & 0xff));
    const one = await gwA.call('/v1/topics/gc-pub/messages', 'POST', binary, { 'content-type': 'application/octet-stream' });
    documented('post', '/v1/topics/{topic}/messages', one);
    expect(one.status).toBe(200);
    expect(shards.map((s) => s.http)).toContain(one.json().shard);
    const deferred = await gwA.call('/v1/topics/gc-pub/messages?defer=300', 'POST', 'deferred');
    expect(deferred.status).toBe(200);
    const batch = await gwA.call('/v1/topics/gc-pub/batch', 'POST', JSON.stringify([{ body: 'b1' }, { body: { n: 2 } }]), { 'content-type': 'application/json' });
    documented('post', '/v1/topics/{topic}/batch', batch);
    expect(batch.json().count).toBe(2);
    const nd = await gwB.call('/v1/topics/gc-pub/batch', 'POST', '{"body":"n1"}\n{"body_base64":"/wA="}\n', { 'content-type': 'application/x-ndjson' });
    expect(nd.json().count).toBe(2);
    const now = (await readAll('gc-pub')).map((b) => b.toString('hex')).sort();
    expect(now).toEqual([binary, Buffer.from('b1'), Buffer.from('{"n":2}'), Buffer.from('n1'), Buffer.from([0xff, 0])].map((b) => b.toString('hex')).sort());
    const later = await waitFor(async () => {
      const got = await readAll('gc-pub');
      return got.length > 0 ? got : null;
    }, 5000, 'the deferred message');
    expect(later.map(String)).toEqual(['deferred']);
  });

  it('keeps a routing key on one shard', async () => {
    await prepare('gc-keyed');
    for (const key of ['alice', 'bob', 'carol']) {
      const seen = new Set<string>();
      for (let i = 0; i < 8; i++) seen.add((await (i % 2 ? gwA : gwB).call(`/v1/topics/gc-keyed/messages?key=${key}`, 'POST', 'm')).json().shard);
      expect(seen.size).toBe(1);
    }
  });

  it('publishes a repeated Idempotency-Key once, whichever gateway receives it', async () => {
    await prepare('gc-idem');
    const a = await gwA.call('/v1/topics/gc-idem/messages', 'POST', 'pay invoice 17', { 'idempotency-key': 'invoice-17' });
    const b = await gwB.call('/v1/topics/gc-idem/messages', 'POST', 'pay invoice 17', { 'idempotency-key': 'invoice-17' });
    documented('post', '/v1/topics/{topic}/messages', b);
    expect(a.json().duplicate).toBe(false);
    expect(b.json()).toEqual({ ...a.json(), duplicate: true });
    expect((await readAll('gc-idem')).map(String)).toEqual(['pay invoice 17']);
  });

  it('keeps publishing when a shard is killed under load; the breaker opens, then closes when it is back', async () => {
    await prepare('gc-load');
    const victim = shards[1];
    const port = victim.http.split(':')[1];
    let ok = 0;
    const failed: string[] = [];
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const r = await gwA.call('/v1/topics/gc-load/messages', 'POST', 'x').catch((e: Error) => ({ status: 0, text: e.message }));
        if (r.status === 200) ok++;
        else failed.push(`${r.status} ${r.text}`);
      }
    };
    const load = Promise.all(Array.from({ length: 16 }, worker));
    try {
      await waitFor(() => ok > 300, 10_000, 'load to start');
      await victim.kill9();
      const okAtKill = ok;
      await waitFor(() => gwA.logs.some((l) => l.message === 'shard breaker open' && l.shard === victim.http), 10_000, 'the breaker to open');
      await waitFor(() => ok > okAtKill + 500, 10_000, 'publishes to go on');
    } finally {
      stop = true;
      await load;
    }
    expect(failed).toEqual([]);

    shards[1] = await startShard([...shardArgs(1), '--http-address', `127.0.0.1:${port}`], victim.dataPath);
    await waitFor(async () => {
      await gwA.call('/v1/topics/gc-load/messages', 'POST', 'probe');
      return gwA.logs.some((l) => l.message === 'shard breaker closed' && l.shard === victim.http);
    }, 15_000, 'the breaker to close again');
    const list = await gwA.call('/v1/shards');
    documented('get', '/v1/shards', list);
    expect(list.json().shards.find((s: { address: string }) => s.address === victim.http).breaker).toBe('closed');
  });

  it('keeps publishing to known topics while every lookup is down', async () => {
    await prepare('gc-nolookup');
    await lookup.stop();
    await waitFor(async () => (await gwA.call('/readyz')).json().lookups?.[lookup.addresses.http] === false, 5000, 'the gateway to notice');
    for (let i = 0; i < 20; i++) expect((await gwA.call('/v1/topics/gc-nolookup/messages', 'POST', `m${i}`)).status).toBe(200);
    expect((await gwB.call('/v1/topics/gc-nolookup/batch', 'POST', '[{"body":"b"}]', { 'content-type': 'application/json' })).status).toBe(200);
    expect((await gwA.call('/readyz')).status).toBe(200);
    expect((await readAll('gc-nolookup')).length).toBe(21);
  });
});

describe('a gateway with an auth file and webhook secrets', () => {
  it('answers 401/403 and never writes keys, tokens or secrets to its logs', async () => {
    const dir = tempDir('sluice-gw-auth-');
    const key = 'sk_live_do_not_log_7f3a9c';
    const secret = 'whsec_never_in_logs_41d2';
    writeFileSync(path.join(dir.path, 'auth.json'), JSON.stringify({ keys: [{ name: 'ci', sha256: createHash('sha256').update(key).digest('hex'), scopes: ['publish:ok-*'] }] }));
    writeFileSync(path.join(dir.path, 'hooks.json'), JSON.stringify({ topics: { 'ok-gh': { provider: 'github', secret_env: 'GH_HOOK_SECRET' } } }));
    const gw = await startGateway(
      ['--shard-http-address', shards[0].http, '--auth-file', path.join(dir.path, 'auth.json'), '--webhook-config', path.join(dir.path, 'hooks.json'), '--log-level', 'debug'],
      { GH_HOOK_SECRET: secret },
    );
    try {
      const auth = { authorization: `Bearer ${key}` };
      expect((await gw.call('/v1/topics/ok-1/messages', 'POST', 'x', auth)).status).toBe(200);
      const forbidden = await gw.call('/v1/topics/other/messages', 'POST', 'x', auth);
      documented('post', '/v1/topics/{topic}/messages', forbidden);
      expect(forbidden.json().error.code).toBe('FORBIDDEN');
      const unauth = await gw.call('/v1/topics/ok-1/messages', 'POST', 'x', { authorization: `Bearer ${key}x` });
      expect([unauth.status, unauth.json().error.code]).toEqual([401, 'UNAUTHENTICATED']);
      expect((await gw.call(`/v1/webhooks/ok-plain?token=${key}`, 'POST', '{}')).status).toBe(200);
      const body = '{"zen":"x"}';
      const sig = 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
      expect((await gw.call('/v1/webhooks/ok-gh', 'POST', body, { 'x-hub-signature-256': sig })).status).toBe(200);
      expect((await gw.call('/v1/webhooks/ok-gh', 'POST', body, { 'x-hub-signature-256': sig.replace(/.$/, '0') })).json().error.code).toMatch(/SIGNATURE_INVALID/);
      await gw.stop();
      const logs = gw.stderr();
      // Requests are logged at debug level, with the key and the ?token= masked.
      expect(logs).toContain('"url":"/v1/webhooks/ok-plain?token=[REDACTED]"');
      expect(logs).toContain('"authorization":"[REDACTED]"');
      expect(logs).not.toContain(key);
      expect(logs).not.toContain(secret);
    } finally {
      await gw.stop();
      dir.remove();
    }
  });
});
