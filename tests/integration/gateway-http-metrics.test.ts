// The gateway's request metrics against a real `sluice gateway` process and shard: requests are
// counted per route template (never the raw path), method and exact status, the latency
// histogram agrees with the counts, and an SSE stream is timed apart from API answers.

import http from 'node:http';
import { ROUTE_TEMPLATES, UNMATCHED } from '../../gateway/http-metrics';
import { GatewayProcess, startGateway } from '../helpers/gateway';
import { waitFor } from '../helpers/process';
import { parsePrometheus, Sample, sampleValue } from '../helpers/prom';
import { ShardProcess, startShard } from '../helpers/shard';

const REQUESTS = 'sluice_gateway_http_requests_total';
const DURATION = 'sluice_gateway_http_request_duration_seconds';
const STREAM = 'sluice_gateway_http_stream_duration_seconds';
const PUBLISH = '/v1/topics/{topic}/messages';

let shard: ShardProcess;
let gw: GatewayProcess;

beforeAll(async () => {
  shard = await startShard();
  // A small per-address publish budget, so a burst of publishes meets 429 RATE_LIMITED.
  gw = await startGateway(['--shard-http-address', shard.http, '--rate-limit', '1', '--rate-burst', '3', '--receipt-secret', 'metrics-test-secret-0123456789']);
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  await shard?.stop();
});

async function scrape(): Promise<Sample[]> {
  const r = await gw.call('/metrics');
  expect(r.status).toBe(200);
  const { samples, types } = parsePrometheus(r.text);
  expect(types[REQUESTS]).toBe('counter');
  expect(types[DURATION]).toBe('histogram');
  expect(types[STREAM]).toBe('histogram');
  return samples;
}

const requests = (s: Sample[], route: string, method: string, status: string) => sampleValue(s, REQUESTS, { route, method, status }) ?? 0;

/** Opens an SSE stream, waits for its first bytes, then hangs up. */
function openAndDropStream(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(gw.url(path), { headers: { accept: 'text/event-stream' } }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve(res.statusCode ?? 0);
      });
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
  });
}

describe('gateway HTTP request metrics', () => {
  it('counts requests per route template, method and status, and the latency histogram agrees', async () => {
    const topic = 'metrics-t';
    // publishes until the per-address budget says 429 (at least 3 fit in the burst)
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await gw.call(`/v1/topics/${topic}/messages`, 'POST', `m${i}`);
      statuses.push(r.status);
      if (r.status === 429) {
        expect(r.json().error.code).toBe('RATE_LIMITED');
        expect(r.headers['retry-after']).toBeDefined();
      }
    }
    const ok = statuses.filter((s) => s === 200).length;
    const limited = statuses.filter((s) => s === 429).length;
    expect(ok).toBeGreaterThanOrEqual(3);
    expect(limited).toBeGreaterThanOrEqual(1);
    expect(ok + limited).toBe(statuses.length);

    // a 400 (bad topic name: refused before the rate limit), a 404 under a known template, a 405,
    // and paths no route knows, each a different raw path
    expect((await gw.call('/v1/topics/bad!name/messages', 'POST', 'x')).status).toBe(400);
    expect((await gw.call('/v1/topics/no-such-topic')).status).toBe(404);
    expect((await gw.call(`/v1/topics/${topic}/messages`, 'GET')).status).toBe(405);
    for (const p of ['/nope', '/nope/again?x=1', '/v1/topics/a/b/c/d/e']) expect((await gw.call(p)).status).toBe(404);
    for (let i = 0; i < 2; i++) expect((await gw.call('/healthz')).status).toBe(200);

    const s = await scrape();
    expect(requests(s, PUBLISH, 'POST', '200')).toBe(ok);
    expect(requests(s, PUBLISH, 'POST', '429')).toBe(limited);
    expect(requests(s, PUBLISH, 'POST', '400')).toBe(1);
    expect(requests(s, PUBLISH, 'GET', '405')).toBe(1);
    expect(requests(s, '/v1/topics/{topic}', 'GET', '404')).toBe(1);
    expect(requests(s, UNMATCHED, 'GET', '404')).toBe(3);
    expect(requests(s, '/healthz', 'GET', '200')).toBe(2);

    // bounded labels: only templates (or "unmatched") as routes, never a raw path
    const known = new Set<string>([...ROUTE_TEMPLATES, UNMATCHED]);
    const routeLabels = new Set(s.filter((x) => x.name.startsWith('sluice_gateway_http_')).map((x) => x.labels.route));
    for (const r of routeLabels) expect(known.has(r)).toBe(true);

    // per series: the histogram counted every answer the counter did, its buckets are cumulative
    // and end in +Inf = _count, and the time spent is plausible
    const series = new Map<string, { method: string; route: string; total: number }>();
    for (const x of s.filter((y) => y.name === REQUESTS)) {
      const k = `${x.labels.method} ${x.labels.route}`;
      const e = series.get(k) ?? { method: x.labels.method, route: x.labels.route, total: 0 };
      e.total += x.value;
      series.set(k, e);
    }
    expect(series.size).toBe(5);
    for (const { method, route, total } of series.values()) {
      const labels = { method, route };
      const count = sampleValue(s, `${DURATION}_count`, labels);
      const sum = sampleValue(s, `${DURATION}_sum`, labels) ?? -1;
      expect({ route, method, count }).toEqual({ route, method, count: total });
      const buckets = s.filter((x) => x.name === `${DURATION}_bucket` && x.labels.method === method && x.labels.route === route);
      for (let i = 1; i < buckets.length; i++) expect(buckets[i].value).toBeGreaterThanOrEqual(buckets[i - 1].value);
      expect(buckets[buckets.length - 1].labels.le).toBe('+Inf');
      expect(buckets[buckets.length - 1].value).toBe(total);
      expect(sum).toBeGreaterThan(0);
      expect(sum).toBeLessThan(total * 30);
    }

    // the scrape itself shows up in the next one
    const again = await scrape();
    expect(requests(again, '/metrics', 'GET', '200')).toBeGreaterThanOrEqual(1);
  });

  it('times an SSE stream apart from API answers, once it ends', async () => {
    const route = '/v1/topics/{topic}/channels/{channel}/stream';
    // metrics-t exists: the first test published to it
    expect(await openAndDropStream('/v1/topics/metrics-t/channels/c%23ephemeral/stream')).toBe(200);
    let s: Sample[] = [];
    await waitFor(async () => requests((s = await scrape()), route, 'GET', '200') === 1, 5000, 'the closed stream to be counted');
    expect(sampleValue(s, `${STREAM}_count`, { route, method: 'GET' })).toBe(1);
    expect(sampleValue(s, `${STREAM}_bucket`, { route, method: 'GET', le: '+Inf' })).toBe(1);
    // not in the API latency histogram
    expect(sampleValue(s, `${DURATION}_count`, { route, method: 'GET' })).toBeUndefined();
    // a refused stream is an ordinary API answer
    expect((await gw.call('/v1/topics/metrics-t/channels/bad!name/stream')).status).toBe(400);
    await waitFor(async () => sampleValue((s = await scrape()), `${DURATION}_count`, { route, method: 'GET' }) === 1, 5000, 'the refused stream to be timed');
    expect(requests(s, route, 'GET', '400')).toBe(1);
  });
});
