// The NSQ TCP client (client/) in this process against a real lookup and two real shards:
// Producer's PUB/MPUB/DPUB answered in order, a refused publish failing with nsqd's code and the
// next one reconnecting; Consumer discovering both shards through the lookup, finish / requeue /
// touch, max_in_flight 1 over two shards still reaching both, maxAttempts, backoff, and close()
// leaving nothing in flight.

import { Consumer, Producer, type Message } from '../../client';
import { ClientError } from '../../client/errors';
import { waitFor } from '../helpers/process';
import { channelStats, drained, mpub, prepareTopic, startCluster, type Cluster } from '../helpers/tools';

let c: Cluster;
const consumers: Consumer[] = [];
const producers: Producer[] = [];

beforeAll(async () => {
  c = await startCluster(['--max-msg-size', '4096']);
});

afterEach(async () => {
  await Promise.all(consumers.splice(0).map((x) => x.close()));
  await Promise.all(producers.splice(0).map((x) => x.close()));
});

afterAll(async () => {
  await c?.close();
});

function consumer(topic: string, channel: string, extra: Partial<ConstructorParameters<typeof Consumer>[0]> = {}): Consumer {
  const x = new Consumer({ topic, channel, lookupdHttpAddresses: [c.lookupHttp], lookupdPollIntervalMs: 500, ...extra });
  consumers.push(x);
  return x;
}

function producer(shard: 0 | 1): Producer {
  const p = new Producer(c.shards[shard].addresses.tcp);
  producers.push(p);
  return p;
}

describe('Producer', () => {
  it('publishes with PUB, MPUB and DPUB, each answered in order', async () => {
    const p = producer(0);
    await Promise.all([p.publish('cl-pub', 'one'), p.publishMany('cl-pub', ['two', Buffer.from('three')]), p.publishDeferred('cl-pub', 60_000, 'later')]);
    const got: string[] = [];
    const x = consumer('cl-pub', 'read', { maxInFlight: 10 });
    x.on('message', (m: Message) => {
      got.push(m.body.toString());
      m.finish();
    });
    await x.start();
    await waitFor(() => got.length === 3, 5000, 'three messages');
    expect(got.sort()).toEqual(['one', 'three', 'two']);
    expect((await channelStats(c.shards[0], 'cl-pub', 'read'))?.deferred_count).toBe(1);
  });

  it('fails a refused publish with nsqd’s code, and the next publish reconnects', async () => {
    const p = producer(1);
    const disconnects: Array<Error | null> = [];
    p.on('disconnected', (_a, err) => disconnects.push(err));
    await p.publish('cl-refused', 'fine');
    const err = await p.publish('cl-refused', Buffer.alloc(5000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect(err).toMatchObject({ code: 'NSQ_ERROR', nsqCode: 'E_BAD_MESSAGE', fatal: true });
    await waitFor(() => disconnects.length === 1, 5000, 'the shard to close the connection');
    await p.publish('cl-refused', 'after');
    expect(p.connected).toBe(true);
  });

  it('refuses invalid names before sending anything', async () => {
    const p = producer(0);
    await expect(p.publish('bad topic', 'x')).rejects.toThrow(RangeError);
    expect(p.connected).toBe(false);
  });
});

describe('Consumer', () => {
  it('finds both shards through the lookup; finish, requeue (attempts + 1) and touch', async () => {
    await prepareTopic(c, 'cl-sub', 'work');
    await mpub(c.shards[0], 'cl-sub', ['a', 'requeue-me']);
    await mpub(c.shards[1], 'cl-sub', ['b']);
    const seen: Array<[string, number, string]> = [];
    const x = consumer('cl-sub', 'work', { maxInFlight: 10, backoffMultiplierMs: 0 });
    x.on('message', (m: Message) => {
      seen.push([m.body.toString(), m.attempts, m.address]);
      expect(m.touch()).toBe(true);
      if (m.body.toString() === 'requeue-me' && m.attempts === 1) m.requeue(0);
      else m.finish();
      expect(m.finish()).toBe(false); // settled once
    });
    await x.start();
    expect(x.stats().connections).toBe(2);
    await waitFor(() => seen.length === 4, 5000, 'four deliveries');
    expect(seen.map(([b, a]) => `${b}@${a}`).sort()).toEqual(['a@1', 'b@1', 'requeue-me@1', 'requeue-me@2']);
    expect(new Set(seen.map(([, , addr]) => addr))).toEqual(new Set(c.shards.map((s) => s.addresses.tcp)));
    await waitFor(() => drained(c, 'cl-sub', 'work'), 5000, 'drained');
    expect(x.stats()).toMatchObject({ received: 4, finished: 3, requeued: 1, inFlight: 0 });
  });

  it('with max_in_flight 1 over two shards, RDY rotates so both are read', async () => {
    await prepareTopic(c, 'cl-one', 'solo');
    await mpub(c.shards[0], 'cl-one', ['a1', 'a2']);
    await mpub(c.shards[1], 'cl-one', ['b1', 'b2']);
    const got: string[] = [];
    let inFlight = 0;
    let maxSeen = 0;
    const x = consumer('cl-one', 'solo', { maxInFlight: 1, lowRdyIdleMs: 100, rdyRedistributeIntervalMs: 50 });
    x.on('message', (m: Message) => {
      maxSeen = Math.max(maxSeen, ++inFlight);
      setTimeout(() => {
        got.push(m.body.toString());
        inFlight--;
        m.finish();
      }, 5);
    });
    await x.start();
    await waitFor(() => got.length === 4, 10_000, 'all four');
    expect(got.sort()).toEqual(['a1', 'a2', 'b1', 'b2']);
    expect(maxSeen).toBe(1);
  });

  it('finishes and reports messages delivered more than maxAttempts times, and backs off after failures', async () => {
    await prepareTopic(c, 'cl-max', 'w');
    await mpub(c.shards[0], 'cl-max', ['bad']);
    const attempts: number[] = [];
    const discarded: number[] = [];
    const backoffs: number[] = [];
    const x = consumer('cl-max', 'w', { maxInFlight: 5, maxAttempts: 3, backoffMultiplierMs: 20, maxBackoffMs: 100, lowRdyIdleMs: 100, rdyRedistributeIntervalMs: 50 });
    x.on('message', (m: Message) => {
      attempts.push(m.attempts);
      m.requeue(10);
    });
    x.on('discard', (m: Message) => discarded.push(m.attempts));
    x.on('backoff', (level: number) => backoffs.push(level));
    await x.start();
    await waitFor(() => discarded.length === 1, 10_000, 'the message to be discarded');
    expect(attempts).toEqual([1, 2, 3]);
    expect(discarded).toEqual([4]);
    expect(backoffs.length).toBeGreaterThan(0);
    await waitFor(() => drained(c, 'cl-max', 'w'), 5000, 'finished on the shard');
  });

  it('close() sends CLS, waits for the messages in flight to be settled, and leaves nothing in flight', async () => {
    await prepareTopic(c, 'cl-close', 'w');
    await mpub(c.shards[0], 'cl-close', ['1', '2', '3']);
    const held: Message[] = [];
    const x = consumer('cl-close', 'w', { maxInFlight: 10 });
    x.on('message', (m: Message) => held.push(m));
    await x.start();
    await waitFor(() => held.length === 3, 5000, 'three in flight');
    const closed = x.close();
    let done = false;
    void closed.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(done).toBe(false); // still waiting for the three
    for (const m of held) m.finish();
    await closed;
    const st = await channelStats(c.shards[0], 'cl-close', 'w');
    expect(st).toMatchObject({ depth: 0, in_flight_count: 0, client_count: 0 });
  });
});
