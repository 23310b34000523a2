// A shard's Prometheus /metrics reflects what it holds and what happened to it.

import { call, startShard, ShardProcess } from '../helpers/shard';
import { parsePrometheus, sampleValue } from '../helpers/prom';

let shard: ShardProcess;
beforeAll(async () => {
  shard = await startShard();
});
afterAll(async () => {
  await shard?.stop();
});

describe('shard /metrics', () => {
  it('reports depth, in flight, totals, end-to-end latency and process metrics', async () => {
    await call(shard.url('/topic/create?topic=mt'), 'POST');
    await call(shard.url('/channel/create?topic=mt&channel=c'), 'POST');
    await call(shard.url('/mpub?topic=mt'), 'POST', 'a\nb\nc\nd');
    const got = (await call(shard.url('/sluice/lease/pull?topic=mt&channel=c&max=2'), 'POST')).json().messages;
    await call(shard.url('/sluice/lease/finish?topic=mt&channel=c'), 'POST', JSON.stringify({ leases: [{ id: got[0].id, token: got[0].token }] }));
    await call(shard.url(`/sluice/lease/requeue?topic=mt&channel=c&id=${got[1].id}&token=${got[1].token}&delay_ms=60000`), 'POST');

    const res = await call(shard.url('/metrics'));
    expect(res.status).toBe(200);
    expect(String(res.headers['content-type'])).toMatch(/^text\/plain; version=0\.0\.4/);
    const { samples, types } = parsePrometheus(res.text);
    const c = { topic: 'mt', channel: 'c' };
    expect(sampleValue(samples, 'sluice_channel_depth', c)).toBe(2);
    expect(sampleValue(samples, 'sluice_channel_in_flight', c)).toBe(0);
    expect(sampleValue(samples, 'sluice_channel_deferred', c)).toBe(1);
    expect(sampleValue(samples, 'sluice_channel_messages_total', c)).toBe(4);
    expect(sampleValue(samples, 'sluice_channel_requeued_total', c)).toBe(1);
    expect(sampleValue(samples, 'sluice_topic_messages_total', { topic: 'mt' })).toBe(4);
    expect(sampleValue(samples, 'sluice_message_e2e_latency_seconds_count', c)).toBe(1);
    expect(sampleValue(samples, 'sluice_message_e2e_latency_seconds_bucket', { ...c, le: '+Inf' })).toBe(1);
    expect(sampleValue(samples, 'sluice_message_e2e_latency_seconds_bucket', { ...c, le: '600' })).toBe(1);
    expect(types.sluice_channel_messages_total).toBe('counter');
    expect(types.sluice_message_e2e_latency_seconds).toBe('histogram');
    expect(sampleValue(samples, 'sluice_shard_process_resident_memory_bytes')).toBeGreaterThan(0);

    // counters never go down between scrapes
    await call(shard.url('/pub?topic=mt'), 'POST', 'e');
    const again = parsePrometheus((await call(shard.url('/metrics'))).text).samples;
    expect(sampleValue(again, 'sluice_channel_messages_total', c)).toBe(5);
  });
});
