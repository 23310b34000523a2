// Content negotiation on the shard's pull-many: JSON (base64 bodies) unless the caller's Accept
// asks for application/x-sluice-leases, then the binary lease batch (wire/lease-batch.ts) with
// the same fields and the very same body bytes. Also the gateway's lease client on both answers:
// binary from a shard, JSON from one that ignores Accept (an older shard).

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { HttpLeaseClient } from '../../gateway/lease-client';
import { decodeLeaseBatch, encodeLeaseBatch, LEASE_BATCH_TYPE, type LeaseBatchPull } from '../../wire/lease-batch';
import { InProcessShard, startInProcessShard } from '../helpers/gateway';
import { call } from '../helpers/shard';

let shard: InProcessShard;
const u = (p: string) => `http://${shard.http}${p}`;
const json = { 'content-type': 'application/json' };

// Bodies a JSON answer could only carry as base64: NUL, invalid UTF-8, lone surrogate bytes, CR/LF, a large one.
const BODIES: Buffer[] = [
  Buffer.from('{"plain":"json"}'),
  Buffer.from([0]),
  Buffer.from([0, 0, 0, 1, 0]),
  Buffer.from([0xff, 0xfe, 0xfd]),
  Buffer.from([0x80, 0x41, 0xc3]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from('line\r\nbreak\n'),
  Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) & 0xff)),
];

interface JsonMessage {
  id: string;
  token: string;
  attempts: number;
  timestamp: number;
  lease_ms: number;
  body: string;
}

async function pullMany(pulls: object[], accept?: string, waitMs = 2000): Promise<{ status: number; type: string; vary: unknown; raw: Buffer }> {
  const headers: Record<string, string> = { ...json };
  if (accept !== undefined) headers.accept = accept;
  const res = await request(u(`/sluice/lease/pull-many?wait_ms=${waitMs}`), { method: 'POST', body: JSON.stringify({ pulls }), headers });
  const raw = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, type: String(res.headers['content-type']), vary: res.headers.vary, raw };
}

async function leaseOk(topic: string, channel: string, id: string, token: string): Promise<boolean> {
  const r = await call(u(`/sluice/lease/status?topic=${topic}&channel=${channel}&id=${id}&token=${encodeURIComponent(token)}`), 'POST');
  return r.status === 200;
}

beforeAll(async () => {
  shard = await startInProcessShard();
});
afterAll(async () => {
  await shard?.close();
});

describe('pull-many content negotiation', () => {
  it('answers JSON by default and the binary batch on Accept, with every field and body byte equal', async () => {
    expect((await call(u('/topic/create?topic=neg'), 'POST')).status).toBe(200);
    expect((await call(u('/topic/create?topic=quiet'), 'POST')).status).toBe(200);
    await call(u('/channel/create?topic=quiet&channel=idle'), 'POST');
    for (const ch of ['j', 'b']) expect((await call(u(`/channel/create?topic=neg&channel=${ch}`), 'POST')).status).toBe(200);
    for (const body of BODIES) expect((await call(u('/pub?topic=neg'), 'POST', body)).status).toBe(200);
    const spec = (channel: string, max: number) => ({ topic: 'neg', channel, max, lease_ms: 30_000 });

    // A second delivery for the first message on both channels, so attempts differ from 1.
    const j = await pullMany([spec('j', 1)]);
    const b = await pullMany([spec('b', 1)], LEASE_BATCH_TYPE);
    const j0 = (JSON.parse(j.raw.toString()) as { results: { messages: JsonMessage[] }[] }).results[0].messages[0];
    const b0 = decodeLeaseBatch(b.raw)[0].messages[0];
    for (const [ch, m] of [['j', j0], ['b', b0]] as const) {
      const r = await call(u(`/sluice/lease/requeue?topic=neg&channel=${ch}&id=${m.id}&token=${encodeURIComponent(m.token)}`), 'POST');
      expect(r.status).toBe(200);
    }

    const ja = await pullMany([spec('j', 100), { topic: 'quiet', channel: 'idle', max: 5 }]);
    expect(ja.status).toBe(200);
    expect(ja.type).toMatch(/^application\/json/);
    expect(ja.vary).toBe('Accept');
    const jdoc = JSON.parse(ja.raw.toString()) as { results: { topic: string; channel: string; messages: JsonMessage[] }[] };

    const ba = await pullMany([spec('b', 100), { topic: 'quiet', channel: 'idle', max: 5 }], LEASE_BATCH_TYPE);
    expect(ba.status).toBe(200);
    expect(ba.type).toBe(LEASE_BATCH_TYPE);
    expect(ba.vary).toBe('Accept');
    const bdoc: LeaseBatchPull[] = decodeLeaseBatch(ba.raw);

    expect(bdoc.map((p) => [p.topic, p.channel, p.messages.length])).toEqual([
      ['neg', 'b', BODIES.length],
      ['quiet', 'idle', 0],
    ]);
    expect(jdoc.results.map((p) => [p.topic, p.channel, p.messages.length])).toEqual([
      ['neg', 'j', BODIES.length],
      ['quiet', 'idle', 0],
    ]);
    const jm = jdoc.results[0].messages;
    const bm = bdoc[0].messages;
    // The requeued message comes back last on both channels; the order is the same.
    expect(bm.map((m) => m.id)).toEqual(jm.map((m) => m.id));
    expect(bm.map((m) => m.attempts)).toEqual(jm.map((m) => m.attempts));
    expect(Math.max(...bm.map((m) => m.attempts))).toBe(2);
    for (let i = 0; i < jm.length; i++) {
      const J = jm[i];
      const B = bm[i];
      expect(Object.keys(J).sort()).toEqual(['attempts', 'body', 'id', 'lease_ms', 'timestamp', 'token']);
      expect({ id: B.id, attempts: B.attempts, timestamp: B.timestamp, lease_ms: B.leaseMs }).toEqual({ id: J.id, attempts: J.attempts, timestamp: J.timestamp, lease_ms: J.lease_ms });
      const fromJson = Buffer.from(J.body, 'base64');
      expect(B.body.equals(fromJson)).toBe(true);
      // Tokens name one delivery each (these are two channels): each one is the live lease of its channel.
      expect(B.token.length).toBeGreaterThan(0);
      expect(await leaseOk('neg', 'j', J.id, J.token)).toBe(true);
      expect(await leaseOk('neg', 'b', B.id, B.token)).toBe(true);
      expect(await leaseOk('neg', 'b', B.id, J.token)).toBe(false);
    }
    const published = new Set(BODIES.map((x) => x.toString('hex')));
    expect(new Set(bm.map((m) => m.body.toString('hex')))).toEqual(published);
  });

  it('keeps JSON for curl-style, JSON-first and q=0 Accept headers', async () => {
    await call(u('/topic/create?topic=acc'), 'POST');
    await call(u('/channel/create?topic=acc&channel=c'), 'POST');
    const cases: [string | undefined, boolean][] = [
      [undefined, false],
      ['*/*', false],
      ['application/json', false],
      [`${LEASE_BATCH_TYPE};q=0`, false],
      [`application/json, ${LEASE_BATCH_TYPE};q=0.5`, false],
      [`${LEASE_BATCH_TYPE}, application/json;q=0.5`, true],
      [`Application/X-Sluice-Leases`, true],
      [`text/plain, ${LEASE_BATCH_TYPE}`, true],
    ];
    for (const [accept, binary] of cases) {
      const r = await pullMany([{ topic: 'acc', channel: 'c', max: 1 }], accept, 0);
      expect(r.status).toBe(200);
      if (binary) {
        expect(r.type).toBe(LEASE_BATCH_TYPE);
        expect(decodeLeaseBatch(r.raw)).toEqual([{ topic: 'acc', channel: 'c', messages: [] }]);
      } else {
        expect(r.type).toMatch(/^application\/json/);
        expect(JSON.parse(r.raw.toString())).toEqual({ results: [{ topic: 'acc', channel: 'c', messages: [] }] });
      }
    }
  });

  it('errors stay JSON whatever was accepted', async () => {
    const r = await pullMany([{ topic: 'bad topic', channel: 'c' }], LEASE_BATCH_TYPE);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.raw.toString()).message).toBe('INVALID_BODY');
  });
});

describe('the gateway lease client', () => {
  it('gets the binary batch from a shard, bodies byte for byte', async () => {
    await call(u('/topic/create?topic=lc'), 'POST');
    await call(u('/channel/create?topic=lc&channel=c'), 'POST');
    for (const body of BODIES) await call(u('/pub?topic=lc'), 'POST', body);
    const client = new HttpLeaseClient(shard.http, { connections: 2, timeoutMs: 5000 });
    try {
      const [got] = await client.pullMany([{ topic: 'lc', channel: 'c', max: 100, leaseMs: 20_000 }], 2000, AbortSignal.timeout(5000));
      expect(got.map((m) => m.body.toString('hex'))).toEqual(BODIES.map((x) => x.toString('hex')));
      for (const m of got) {
        expect(m).toMatchObject({ attempts: 1, leaseMs: 20_000 });
        expect(m.id).toMatch(/^[0-9a-f]{16}$/);
      }
      // Every body is a view of one response buffer.
      expect(new Set(got.map((m) => m.body.buffer)).size).toBe(1);
      const outcomes = await client.settle('finish', 'lc', 'c', got.map((m) => ({ id: m.id, token: m.token })));
      expect(outcomes.map((o) => o.status)).toEqual(got.map(() => 'OK'));
    } finally {
      await client.close();
    }
  });

  it('still reads JSON from a shard that ignores Accept, and refuses a broken binary answer', async () => {
    let answer: { type: string; body: Buffer } = { type: '', body: Buffer.alloc(0) };
    let accept: string | undefined;
    const old = http.createServer((req, res) => {
      accept = req.headers.accept;
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': answer.type, 'content-length': answer.body.length });
        res.end(answer.body);
      });
    });
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    const client = new HttpLeaseClient(`127.0.0.1:${(old.address() as AddressInfo).port}`, { connections: 1, timeoutMs: 5000 });
    const pulls = [{ topic: 't', channel: 'c', max: 10, leaseMs: 1000 }];
    try {
      const msg = { id: '0123456789abcdef', token: 'tk', attempts: 3, timestamp: 1_700_000_000_000_000_000, body: Buffer.from([0, 0xff]).toString('base64') };
      answer = { type: 'application/json; charset=utf-8', body: Buffer.from(JSON.stringify({ results: [{ topic: 't', channel: 'c', messages: [msg] }] })) };
      const [[m]] = await client.pullMany(pulls, 0, AbortSignal.timeout(5000));
      expect(accept).toContain(LEASE_BATCH_TYPE);
      expect(m).toMatchObject({ id: msg.id, token: 'tk', attempts: 3, timestamp: msg.timestamp, leaseMs: 1000 });
      expect(m.body.equals(Buffer.from([0, 0xff]))).toBe(true);

      answer = { type: LEASE_BATCH_TYPE, body: Buffer.from([1, 0, 0, 0, 1, 1]) };
      await expect(client.pullMany(pulls, 0, AbortSignal.timeout(5000))).rejects.toMatchObject({ status: 502, code: 'BAD_SHARD_ANSWER' });
      // Well-formed, but for another channel than asked.
      answer = { type: LEASE_BATCH_TYPE, body: encodeLeaseBatch([{ topic: 't', channel: 'other', leaseMs: 1, messages: [] }]) };
      await expect(client.pullMany(pulls, 0, AbortSignal.timeout(5000))).rejects.toMatchObject({ status: 502, code: 'BAD_SHARD_ANSWER' });
    } finally {
      await client.close();
      old.close();
    }
  });
});
