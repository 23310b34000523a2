// The publisher (gateway/publish.ts) over fake shards: concurrent single publishes share shard
// calls, every caller gets its own id, a failed call's messages go to another shard, a keyed
// message follows its key, and a shard's 4xx is the caller's error (no failover).

import { silentLogger } from '../../runtime/logger';
import { decodeBatch } from '../../wire/sluice-batch';
import { DEFAULT_PUBLISHER_OPTIONS, Publisher, ShardPool } from '../../gateway/publish';
import { MpubAnswer, ShardClient, ShardError } from '../../gateway/shards';
import { Topology } from '../../gateway/topology';

interface FakeShard {
  calls: number[];
  fail?: () => Error | undefined;
}

function setup(names: string[]) {
  const shards = new Map<string, FakeShard>(names.map((n) => [n, { calls: [] }]));
  let seq = 0;
  const pool: ShardPool = {
    get(address: string): ShardClient {
      const s = shards.get(address)!;
      return {
        async mpub(_topic: string, frame: Buffer): Promise<MpubAnswer> {
          const msgs = decodeBatch(frame, 1 << 20);
          s.calls.push(msgs.length);
          await new Promise((r) => setTimeout(r, 2));
          const err = s.fail?.();
          if (err) throw err;
          return { ids: msgs.map(() => (seq++).toString(16).padStart(16, '0')), duplicates: [] };
        },
      } as unknown as ShardClient;
    },
    isUnavailable: () => false,
  };
  const topology = new Topology({ lookups: [], staticShards: names, pollIntervalMs: 1000, timeoutMs: 100 }, silentLogger());
  const publisher = new Publisher(topology, pool, DEFAULT_PUBLISHER_OPTIONS, silentLogger());
  return { shards, publisher };
}

const msg = (text: string, key?: string) => ({ body: Buffer.from(text), deferMs: 0, key });

it('coalesces concurrent publishes into few shard calls and answers each with its own id', async () => {
  const { shards, publisher } = setup(['a:1', 'b:1']);
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => publisher.publishOne('t', msg(`m${i}`))));
  expect(new Set(results.map((r) => r.id)).size).toBe(200);
  const calls = [...shards.values()].flatMap((s) => s.calls);
  expect(calls.reduce((a, b) => a + b, 0)).toBe(200);
  expect(calls.length).toBeLessThanOrEqual(8);
  expect(shards.get('a:1')!.calls.length).toBeGreaterThan(0);
  expect(shards.get('b:1')!.calls.length).toBeGreaterThan(0);
});

it('sends a failed call’s messages to the other shard', async () => {
  const { shards, publisher } = setup(['a:1', 'b:1']);
  shards.get('a:1')!.fail = () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => publisher.publishOne('t', msg(`m${i}`))));
  expect(results.every((r) => r.shard === 'b:1')).toBe(true);
  expect(publisher.counts.shardCallFailures).toBeGreaterThan(0);
  expect(publisher.counts.ambiguousFailures).toBe(0);
});

it('keeps a key on its shard, and reports a shard’s 4xx to the caller without failing over', async () => {
  const { shards, publisher } = setup(['a:1', 'b:1', 'c:1']);
  const homes = new Set<string>();
  for (let i = 0; i < 10; i++) homes.add((await publisher.publishOne('t', msg('x', 'customer-9'))).shard);
  expect(homes.size).toBe(1);
  const home = [...homes][0];
  shards.get(home)!.fail = () => new ShardError(413, 'MSG_TOO_BIG');
  await expect(publisher.publishOne('t', msg('x', 'customer-9'))).rejects.toMatchObject({ code: 'MSG_TOO_BIG', status: 413 });
  const others = [...shards].filter(([n]) => n !== home).map(([, s]) => s.calls.length);
  expect(others.every((n) => n === 0)).toBe(true);
});

it('puts a batch without keys on one shard in one call', async () => {
  const { shards, publisher } = setup(['a:1', 'b:1']);
  const out = await publisher.publishBatch('t', Array.from({ length: 30 }, (_, i) => msg(`m${i}`)));
  expect(new Set(out.map((r) => r.shard)).size).toBe(1);
  expect([...shards.values()].flatMap((s) => s.calls)).toEqual([30]);
});
