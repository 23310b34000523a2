// API keys on a real gateway process: missing, malformed, unknown, expired and wrong-scope keys
// are refused (401/403); per-key rate and concurrency limits answer 429 with Retry-After without
// touching other keys; and no key, token or Authorization value ever reaches a log line.

import net from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { startShard, ShardProcess } from '../helpers/shard';
import { startGateway, GatewayProcess } from '../helpers/gateway';
import { tempDir, waitFor } from '../helpers/process';

const hex = (k: string): string => createHash('sha256').update(k).digest('hex');
// distinctive values, so a grep of the logs cannot miss them
const KEYS = {
  orders: 'sk_orders_7f3a9c1e5b2d4086a1c3e5f7',
  expired: 'sk_expired_0b1d3f5a7c9e2b4d6f8a0c2e',
  other: 'sk_other_4c6e8a0b2d4f6a8c0e2b4d6f8',
  slow: 'sk_slow_9e8d7c6b5a4f3e2d1c0b9a8f7e',
  admin: 'sk_admin_1a2b3c4d5e6f7a8b9c0d1e2f3a',
  stats: 'sk_stats_6d5c4b3a2f1e0d9c8b7a6f5e4d',
};
const RECEIPT_SECRET = 'receipt-secret-5d1c9e7a3b2f4e6d8c0a';
const RATE = 5;

describe('API keys and per-key limits', () => {
  const dir = tempDir();
  let shard: ShardProcess;
  let gw: GatewayProcess;
  const bearer = (k: string) => ({ authorization: `Bearer ${k}` });
  const pub = (topic: string, headers: Record<string, string>, body = 'x') => gw.call(`/v1/topics/${encodeURIComponent(topic)}/messages`, 'POST', body, headers);

  beforeAll(async () => {
    const authFile = path.join(dir.path, 'keys.json');
    writeFileSync(
      authFile,
      JSON.stringify({
        keys: [
          { name: 'orders-app', sha256: hex(KEYS.orders), scopes: ['publish:orders'] },
          { name: 'old-app', sha256: hex(KEYS.expired), scopes: ['publish:orders'], expires_at: '2020-01-01T00:00:00Z' },
          { name: 'other-app', sha256: hex(KEYS.other), scopes: ['publish:orders'], expires_at: '2999-01-01T00:00:00Z' },
          { name: 'slow-app', sha256: hex(KEYS.slow), scopes: ['publish:orders'] },
          { name: 'ops', sha256: hex(KEYS.admin), scopes: ['admin'] },
          { name: 'monitoring', sha256: hex(KEYS.stats), scopes: ['stats'] },
        ],
      }),
    );
    shard = await startShard([], path.join(dir.path, 'shard'));
    gw = await startGateway([
      '--shard-http-address', shard.http,
      '--auth-file', authFile,
      '--rate-limit', String(RATE), '--rate-burst', String(RATE), '--key-concurrency', '1',
      '--receipt-secret', RECEIPT_SECRET,
      '--log-level', 'debug', // every request logged: the strictest case for leaks
    ]);
  });
  afterAll(async () => {
    await gw?.stop();
    await shard?.stop();
    dir.remove();
  });

  it('refuses missing, malformed and unknown keys with 401 and WWW-Authenticate', async () => {
    const cases: Record<string, string>[] = [
      {},
      { authorization: '' },
      { authorization: 'Bearer' },
      { authorization: `Basic ${Buffer.from(`u:${KEYS.orders}`).toString('base64')}` },
      { authorization: `Bearer ${KEYS.orders} extra` },
      { authorization: `Token ${KEYS.orders}` },
      { authorization: `Bearer ${KEYS.orders}x` },
      { authorization: `Bearer ${'A'.repeat(8000)}` },
      { authorization: 'Bearer sk_unknown_key' },
    ];
    for (const h of cases) {
      const r = await pub('orders', h);
      expect([h.authorization?.slice(0, 30), r.status, r.json().error.code]).toEqual([h.authorization?.slice(0, 30), 401, 'UNAUTHENTICATED']);
      expect(r.headers['www-authenticate']).toBe('Bearer');
    }
    // a key in the query string is not accepted for publishing
    expect((await gw.call(`/v1/topics/orders/messages?token=${KEYS.orders}`, 'POST', 'x')).status).toBe(401);
  });

  it('refuses an expired key with 401 (reason: expired); an unexpired one works', async () => {
    const r = await pub('orders', bearer(KEYS.expired));
    expect([r.status, r.json().error.code, r.json().error.details.reason]).toEqual([401, 'UNAUTHENTICATED', 'expired']);
    expect((await pub('orders', bearer(KEYS.other))).status).toBe(200);
  });

  it('a key scoped to orders may not publish to orders_private (403), nor to orders.x or an admin endpoint', async () => {
    expect((await pub('orders', bearer(KEYS.orders))).status).toBe(200);
    for (const t of ['orders_private', 'orders.x', 'xorders', 'orders#ephemeral']) {
      const r = await pub(t, bearer(KEYS.orders));
      expect([t, r.status, r.json().error.code]).toEqual([t, 403, 'FORBIDDEN']);
    }
    const batch = await gw.call('/v1/topics/orders_private/batch', 'POST', '[{"body":"a"}]', { ...bearer(KEYS.orders), 'content-type': 'application/json' });
    expect(batch.status).toBe(403);
    const admin = await gw.call('/v1/shards', 'GET', undefined, bearer(KEYS.orders));
    expect([401, 403, 200]).toContain(admin.status); // listing shards may be open to any key; never a 5xx
    // admin may publish anywhere
    expect((await pub('orders_private', bearer(KEYS.admin))).status).toBe(200);
  });

  it('a read-only stats key reads /metrics, /v1/shards and the admin views, but cannot act, publish or consume', async () => {
    const k = bearer(KEYS.stats);
    for (const path of ['/metrics', '/v1/shards', '/v1/admin/cluster', '/v1/admin/topics', '/v1/admin/shards', `/v1/admin/shards/${shard.http}/stats?format=json`]) {
      const r = await gw.call(path, 'GET', undefined, k);
      expect([path, r.status]).toEqual([path, 200]);
    }
    const act = await gw.call('/v1/admin/topics/orders/pause', 'POST', undefined, k);
    expect([act.status, act.json().error.code, act.json().error.details.need]).toEqual([403, 'FORBIDDEN', 'admin']);
    expect((await pub('orders', k)).status).toBe(403);
    expect((await gw.call('/v1/topics/orders/channels/c/messages?wait_ms=0', 'POST', undefined, k)).status).toBe(403);
    // a publish-only key may not read them
    const denied = await gw.call('/v1/admin/topics', 'GET', undefined, bearer(KEYS.orders));
    expect([denied.status, denied.json().error.details.need]).toEqual([403, 'stats']);
    expect((await gw.call('/metrics', 'GET', undefined, bearer(KEYS.orders))).status).toBe(403);
  });

  it('rate limit per key: 429 with Retry-After past the burst; other keys unaffected', async () => {
    await new Promise((r) => setTimeout(r, 1100)); // buckets refill after the tests above
    const results: number[] = [];
    const retryAfter: string[] = [];
    for (let i = 0; i < RATE * 2; i++) {
      const r = await pub('orders', bearer(KEYS.orders));
      results.push(r.status);
      if (r.status === 429) {
        expect(r.json().error).toMatchObject({ code: 'RATE_LIMITED', details: { limit: 'rate' } });
        retryAfter.push(String(r.headers['retry-after']));
      }
    }
    expect(results.filter((s) => s === 200).length).toBeGreaterThanOrEqual(RATE);
    expect(results.filter((s) => s === 200).length).toBeLessThanOrEqual(RATE + 1); // refill while the loop runs
    expect(results.filter((s) => s === 429).length).toBeGreaterThanOrEqual(RATE - 1);
    for (const v of retryAfter) expect(Number(v)).toBeGreaterThanOrEqual(1);
    // another key still has its whole budget
    for (let i = 0; i < RATE; i++) expect((await pub('orders', bearer(KEYS.other))).status).toBe(200);
    // and the limited key recovers after Retry-After
    await waitFor(async () => (await pub('orders', bearer(KEYS.orders))).status === 200, 3000, 'the rate limit to lift');
  });

  it('concurrency limit per key: a second request in progress gets 429; other keys unaffected', async () => {
    const [host, port] = gw.http.split(':');
    // a publish whose body never finishes holds the key's one slot
    const slow = net.connect(Number(port), host);
    slow.on('error', () => undefined);
    slow.write(`POST /v1/topics/orders/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.slow}\r\nContent-Length: 10\r\n\r\nabc`);
    try {
      const blocked = await waitFor(async () => {
        const r = await pub('orders', bearer(KEYS.slow));
        return r.status === 429 ? r : null;
      }, 3000, 'the concurrency limit');
      expect(blocked.json().error).toMatchObject({ code: 'RATE_LIMITED', details: { limit: 'concurrency' } });
      expect(blocked.headers['retry-after']).toBe('1');
      expect((await pub('orders', bearer(KEYS.admin))).status).toBe(200);
    } finally {
      slow.end('defghij'); // the body completes: the slot is free again
    }
    await waitFor(async () => (await pub('orders', bearer(KEYS.slow))).status === 200, 3000, 'the slot to be released');
    slow.destroy();
  });

  it('no API key, receipt secret or Authorization value appears in any log line', async () => {
    // one more request with a secret in the query string, which must be redacted if logged
    await gw.call(`/v1/topics/orders/messages?token=${KEYS.admin}`, 'POST', 'x', bearer(KEYS.orders));
    await new Promise((r) => setTimeout(r, 200));
    const logs = [gw.stderr(), gw.stdout(), shard.stderr(), shard.stdout()].join('\n');
    expect(logs.length).toBeGreaterThan(0);
    for (const [name, secret] of Object.entries({ ...KEYS, receipt: RECEIPT_SECRET })) {
      expect([name, logs.includes(secret)]).toEqual([name, false]);
      expect([name, logs.includes(hex(secret))]).toEqual([name, false]);
    }
    expect(logs).not.toMatch(/Bearer\s+\S/i);
    expect(logs).not.toMatch(/"authorization"\s*:\s*"[^"[]/i);
  });
});
