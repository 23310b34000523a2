// GatewayConsumer against a small fake gateway on 127.0.0.1 (long-poll and receipts only), to
// check what a real cluster cannot show on demand: polls never ask for more than the free credit,
// acks go in batches, a busy gateway (503 + Retry-After) is waited for, a refused key fails
// start(), close() gives back what was never settled, and a backoff pause always ends in a poll.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GatewayCallError } from '../../client/errors';
import { GatewayConsumer } from '../../client/gateway-consumer';
import type { Message } from '../../client/message';
import { waitFor } from '../helpers/process';

interface FakeGateway {
  url: string;
  /** `max` of every poll, in order. */
  polls: number[];
  /** Receipts in each settle request, by op. */
  settles: Array<{ op: string; receipts: Array<string | { receipt: string; delay_ms?: number }> }>;
  offer(...bodies: string[]): void;
  /** Answers the next `n` polls with this status (and Retry-After: 1 for 503). */
  failNext(n: number, status: number): void;
  close(): Promise<void>;
}

async function fakeGateway(): Promise<FakeGateway> {
  const queue: string[] = [];
  const waiting: Array<() => void> = [];
  const polls: number[] = [];
  const settles: FakeGateway['settles'] = [];
  let failing = { n: 0, status: 0 };
  let seq = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (url.pathname.startsWith('/v1/receipts/')) {
        const receipts = (JSON.parse(body) as FakeGateway['settles'][number]).receipts;
        settles.push({ op: url.pathname.slice(13), receipts });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ results: receipts.map(() => ({ status: 'OK' })), ok: receipts.length, failed: 0 }));
        return;
      }
      if (failing.n > 0) {
        failing.n--;
        res.writeHead(failing.status, { 'content-type': 'application/json', ...(failing.status === 503 ? { 'retry-after': '1' } : {}) });
        res.end(JSON.stringify({ error: { code: failing.status === 401 ? 'UNAUTHENTICATED' : 'SHARD_UNAVAILABLE', message: 'no', details: {} } }));
        return;
      }
      const max = Number(url.searchParams.get('max'));
      polls.push(max);
      const answer = () => {
        const messages = queue.splice(0, max).map((b) => {
          const n = seq++;
          return { id: n.toString(16).padStart(16, '0'), attempts: 1, timestamp: 1, receipt: `r${n}`, lease_ms: 60000, encoding: 'base64', body: Buffer.from(b).toString('base64') };
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ topic: 't', channel: 'c', messages }));
      };
      if (queue.length > 0) return answer();
      const timer = setTimeout(() => done(), Number(url.searchParams.get('wait_ms')) || 50);
      const done = () => {
        clearTimeout(timer);
        const i = waiting.indexOf(done);
        if (i >= 0) waiting.splice(i, 1);
        if (!res.destroyed) answer();
      };
      waiting.push(done);
      res.on('close', () => {
        clearTimeout(timer);
        const i = waiting.indexOf(done);
        if (i >= 0) waiting.splice(i, 1);
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    polls,
    settles,
    offer(...bodies) {
      queue.push(...bodies);
      for (const w of waiting.splice(0)) w();
    },
    failNext(n, status) {
      failing = { n, status };
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

const settled = (g: FakeGateway, op: string) => g.settles.filter((s) => s.op === op).flatMap((s) => s.receipts.map((x) => (typeof x === 'string' ? x : x.receipt)));

let g: FakeGateway;
let consumer: GatewayConsumer | null = null;

beforeEach(async () => {
  g = await fakeGateway();
});

afterEach(async () => {
  await consumer?.close();
  consumer = null;
  await g.close();
});

it('asks for no more than the free credit, and acks in batches', async () => {
  consumer = new GatewayConsumer({ topic: 't', channel: 'c', gatewayUrl: g.url, maxInFlight: 10, waitMs: 200 });
  const held: Message[] = [];
  consumer.on('message', (m) => held.push(m));
  await consumer.start();
  g.offer(...Array.from({ length: 50 }, (_, i) => `m${i}`));
  const bodies: string[] = [];
  // settle what is held a few at a time, as a slow handler would
  while (bodies.length < 50) {
    await waitFor(() => held.length > 0, 5000, 'messages to arrive');
    for (const m of held.splice(0, 3)) {
      bodies.push(m.body.toString());
      m.finish();
    }
    await new Promise((r) => setImmediate(r));
  }
  await waitFor(() => settled(g, 'ack').length === 50, 5000, 'every ack sent');
  expect(new Set(bodies).size).toBe(50);
  expect(Math.max(...g.polls)).toBeLessThanOrEqual(10);
  expect(g.settles.filter((s) => s.op === 'ack').length).toBeLessThan(50);
  expect(new Set(settled(g, 'ack')).size).toBe(50);
});

it('waits as a busy gateway asks (503 + Retry-After) instead of failing', async () => {
  g.failNext(2, 503);
  consumer = new GatewayConsumer({ topic: 't', channel: 'c', gatewayUrl: g.url, maxInFlight: 5, waitMs: 200 });
  const got: string[] = [];
  const errors: string[] = [];
  consumer.on('message', (m) => {
    got.push(m.body.toString());
    m.finish();
  });
  consumer.on('error', (e) => errors.push(e instanceof GatewayCallError ? String(e.status) : e.code));
  await consumer.start(); // busy is not a reason to fail
  g.offer('after-busy');
  const started = Date.now();
  await waitFor(() => got.length === 1, 8000, 'the message once the gateway is back');
  expect(got).toEqual(['after-busy']);
  expect(errors).toEqual(['503', '503']);
  expect(Date.now() - started).toBeGreaterThanOrEqual(900); // the second Retry-After: 1 was honoured
});

it('fails start() on a refused key', async () => {
  g.failNext(1, 401);
  const c = new GatewayConsumer({ topic: 't', channel: 'c', gatewayUrl: g.url, token: 'bad' });
  await expect(c.start()).rejects.toMatchObject({ status: 401, apiCode: 'UNAUTHENTICATED' });
});

it('on close requeues what was never settled, and does not wait out an idle poll', async () => {
  consumer = new GatewayConsumer({ topic: 't', channel: 'c', gatewayUrl: g.url, maxInFlight: 5, waitMs: 20_000, closeTimeoutMs: 100 });
  const held: Message[] = [];
  consumer.on('message', (m) => held.push(m));
  await consumer.start();
  g.offer('kept', 'done');
  await waitFor(() => held.length === 2, 5000, 'two messages');
  held[1].finish();
  await waitFor(() => g.polls.length >= 2, 5000, 'an idle poll outstanding');
  const started = Date.now();
  await consumer.close();
  expect(Date.now() - started).toBeLessThan(2000);
  expect(held.map((m) => m.body.toString())).toEqual(['kept', 'done']); // receipts r0, r1 in that order
  expect(settled(g, 'requeue')).toEqual(['r0']);
  expect(settled(g, 'ack')).toEqual(['r1']);
});

it('polls again after a backoff pause even when its timer fires before the clock says the pause is over', async () => {
  // a clock at a fifth of real speed: every pause timer fires "early" by it (as a real timer may by a ms)
  const t0 = performance.now();
  const slow = () => (performance.now() - t0) / 5;
  consumer = new GatewayConsumer({ topic: 't', channel: 'c', gatewayUrl: g.url, maxInFlight: 5, waitMs: 200, backoffMultiplierMs: 15, maxBackoffMs: 60, now: slow });
  const got: string[] = [];
  let failures = 0;
  consumer.on('message', (m) => {
    got.push(m.body.toString());
    if (m.body.toString().startsWith('bad') && failures++ < 6) m.requeue(7);
    else m.finish();
  });
  await consumer.start();
  for (let i = 0; i < 6; i++) g.offer(`bad${i}`);
  await waitFor(() => g.settles.some((s) => s.op === 'requeue'), 5000, 'a requeue');
  g.offer('good');
  await waitFor(() => got.includes('good'), 8000, 'the next message after the pauses');
  const requeue = g.settles.find((s) => s.op === 'requeue')!;
  expect(requeue.receipts[0]).toMatchObject({ delay_ms: 7 });
});
