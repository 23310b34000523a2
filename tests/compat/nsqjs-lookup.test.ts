// nsqjs (an unmodified NSQ client) discovering shards the way it discovers nsqd: given only lookup HTTP
// addresses, it asks /lookup?topic=, connects to every producer's broadcast_address:tcp_port and consumes.

import { EventEmitter } from 'node:events';
import { LookupProcess, startLookup } from '../helpers/lookup';
import { tempDir, waitFor } from '../helpers/process';
import { call, ShardProcess, startShard } from '../helpers/shard';

// nsqjs ships no types; this is the part of its Reader used here.
interface NsqjsMessage {
  body: Buffer;
  finish(): void;
}
interface NsqjsReader extends EventEmitter {
  connect(): void;
  close(): void;
}
const nsqjs = require('nsqjs') as {
  Reader: new (topic: string, channel: string, options: Record<string, unknown>) => NsqjsReader;
};

describe('nsqjs Reader finding shards through lookups', () => {
  let lookups: LookupProcess[] = [];
  let shards: ShardProcess[] = [];
  let reader: NsqjsReader | undefined;
  const dirs = [tempDir(), tempDir()];

  beforeAll(async () => {
    lookups = await Promise.all([startLookup(['--broadcast-address', '127.0.0.1']), startLookup(['--broadcast-address', '127.0.0.1'])]);
    const args = lookups.flatMap((l) => ['--lookupd-tcp-address', l.tcpAddress]).concat(['--broadcast-address', '127.0.0.1']);
    shards = await Promise.all(dirs.map((d) => startShard(args, d.path)));
  });

  afterAll(async () => {
    reader?.close();
    await Promise.all(shards.map((s) => s.stop()));
    await Promise.all(lookups.map((l) => l.stop()));
    for (const d of dirs) d.remove();
  });

  it('connects to both shards named by two lookups (deduplicated) and consumes what was published to each', async () => {
    const expected: string[] = [];
    for (const [i, shard] of shards.entries()) {
      for (let n = 0; n < 3; n++) {
        const body = `shard${i}-msg${n}`;
        expect((await call(shard.url('/pub?topic=compat'), 'POST', body)).status).toBe(200);
        expected.push(body);
      }
    }
    for (const l of lookups) {
      await waitFor(async () => ((await call(`${l.base}/lookup?topic=compat`)).json() as { producers: unknown[] }).producers.length === 2, 5000, 'both shards registered');
    }

    const tcpPorts = await Promise.all(shards.map(async (s) => ((await call(s.url('/info'))).json() as { tcp_port: number }).tcp_port));
    const connected: string[] = [];
    const got: string[] = [];
    reader = new nsqjs.Reader('compat', 'nsqjs', { lookupdHTTPAddresses: lookups.map((l) => l.base.slice('http://'.length)), lookupdPollInterval: 1, maxInFlight: 10 });
    reader.on('error', () => undefined);
    reader.on('nsqd_connected', (host: string, port: number) => connected.push(`${host}:${port}`));
    reader.on('message', (m: NsqjsMessage) => {
      got.push(m.body.toString());
      m.finish();
    });
    reader.connect();

    await waitFor(() => got.length === expected.length, 10_000, 'all messages');
    expect(got.sort()).toEqual(expected.sort());
    expect(connected.sort()).toEqual(tcpPorts.map((p) => `127.0.0.1:${p}`).sort());
    // Every message was finished on the shard that held it.
    for (const shard of shards) {
      await waitFor(async () => {
        const stats = (await call(shard.url('/stats?format=json&topic=compat'))).json() as { topics: Array<{ channels: Array<{ depth: number; in_flight_count: number }> }> };
        const ch = stats.topics[0]?.channels[0];
        return ch !== undefined && ch.depth === 0 && ch.in_flight_count === 0;
      }, 5000, 'messages finished');
    }
  });
});
