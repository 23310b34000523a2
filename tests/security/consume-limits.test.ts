// Per-key limits on the consuming side, with real processes: long-polls, SSE streams and receipts
// (ack/requeue/touch) count against the caller's key like publishes do. One gateway has only a
// rate limit, one only a concurrency limit, so each refusal can be pinned on its cause. A key over
// its limit gets 429 RATE_LIMITED with Retry-After and a JSON body (a stream, too: never an event
// stream); another key on the same endpoint is unaffected; each endpoint family has its own
// budget, so open streams do not starve the same key's acks or publishes; a closed stream or a
// finished long-poll frees its slot.

import http from 'node:http';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { EventSource } from 'eventsource';
import { call, startShard, ShardProcess, Answer } from '../helpers/shard';
import { startGateway, GatewayProcess } from '../helpers/gateway';
import { tempDir, waitFor } from '../helpers/process';

const hex = (k: string): string => createHash('sha256').update(k).digest('hex');
const KEY_NAMES = ['lp-a', 'lp-b', 'st-a', 'st-b', 'rc-a', 'rc-b', 'clp-a', 'clp-b', 'cst-a', 'cst-b', 'crc-a', 'crc-b'] as const;
type KeyName = (typeof KEY_NAMES)[number] | 'ops';
const secret = (name: KeyName): string => `sk_${name.replace('-', '_')}_3e9a1c7f5b0d2468ace1357`;
const RECEIPT_SECRET = 'limits-receipt-secret-8f2b6d0a4c1e3579';
const RATE = 2;
const BURST = 4;
const CONCURRENCY = 2;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('per-key limits on consuming and receipts', () => {
  const dir = tempDir();
  let shard: ShardProcess;
  /** --rate-limit 2 --rate-burst 4, no concurrency limit. */
  let gwRate: GatewayProcess;
  /** --key-concurrency 2, no rate limit. */
  let gwConc: GatewayProcess;
  const sources: EventSource[] = [];
  const open: http.ClientRequest[] = [];

  const auth = (k: KeyName) => ({ authorization: `Bearer ${secret(k)}` });
  const json = { 'content-type': 'application/json' };
  const poll = (gw: GatewayProcess, k: KeyName, topic: string, channel: string, query = 'max=1&wait_ms=0') =>
    gw.call(`/v1/topics/${topic}/channels/${channel}/messages?${query}`, 'POST', undefined, auth(k));
  const publish = (gw: GatewayProcess, k: KeyName, topic: string, body: string) => gw.call(`/v1/topics/${topic}/messages`, 'POST', body, auth(k));
  const receipt = (gw: GatewayProcess, k: KeyName, op: 'ack' | 'touch' | 'requeue', r: string, query = '') =>
    gw.call(`/v1/receipts/${op}?receipt=${encodeURIComponent(r)}${query}`, 'POST', undefined, auth(k));

  interface Opened {
    status: number;
    headers: http.IncomingHttpHeaders;
    /** What has arrived so far (the whole body once `ended` resolves). */
    text(): string;
    ended: Promise<void>;
    close(): void;
  }

  /** A request on its own connection; resolves once the response headers arrive (for a stream: at once). */
  function request(gw: GatewayProcess, method: string, p: string, headers: Record<string, string>, body?: string): Promise<Opened> {
    const [host, port] = gw.http.split(':');
    return new Promise((resolve, reject) => {
      const req = http.request({ host, port: Number(port), method, path: p, headers, agent: false });
      open.push(req);
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        const ended = new Promise<void>((r) => res.once('close', () => r()));
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: () => text, ended, close: () => req.destroy() });
      });
      req.end(body);
    });
  }

  const streamPath = (topic: string, channel: string) => `/v1/topics/${topic}/channels/${channel}/stream`;
  const openStream = (gw: GatewayProcess, k: KeyName, topic: string, channel: string) => request(gw, 'GET', streamPath(topic, channel), auth(k));

  /** Opens a stream and closes it at once if it was accepted; a refusal is read to its end. */
  async function streamOnce(gw: GatewayProcess, k: KeyName, topic: string, channel: string): Promise<Answer> {
    const s = await openStream(gw, k, topic, channel);
    if (s.status === 200) {
      expect(s.headers['content-type']).toMatch(/^text\/event-stream/);
      s.close();
    } else await s.ended;
    return { status: s.status, headers: s.headers, text: s.text(), json: () => JSON.parse(s.text()) };
  }

  /** A refusal is 429 RATE_LIMITED, JSON, with a Retry-After of whole seconds; returns those seconds. */
  function expectRefused(r: Answer, limit: 'rate' | 'concurrency', family: string): number {
    expect(r.status).toBe(429);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(r.json().error).toMatchObject({ code: 'RATE_LIMITED', details: { limit, family } });
    const retry = Number(r.headers['retry-after']);
    expect(Number.isInteger(retry) && retry >= 1).toBe(true);
    return retry;
  }

  /**
   * Key A calls until refused: that happens right after its burst (one more may slip in as the
   * bucket refills); B then gets its whole burst; after Retry-After, A is served again.
   */
  async function provesRateLimit(family: string, a: () => Promise<Answer>, b: () => Promise<Answer>): Promise<void> {
    let served = 0;
    let refused: Answer | undefined;
    for (let i = 0; i < BURST * 2 && !refused; i++) {
      const r = await a();
      if (r.status === 429) refused = r;
      else {
        expect([family, r.status]).toEqual([family, 200]);
        served++;
      }
    }
    expect([family, refused !== undefined]).toEqual([family, true]);
    expect(served).toBeGreaterThanOrEqual(BURST);
    expect(served).toBeLessThanOrEqual(BURST + 1);
    const retry = expectRefused(refused!, 'rate', family);
    for (let i = 0; i < BURST; i++) expect([family, 'B', (await b()).status]).toEqual([family, 'B', 200]);
    await sleep(retry * 1000); // what the client was told to do
    expect([family, 'A after Retry-After', (await a()).status]).toEqual([family, 'A after Retry-After', 200]);
  }

  /** Messages from an SSE text: the JSON of each `data:` line. */
  const events = (text: string): { receipt: string; body: unknown }[] =>
    text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)) as { receipt: string; body: unknown });

  beforeAll(async () => {
    const authFile = path.join(dir.path, 'keys.json');
    const keys: { name: KeyName; sha256: string; scopes: string[] }[] = KEY_NAMES.map((name) => ({ name, sha256: hex(secret(name)), scopes: ['publish:*', 'consume:*/*'] }));
    keys.push({ name: 'ops', sha256: hex(secret('ops')), scopes: ['admin'] });
    writeFileSync(authFile, JSON.stringify({ keys }));
    shard = await startShard([], path.join(dir.path, 'shard'));
    const common = ['--shard-http-address', shard.http, '--auth-file', authFile, '--receipt-secret', RECEIPT_SECRET, '--lookupd-poll-interval', '200ms'];
    [gwRate, gwConc] = await Promise.all([
      startGateway([...common, '--rate-limit', String(RATE), '--rate-burst', String(BURST)]),
      startGateway([...common, '--key-concurrency', String(CONCURRENCY)]),
    ]);
    // Every channel exists before anything is published, so each gets a copy of every message
    // ("jobs" has plenty; "quiet/idle" and "events/s" start empty). Each gateway publishes to
    // each topic once, which is how a gateway without a lookup learns where a topic lives.
    const channels: [string, string][] = [['jobs', 'lp'], ['jobs', 'touch'], ['jobs', 'clp'], ['jobs', 'crc'], ['quiet', 'idle'], ['events', 's']];
    for (const [t, ch] of channels) {
      expect((await call(shard.url(`/topic/create?topic=${t}`), 'POST')).status).toBe(200);
      expect((await call(shard.url(`/channel/create?topic=${t}&channel=${ch}`), 'POST')).status).toBe(200);
    }
    const batch = JSON.stringify(Array.from({ length: 100 }, (_, i) => ({ body: `job ${i}` })));
    for (const gw of [gwRate, gwConc]) {
      expect((await gw.call('/v1/topics/jobs/batch', 'POST', batch, { ...auth('ops'), ...json })).status).toBe(200);
      for (const t of ['quiet', 'events']) expect((await publish(gw, 'ops', t, 'setup')).status).toBe(200);
    }
    for (const [t, ch] of [['quiet', 'idle'], ['events', 's']]) {
      // through the gateway without a rate limit: the rate tests count every request of theirs
      const got = (await poll(gwConc, 'ops', t, ch, 'max=10&wait_ms=1000')).json().messages as { receipt: string }[];
      expect(got).toHaveLength(2);
      const acked = await gwConc.call('/v1/receipts/ack', 'POST', JSON.stringify({ receipts: got.map((m) => m.receipt) }), { ...auth('ops'), ...json });
      expect(acked.json().ok).toBe(2);
    }
  });

  afterAll(async () => {
    for (const s of sources) s.close();
    for (const r of open) r.destroy();
    await gwRate?.stop();
    await gwConc?.stop();
    await shard?.stop();
    dir.remove();
  });

  describe('rate (--rate-limit 2 --rate-burst 4)', () => {
    it('long-poll: A past its burst gets 429 + Retry-After; B unaffected; A served again after Retry-After', async () => {
      await provesRateLimit('consume', () => poll(gwRate, 'lp-a', 'jobs', 'lp'), () => poll(gwRate, 'lp-b', 'jobs', 'lp'));
    });

    it('a key limited on consuming may still publish and settle: each family has its own budget', async () => {
      let r: Answer;
      do r = await poll(gwRate, 'lp-a', 'jobs', 'lp');
      while (r.status === 200);
      expectRefused(r, 'rate', 'consume');
      expect((await publish(gwRate, 'lp-a', 'jobs', 'still publishing')).status).toBe(200);
      const got = (await poll(gwRate, 'ops', 'jobs', 'lp')).json().messages as { receipt: string }[];
      expect((await receipt(gwRate, 'lp-a', 'ack', got[0].receipt)).status).toBe(200);
    });

    it('SSE: opening streams past the burst gets a plain 429 (JSON, not an event stream); B unaffected; A again after Retry-After', async () => {
      await provesRateLimit('consume', () => streamOnce(gwRate, 'st-a', 'quiet', 'idle'), () => streamOnce(gwRate, 'st-b', 'quiet', 'idle'));
    });

    it('receipts: A touching past its burst gets 429 + Retry-After; B unaffected; A again after Retry-After', async () => {
      const got = (await poll(gwRate, 'ops', 'jobs', 'touch', 'max=1&wait_ms=1000&lease_ms=60000')).json().messages as { receipt: string }[];
      const r = got[0].receipt;
      await provesRateLimit('receipts', () => receipt(gwRate, 'rc-a', 'touch', r, '&lease_ms=60000'), () => receipt(gwRate, 'rc-b', 'touch', r, '&lease_ms=60000'));
      // a batch of receipts is one request
      await sleep(1000);
      const many = await gwRate.call('/v1/receipts/touch', 'POST', JSON.stringify({ receipts: Array(50).fill(r) }), { ...auth('rc-a'), ...json });
      expect([many.status, many.json().ok]).toEqual([200, 50]);
    });
  });

  describe('concurrency (--key-concurrency 2)', () => {
    it('long-poll: two waiting long-polls hold both of A\'s slots; a third gets 429; B, and A\'s publishes and acks, unaffected; an answered or abandoned long-poll frees its slot', async () => {
      // A long-poll that waits for a message. If it reached the gateway while a check below held a
      // slot, it was refused: then it is sent again. Resolves with its answer.
      const hold = async (): Promise<Opened> => {
        for (;;) {
          const r = await request(gwConc, 'POST', '/v1/topics/quiet/channels/idle/messages?wait_ms=30000', auth('clp-a'));
          if (r.status !== 429) return r;
          await r.ended;
        }
      };
      const aLimited = (what: string) =>
        waitFor(async () => {
          const r = await poll(gwConc, 'clp-a', 'quiet', 'idle');
          return r.status === 429 ? r : null;
        }, 5000, what);
      const aServed = (what: string) => waitFor(async () => (await poll(gwConc, 'clp-a', 'quiet', 'idle')).status === 200, 5000, what);
      const waiting = [hold(), hold()];
      for (const w of waiting) w.catch(() => undefined); // the one still waiting at the end is cut off
      expect(expectRefused(await aLimited('A\'s third long-poll to be refused'), 'concurrency', 'consume')).toBe(1);
      expect((await poll(gwConc, 'clp-b', 'quiet', 'idle')).status).toBe(200);
      expect((await publish(gwConc, 'clp-a', 'jobs', 'x')).status).toBe(200);
      const got = (await poll(gwConc, 'ops', 'jobs', 'clp')).json().messages as { receipt: string }[];
      expect((await receipt(gwConc, 'clp-a', 'ack', got[0].receipt)).status).toBe(200);

      // a message for one of them: that long-poll answers, and its slot is free again
      expect((await publish(gwConc, 'ops', 'quiet', 'wake one')).status).toBe(200);
      const answered = await Promise.race(waiting);
      await answered.ended;
      expect(answered.status).toBe(200);
      const msgs = JSON.parse(answered.text()).messages as { receipt: string }[];
      expect(msgs).toHaveLength(1);
      expect((await receipt(gwConc, 'clp-a', 'ack', msgs[0].receipt)).status).toBe(200);
      await aServed('the answered long-poll\'s slot');
      // the other one is still waiting and still counts: one more fills the budget again
      void hold().catch(() => undefined);
      await aLimited('A at its limit again');
      // a client that gives up on a long-poll frees its slot
      for (const w of open.splice(0)) w.destroy();
      await aServed('the abandoned long-polls\' slots');
    });

    it('SSE: two open streams hold both of A\'s slots; a third is a plain 429 (also to EventSource, which does not retry); B streams; A can still ack and publish; closing a stream frees its slot', async () => {
      const a1 = await openStream(gwConc, 'cst-a', 'events', 's');
      const a2 = await openStream(gwConc, 'cst-a', 'events', 's');
      expect([a1.status, a2.status]).toEqual([200, 200]);
      const third = await streamOnce(gwConc, 'cst-a', 'events', 's');
      expect(third.headers['content-type']).not.toMatch(/event-stream/);
      expect(expectRefused(third, 'concurrency', 'consume')).toBe(1);

      // EventSource (the key as ?token=, as a browser would send it): the 429 fails the connection
      const url = (k: KeyName) => `http://${gwConc.http}${streamPath('events', 's')}?token=${secret(k)}`;
      const refusedEs = new EventSource(url('cst-a'));
      sources.push(refusedEs);
      const failure = await new Promise<{ code?: number }>((resolve) => (refusedEs.onerror = (e) => resolve(e as { code?: number })));
      expect(failure.code).toBe(429);
      expect(refusedEs.readyState).toBe(EventSource.CLOSED);
      const b = new EventSource(url('cst-b'));
      sources.push(b);
      await waitFor(() => b.readyState === EventSource.OPEN, 5000, 'B\'s stream to open');

      // A's streams do not starve A's receipts or publishes
      expect((await publish(gwConc, 'cst-a', 'events', JSON.stringify({ n: 1 }))).status).toBe(200);
      const delivered = await waitFor(() => [...events(a1.text()), ...events(a2.text())].find((m) => JSON.stringify(m.body) === '{"n":1}'), 5000, 'the message on one of A\'s streams');
      expect((await receipt(gwConc, 'cst-a', 'ack', delivered.receipt)).status).toBe(200);

      // a closed stream frees its slot (and only that one)
      a1.close();
      const a3 = await waitFor(async () => {
        const s = await openStream(gwConc, 'cst-a', 'events', 's');
        if (s.status === 200) return s;
        await s.ended;
        return null;
      }, 5000, 'the closed stream\'s slot');
      expectRefused(await streamOnce(gwConc, 'cst-a', 'events', 's'), 'concurrency', 'consume');
      a2.close();
      a3.close();
      b.close();
      await waitFor(async () => (await streamOnce(gwConc, 'cst-a', 'events', 's')).status === 200, 5000, 'slots after closing');
    });

    it('receipts: two acks whose bodies have not arrived hold both of A\'s slots; a third gets 429; B unaffected; the slots come back', async () => {
      const [host, port] = gwConc.http.split(':');
      const got = (await poll(gwConc, 'ops', 'jobs', 'crc', 'max=3&wait_ms=1000')).json().messages as { receipt: string }[];
      expect(got).toHaveLength(3);
      // An ack whose body stops after a few bytes: it is in progress until the rest is sent. If it
      // reached the gateway while a check below held a slot, it was refused: then it is sent again.
      const slow = got.slice(0, 2).map((m) => {
        const body = JSON.stringify({ receipts: [m.receipt] });
        let s: net.Socket;
        let answer = '';
        const send = () => {
          answer = '';
          s = net.connect(Number(port), host);
          s.on('error', () => undefined);
          s.setEncoding('utf8');
          s.on('data', (d: string) => {
            answer += d;
            if (answer.startsWith('HTTP/1.1 429')) {
              s.destroy();
              send();
            }
          });
          s.write(`POST /v1/receipts/ack HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret('crc-a')}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`);
        };
        send();
        return { finish: () => s.write(body.slice(5)), answer: () => answer, destroy: () => s.destroy() };
      });
      try {
        const refused = await waitFor(async () => {
          const r = await receipt(gwConc, 'crc-a', 'touch', got[2].receipt);
          return r.status === 429 ? r : null;
        }, 5000, 'A\'s third receipt request to be refused');
        expect(expectRefused(refused, 'concurrency', 'receipts')).toBe(1);
        expect((await receipt(gwConc, 'crc-b', 'touch', got[2].receipt)).status).toBe(200);
      } finally {
        for (const x of slow) x.finish();
      }
      for (const x of slow) await waitFor(() => x.answer().startsWith('HTTP/1.1 200'), 5000, 'the slow ack to be answered');
      await waitFor(async () => (await receipt(gwConc, 'crc-a', 'ack', got[2].receipt)).status === 200, 5000, 'A\'s slots to come back');
      for (const x of slow) x.destroy();
    });
  });
});
