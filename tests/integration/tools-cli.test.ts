// `sluice tail`, `sluice pub` and `sluice stat` as real processes against a lookup and two real
// shards, finding the shards through the lookup: tail prints what is published on both shards and
// stops after -n; pub turns stdin lines into messages spread over the shards (rate-limited runs
// still deliver every line); stat prints the depth summed over the shards in nsq_stat's columns.

import { call } from '../helpers/shard';
import { waitFor } from '../helpers/process';
import { channelStats, consumersOnEveryShard, exitCode, mpub, prepareTopic, spawnTool, startCluster, type Cluster } from '../helpers/tools';

let c: Cluster;

beforeAll(async () => {
  c = await startCluster();
});

afterAll(async () => {
  await c?.close();
});

describe('sluice tail', () => {
  it('prints the messages published on every shard, one per line, and stops after -n', async () => {
    await prepareTopic(c, 'tail-t');
    const tail = spawnTool(['tail', '--topic', 'tail-t', '--lookupd-http-address', c.lookupHttp, '--print-topic', '-n', '6']);
    // its #ephemeral channel appears on both shards once it has subscribed
    await waitFor(() => consumersOnEveryShard(c, 'tail-t', (ch) => /^tail\d{6}#ephemeral$/.test(ch)), 10_000, 'tail subscribed on both shards');
    await mpub(c.shards[0], 'tail-t', ['a1', 'a2', 'a3']);
    await mpub(c.shards[1], 'tail-t', ['b1', 'b2', 'b3']);
    expect(await exitCode(tail)).toBe(0);
    expect(tail.stdout().split('\n').filter(Boolean).sort()).toEqual(['a1', 'a2', 'a3', 'b1', 'b2', 'b3'].map((m) => `tail-t | ${m}`));
    expect(tail.logs().find((l) => l.message === 'done')).toMatchObject({ messages: 6 });
    // the ephemeral channel went with it, on both shards
    await waitFor(
      async () => {
        for (const s of c.shards) {
          const doc = (await call(s.url('/stats?format=json&topic=tail-t'))).json() as { topics: Array<{ channels: Array<{ channel_name: string }> }> };
          if (doc.topics[0].channels.some((ch) => ch.channel_name.endsWith('#ephemeral'))) return false;
        }
        return true;
      },
      5000,
      'the #ephemeral channel to vanish',
    );
  });

  it('reads a named channel when asked, leaving what it did not print there', async () => {
    await prepareTopic(c, 'tail-named', 'keep');
    await mpub(c.shards[0], 'tail-named', ['x1', 'x2', 'x3', 'x4', 'x5']);
    const tail = spawnTool(['tail', '--topic', 'tail-named', '--channel', 'keep', '--nsqd-tcp-address', c.shards[0].addresses.tcp, '-n', '2']);
    expect(await exitCode(tail)).toBe(0);
    expect(tail.stdout().split('\n').filter(Boolean)).toHaveLength(2);
    await waitFor(async () => (await channelStats(c.shards[0], 'tail-named', 'keep'))?.depth === 3, 5000, 'three messages left');
  });
});

describe('sluice pub', () => {
  it('publishes each non-empty stdin line as one message, spread over the shards', async () => {
    const lines = Array.from({ length: 500 }, (_, i) => `line-${i}`);
    const stdin = lines.slice(0, 250).join('\n') + '\n\n' + lines.slice(250).join('\r\n'); // an empty line, CRLFs, no final newline
    const pub = spawnTool(['pub', '--topic', 'pub-t', '--lookupd-http-address', c.lookupHttp, '--batch-size', '40'], stdin);
    expect(await exitCode(pub)).toBe(0);
    expect(pub.logs().find((l) => l.message === 'done')).toMatchObject({ published: 500 });

    // the topic did not exist: pub found both shards through /nodes and used both
    const perShard = [0, 0];
    const bodies: string[] = [];
    await waitFor(
      async () => {
        for (const [i, s] of c.shards.entries()) {
          const res = await call(s.url('/sluice/lease/pull?topic=pub-t&channel=check&max=1000&lease_ms=60000&wait_ms=100'), 'POST');
          const got = (res.json() as { messages: Array<{ body: string }> }).messages.map((m) => Buffer.from(m.body, 'base64').toString());
          perShard[i] += got.length;
          bodies.push(...got);
        }
        return bodies.length >= lines.length;
      },
      10_000,
      'every line read back',
    );
    expect(perShard.every((n) => n > 0)).toBe(true);
    expect(bodies.sort()).toEqual([...lines].sort());
  });

  it('with --rate still publishes every line (counts only: no timing is asserted)', async () => {
    const lines = Array.from({ length: 60 }, (_, i) => `r${i}`);
    const pub = spawnTool(['pub', '--topic', 'pub-rate', '--nsqd-tcp-address', c.shards[1].addresses.tcp, '--rate', '300', '--batch-size', '10'], lines.join('\n') + '\n');
    expect(await exitCode(pub)).toBe(0);
    const topic = (await call(c.shards[1].url('/stats?format=json&topic=pub-rate'))).json() as { topics: Array<{ depth: number }> };
    expect(topic.topics[0].depth).toBe(60);
  });

  it('exits non-zero when the shard refuses the messages', async () => {
    const pub = spawnTool(['pub', '--topic', 'pub-big', '--nsqd-tcp-address', c.shards[0].addresses.tcp, '--max-msg-size', String(4 << 20)], 'x'.repeat(2 << 20) + '\n');
    expect(await exitCode(pub)).toBe(1);
    expect(pub.logs().find((l) => l.message === 'publish failed')).toMatchObject({ nsq_code: expect.stringMatching(/^E_BAD_(MESSAGE|BODY)$/) });
  });
});

describe('sluice stat', () => {
  it('prints the channel’s depth summed over both shards, then stops after -n rows', async () => {
    await prepareTopic(c, 'stat-t', 'c');
    await mpub(c.shards[0], 'stat-t', Array.from({ length: 7 }, (_, i) => `a${i}`));
    await mpub(c.shards[1], 'stat-t', Array.from({ length: 5 }, (_, i) => `b${i}`));
    const stat = spawnTool(['stat', '--topic', 'stat-t', '--channel', 'c', '--lookupd-http-address', c.lookupHttp, '--interval', '100ms', '-n', '2']);
    expect(await exitCode(stat)).toBe(0);
    const out = stat.stdout().trim().split('\n');
    expect(out[1].trim().split(/\s+/)).toEqual(['ingress', 'egress', '|', 'total', 'mem', 'disk', 'inflt', 'def', '|', 'req', 't-o', 'msgs', 'clients']);
    const rows = out.slice(2).map((l) => l.trim().split(/\s+/));
    expect(rows).toHaveLength(2);
    // ingress egress | total mem disk inflt def | req t-o msgs clients
    expect(rows[0]).toEqual(['-', '-', '|', '12', '12', '0', '0', '0', '|', '0', '0', '12', '0']);
    expect(rows[1].slice(0, 4)).toEqual(['0', '0', '|', '12']);
  });

  it('reads only the shards it is given with --nsqd-http-address', async () => {
    const stat = spawnTool(['stat', '--topic', 'stat-t', '--channel', 'c', '--nsqd-http-address', c.shards[0].http, '-n', '1']);
    expect(await exitCode(stat)).toBe(0);
    expect(stat.stdout().trim().split('\n')[2].trim().split(/\s+/)[3]).toBe('7');
  });
});

describe('every utility', () => {
  it.each(['tail', 'pub', 'stat', 'to-http', 'to-file'])('%s --help lists its flags with their environment variables', async (tool) => {
    const t = spawnTool([tool, '--help']);
    expect(await exitCode(t)).toBe(0);
    expect(t.stdout()).toContain(`Usage: sluice ${tool} [flags]`);
    expect(t.stdout()).toContain('--topic');
    expect(t.stdout()).toContain('env SLUICE_TOPIC');
  });

  it.each(['tail', 'pub', 'stat', 'to-http', 'to-file'])('%s without a topic fails to start', async (tool) => {
    const t = spawnTool([tool, '--lookupd-http-address', c.lookupHttp]);
    expect(await exitCode(t)).not.toBe(0);
  });
});
