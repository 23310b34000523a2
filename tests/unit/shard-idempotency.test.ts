// The shard's idempotency window (pure, fake clock) and the publish extension's batch logic:
// first publish wins within the window, duplicates in one batch, TTL expiry, LRU bound.

import { FakeClock } from '../../shard/engine/clock';
import { Engine } from '../../shard/engine/engine';
import { IdempotencyWindow } from '../../shard/engine/idempotency';
import { MemoryStore } from '../../shard/engine/store';
import { publishBatch } from '../../shard/http/publish-api';
import { BatchFrameError, decodeBatch, encodeBatch } from '../../wire/sluice-batch';

describe('IdempotencyWindow', () => {
  it('answers the first id within the window and forgets it after', () => {
    const clock = new FakeClock();
    const w = new IdempotencyWindow({ windowMs: 1000, maxKeys: 10 }, clock);
    w.remember('t', 'k', 'id-1');
    expect(w.get('t', 'k')).toBe('id-1');
    expect(w.get('other', 'k')).toBeUndefined();
    clock.advance(999);
    expect(w.get('t', 'k')).toBe('id-1');
    clock.advance(1);
    expect(w.get('t', 'k')).toBeUndefined();
    expect(w.size).toBe(0);
  });

  it('keeps at most maxKeys, evicting the least recently used', () => {
    const w = new IdempotencyWindow({ windowMs: 60_000, maxKeys: 3 }, new FakeClock());
    w.remember('t', 'a', '1');
    w.remember('t', 'b', '2');
    w.remember('t', 'c', '3');
    expect(w.get('t', 'a')).toBe('1'); // a is now the most recently used
    w.remember('t', 'd', '4');
    expect(w.size).toBe(3);
    expect(w.get('t', 'b')).toBeUndefined();
    expect(w.get('t', 'a')).toBe('1');
    expect(w.get('t', 'd')).toBe('4');
  });

  it('saves its live keys with wall-clock expiry and restores them into a new window, time down counted', () => {
    const clock = new FakeClock();
    const w = new IdempotencyWindow({ windowMs: 10_000, maxKeys: 10 }, clock);
    w.remember('t', 'old', '1');
    clock.advance(4_000);
    w.remember('t', 'new', '2');
    w.remember('u', 'gone-soon', '3');
    clock.advance(5_000);
    const saved = w.saved();
    expect(saved.map((k) => [k.topic, k.key, k.id])).toEqual([['t', 'old', '1'], ['t', 'new', '2'], ['u', 'gone-soon', '3']]);

    // down for 2 s: "old" (1 s left) has expired by the time the shard is back, the others have 3 s
    const later = new FakeClock(50, clock.wallNow() + 2_000);
    const back = new IdempotencyWindow({ windowMs: 10_000, maxKeys: 10 }, later);
    back.restore(saved);
    expect(back.get('t', 'old')).toBeUndefined();
    expect(back.get('t', 'new')).toBe('2');
    later.advance(2_999);
    expect(back.get('u', 'gone-soon')).toBe('3');
    later.advance(1);
    expect(back.get('u', 'gone-soon')).toBeUndefined();
  });

  it('never lets a restored key outlive its window when the wall clock stepped back, and keeps the LRU bound', () => {
    const clock = new FakeClock();
    const w = new IdempotencyWindow({ windowMs: 10_000, maxKeys: 10 }, clock);
    for (const k of ['a', 'b', 'c']) w.remember('t', k, k);
    const saved = w.saved();
    const stepped = new FakeClock(0, clock.wallNow() - 3_600_000);
    const back = new IdempotencyWindow({ windowMs: 10_000, maxKeys: 2 }, stepped);
    back.restore(saved);
    expect(back.size).toBe(2);
    expect(back.get('t', 'a')).toBeUndefined(); // least recently used: dropped by the smaller bound
    stepped.advance(10_000);
    expect(back.get('t', 'c')).toBeUndefined();
  });

  it('is off with a zero window', () => {
    const w = new IdempotencyWindow({ windowMs: 0, maxKeys: 3 }, new FakeClock());
    w.remember('t', 'a', '1');
    expect(w.get('t', 'a')).toBeUndefined();
  });
});

describe('publishBatch (the /sluice/mpub core)', () => {
  const make = () => {
    const clock = new FakeClock();
    const engine = new Engine({}, { store: new MemoryStore(), clock, schedule: (fn) => fn() });
    return { clock, engine, window: new IdempotencyWindow({ windowMs: 10_000, maxKeys: 100 }, clock) };
  };

  it('publishes everything, deferred or not, and answers one id per message in order', () => {
    const { engine, window } = make();
    const out = publishBatch(engine, window, 't', [
      { body: Buffer.from('a'), deferMs: 0 },
      { body: Buffer.from('b'), deferMs: 5000 },
      { body: Buffer.from('c'), deferMs: 0 },
    ]);
    expect(out.ids).toHaveLength(3);
    expect(new Set(out.ids).size).toBe(3);
    expect(out.duplicates).toEqual([]);
    expect(engine.findTopic('t')!.messageCount).toBe(3);
  });

  it('publishes a repeated key once, within a batch and across batches', () => {
    const { engine, window, clock } = make();
    const first = publishBatch(engine, window, 't', [
      { body: Buffer.from('a'), deferMs: 0, idempotencyKey: 'k1' },
      { body: Buffer.from('a again'), deferMs: 0, idempotencyKey: 'k1' },
    ]);
    expect(first.ids[1]).toBe(first.ids[0]);
    expect(first.duplicates).toEqual([1]);
    const again = publishBatch(engine, window, 't', [{ body: Buffer.from('x'), deferMs: 0, idempotencyKey: 'k1' }]);
    expect(again).toEqual({ ids: [first.ids[0]], duplicates: [0] });
    expect(engine.findTopic('t')!.messageCount).toBe(1);
    clock.advance(10_000);
    const later = publishBatch(engine, window, 't', [{ body: Buffer.from('x'), deferMs: 0, idempotencyKey: 'k1' }]);
    expect(later.duplicates).toEqual([]);
    expect(later.ids[0]).not.toBe(first.ids[0]);
  });
});

describe('the batch frame (wire/sluice-batch.ts)', () => {
  it('round-trips bodies byte for byte with defer and keys', () => {
    const all = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) all[i] = i;
    const msgs = [
      { body: all, deferMs: 0 },
      { body: Buffer.from('x'), deferMs: 3_600_000, idempotencyKey: 'order-1' },
    ];
    const back = decodeBatch(encodeBatch(msgs), 1024);
    expect(back.map((m) => [m.body.equals(msgs[back.indexOf(m)].body), m.deferMs, m.idempotencyKey])).toEqual([
      [true, 0, undefined],
      [true, 3_600_000, 'order-1'],
    ]);
  });

  it('names the bad message', () => {
    const frame = encodeBatch([{ body: Buffer.from('ok'), deferMs: 0 }, { body: Buffer.alloc(10), deferMs: 0 }]);
    expect(() => decodeBatch(frame, 5)).toThrow(expect.objectContaining({ code: 'MSG_TOO_BIG', index: 1 }) as unknown as Error);
    expect(() => decodeBatch(frame.subarray(0, frame.length - 1), 100)).toThrow(BatchFrameError);
    expect(() => decodeBatch(Buffer.from([0, 0, 0, 0]), 100)).toThrow(expect.objectContaining({ code: 'BAD_BODY' }) as unknown as Error);
  });
});
