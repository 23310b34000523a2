// HTTP consumers reported to the shards, with real processes: a lookup, two shards, two gateways
// reporting every 200 ms. An SSE stream through gateway A and a long-poll through gateway B on one
// channel show on both shards' /stats and in the admin API's channel view, one entry per gateway;
// closed, they are gone while the gateways keep running; a gateway shut down cleanly clears at
// once; one killed with SIGKILL expires after the TTL. The shard's report route refuses bad
// reports with a 4xx naming the problem and stays up.

import os from 'node:os';
import { EventSource } from 'eventsource';
import { request } from 'undici';
import { GatewayProcess, startGateway } from '../helpers/gateway';
import { expectDocumented } from '../helpers/openapi';
import { Running, startProgram, waitFor } from '../helpers/process';
import { call, ShardProcess, startShard } from '../helpers/shard';
import { parsePrometheus, sampleValue } from '../helpers/prom';

const SECRET = 'http-consumers-receipt-secret-0123456789';
const TOPIC = 'hc-orders';
const CHANNEL = 'billing';

let lookup: Running;
const shards: ShardProcess[] = [];
let gwA: GatewayProcess;
let gwB: GatewayProcess;
const sources: EventSource[] = [];
const polls: AbortController[] = [];

interface Entry {
  gateway_id: string;
  gateway_address: string;
  streams: number;
  long_polls: number;
  in_flight: number;
  held: number;
  age_ms: number;
}

const gatewayArgs = (...extra: string[]) => ['--lookupd-http-address', lookup.addresses.http, '--lookupd-poll-interval', '200ms', '--receipt-secret', SECRET, '--consumer-report-interval', '200ms', ...extra];

beforeAll(async () => {
  lookup = await startProgram(['lookup', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0']);
  for (let i = 0; i < 2; i++) shards.push(await startShard(['--broadcast-address', '127.0.0.1', '--node-id', String(i + 1), '--lookupd-tcp-address', lookup.addresses.tcp]));
  [gwA, gwB] = await Promise.all([startGateway(gatewayArgs('--gateway-id', 'gw-a')), startGateway(gatewayArgs())]);
  for (const gw of [gwA, gwB]) await waitFor(async () => (await gw.call('/readyz')).json().shards === 2, 10_000, 'gateway to see both shards');
}, 30_000);

afterAll(async () => {
  for (const s of sources) s.close();
  for (const p of polls) p.abort();
  await Promise.all([gwA?.stop(), gwB?.stop()]);
  for (const s of shards) await s.stop();
  await lookup?.stop();
});

async function entries(s: ShardProcess): Promise<{ list: Entry[]; count: number } | null> {
  const st = (await call(s.url(`/stats?format=json&topic=${TOPIC}`))).json();
  const c = st.topics[0]?.channels.find((x: { channel_name: string }) => x.channel_name === CHANNEL);
  return c ? { list: c.http_consumers as Entry[], count: c.http_consumer_count as number } : null;
}

async function openStream(gw: GatewayProcess): Promise<EventSource> {
  const es = new EventSource(gw.url(`/v1/topics/${TOPIC}/channels/${CHANNEL}/stream?max_in_flight=5`));
  sources.push(es);
  await new Promise<void>((resolve, reject) => {
    es.onopen = () => resolve();
    es.onerror = (e) => reject(new Error(`stream failed: ${String(e.message)}`));
  });
  return es;
}

/** A long-poll left waiting (nothing is published): resolves when it ends; abort() hangs it up. */
function longPoll(gw: GatewayProcess): AbortController {
  const ac = new AbortController();
  polls.push(ac);
  request(gw.url(`/v1/topics/${TOPIC}/channels/${CHANNEL}/messages?wait_ms=25000`), { method: 'POST', signal: ac.signal }).then(
    (r) => r.body.dump(),
    () => undefined,
  );
  return ac;
}

const bId = () => `${os.hostname()}:${gwB.http.split(':').pop()}`;
const byId = <T extends { gateway_id: string }>(list: T[]): Record<string, T> => Object.fromEntries(list.map((e) => [e.gateway_id, e]));

describe('HTTP consumers on the shards and in the admin', () => {
  it('lists an SSE stream on gateway A and a long-poll on gateway B on every shard of the topic, and in the admin channel view', async () => {
    const es = await openStream(gwA);
    const poll = longPoll(gwB);
    for (const s of shards) {
      const got = await waitFor(async () => {
        const e = await entries(s);
        return e && e.list.length === 2 ? e : null;
      }, 10_000, `both gateways on ${s.http}`);
      const m = byId(got.list);
      expect(m['gw-a']).toMatchObject({ gateway_address: gwA.http, streams: 1, long_polls: 0, in_flight: 0 });
      expect(m[bId()]).toMatchObject({ gateway_address: gwB.http, streams: 0, long_polls: 1 });
      expect(got.count).toBe(2);
      // nsqd's own fields are still there, untouched
      const st = (await call(s.url(`/stats?format=json&topic=${TOPIC}`))).json();
      expect(st.topics[0].channels[0]).toMatchObject({ channel_name: CHANNEL, client_count: 0, clients: [], depth: 0 });
    }

    // the admin API (through either gateway): one row per gateway, over both shards, counted once
    const answer = await gwB.call(`/v1/admin/topics/${TOPIC}/channels/${CHANNEL}`);
    expectDocumented('get', '/v1/admin/topics/{topic}/channels/{channel}', { status: answer.status, headers: answer.headers, text: answer.text });
    const view = answer.json().channel;
    expect(view.http_consumer_count).toBe(2);
    const rows = byId(view.http_consumers as (Entry & { shards: string[] })[]);
    expect(Object.keys(rows).sort()).toEqual(['gw-a', bId()].sort());
    expect(rows['gw-a']).toMatchObject({ streams: 1, long_polls: 0, shards: expect.arrayContaining(shards.map((s) => s.http)) });
    expect(rows[bId()]).toMatchObject({ streams: 0, long_polls: 1 });
    expect(rows['gw-a'].shards).toHaveLength(2);
    expect(view.shards.map((r: { http_consumer_count: number }) => r.http_consumer_count)).toEqual([2, 2]);
    // the cluster snapshot (what the topic page draws) counts them too
    const topics = (await gwA.call('/v1/admin/topics')).json().topics;
    expect(topics.find((t: { name: string }) => t.name === TOPIC).channels[0].http_consumer_count).toBe(2);

    // the shards' /metrics say the same
    for (const s of shards) {
      const samples = parsePrometheus((await call(s.url('/metrics'))).text).samples;
      expect(sampleValue(samples, 'sluice_channel_http_streams', { topic: TOPIC, channel: CHANNEL })).toBe(1);
      expect(sampleValue(samples, 'sluice_channel_http_long_polls', { topic: TOPIC, channel: CHANNEL })).toBe(1);
    }

    // and each gateway counts the reports it sent (none refused)
    const gwSamples = parsePrometheus((await gwA.call('/metrics')).text).samples;
    expect(sampleValue(gwSamples, 'sluice_gateway_consumer_reports_total')).toBeGreaterThanOrEqual(2);
    expect(sampleValue(gwSamples, 'sluice_gateway_consumer_report_failures_total')).toBe(0);

    // closed: gone from every shard while both gateways keep running (their reports cleared it)
    es.close();
    poll.abort();
    for (const s of shards) await waitFor(async () => (await entries(s))?.list.length === 0, 3000, `entries cleared on ${s.http}`);
    expect((await entries(shards[0]))!.count).toBe(0);
  });

  it('forgets a gateway at once when it shuts down cleanly, and a killed one after the TTL', async () => {
    const gwC = await startGateway(gatewayArgs('--gateway-id', 'gw-c'));
    const gwD = await startGateway(gatewayArgs('--gateway-id', 'gw-d'));
    try {
      for (const gw of [gwC, gwD]) await waitFor(async () => (await gw.call('/readyz')).json().shards === 2, 10_000, 'gateway to see both shards');
      await openStream(gwC);
      await openStream(gwD);
      for (const s of shards)
        await waitFor(async () => {
          const m = byId((await entries(s))?.list ?? []);
          return m['gw-c']?.streams === 1 && m['gw-d']?.streams === 1;
        }, 10_000, 'gw-c and gw-d listed');

      // SIGTERM: the gateway clears its entries before it exits
      await gwC.stop();
      for (const s of shards) expect(byId((await entries(s))!.list)['gw-c']).toBeUndefined();

      // SIGKILL: no report ever comes; the entries stay until the TTL (3 intervals, at least 1 s) passes
      await gwD.kill9();
      const killedAt = Date.now();
      expect(byId((await entries(shards[0]))!.list)['gw-d']).toBeDefined();
      for (const s of shards) await waitFor(async () => byId((await entries(s))!.list)['gw-d'] === undefined, 5000, `gw-d to expire on ${s.http}`);
      expect(Date.now() - killedAt).toBeGreaterThanOrEqual(600);
    } finally {
      await gwC.stop();
      await gwD.kill9();
    }
  });

  it('refuses bad reports with a 4xx naming the problem, and the shard stays up', async () => {
    const post = (body: string) => call(shards[0].url('/sluice/consumers'), 'POST', body, { 'content-type': 'application/json' });
    const notJson = await post('{"gateway":');
    expect(notJson.status).toBe(400);
    expect(notJson.json().message).toBe('INVALID_BODY');
    const badTtl = await post(JSON.stringify({ gateway: { id: 'x', address: '' }, ttl_ms: 5, version: 1, channels: [] }));
    expect(badTtl.status).toBe(400);
    expect(badTtl.json()).toMatchObject({ message: 'INVALID_REPORT', field: 'ttl_ms' });
    const badName = await post(JSON.stringify({ gateway: { id: 'x', address: '' }, ttl_ms: 5000, version: 1, channels: [{ topic: 'a b', channel: 'c', streams: 1, long_polls: 0, in_flight: 0 }] }));
    expect(badName.json()).toMatchObject({ message: 'INVALID_REPORT', field: 'channels[0].topic' });
    const unknown = await post(JSON.stringify({ gateway: { id: 'never-reported', address: '' }, ttl_ms: 5000, version: 2, base: 1, changes: [] }));
    expect(unknown.status).toBe(409);
    expect(unknown.json().message).toBe('REPORT_UNKNOWN');
    expect((await call(shards[0].url('/sluice/consumers'))).status).toBe(405);
    // a good report by hand shows in /stats for an existing channel (and an empty one clears it)
    expect((await call(shards[0].url(`/channel/create?topic=${TOPIC}&channel=${CHANNEL}`), 'POST')).status).toBe(200);
    const good = await post(JSON.stringify({ gateway: { id: 'by-hand', address: '127.0.0.1:1' }, ttl_ms: 60_000, version: 1, channels: [{ topic: TOPIC, channel: CHANNEL, streams: 3, long_polls: 1, in_flight: 7, held: 0 }] }));
    expect(good.status).toBe(200);
    expect(byId((await entries(shards[0]))!.list)['by-hand']).toMatchObject({ streams: 3, long_polls: 1, in_flight: 7 });
    expect((await post(JSON.stringify({ gateway: { id: 'by-hand', address: '' }, ttl_ms: 60_000, version: 2, channels: [] }))).status).toBe(200);
    expect(byId((await entries(shards[0]))!.list)['by-hand']).toBeUndefined();
    expect((await call(shards[0].url('/ping'))).text).toBe('OK');
  });
});
