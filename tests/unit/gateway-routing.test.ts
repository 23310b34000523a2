// Rendezvous routing (gateway/routing.ts): deterministic, sticky per key, minimal movement when a
// shard leaves, open-breaker shards last, and a new topic placed the same way by every gateway.

import fc from 'fast-check';
import { hash53, homeOf, placement, rendezvous, route } from '../../gateway/routing';

const nodes = ['10.0.0.1:4151', '10.0.0.2:4151', '10.0.0.3:4151', '10.0.0.4:4151'];

describe('rendezvous hashing', () => {
  it('is a pure function of the names (same answer in any order of nodes)', () => {
    fc.assert(
      fc.property(fc.string(), fc.shuffledSubarray(nodes, { minLength: 1 }), (key, subset) => {
        expect(rendezvous(key, subset)).toEqual(rendezvous(key, [...subset].reverse()));
        expect(hash53(key)).toBe(hash53(key));
      }),
    );
  });

  it('moves only the keys of a shard that leaves', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ minLength: 1 }), { minLength: 50, maxLength: 200 }), fc.constantFrom(...nodes), (keys, gone) => {
        const rest = nodes.filter((n) => n !== gone);
        for (const k of keys) {
          const before = rendezvous(k, nodes)[0];
          const after = rendezvous(k, rest)[0];
          if (before !== gone) expect(after).toBe(before);
          else expect(after).toBe(rendezvous(k, nodes)[1]);
        }
      }),
    );
  });

  it('spreads keys over the shards', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const n = rendezvous(`key-${i}`, nodes)[0];
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    for (const n of nodes) expect(counts.get(n)).toBeGreaterThan(800);
  });
});

describe('route()', () => {
  const home = (topic: string, existing: string[] = []) => homeOf(topic, nodes, existing, 2);

  it('places a new topic on the same shards from every gateway', () => {
    expect(placement('orders', nodes, 2)).toEqual(placement('orders', [...nodes].reverse(), 2));
    expect(home('orders')).toHaveLength(2);
  });

  it('keeps a key on one shard and lists every other shard after the home', () => {
    const h = home('orders', [nodes[3]]);
    const a = route({ topic: 'orders', nodes, home: h, key: 'customer-7', turn: 1 });
    const b = route({ topic: 'orders', nodes, home: h, key: 'customer-7', turn: 99 });
    expect(a).toEqual(b);
    expect(h).toContain(a[0]);
    expect([...a].sort()).toEqual([...nodes].sort());
  });

  it('spreads messages without a key over the home in turn', () => {
    const h = home('t', [nodes[0], nodes[1], nodes[2]]);
    const firsts = new Set([0, 1, 2, 3, 4, 5].map((turn) => route({ topic: 't', nodes, home: h, turn })[0]));
    expect([...firsts].sort()).toEqual([...h].sort());
  });

  it('puts shards with an open breaker last, in the same relative order', () => {
    const h = home('orders');
    const all = route({ topic: 'orders', nodes, home: h, key: 'k', turn: 0 });
    const down = all[0];
    const r = route({ topic: 'orders', nodes, home: h, key: 'k', turn: 0, unavailable: (n) => n === down });
    expect(r).toEqual([...all.slice(1), down]);
  });
});
