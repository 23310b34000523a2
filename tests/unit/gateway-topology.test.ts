// Topology (gateway/topology.ts): lookups' /nodes answers merged, tombstoned topics left out, the
// last good answer of a lookup kept while it is down, and topics learned from own publishes.

import { silentLogger } from '../../runtime/logger';
import { FetchNodes, parseNodes, Topology } from '../../gateway/topology';

const node = (host: string, port: number, topics: string[], tombstones: boolean[] = topics.map(() => false)) => ({
  remote_address: `${host}:1`, hostname: host, broadcast_address: host, tcp_port: port - 1, http_port: port, version: '1.3.0', tombstones, topics,
});

describe('Topology', () => {
  it('merges every lookup, skips tombstoned topics and keeps a lookup’s last answer while it is down', async () => {
    const answers: Record<string, unknown> = {
      a: { producers: [node('10.0.0.1', 4151, ['orders', 'old'], [false, true])] },
      b: { producers: [node('10.0.0.2', 4151, ['orders', 'audit'])] },
    };
    const fetch: FetchNodes = async (lookup) => {
      const doc = answers[lookup];
      if (doc instanceof Error) throw doc;
      return doc;
    };
    const t = new Topology({ lookups: ['a', 'b'], staticShards: [], pollIntervalMs: 1000, timeoutMs: 100 }, silentLogger(), fetch);
    await t.refresh();
    expect(t.nodes()).toEqual(['10.0.0.1:4151', '10.0.0.2:4151']);
    expect(t.shardsOf('orders')).toEqual(['10.0.0.1:4151', '10.0.0.2:4151']);
    expect(t.shardsOf('old')).toEqual([]);
    expect(t.shardsOf('audit')).toEqual(['10.0.0.2:4151']);
    answers.a = new Error('down');
    answers.b = new Error('down');
    await t.refresh();
    expect(t.lookups()).toEqual({ a: false, b: false });
    expect(t.shardsOf('orders')).toEqual(['10.0.0.1:4151', '10.0.0.2:4151']);
    answers.b = { producers: [] };
    await t.refresh();
    expect(t.nodes()).toEqual(['10.0.0.1:4151']);
  });

  it('learns a topic from its own publishes until a lookup reports it', async () => {
    let doc: unknown = { producers: [node('10.0.0.1', 4151, [])] };
    const t = new Topology({ lookups: ['a'], staticShards: ['10.0.0.9:4151'], pollIntervalMs: 1000, timeoutMs: 100 }, silentLogger(), async () => doc);
    await t.refresh();
    expect(t.nodes()).toEqual(['10.0.0.1:4151', '10.0.0.9:4151']);
    const v = t.version;
    t.learn('10.0.0.9:4151', 'fresh');
    expect(t.shardsOf('fresh')).toEqual(['10.0.0.9:4151']);
    expect(t.version).toBeGreaterThan(v);
    doc = { producers: [node('10.0.0.1', 4151, ['fresh'])] };
    await t.refresh();
    expect(t.shardsOf('fresh')).toEqual(['10.0.0.1:4151', '10.0.0.9:4151']);
  });

  it('refuses a /nodes document without producers', () => {
    expect(() => parseNodes({})).toThrow(/producers/);
    expect(parseNodes({ producers: [{ broadcast_address: '::1', http_port: 1 }] }).has('[::1]:1')).toBe(true);
  });
});
