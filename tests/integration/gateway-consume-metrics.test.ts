// The consuming side's /metrics on a real gateway (a lookup, two shards): what an operator reads
// after consuming — messages delivered and settled, leased per shard, streams open — matches what
// was done, and the gateway↔shard long-polls are counted per shard.

import { EventSource } from 'eventsource';
import { GatewayProcess, startGateway } from '../helpers/gateway';
import { Running, startProgram, waitFor } from '../helpers/process';
import { parsePrometheus, type Sample } from '../helpers/prom';
import { ShardProcess, startShard } from '../helpers/shard';

const SECRET = 'consume-metrics-receipt-secret-0123456789';
const json = { 'content-type': 'application/json' };

let lookup: Running;
const shards: ShardProcess[] = [];
let gw: GatewayProcess;

beforeAll(async () => {
  lookup = await startProgram(['lookup', '--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0']);
  for (let i = 0; i < 2; i++) shards.push(await startShard(['--broadcast-address', '127.0.0.1', '--node-id', String(i + 1), '--lookupd-tcp-address', lookup.addresses.tcp]));
  gw = await startGateway(['--lookupd-http-address', lookup.addresses.http, '--lookupd-poll-interval', '200ms', '--receipt-secret', SECRET]);
  await waitFor(async () => (await gw.call('/readyz')).json().shards === 2, 10_000, 'gateway to see both shards');
});

afterAll(async () => {
  await gw?.stop();
  for (const s of shards) await s.stop();
  await lookup?.stop();
});

async function metrics(): Promise<Sample[]> {
  const res = await gw.call('/metrics');
  expect(res.status).toBe(200);
  return parsePrometheus(res.text).samples;
}

const total = (samples: Sample[], name: string): number => samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);

describe('gateway consume metrics', () => {
  it('count deliveries, settles, leases per shard and open streams as they happen', async () => {
    const topic = 'cm';
    const channel = 'work';
    // the channel exists before publishing, so it gets every message
    expect((await gw.call(`/v1/topics/${topic}/channels/${channel}/messages?wait_ms=0&max=1`, 'POST')).status).toBe(200);
    // in batches of 10: each batch goes to one shard, and batches spread over both
    const shardsUsed = new Set<string>();
    for (let b = 0; b < 20; b++) {
      const bodies = Array.from({ length: 10 }, (_, i) => ({ body: { i: b * 10 + i } }));
      const r = await gw.call(`/v1/topics/${topic}/batch`, 'POST', JSON.stringify(bodies), json);
      expect(r.status).toBe(200);
      for (const x of r.json().results as { shard: string }[]) shardsUsed.add(x.shard);
    }
    expect(shardsUsed.size).toBe(2);

    const before = await metrics();
    let got = 0;
    const receipts: string[] = [];
    while (got < 200) {
      const r = await gw.call(`/v1/topics/${topic}/channels/${channel}/messages?wait_ms=2000&max=100`, 'POST');
      const msgs = r.json().messages as { receipt: string }[];
      got += msgs.length;
      receipts.push(...msgs.map((m) => m.receipt));
    }
    expect(got).toBe(200);
    const ack = await gw.call('/v1/receipts/ack', 'POST', JSON.stringify({ receipts }), json);
    expect(ack.status).toBe(200);

    const after = await metrics();
    const delta = (name: string) => total(after, name) - total(before, name);
    expect(delta('sluice_gateway_consume_delivered_messages_total')).toBe(200);
    expect(delta('sluice_gateway_consume_settled_total')).toBe(200);
    // every delivered message was leased from one of the two shards, and both held some
    const leased = after.filter((s) => s.name === 'sluice_gateway_consume_shard_messages_total');
    expect(leased.reduce((a, s) => a + s.value, 0)).toBeGreaterThanOrEqual(200);
    expect(new Set(leased.filter((s) => s.value > 0).map((s) => s.labels.shard)).size).toBe(2);
    expect(after.filter((s) => s.name === 'sluice_gateway_consume_shard_polls_total' && s.value > 0).length).toBe(2);

    // an open SSE stream shows in the gauge, and leaves it when closed
    const es = new EventSource(gw.url(`/v1/topics/${topic}/channels/${channel}/stream`));
    try {
      await new Promise<void>((resolve, reject) => {
        es.onopen = () => resolve();
        es.onerror = (e) => reject(new Error(`stream failed: ${String((e as { message?: string }).message)}`));
      });
      await waitFor(async () => total(await metrics(), 'sluice_gateway_consume_streams') === 1, 5000, 'one open stream in the gauge');
    } finally {
      es.close();
    }
    await waitFor(async () => total(await metrics(), 'sluice_gateway_consume_streams') === 0, 5000, 'the closed stream to leave the gauge');
  });
});
