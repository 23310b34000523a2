// nsqjs (the Node client from npm, unchanged) against a real shard: its Writer publishes with
// PUB, MPUB and DPUB, its Reader consumes 10k messages, and REQ, TOUCH, message timeouts and
// maxAttempts behave the way nsqjs expects them to from nsqd.

import { waitFor } from '../helpers/process';
import { call, ShardProcess, startShard } from '../helpers/shard';

// nsqjs ships no types; the few calls used here are typed locally.
/* eslint-disable @typescript-eslint/no-require-imports */
const nsq = require('nsqjs') as {
  Writer: new (host: string, port: number, opts?: Record<string, unknown>) => Writer;
  Reader: new (topic: string, channel: string, opts: Record<string, unknown>) => Reader;
};

interface Writer {
  connect(): void;
  close(): void;
  on(event: 'ready' | 'closed' | 'error', fn: (err?: Error) => void): void;
  publish(topic: string, msgs: string | Buffer | (string | Buffer)[], cb: (err?: Error) => void): void;
  /** nsqjs 0.13 wants a one-element array here, whatever its doc comment says. */
  deferPublish(topic: string, msg: (string | Buffer)[], timeMs: number, cb: (err?: Error) => void): void;
}

interface NsqjsMessage {
  id: string;
  attempts: number;
  body: Buffer;
  timedOut: boolean;
  finish(): void;
  requeue(delay?: number, backoff?: boolean): void;
  touch(): void;
}

interface Reader {
  connect(): void;
  close(): void;
  on(event: 'message' | 'discard', fn: (m: NsqjsMessage) => void): void;
  on(event: 'error' | 'nsqd_connected' | 'nsqd_closed' | 'ready', fn: (err?: Error) => void): void;
}

let shard: ShardProcess;
let host: string;
let port: number;
const readers: Reader[] = [];
const writers: Writer[] = [];

beforeAll(async () => {
  shard = await startShard();
  const [h, p] = shard.addresses.tcp.split(':');
  host = h;
  port = Number(p);
});
afterEach(() => {
  for (const r of readers.splice(0)) r.close();
  for (const w of writers.splice(0)) w.close();
});
afterAll(async () => {
  await shard?.stop();
});

async function writer(): Promise<Writer> {
  const w = new nsq.Writer(host, port);
  writers.push(w);
  await new Promise<void>((resolve, reject) => {
    w.on('ready', () => resolve());
    w.on('error', (err) => reject(err));
    w.connect();
  });
  return w;
}

function publish(w: Writer, topic: string, msgs: string | (string | Buffer)[]): Promise<void> {
  return new Promise((resolve, reject) => w.publish(topic, msgs, (err) => (err ? reject(err) : resolve())));
}

function reader(topic: string, channel: string, opts: Record<string, unknown>, onMessage: (m: NsqjsMessage) => void): Reader {
  const r = new nsq.Reader(topic, channel, { nsqdTCPAddresses: [`${host}:${port}`], ...opts });
  readers.push(r);
  r.on('message', onMessage);
  r.on('error', () => undefined); // E_FIN_FAILED and friends arrive here; tests check outcomes
  r.connect();
  return r;
}

async function channelStats(topic: string, channel: string): Promise<any> {
  const doc = (await call(shard.url(`/stats?format=json&topic=${topic}&channel=${channel}&include_clients=true`))).json();
  return doc.topics[0]?.channels[0];
}

describe('nsqjs against a shard', () => {
  it('publishes 10k messages with PUB, MPUB and DPUB and consumes every one with two Readers', async () => {
    const topic = 'nsqjs_bulk';
    await call(shard.url(`/topic/create?topic=${topic}`), 'POST');
    await call(shard.url(`/channel/create?topic=${topic}&channel=ch`), 'POST');
    const w = await writer();
    const expected = new Set<string>();
    for (let i = 0; i < 100; i++) {
      expected.add(`single-${i}`);
      await publish(w, topic, `single-${i}`);
    }
    for (let b = 0; b < 20; b++) {
      const batch = Array.from({ length: 495 }, (_, i) => `batch-${b}-${i}`);
      batch.forEach((m) => expected.add(m));
      await publish(w, topic, batch);
    }
    expected.add('deferred');
    const t0 = Date.now();
    await new Promise<void>((resolve, reject) => w.deferPublish(topic, ['deferred'], 300, (err) => (err ? reject(err) : resolve())));
    expect(expected.size).toBe(10_001);

    const seen = new Map<string, number>();
    let deferredAt = 0;
    const onMessage = (m: NsqjsMessage): void => {
      const body = m.body.toString();
      seen.set(body, (seen.get(body) ?? 0) + 1);
      if (body === 'deferred') deferredAt = Date.now();
      m.finish();
    };
    reader(topic, 'ch', { maxInFlight: 200 }, onMessage);
    reader(topic, 'ch', { maxInFlight: 200 }, onMessage);
    await waitFor(() => seen.size === expected.size, 20_000, 'all messages');
    expect([...seen.keys()].filter((k) => !expected.has(k))).toEqual([]);
    expect(deferredAt - t0).toBeGreaterThanOrEqual(300);
    await waitFor(async () => {
      const s = await channelStats(topic, 'ch');
      return s.depth === 0 && s.in_flight_count === 0 && s.deferred_count === 0 ? s : null;
    }, 10_000, 'channel drained');
    const s = await channelStats(topic, 'ch');
    expect(s.clients).toHaveLength(2);
    for (const c of s.clients) expect(c.user_agent).toMatch(/^nsqjs\//);
    const redelivered = [...seen.values()].filter((n) => n > 1).length;
    expect(redelivered).toBe(0);
  });

  it('requeues with REQ until maxAttempts, then nsqjs discards the message', async () => {
    const topic = 'nsqjs_req';
    const w = await writer();
    await publish(w, topic, 'retry me');
    const attempts: number[] = [];
    let discarded: NsqjsMessage | null = null;
    const r = reader(topic, 'ch', { maxAttempts: 3, requeueDelay: 0 }, (m) => {
      attempts.push(m.attempts);
      m.requeue(0, false);
    });
    r.on('discard', (m) => {
      discarded = m;
      m.finish();
    });
    await waitFor(() => discarded !== null, 10_000, 'discard');
    expect(attempts).toEqual([1, 2, 3]);
    expect(discarded!.attempts).toBe(4);
    await waitFor(async () => {
      const s = await channelStats(topic, 'ch');
      return s.depth === 0 && s.in_flight_count === 0 && s.requeue_count === 3;
    }, 5000, 'finished after discard');
  });

  it('keeps a message with TOUCH past its msg_timeout, and redelivers one that times out', async () => {
    const topic = 'nsqjs_touch';
    const w = await writer();
    await publish(w, topic, ['touched', 'ignored']);
    const deliveries: { body: string; attempts: number; at: number }[] = [];
    const t0 = Date.now();
    reader(topic, 'ch', { maxInFlight: 2, messageTimeout: 1000 }, (m) => {
      const body = m.body.toString();
      deliveries.push({ body, attempts: m.attempts, at: Date.now() - t0 });
      if (body === 'touched') {
        // three touches, 500 ms apart, then finish: 2 s in flight on a 1 s timeout
        let n = 0;
        const timer = setInterval(() => {
          if (++n <= 3) m.touch();
          else {
            clearInterval(timer);
            m.finish();
          }
        }, 500);
      } else if (m.attempts > 1) {
        m.finish();
      }
      // the first delivery of 'ignored' is left to time out
    });
    await waitFor(() => deliveries.some((d) => d.body === 'ignored' && d.attempts === 2), 10_000, 'redelivery');
    await waitFor(async () => {
      const s = await channelStats(topic, 'ch');
      return s.depth === 0 && s.in_flight_count === 0;
    }, 10_000, 'both finished');
    expect(deliveries.filter((d) => d.body === 'touched')).toHaveLength(1);
    const again = deliveries.find((d) => d.body === 'ignored' && d.attempts === 2)!;
    expect(again.at).toBeGreaterThanOrEqual(1000);
    const s = await channelStats(topic, 'ch');
    expect(s.timeout_count).toBe(1);
  });
});
