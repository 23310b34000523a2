// Consuming over HTTP with real processes: one lookup, two shards, two gateways sharing a receipt
// secret. 10k messages spread over both shards are consumed by long-poll and by SSE (the
// eventsource package) and acked exactly once; acks through the other gateway; requeue with a
// delay, touch, lease expiry, stale and forged receipts; a closed stream and a killed gateway
// give their messages back; max attempts send a message to the dead-letter topic.

import { EventSource } from 'eventsource';
import { ReceiptSigner } from '../../gateway/receipts';
import { GatewayProcess, startGateway } from '../helpers/gateway';
import { expectDocumented } from '../helpers/openapi';
import { Running, startProgram, waitFor } from '../helpers/process';
import { call, ShardProcess, startShard } from '../helpers/shard';

const SECRET = 'integration-receipt-secret-0123456789';

let lookup: Running;
const shards: ShardProcess[] = [];
let gwA: GatewayProcess;
let gwB: GatewayProcess;
const extra: GatewayProcess[] = [];
const sources: EventSource[] = [];

const gatewayArgs = () => ['--lookupd-http-address', lookup.addresses.http, '--lookupd-poll-interval', '200ms', '--receipt-secret', SECRET];

beforeAll(async () => {
  lookup = await startProgram(['lookup', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0']);
  for (let i = 0; i < 2; i++) shards.push(await startShard(['--broadcast-address', '127.0.0.1', '--node-id', String(i + 1), '--lookupd-tcp-address', lookup.addresses.tcp]));
  [gwA, gwB] = await Promise.all([startGateway(gatewayArgs()), startGateway(gatewayArgs())]);
  for (const gw of [gwA, gwB]) await waitFor(async () => (await gw.call('/readyz')).json().shards === 2, 10_000, 'gateway to see both shards');
});

afterAll(async () => {
  for (const s of sources) s.close();
  await Promise.all([gwA?.stop(), gwB?.stop(), ...extra.map((g) => g.stop())]);
  for (const s of shards) await s.stop();
  await lookup?.stop();
});

interface Msg {
  id: string;
  attempts: number;
  receipt: string;
  lease_ms: number;
  encoding: string;
  body: unknown;
}

const json = { 'content-type': 'application/json' };

async function publish(topic: string, bodies: unknown[], gw = gwA): Promise<string[]> {
  const shardsUsed: string[] = [];
  for (let i = 0; i < bodies.length; i += 1000) {
    const r = await gw.call(`/v1/topics/${encodeURIComponent(topic)}/batch`, 'POST', JSON.stringify(bodies.slice(i, i + 1000).map((body) => ({ body }))), json);
    expect(r.status).toBe(200);
    for (const x of r.json().results as { shard: string }[]) shardsUsed.push(x.shard);
  }
  return shardsUsed;
}

async function poll(gw: GatewayProcess, topic: string, channel: string, query = ''): Promise<Msg[]> {
  const path = `/v1/topics/${encodeURIComponent(topic)}/channels/${encodeURIComponent(channel)}/messages?${query}`;
  const r = await gw.call(path, 'POST');
  expectDocumented('post', '/v1/topics/{topic}/channels/{channel}/messages', { status: r.status, headers: r.headers, text: r.text });
  expect(r.status).toBe(200);
  return r.json().messages as Msg[];
}

async function settle(gw: GatewayProcess, op: 'ack' | 'requeue' | 'touch', receipts: (string | Record<string, unknown>)[], extraBody: Record<string, unknown> = {}) {
  const r = await gw.call(`/v1/receipts/${op}`, 'POST', JSON.stringify({ receipts, ...extraBody }), json);
  expectDocumented('post', `/v1/receipts/${op}`, { status: r.status, headers: r.headers, text: r.text });
  expect(r.status).toBe(200);
  return r.json() as { results: { status: string; lease_ms?: number }[]; ok: number; failed: number };
}

async function settleOne(gw: GatewayProcess, op: 'ack' | 'requeue' | 'touch', receipt: string, query = '') {
  const r = await gw.call(`/v1/receipts/${op}?receipt=${receipt}${query}`, 'POST');
  expectDocumented('post', `/v1/receipts/${op}`, { status: r.status, headers: r.headers, text: r.text });
  return r;
}

/** The channel's counts summed over both shards. */
async function channelCounts(topic: string, channel: string) {
  const sum = { depth: 0, in_flight_count: 0, deferred_count: 0, message_count: 0, requeue_count: 0, timeout_count: 0 };
  for (const s of shards) {
    const st = (await call(s.url(`/stats?format=json&topic=${encodeURIComponent(topic)}`))).json();
    for (const t of st.topics ?? []) {
      for (const c of t.channels ?? []) {
        if (c.channel_name !== channel) continue;
        for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += c[k] ?? 0;
      }
    }
  }
  return sum;
}

function stream(gw: GatewayProcess, topic: string, channel: string, query: string, onMessage: (m: Msg, es: EventSource) => void): EventSource {
  const es = new EventSource(`http://${gw.http}/v1/topics/${encodeURIComponent(topic)}/channels/${encodeURIComponent(channel)}/stream?${query}`);
  sources.push(es);
  es.addEventListener('message', (ev) => {
    const m = JSON.parse(ev.data) as Msg;
    expect(ev.lastEventId).toBe(m.receipt);
    onMessage(m, es);
  });
  return es;
}

/** Batches receipts and acks them through `gw`, like a real consumer would. */
function acker(gw: GatewayProcess) {
  let pending: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  const results: string[] = [];
  const inflight: Promise<void>[] = [];
  const flush = () => {
    timer = undefined;
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    inflight.push(settle(gw, 'ack', batch).then((r) => void results.push(...r.results.map((x) => x.status))));
  };
  return {
    add(receipt: string) {
      pending.push(receipt);
      if (pending.length >= 200) flush();
      else timer ??= setTimeout(flush, 5);
    },
    results,
    async done() {
      if (timer) clearTimeout(timer);
      flush();
      await Promise.all(inflight);
    },
  };
}

describe('consuming through gateways over a lookup and two shards', () => {
  it('10k messages from both shards by long-poll, each acked exactly once (acks through either gateway)', async () => {
    const n = 10_000;
    const used = await publish('lp10k', Array.from({ length: n }, (_, i) => ({ n: i })));
    expect(new Set(used).size).toBe(2);
    const seen = new Map<string, number>();
    const acks: string[] = [];
    const deadline = Date.now() + 40_000;
    const worker = async (k: number) => {
      const gw = k % 2 === 0 ? gwA : gwB;
      while (seen.size < n && Date.now() < deadline) {
        const msgs = await poll(gw, 'lp10k', 'c', 'max=500&wait_ms=500');
        for (const m of msgs) {
          seen.set(m.id, (seen.get(m.id) ?? 0) + 1);
          expect(m.encoding).toBe('json');
          expect(m.attempts).toBe(1);
        }
        if (msgs.length > 0) acks.push(...(await settle(k % 2 === 0 ? gwB : gwA, 'ack', msgs.map((m) => m.receipt))).results.map((r) => r.status));
      }
    };
    await Promise.all([0, 1, 2, 3].map(worker));
    expect(seen.size).toBe(n);
    expect([...seen.values()].every((c) => c === 1)).toBe(true);
    expect(acks.length).toBe(n);
    expect(acks.every((s) => s === 'OK')).toBe(true);
    expect(await channelCounts('lp10k', 'c')).toMatchObject({ depth: 0, in_flight_count: 0, message_count: n, requeue_count: 0, timeout_count: 0 });
  });

  it('10k messages by SSE on both gateways, each acked exactly once', async () => {
    const n = 10_000;
    const seen = new Map<string, number>();
    const bodies = new Set<number>();
    const ackers = [acker(gwA), acker(gwB)];
    let open = 0;
    for (const [i, gw] of [gwA, gwB].entries()) {
      const es = stream(gw, 'sse10k', 'c', 'max_in_flight=500', (m) => {
        seen.set(m.id, (seen.get(m.id) ?? 0) + 1);
        bodies.add((m.body as { n: number }).n);
        ackers[i].add(m.receipt);
      });
      es.onopen = () => open++;
    }
    await waitFor(() => open === 2, 5000, 'both streams open');
    await publish('sse10k', Array.from({ length: n }, (_, i) => ({ n: i })));
    await waitFor(() => seen.size === n, 40_000, `all ${n} messages (have ${seen.size})`);
    await Promise.all(ackers.map((a) => a.done()));
    for (const s of sources.splice(0)) s.close();
    expect([...seen.values()].every((c) => c === 1)).toBe(true);
    expect(bodies.size).toBe(n);
    const results = ackers.flatMap((a) => a.results);
    expect(results.length).toBe(n);
    expect(results.every((s) => s === 'OK')).toBe(true);
    expect(await channelCounts('sse10k', 'c')).toMatchObject({ depth: 0, in_flight_count: 0, message_count: n, requeue_count: 0, timeout_count: 0 });
  });

  it('a stream whose messages are acked through the other gateway gets its credit back', async () => {
    const got: Msg[] = [];
    const acks: Promise<string>[] = [];
    const es = stream(gwA, 'cross', 'c', 'max_in_flight=4', (m) => {
      got.push(m);
      acks.push(settleOne(gwB, 'ack', m.receipt).then((r) => `${r.status} ${r.text}`));
    });
    await waitFor(() => es.readyState === EventSource.OPEN, 5000, 'stream open');
    await publish('cross', Array.from({ length: 16 }, (_, i) => `m${i}`));
    await waitFor(() => got.length === 16, 20_000, `16 messages through a stream of credit 4 (have ${got.length})`);
    // Every ack answered before the stream closes: closing requeues what this gateway still
    // counts as unacked, and an ack racing that through the other gateway would find it requeued.
    expect(await Promise.all(acks)).toEqual(got.map(() => '200 {"status":"OK"}'));
    es.close();
    await waitFor(async () => (await channelCounts('cross', 'c')).in_flight_count === 0, 5000, 'nothing in flight');
    expect(new Set(got.map((m) => m.id)).size).toBe(16);
  });

  it('requeue with a delay redelivers after the delay with attempts + 1; touch keeps a message beyond its lease', async () => {
    await publish('rq', ['later']);
    const [m] = await poll(gwA, 'rq', 'c', 'wait_ms=3000&encoding=text');
    expect(m).toMatchObject({ attempts: 1, encoding: 'text', body: 'later' });
    const t0 = Date.now();
    expect((await settleOne(gwB, 'requeue', m.receipt, '&delay_ms=700')).json()).toEqual({ status: 'OK' });
    expect(await poll(gwA, 'rq', 'c', 'wait_ms=300')).toEqual([]);
    const [again] = await poll(gwB, 'rq', 'c', 'wait_ms=5000&lease_ms=1000');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(650);
    expect(again).toMatchObject({ id: m.id, attempts: 2 });
    // touch: the 1 s lease is stretched to 3 s, so nothing is redelivered at 1.5 s
    await new Promise((r) => setTimeout(r, 500));
    const touched = await settle(gwA, 'touch', [{ receipt: again.receipt, lease_ms: 3000 }]);
    expect(touched.results[0].status).toBe('OK');
    expect(touched.results[0].lease_ms).toBeGreaterThan(2500);
    expect(await poll(gwA, 'rq', 'c', 'wait_ms=1200')).toEqual([]);
    expect((await settleOne(gwB, 'ack', again.receipt)).status).toBe(200);
    expect(await channelCounts('rq', 'c')).toMatchObject({ depth: 0, in_flight_count: 0, deferred_count: 0, requeue_count: 1, timeout_count: 0 });
  });

  it('lease expiry redelivers; a stale receipt is refused and leaves the newer delivery alone; forged receipts are refused', async () => {
    await publish('exp', [{ k: 1 }]);
    const [first] = await poll(gwA, 'exp', 'c', 'wait_ms=3000&lease_ms=400');
    const [second] = await poll(gwB, 'exp', 'c', 'wait_ms=5000');
    expect(second).toMatchObject({ id: first.id, attempts: 2, body: { k: 1 } });
    const stale = await settleOne(gwA, 'ack', first.receipt);
    expect(stale.status).toBe(409);
    expect(stale.json().error.code).toBe('RECEIPT_STALE');
    const flipped = second.receipt.slice(0, 20) + (second.receipt[20] === 'A' ? 'B' : 'A') + second.receipt.slice(21);
    const forged = await settleOne(gwA, 'ack', flipped);
    expect(forged.status).toBe(400);
    expect(forged.json().error.code).toBe('RECEIPT_INVALID');
    const foreign = new ReceiptSigner(['not-this-clusters-secret']).sign({ shard: shards[0].http, topic: 'exp', channel: 'c', id: second.id, token: 'x' });
    expect((await settleOne(gwB, 'ack', foreign)).json().error.code).toBe('RECEIPT_INVALID');
    const aimed = new ReceiptSigner([SECRET]).sign({ shard: '127.0.0.1:9', topic: 'exp', channel: 'c', id: second.id, token: 'x' });
    expect((await settleOne(gwB, 'ack', aimed)).json().error.code).toBe('SHARD_UNKNOWN');
    const batch = await settle(gwB, 'ack', [first.receipt, flipped, second.receipt, second.receipt]);
    expect(batch.results.map((r) => r.status)).toEqual(['RECEIPT_STALE', 'RECEIPT_INVALID', 'OK', 'NOT_IN_FLIGHT']);
    expect(batch).toMatchObject({ ok: 1, failed: 3 });
    expect(await channelCounts('exp', 'c')).toMatchObject({ depth: 0, in_flight_count: 0, timeout_count: 1 });
  });

  it('closing a stream requeues its unacked messages at once', async () => {
    const got: Msg[] = [];
    const es = stream(gwA, 'closing', 'c', 'max_in_flight=10&lease_ms=60000', (m) => got.push(m));
    await waitFor(() => es.readyState === EventSource.OPEN, 5000, 'stream open');
    await publish('closing', ['a', 'b', 'c', 'd', 'e']);
    await waitFor(() => got.length === 5, 5000, 'five messages');
    es.close();
    const t0 = Date.now();
    const back: Msg[] = [];
    while (back.length < 5 && Date.now() - t0 < 5000) back.push(...(await poll(gwB, 'closing', 'c', 'max=10&wait_ms=1000')));
    expect(Date.now() - t0).toBeLessThan(3000); // the lease was 60 s
    expect(back.map((m) => m.id).sort()).toEqual(got.map((m) => m.id).sort());
    expect(back.every((m) => m.attempts === 2)).toBe(true);
    await settle(gwB, 'ack', back.map((m) => m.receipt));
  });

  it('a gateway killed with unacked messages: all are redelivered through the other; a stopped one gives them back at once', async () => {
    const gwC = await startGateway(gatewayArgs());
    extra.push(gwC);
    await waitFor(async () => (await gwC.call('/readyz')).json().shards === 2, 10_000, 'gateway C ready');
    const got: Msg[] = [];
    const es = stream(gwC, 'killed', 'c', 'max_in_flight=50&lease_ms=1500', (m) => got.push(m));
    await waitFor(() => es.readyState === EventSource.OPEN, 5000, 'stream open');
    await publish('killed', Array.from({ length: 20 }, (_, i) => i));
    await waitFor(() => got.length === 20, 5000, 'twenty messages on gateway C');
    // Killed first: a closed stream would have its messages requeued at once; a kill -9 gives nothing back.
    await gwC.kill9();
    es.close();
    sources.splice(sources.indexOf(es), 1);
    const back = new Map<string, Msg>();
    const t0 = Date.now();
    while (back.size < 20 && Date.now() - t0 < 8000) for (const m of await poll(gwA, 'killed', 'c', 'max=50&wait_ms=1000')) back.set(m.id, m);
    expect([...back.keys()].sort()).toEqual(got.map((m) => m.id).sort());
    await settle(gwA, 'ack', [...back.values()].map((m) => m.receipt));

    const gwD = await startGateway(gatewayArgs());
    extra.push(gwD);
    await waitFor(async () => (await gwD.call('/readyz')).json().shards === 2, 10_000, 'gateway D ready');
    const held: Msg[] = [];
    const es2 = stream(gwD, 'stopped', 'c', 'max_in_flight=50&lease_ms=60000', (m) => held.push(m));
    await waitFor(() => es2.readyState === EventSource.OPEN, 5000, 'stream open');
    await publish('stopped', Array.from({ length: 10 }, (_, i) => i));
    await waitFor(() => held.length === 10, 5000, 'ten messages on gateway D');
    es2.onerror = () => es2.close(); // do not reconnect to the stopped gateway
    expect(await gwD.stop()).toBe(0);
    const t1 = Date.now();
    const back2 = new Map<string, Msg>();
    while (back2.size < 10 && Date.now() - t1 < 5000) for (const m of await poll(gwB, 'stopped', 'c', 'max=50&wait_ms=1000')) back2.set(m.id, m);
    expect(back2.size).toBe(10);
    expect(Date.now() - t1).toBeLessThan(3000);
    await settle(gwB, 'ack', [...back2.values()].map((m) => m.receipt));
  });

  it('max attempts: a message past them goes to the dead-letter topic, recording how it got there', async () => {
    const put = await gwA.call('/v1/topics/dl/channels/c', 'PUT', JSON.stringify({ max_attempts: 2 }), json);
    expectDocumented('put', '/v1/topics/{topic}/channels/{channel}', { status: put.status, headers: put.headers, text: put.text });
    expect(put.status).toBe(200);
    expect(put.json()).toMatchObject({ max_attempts: 2, dead_letter_topic: 'dl.dead', dead_lettered_count: 0 });
    expect(put.json().shards).toHaveLength(2);
    await publish('dl', [{ order: 7 }]);
    for (let attempt = 1; attempt <= 2; attempt++) {
      const [m] = await poll(attempt === 1 ? gwA : gwB, 'dl', 'c', 'wait_ms=3000');
      expect(m.attempts).toBe(attempt);
      expect((await settleOne(gwA, 'requeue', m.receipt)).status).toBe(200);
    }
    expect(await poll(gwA, 'dl', 'c', 'wait_ms=300')).toEqual([]);
    const [dead] = await waitFor(async () => {
      const got = await poll(gwB, 'dl.dead', 'inspect', 'wait_ms=1000');
      return got.length > 0 ? got : null;
    }, 10_000, 'the dead letter');
    expect(dead.encoding).toBe('json');
    expect(dead.body).toMatchObject({ dead_letter: { reason: 'max_attempts_exceeded', topic: 'dl', channel: 'c', attempts: 2, max_attempts: 2 }, body: { order: 7 } });
    const got = await gwB.call('/v1/topics/dl/channels/c');
    expectDocumented('get', '/v1/topics/{topic}/channels/{channel}', { status: got.status, headers: got.headers, text: got.text });
    expect(got.json()).toMatchObject({ max_attempts: 2, dead_lettered_count: 1 });

    // or as a subscribe parameter
    await publish('dl2', ['x']);
    const [m] = await poll(gwA, 'dl2', 'c', 'wait_ms=3000&max_attempts=1&dead_letter_topic=graveyard');
    expect(m.attempts).toBe(1);
    await settleOne(gwA, 'requeue', m.receipt);
    // (a message is dead-lettered when it would be delivered again, so someone must be asking)
    expect(await poll(gwB, 'dl2', 'c', 'wait_ms=300')).toEqual([]);
    const [grave] = await waitFor(async () => {
      const g = await poll(gwA, 'graveyard', 'c', 'wait_ms=1000');
      return g.length > 0 ? g : null;
    }, 10_000, 'the dead letter in graveyard');
    expect(grave.body).toMatchObject({ dead_letter: { topic: 'dl2', attempts: 1 }, body_base64: 'eA==' });
  });
});
