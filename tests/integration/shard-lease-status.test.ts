// The two lease API additions the gateway's consuming side relies on: a read-only status of
// leases (how a gateway learns that a stream's messages were settled through another gateway),
// and requeue `undelivered` (a delivery nobody saw does not count as an attempt).

import { InProcessShard, startInProcessShard } from '../helpers/gateway';
import { call } from '../helpers/shard';

let shard: InProcessShard;
const L = '/sluice/lease';
const u = (p: string) => `http://${shard.http}${p}`;
const json = { 'content-type': 'application/json' };

beforeAll(async () => {
  shard = await startInProcessShard();
});
afterAll(async () => {
  await shard?.close();
});

async function pull(topic: string): Promise<{ id: string; token: string; attempts: number }> {
  const r = await call(u(`${L}/pull?topic=${topic}&channel=c&lease_ms=60000&wait_ms=2000`), 'POST');
  return r.json().messages[0];
}

describe('lease API extensions', () => {
  it('status tells whether a lease is still out with its token, and changes nothing', async () => {
    await call(u('/channel/create?topic=st&channel=c'), 'POST');
    await call(u('/pub?topic=st'), 'POST', 'x');
    const m = await pull('st');
    const body = JSON.stringify({ leases: [{ id: m.id, token: m.token }, { id: m.id, token: 'stale' }, { id: '0000000000000000', token: 'x' }] });
    const r = (await call(u(`${L}/status?topic=st&channel=c`), 'POST', body, json)).json();
    expect(r.results.map((x: { status: string }) => x.status)).toEqual(['OK', 'STALE_LEASE', 'NOT_IN_FLIGHT']);
    expect(r.results[0].lease_ms).toBeGreaterThan(55_000);
    expect((await call(u(`${L}/finish?topic=st&channel=c&id=${m.id}&token=${m.token}`), 'POST')).status).toBe(200);
    const after = (await call(u(`${L}/status?topic=st&channel=c&id=${m.id}&token=${m.token}`), 'POST')).json();
    expect(after.message).toBe('NOT_IN_FLIGHT');
  });

  it('requeue with undelivered: true does not count the delivery as an attempt, nor as a requeue', async () => {
    await call(u('/channel/create?topic=ud&channel=c'), 'POST');
    await call(u('/pub?topic=ud'), 'POST', 'y');
    const first = await pull('ud');
    expect(first.attempts).toBe(1);
    const back = JSON.stringify({ leases: [{ id: first.id, token: first.token, undelivered: true }] });
    expect((await call(u(`${L}/requeue?topic=ud&channel=c`), 'POST', back, json)).json().results[0].status).toBe('OK');
    const again = await pull('ud');
    expect(again).toMatchObject({ id: first.id, attempts: 1 });
    await call(u(`${L}/requeue?topic=ud&channel=c&id=${again.id}&token=${again.token}`), 'POST');
    expect((await pull('ud')).attempts).toBe(2);
    const ch = (await call(u('/stats?format=json&topic=ud'))).json().topics[0].channels[0];
    expect(ch.requeue_count).toBe(1);
    const bad = JSON.stringify({ leases: [{ id: first.id, token: first.token, undelivered: 'yes' }] });
    expect((await call(u(`${L}/requeue?topic=ud&channel=c`), 'POST', bad, json)).status).toBe(400);
  });
});
