// Two real shards registering with two real lookups: what clients see in the lookups' HTTP answers (each
// checked against nsqlookupd v1.3's shapes) as topics come and go, lookups die and return, a shard is
// tombstoned or stops pinging, and a new topic on one shard adopts the channels it has on the other.

import { hostname } from 'node:os';
import { call, ShardProcess, startShard } from '../helpers/shard';
import { LookupBody, LookupProcess, NodesBody, expectShape, shapes, startLookup } from '../helpers/lookup';
import { tempDir, waitFor } from '../helpers/process';
import { parsePrometheus, sampleValue } from '../helpers/prom';

const LOOKUP_ARGS = ['--broadcast-address', '127.0.0.1', '--inactive-producer-timeout', '1500ms', '--tombstone-lifetime', '1500ms'];

type Producer = { remote_address: string; hostname: string; broadcast_address: string; tcp_port: number; http_port: number; version: string };

/** GET from a lookup; the answer must have nsqlookupd's shape for that endpoint (or its error shape). */
async function lookupGet<T>(lookup: LookupProcess, path: string, shape: keyof typeof shapes): Promise<{ status: number; body: T }> {
  const res = await call(lookup.base + path);
  const body = res.json() as T;
  expectShape(res.status === 200 ? shape : 'error', body);
  return { status: res.status, body };
}

async function producers(lookup: LookupProcess, topic: string): Promise<Producer[]> {
  const res = await lookupGet<LookupBody>(lookup, `/lookup?topic=${encodeURIComponent(topic)}`, 'lookup');
  return res.status === 404 ? [] : (res.body.producers as Producer[]);
}

const httpPorts = async (lookup: LookupProcess, topic: string): Promise<number[]> => (await producers(lookup, topic)).map((p) => p.http_port).sort();

async function channelsOn(lookup: LookupProcess, topic: string): Promise<string[]> {
  return (await lookupGet<{ channels: string[] }>(lookup, `/channels?topic=${encodeURIComponent(topic)}`, 'channels')).body.channels.sort();
}

async function post(shard: ShardProcess, path: string, body?: string): Promise<void> {
  const res = await call(shard.url(path), 'POST', body);
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${res.text}`);
}

/** "name=depth,…" of a topic's channels on a shard, from its /stats. */
async function channelDepths(shard: ShardProcess, topic: string): Promise<string> {
  const stats = (await call(shard.url(`/stats?format=json&topic=${topic}`))).json() as { topics: Array<{ channels: Array<{ channel_name: string; depth: number }> }> };
  return (stats.topics[0]?.channels ?? []).map((c) => `${c.channel_name}=${c.depth}`).join();
}

interface ShardPorts {
  http: number;
  tcp: number;
}

describe('shards registering with lookups (real processes)', () => {
  let l1: LookupProcess;
  let l2: LookupProcess;
  let a: ShardProcess;
  let b: ShardProcess;
  const ports: Record<'a' | 'b', ShardPorts> = { a: { http: 0, tcp: 0 }, b: { http: 0, tcp: 0 } };
  const dirs = [tempDir(), tempDir()];

  beforeAll(async () => {
    [l1, l2] = await Promise.all([startLookup(LOOKUP_ARGS), startLookup(LOOKUP_ARGS)]);
    const args = ['--lookupd-tcp-address', l1.tcpAddress, '--lookupd-tcp-address', l2.tcpAddress, '--broadcast-address', '127.0.0.1', '--lookup-ping-interval', '250ms', '--lease-grace', '200ms'];
    [a, b] = await Promise.all([startShard(args, dirs[0].path), startShard(args, dirs[1].path)]);
    for (const [name, shard] of [['a', a], ['b', b]] as const) {
      const info = (await call(shard.url('/info'))).json() as { http_port: number; tcp_port: number };
      ports[name] = { http: info.http_port, tcp: info.tcp_port };
    }
  });

  afterAll(async () => {
    a?.child.kill('SIGCONT');
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([l1?.stop(), l2?.stop()]);
    for (const d of dirs) d.remove();
  });

  it('lists each shard in every lookup’s /lookup, /nodes and /topics with the ports it listens on', async () => {
    expect(ports.a.tcp).toBeGreaterThan(0);
    await post(a, '/topic/create?topic=reg');
    await post(b, '/topic/create?topic=reg');
    for (const lookup of [l1, l2]) {
      await waitFor(async () => (await producers(lookup, 'reg')).length === 2, 5000, 'both shards registered');
      const byPort = new Map((await producers(lookup, 'reg')).map((p) => [p.http_port, p]));
      for (const shard of [ports.a, ports.b]) {
        expect(byPort.get(shard.http)).toEqual({
          remote_address: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
          hostname: hostname(),
          broadcast_address: '127.0.0.1',
          tcp_port: shard.tcp,
          http_port: shard.http,
          version: '1.3.0',
        });
      }
      const nodes = (await lookupGet<NodesBody>(lookup, '/nodes', 'nodes')).body.producers as Array<NodesBody['producers'][number] & Producer>;
      expect(nodes.map((n) => n.http_port).sort()).toEqual([ports.a.http, ports.b.http].sort());
      for (const n of nodes) expect(n.topics).toContain('reg');
      expect((await lookupGet<{ topics: string[] }>(lookup, '/topics', 'topics')).body.topics).toContain('reg');
      // and its Prometheus /metrics counts them
      const metrics = await call(`${lookup.base}/metrics`);
      expect(String(metrics.headers['content-type'])).toMatch(/^text\/plain; version=0\.0\.4/);
      const { samples } = parsePrometheus(metrics.text);
      expect(sampleValue(samples, 'sluice_lookup_nodes')).toBe(2);
      expect(sampleValue(samples, 'sluice_lookup_topics')).toBeGreaterThanOrEqual(1);
      expect(sampleValue(samples, 'sluice_lookup_process_resident_memory_bytes')).toBeGreaterThan(0);
    }
  });

  it('creates a channel held on shard A on shard B when B first gets the topic, so B’s first message reaches it', async () => {
    await post(a, '/topic/create?topic=fan'); // /channel/create needs the topic, as in nsqd
    await post(a, '/channel/create?topic=fan&channel=billing');
    for (const lookup of [l1, l2]) await waitFor(async () => (await channelsOn(lookup, 'fan')).includes('billing'), 5000, 'channel registered');
    // An #ephemeral channel known to a lookup (made there through its admin API) is not pre-created (as in nsqd).
    expect((await call(`${l2.base}/channel/create?topic=fan&channel=${encodeURIComponent('live#ephemeral')}`, 'POST')).status).toBe(200);

    await post(b, '/pub?topic=fan', 'first');
    // The topic holds the message until the lookups have answered; then the channel exists and has it.
    await waitFor(async () => (await channelDepths(b, 'fan')) === 'billing=1', 5000, 'billing to get the first message');
    await waitFor(async () => (await httpPorts(l1, 'fan')).length === 2, 5000, 'B registered fan');
  });

  it('unregisters deleted channels and topics, and #ephemeral channels that vanish by themselves', async () => {
    await post(a, '/topic/create?topic=del');
    // A long-poll lease pull is a consumer: it keeps an #ephemeral channel alive while it waits.
    const pull = (channel: string, waitMs: number) =>
      call(a.url(`/sluice/lease/pull?topic=del&channel=${encodeURIComponent(channel)}&wait_ms=${waitMs}`), 'POST');
    const pulls = [pull('tmp#ephemeral', 5000), pull('auto#ephemeral', 600)];
    for (const lookup of [l1, l2]) {
      await waitFor(async () => (await channelsOn(lookup, 'del')).join() === 'auto#ephemeral,tmp#ephemeral', 5000, 'channels registered');
      expect(await httpPorts(lookup, 'del')).toEqual([ports.a.http]);
    }
    // An #ephemeral channel's key goes with its last producer, so its UNREGISTER shows in /channels:
    // deleted through the API, or reaped once its last consumer left and --lease-grace passed.
    await post(a, `/channel/delete?topic=del&channel=${encodeURIComponent('tmp#ephemeral')}`);
    for (const lookup of [l1, l2]) await waitFor(async () => (await channelsOn(lookup, 'del')).length === 0, 5000, 'channels unregistered');
    await Promise.all(pulls);
    await post(a, '/topic/delete?topic=del');
    for (const lookup of [l1, l2]) {
      await waitFor(async () => (await httpPorts(lookup, 'del')).length === 0, 5000, 'topic unregistered');
      const nodes = (await lookupGet<NodesBody>(lookup, '/nodes', 'nodes')).body.producers;
      for (const n of nodes) expect(n.topics).not.toContain('del');
    }
  });

  it('hides a tombstoned shard from /lookup for the tombstone lifetime, then lists it again', async () => {
    await post(a, '/topic/create?topic=tomb');
    await post(b, '/topic/create?topic=tomb');
    await waitFor(async () => (await httpPorts(l1, 'tomb')).length === 2, 5000, 'both registered');
    const res = await call(`${l1.base}/topic/tombstone?topic=tomb&node=127.0.0.1:${ports.a.http}`, 'POST');
    expect(res.status).toBe(200);
    expect(await httpPorts(l1, 'tomb')).toEqual([ports.b.http]);
    expect((await httpPorts(l2, 'tomb')).length).toBe(2); // lookups are independent
    const nodes = (await lookupGet<NodesBody>(l1, '/nodes', 'nodes')).body.producers as Array<NodesBody['producers'][number] & Producer>;
    const nodeA = nodes.find((n) => n.http_port === ports.a.http)!;
    expect(nodeA.tombstones[nodeA.topics.indexOf('tomb')]).toBe(true);
    await waitFor(async () => (await httpPorts(l1, 'tomb')).length === 2, 5000, 'tombstone to expire');
  });

  it('drops a shard that stops pinging after the inactive timeout, and lists it again once it resumes', async () => {
    await post(a, '/topic/create?topic=quiet');
    await post(b, '/topic/create?topic=quiet');
    await waitFor(async () => (await httpPorts(l2, 'quiet')).length === 2, 5000, 'both registered');
    a.child.kill('SIGSTOP');
    try {
      await waitFor(async () => (await httpPorts(l2, 'quiet')).join() === String(ports.b.http), 6000, 'stopped shard to go inactive');
      const nodes = (await lookupGet<NodesBody>(l2, '/nodes', 'nodes')).body.producers as Array<NodesBody['producers'][number] & Producer>;
      expect(nodes.map((n) => n.http_port)).toEqual([ports.b.http]);
    } finally {
      a.child.kill('SIGCONT');
    }
    await waitFor(async () => (await httpPorts(l2, 'quiet')).length === 2, 5000, 'resumed shard to ping again');
  });

  it('keeps discovery working on the other lookup while one is down, and re-registers with it when it returns', async () => {
    await post(a, '/topic/create?topic=split');
    await post(a, '/channel/create?topic=split&channel=c');
    await waitFor(async () => (await channelsOn(l1, 'split')).length === 1 && (await channelsOn(l2, 'split')).length === 1, 5000, 'registered');
    const l1Ports = { tcp: l1.tcpPort, http: l1.httpPort };
    await l1.kill9();

    expect(await httpPorts(l2, 'reg')).toEqual([ports.a.http, ports.b.http].sort());
    // B's new topic still adopts A's channel through the lookup that is up, without waiting on the dead one.
    const t0 = Date.now();
    await post(b, '/pub?topic=split', 'm');
    expect(Date.now() - t0).toBeLessThan(1500);
    await waitFor(async () => (await channelDepths(b, 'split')) === 'c=1', 2000, 'channel adopted through the live lookup');

    l1 = await startLookup(LOOKUP_ARGS, l1Ports);
    await waitFor(async () => (await httpPorts(l1, 'reg')).length === 2, 5000, 're-registration after restart');
    expect(await httpPorts(l1, 'split')).toEqual([ports.a.http, ports.b.http].sort());
    expect(await channelsOn(l1, 'split')).toEqual(['c']);
    expect(await httpPorts(l1, 'fan')).toEqual([ports.a.http, ports.b.http].sort());
  });
});
