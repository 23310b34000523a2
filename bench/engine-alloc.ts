// Heap bytes the engine allocates per published message: an in-memory engine, a topic with one
// channel, batches of 100 × 200 B (bodies are views into one buffer, made outside the measured
// span), and the young generation's growth across each publishMany call (calls a scavenge fell in
// are skipped). Run once as is, and once after a consumer has taken and finished messages and a
// deferred publish went through, since what V8 has seen stored in a class's fields decides how
// later objects of it are laid out.
//
// Usage (after `npm run build`): node dist/bench/engine-alloc.js [--rounds 3000]

import { getHeapSpaceStatistics } from 'node:v8';
import type { Consumer } from '../shard/engine/channel';
import { Engine } from '../shard/engine/engine';
import type { Message } from '../shard/engine/message';
import { MemoryStore } from '../shard/engine/store';
import { arg } from './harness';

const BATCH = 100;
const SIZE = 200;

function newSpaceUsed(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size;
}

function measure(afterDeliveries: boolean, rounds: number): { bytes: number; ns: number } {
  const e = new Engine({ memQueueSize: 1e7 }, { store: new MemoryStore(), schedule: (fn) => fn() });
  const ch = e.channel('t', 'c');
  if (afterDeliveries) {
    const got: Message[] = [];
    const c: Consumer = { id: 1, msgTimeoutMs: 60_000, inFlightCount: 0, capacity: () => 1000 - c.inFlightCount, deliver: (m) => got.push(m) };
    ch.addConsumer(c);
    e.publishMany('t', [Buffer.from('a'), Buffer.from('b')]);
    for (const m of got) ch.finish(m.id, 1);
    ch.removeConsumer(c);
    e.publish('t', Buffer.from('later'), 50);
  }
  const big = Buffer.alloc(BATCH * SIZE);
  const perMessage: number[] = [];
  let ns = 0n;
  for (let r = 0; r < rounds; r++) {
    const bodies: Buffer[] = new Array(BATCH);
    for (let i = 0; i < BATCH; i++) bodies[i] = big.subarray(i * SIZE, (i + 1) * SIZE);
    const before = newSpaceUsed();
    const t0 = process.hrtime.bigint();
    e.publishMany('t', bodies);
    ns += process.hrtime.bigint() - t0;
    const after = newSpaceUsed();
    if (after > before) perMessage.push((after - before) / BATCH);
    if (r % 500 === 499) ch.empty();
  }
  perMessage.sort((a, b) => a - b);
  return { bytes: perMessage[perMessage.length >> 1], ns: Number(ns) / (rounds * BATCH) };
}

const rounds = Number(arg('rounds', '3000'));
const rows: string[] = [];
for (const after of [false, true]) {
  const { bytes, ns } = measure(after, rounds);
  rows.push(`engine publishMany ${BATCH} x ${SIZE} B, one channel${after ? ', after deliveries and a deferred publish' : ''}: ${bytes.toFixed(1)} heap bytes per message (median over calls), ${ns.toFixed(0)} ns per message`);
}
for (const r of rows) process.stdout.write(r + '\n');
process.stdout.write('RESULT ' + JSON.stringify(rows) + '\n');
