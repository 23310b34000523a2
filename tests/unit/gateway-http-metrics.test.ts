// Request counting without a server: route templates from raw paths, status slots, buckets,
// and the scrape-time export, driven by a fake clock and fake request/response objects.

import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Registry } from 'prom-client';
import { CLIENT_CLOSED, HttpRequestCounts, registerHttpMetrics, REQUEST_BUCKETS_S, RouteTable, ROUTE_TEMPLATES, UNMATCHED } from '../../gateway/http-metrics';
import { parsePrometheus, sampleValue } from '../helpers/prom';

describe('RouteTable', () => {
  const t = new RouteTable(ROUTE_TEMPLATES);
  const route = (url: string) => {
    const i = t.match(url);
    return i === -1 ? UNMATCHED : ROUTE_TEMPLATES[i];
  };

  it('maps raw paths to their template, ignoring the query and one trailing slash', () => {
    expect(route('/v1/topics/orders/messages?defer=10')).toBe('/v1/topics/{topic}/messages');
    expect(route('/v1/topics/a%23ephemeral/channels/c/stream')).toBe('/v1/topics/{topic}/channels/{channel}/stream');
    expect(route('/v1/topics/')).toBe('/v1/topics');
    expect(route('/admin/')).toBe('/admin');
    expect(route('/admin/admin.js')).toBe('/admin/{file}');
    expect(route('/v1/admin/shards/127.0.0.1:4151/stats?format=json')).toBe('/v1/admin/shards/{shard}/{endpoint}');
  });

  it('prefers a literal segment over a parameter, and falls back to the parameter', () => {
    expect(route('/v1/admin/topics/t/tombstone')).toBe('/v1/admin/topics/{topic}/tombstone');
    expect(route('/v1/admin/topics/t/pause')).toBe('/v1/admin/topics/{topic}/{action}');
    // a topic literally named "channels" still routes by position
    expect(route('/v1/topics/channels/messages')).toBe('/v1/topics/{topic}/messages');
    expect(route('/v1/topics/channels/channels/x')).toBe('/v1/topics/{topic}/channels/{channel}');
  });

  it('leaves everything else unmatched', () => {
    for (const p of ['', '*', '/', '/nope', '/v1', '/v1/topics//messages', '/v1/topics/t/messages/extra', '//v1/topics', 'http://x/v1/topics']) expect(route(p)).toBe(UNMATCHED);
  });
});

class FakeRes extends EventEmitter {
  headersSent = false;
  statusCode = 200;
  answer(status: number): void {
    this.statusCode = status;
    this.headersSent = true;
    this.emit('close');
  }
}

describe('HttpRequestCounts', () => {
  let clock = 0;
  const counts = () => new HttpRequestCounts(ROUTE_TEMPLATES, () => clock);
  const req = (method: string, url: string) => ({ method, url }) as IncomingMessage;
  const scrape = async (c: HttpRequestCounts) => {
    const r = new Registry();
    registerHttpMetrics(r, c);
    return parsePrometheus(await r.metrics()).samples;
  };

  it('counts each response once when it closes, with its exact status and duration bucket', async () => {
    const c = counts();
    const res = new FakeRes();
    clock = 1000;
    c.track(req('POST', '/v1/topics/a/messages'), res as unknown as ServerResponse);
    c.track(req('POST', '/v1/topics/a/messages'), res as unknown as ServerResponse);
    clock = 1003; // 3 ms
    res.answer(201);
    const slow = new FakeRes();
    c.track(req('POST', '/v1/topics/b/messages'), slow as unknown as ServerResponse);
    clock = 61_003; // 60 s: above every bound
    slow.answer(200);
    const gone = new FakeRes();
    c.track(req('POST', '/v1/topics/b/messages'), gone as unknown as ServerResponse);
    gone.emit('close'); // no answer was written

    const s = await scrape(c);
    const labels = { method: 'POST', route: '/v1/topics/{topic}/messages' };
    expect(sampleValue(s, 'sluice_gateway_http_requests_total', { ...labels, status: '201' })).toBe(1);
    expect(sampleValue(s, 'sluice_gateway_http_requests_total', { ...labels, status: '200' })).toBe(1);
    expect(sampleValue(s, 'sluice_gateway_http_requests_total', { ...labels, status: String(CLIENT_CLOSED) })).toBe(1);
    expect(sampleValue(s, 'sluice_gateway_http_request_duration_seconds_count', labels)).toBe(3);
    expect(sampleValue(s, 'sluice_gateway_http_request_duration_seconds_sum', labels)).toBeCloseTo(60.003, 6);
    expect(sampleValue(s, 'sluice_gateway_http_request_duration_seconds_bucket', { ...labels, le: '0.0025' })).toBe(1); // the 0 ms one
    expect(sampleValue(s, 'sluice_gateway_http_request_duration_seconds_bucket', { ...labels, le: '0.005' })).toBe(2);
    expect(sampleValue(s, 'sluice_gateway_http_request_duration_seconds_bucket', { ...labels, le: String(REQUEST_BUCKETS_S.at(-1)) })).toBe(2);
    expect(sampleValue(s, 'sluice_gateway_http_request_duration_seconds_bucket', { ...labels, le: '+Inf' })).toBe(3);
    // nothing exported for series that never saw a request
    expect(s.filter((x) => x.name === 'sluice_gateway_http_requests_total')).toHaveLength(3);
  });

  it('keeps the set of status labels bounded', async () => {
    const c = counts();
    for (let status = 200; status < 260; status++) {
      const res = new FakeRes();
      c.track(req('GET', '/healthz'), res as unknown as ServerResponse);
      res.answer(status);
    }
    const s = (await scrape(c)).filter((x) => x.name === 'sluice_gateway_http_requests_total');
    expect(s.length).toBeLessThanOrEqual(32);
    expect(sampleValue(s, 'sluice_gateway_http_requests_total', { status: '200' })).toBe(1);
    expect(s.reduce((n, x) => n + x.value, 0)).toBe(60);
    expect(sampleValue(s, 'sluice_gateway_http_requests_total', { status: 'other' })).toBe(60 - 31);
  });

  it('times a 200 SSE stream in its own histogram, and an unknown method as "other"', async () => {
    const c = counts();
    clock = 0;
    const stream = new FakeRes();
    c.track(req('GET', '/v1/admin/events'), stream as unknown as ServerResponse);
    const odd = new FakeRes();
    c.track(req('PROPFIND', '/v1/admin/events'), odd as unknown as ServerResponse);
    clock = 600_000;
    odd.answer(405);
    stream.answer(200);
    const s = await scrape(c);
    expect(sampleValue(s, 'sluice_gateway_http_stream_duration_seconds_count', { method: 'GET', route: '/v1/admin/events' })).toBe(1);
    expect(sampleValue(s, 'sluice_gateway_http_stream_duration_seconds_sum', { method: 'GET', route: '/v1/admin/events' })).toBe(600);
    expect(sampleValue(s, 'sluice_gateway_http_request_duration_seconds_count', { method: 'GET', route: '/v1/admin/events' })).toBeUndefined();
    expect(sampleValue(s, 'sluice_gateway_http_requests_total', { method: 'other', route: '/v1/admin/events', status: '405' })).toBe(1);
  });
});
