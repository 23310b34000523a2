// The registration DB's semantics, driven by a fake clock: what /lookup, /nodes, /topics and /channels
// would show after registrations, pings, tombstones, unregistrations, deletions and disconnects.

import { Peer, Registry } from '../../lookup/registry';

const TIMEOUT = 300_000;
const LIFETIME = 45_000;

function setup(): { registry: Registry; clock: { t: number }; peer: (n: number) => Peer } {
  const clock = { t: 1_000 };
  const registry = new Registry({ now: () => clock.t, inactiveProducerTimeoutMs: TIMEOUT, tombstoneLifetimeMs: LIFETIME });
  const peer = (n: number): Peer =>
    registry.identify({
      id: `10.0.0.${n}:5000${n}`,
      remoteAddress: `10.0.0.${n}:5000${n}`,
      hostname: `host${n}`,
      broadcastAddress: `node${n}`,
      tcpPort: 4150,
      httpPort: 4151,
      version: '1.3.0',
    });
  return { registry, clock, peer };
}

const ids = (peers: Peer[] | undefined): string[] => (peers ?? []).map((p) => p.id);

describe('registry: registration', () => {
  it('REGISTER topic channel registers both; lookup shows channels and producers', () => {
    const { registry, peer } = setup();
    const a = peer(1);
    expect(registry.register(a, 'orders', 'billing')).toEqual({ topicAdded: true, channelAdded: true });
    expect(registry.register(a, 'orders', 'billing')).toEqual({ topicAdded: false, channelAdded: false });
    registry.register(a, 'events');
    expect(registry.topics()).toEqual(['orders', 'events']);
    expect(registry.channels('orders')).toEqual(['billing']);
    expect(registry.channels('events')).toEqual([]);
    expect(registry.lookup('orders')).toEqual({ channels: ['billing'], producers: [a] });
    expect(registry.lookup('missing')).toBeNull();
  });

  it('lists every producer of a topic once', () => {
    const { registry, peer } = setup();
    const [a, b] = [peer(1), peer(2)];
    registry.register(a, 'orders', 'c1');
    registry.register(a, 'orders', 'c2');
    registry.register(b, 'orders');
    expect(ids(registry.lookup('orders')?.producers)).toEqual([a.id, b.id]);
    expect(registry.channels('orders')).toEqual(['c1', 'c2']);
  });

  it('lists only identified, active nodes with their topics', () => {
    const { registry, peer } = setup();
    const a = peer(1);
    peer(2);
    registry.register(a, 't1');
    registry.register(a, 't2', 'c');
    const nodes = registry.nodes();
    expect(nodes.map((n) => [n.peer.id, n.topics, n.tombstones])).toEqual([
      [a.id, ['t1', 't2'], [false, false]],
      ['10.0.0.2:50002', [], []],
    ]);
  });
});

describe('registry: inactive producers', () => {
  it('hides a producer silent for longer than the timeout, and a PING brings it back', () => {
    const { registry, clock, peer } = setup();
    const a = peer(1);
    registry.register(a, 'orders');
    clock.t += TIMEOUT;
    expect(ids(registry.lookup('orders')?.producers)).toEqual([a.id]); // exactly at the timeout: still active
    clock.t += 1;
    expect(registry.lookup('orders')).toEqual({ channels: [], producers: [] }); // topic key stays
    expect(registry.nodes()).toEqual([]);
    registry.ping(a);
    expect(ids(registry.lookup('orders')?.producers)).toEqual([a.id]);
    expect(registry.nodes()).toHaveLength(1);
  });

  it('does not count REGISTER as activity, as nsqlookupd does not', () => {
    const { registry, clock, peer } = setup();
    const a = peer(1);
    clock.t += TIMEOUT + 1;
    registry.register(a, 'orders');
    expect(registry.lookup('orders')?.producers).toEqual([]);
  });
});

describe('registry: tombstones', () => {
  it('hides a tombstoned producer from lookup for the lifetime, then shows it again', () => {
    const { registry, clock, peer } = setup();
    const [a, b] = [peer(1), peer(2)];
    registry.register(a, 'orders');
    registry.register(b, 'orders');
    registry.register(a, 'events');
    expect(registry.tombstone('orders', 'node1:4151')).toBe(1);
    expect(ids(registry.lookup('orders')?.producers)).toEqual([b.id]);
    expect(ids(registry.lookup('events')?.producers)).toEqual([a.id]); // per topic
    expect(registry.nodes().find((n) => n.peer.id === a.id)).toMatchObject({ topics: ['orders', 'events'], tombstones: [true, false] });
    registry.register(a, 'orders'); // a re-REGISTER does not lift it
    clock.t += LIFETIME - 1;
    expect(ids(registry.lookup('orders')?.producers)).toEqual([b.id]);
    clock.t += 1;
    expect(ids(registry.lookup('orders')?.producers)).toEqual([a.id, b.id]);
    expect(registry.nodes()[0].tombstones).toEqual([false, false]);
  });

  it('matches the node by broadcast_address:http_port only', () => {
    const { registry, peer } = setup();
    registry.register(peer(1), 'orders');
    expect(registry.tombstone('orders', 'node1:4150')).toBe(0);
    expect(registry.tombstone('orders', '10.0.0.1:50001')).toBe(0);
    expect(registry.tombstone('other', 'node1:4151')).toBe(0);
  });
});

describe('registry: unregistration and disconnects', () => {
  it('UNREGISTER topic channel removes the producer but keeps a non-ephemeral channel key', () => {
    const { registry, peer } = setup();
    const a = peer(1);
    registry.register(a, 'orders', 'billing');
    registry.unregister(a, 'orders', 'billing');
    expect(registry.channels('orders')).toEqual(['billing']);
    expect(ids(registry.lookup('orders')?.producers)).toEqual([a.id]); // still a topic producer
  });

  it('drops an ephemeral channel key once its last producer unregisters', () => {
    const { registry, peer } = setup();
    const [a, b] = [peer(1), peer(2)];
    registry.register(a, 'orders', 'tmp#ephemeral');
    registry.register(b, 'orders', 'tmp#ephemeral');
    registry.unregister(a, 'orders', 'tmp#ephemeral');
    expect(registry.channels('orders')).toEqual(['tmp#ephemeral']);
    registry.unregister(b, 'orders', 'tmp#ephemeral');
    expect(registry.channels('orders')).toEqual([]);
  });

  it('UNREGISTER topic removes the producer from the topic and all its channels', () => {
    const { registry, peer } = setup();
    const [a, b] = [peer(1), peer(2)];
    registry.register(a, 'orders', 'billing');
    registry.register(b, 'orders');
    registry.unregister(a, 'orders');
    expect(ids(registry.lookup('orders')?.producers)).toEqual([b.id]);
    expect(registry.channels('orders')).toEqual(['billing']);
    expect(registry.nodes().find((n) => n.peer.id === a.id)?.topics).toEqual([]);
    registry.unregister(b, 'orders');
    expect(registry.topics()).toEqual(['orders']); // a non-ephemeral key outlives its producers
  });

  it('drops an ephemeral topic key once its last producer unregisters', () => {
    const { registry, peer } = setup();
    const a = peer(1);
    registry.register(a, 'live#ephemeral');
    registry.unregister(a, 'live#ephemeral');
    expect(registry.topics()).toEqual([]);
    expect(registry.lookup('live#ephemeral')).toBeNull();
  });

  it('a disconnect drops all of the node’s registrations but keeps the keys', () => {
    const { registry, peer } = setup();
    const [a, b] = [peer(1), peer(2)];
    registry.register(a, 'orders', 'billing');
    registry.register(a, 'live#ephemeral', 'c#ephemeral');
    registry.register(b, 'orders');
    registry.removePeer(a.id);
    expect(ids(registry.lookup('orders')?.producers)).toEqual([b.id]);
    expect(registry.lookup('live#ephemeral')).toEqual({ channels: ['c#ephemeral'], producers: [] });
    expect(registry.nodes().map((n) => n.peer.id)).toEqual([b.id]);
  });

  it('unregistering what was never registered is harmless', () => {
    const { registry, peer } = setup();
    const a = peer(1);
    registry.unregister(a, 'nothing');
    registry.unregister(a, 'nothing', 'none');
    registry.removePeer('1.2.3.4:5');
    expect(registry.topics()).toEqual([]);
  });
});

describe('registry: administrative actions', () => {
  it('creates and deletes topics and channels', () => {
    const { registry, peer } = setup();
    registry.createTopic('t1');
    expect(registry.lookup('t1')).toEqual({ channels: [], producers: [] });
    registry.createChannel('t2', 'c');
    expect(registry.topics()).toEqual(['t1', 't2']);
    expect(registry.channels('t2')).toEqual(['c']);
    expect(registry.deleteChannel('t2', 'c')).toBe(true);
    expect(registry.deleteChannel('t2', 'c')).toBe(false);
    const a = peer(1);
    registry.register(a, 't1', 'c1');
    registry.deleteTopic('t1');
    expect(registry.lookup('t1')).toBeNull();
    expect(registry.channels('t1')).toEqual([]);
    expect(registry.nodes()[0].topics).toEqual([]);
  });
});
