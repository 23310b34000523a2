// The pure pieces behind gateway mode: receipt batching and the receipts answer, the retry policy
// (Retry-After, which failures are worth retrying), batch bodies for pub, reading a long-poll
// answer, stat's sample from the admin API, the --gateway flag rules, and redaction of the key.

import { ClientError, GatewayCallError } from '../../client/errors';
import { parseConsumeResult } from '../../client/gateway-consumer';
import { isRetryable, parseGatewayUrl, parseRetryAfter, retryDelayMs } from '../../client/gateway-http';
import { batchBodies, encodeBatchItem } from '../../client/gateway-producer';
import { ReceiptBatcher, settleBody, sortResults, type PendingReceipt } from '../../client/receipt-batcher';
import { ConfigError } from '../../runtime/config';
import { redact } from '../../runtime/logger';
import { gatewayTarget } from '../../tools/common';
import { sampleFromAdminTopic } from '../../tools/stat';

const r = (receipt: string, extra: Partial<PendingReceipt> = {}): PendingReceipt => ({ receipt, tries: 0, ...extra });

describe('ReceiptBatcher', () => {
  it('says when a batch is full and hands batches out oldest first, at most maxBatch at a time', () => {
    const b = new ReceiptBatcher(3);
    expect(b.add('ack', r('a1'))).toBe(false);
    expect(b.add('ack', r('a2'))).toBe(false);
    expect(b.add('touch', r('t1'))).toBe(false);
    expect(b.add('ack', r('a3'))).toBe(true);
    expect(b.add('ack', r('a4'))).toBe(true);
    expect(b.size).toBe(5);
    expect(b.take('ack')!.map((x) => x.receipt)).toEqual(['a1', 'a2', 'a3']);
    expect(b.take('ack')!.map((x) => x.receipt)).toEqual(['a4']);
    expect(b.take('ack')).toBeNull();
    expect(b.take('requeue')).toBeNull();
    expect(b.take('touch')!.map((x) => x.receipt)).toEqual(['t1']);
    expect(b.size).toBe(0);
  });

  it('refuses a batch size the gateway would not take', () => {
    expect(() => new ReceiptBatcher(0)).toThrow(RangeError);
    expect(() => new ReceiptBatcher(5001)).toThrow(RangeError);
  });

  it('writes receipts-request bodies: plain receipts, and requeues with their own delay', () => {
    expect(JSON.parse(settleBody('ack', [r('a'), r('b')]))).toEqual({ receipts: ['a', 'b'] });
    expect(JSON.parse(settleBody('requeue', [r('a', { delayMs: 250.4 }), r('b', { delayMs: 0 })]))).toEqual({ receipts: [{ receipt: 'a', delay_ms: 250 }, 'b'] });
    expect(JSON.parse(settleBody('touch', [r('a')]))).toEqual({ receipts: ['a'] });
  });

  it('sorts the answer into settled, to retry (shard unavailable, a bounded number of times) and refused', () => {
    const items = [r('ok'), r('gone'), r('busy'), r('busy-again', { tries: 2 })];
    const answer = JSON.stringify({ results: [{ status: 'OK' }, { status: 'NOT_IN_FLIGHT' }, { status: 'SHARD_UNAVAILABLE' }, { status: 'SHARD_UNAVAILABLE' }], ok: 1, failed: 3 });
    const out = sortResults(answer, items, 3);
    expect(out.ok).toBe(1);
    expect(out.retry).toEqual([r('busy', { tries: 1 })]);
    expect(out.refused).toEqual([
      { item: r('gone'), status: 'NOT_IN_FLIGHT' },
      { item: r('busy-again', { tries: 2 }), status: 'SHARD_UNAVAILABLE' },
    ]);
  });

  it('refuses an answer that does not match the batch', () => {
    expect(() => sortResults('{"results":[]}', [r('a')], 3)).toThrow();
    expect(() => sortResults('{"results":[{"status":"WHAT"}]}', [r('a')], 3)).toThrow();
    expect(() => sortResults('not json', [r('a')], 3)).toThrow();
  });
});

describe('retry policy', () => {
  const busy = (status: number, after: number | null = null) => new GatewayCallError(status, 'X', 'x', after);

  it('reads Retry-After as seconds or as an HTTP date', () => {
    expect(parseRetryAfter('2', 0)).toBe(2000);
    expect(parseRetryAfter(['3'], 0)).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfter(undefined, 0)).toBeNull();
    expect(parseRetryAfter('soon', 0)).toBeNull();
  });

  it('retries 429, 502-504 and connection failures, nothing else', () => {
    for (const s of [429, 502, 503, 504]) expect(isRetryable(busy(s))).toBe(true);
    for (const s of [400, 401, 403, 404, 413, 422, 500]) expect(isRetryable(busy(s))).toBe(false);
    for (const code of ['CONNECT_FAILED', 'CONNECTION_CLOSED', 'TIMEOUT'] as const) expect(isRetryable(new ClientError(code, 'x'))).toBe(true);
    expect(isRetryable(new ClientError('CLOSED', 'x'))).toBe(false);
    expect(isRetryable(new Error('x'))).toBe(false);
  });

  it('waits as the gateway asks (capped at a minute), else doubling with jitter, and not at all for a final error', () => {
    expect(retryDelayMs(1, busy(429, 3), 100, 1000)).toBe(3000);
    expect(retryDelayMs(1, busy(503, 3600), 100, 1000)).toBe(60_000);
    expect(retryDelayMs(1, busy(503), 100, 1000, () => 0)).toBe(100);
    expect(retryDelayMs(4, busy(503), 100, 1000, () => 0)).toBe(800);
    expect(retryDelayMs(9, new ClientError('CONNECT_FAILED', 'x'), 100, 1000, () => 0)).toBe(1000);
    expect(retryDelayMs(1, new ClientError('CONNECT_FAILED', 'x'), 100, 1000, () => 0.999)).toBe(70);
    expect(retryDelayMs(1, busy(401), 100, 1000)).toBeNull();
  });

  it('takes only http and https gateway URLs, without credentials or a query', () => {
    expect(parseGatewayUrl('http://127.0.0.1:4180').origin).toBe('http://127.0.0.1:4180');
    expect(parseGatewayUrl('https://gw.example/prefix/').pathname).toBe('/prefix/');
    for (const bad of ['ftp://h', '127.0.0.1:4180', 'http://u:p@h', 'http://h/?token=x', 'not a url']) expect(() => parseGatewayUrl(bad)).toThrow(RangeError);
  });
});

describe('pub batch bodies', () => {
  it('sends valid UTF-8 as text and anything else as exact base64', () => {
    expect(JSON.parse(encodeBatchItem(Buffer.from('héllo "x"\\')))).toEqual({ body: 'héllo "x"\\' });
    expect(JSON.parse(encodeBatchItem(Buffer.from('{"a":1}')))).toEqual({ body: '{"a":1}' }); // stays a string: stored byte for byte
    const raw = Buffer.from([0xff, 0x00, 0xc3]);
    expect(Buffer.from((JSON.parse(encodeBatchItem(raw)) as { body_base64: string }).body_base64, 'base64')).toEqual(raw);
  });

  it('splits a batch into JSON arrays under the byte limit, keeping order and count', () => {
    const bodies = Array.from({ length: 10 }, (_, i) => Buffer.from(`m${i}-${'x'.repeat(40)}`));
    const parts = batchBodies(bodies, 200);
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) expect(Buffer.byteLength(p.json)).toBeLessThanOrEqual(200);
    expect(parts.reduce((n, p) => n + p.count, 0)).toBe(10);
    expect(parts.flatMap((p) => (JSON.parse(p.json) as Array<{ body: string }>).map((x) => x.body))).toEqual(bodies.map(String));
  });

  it('sends an item larger than the limit on its own', () => {
    const parts = batchBodies([Buffer.from('a'), Buffer.from('b'.repeat(500)), Buffer.from('c')], 100);
    expect(parts.map((p) => p.count)).toEqual([1, 1, 1]);
    expect(batchBodies([], 100)).toEqual([]);
  });
});

describe('reading a long-poll answer', () => {
  const msg = { id: '0123456789abcdef', attempts: 2, timestamp: 1.7e18, receipt: 'abc_-DEF', lease_ms: 60000, encoding: 'base64', body: Buffer.from([0, 1, 255]).toString('base64') };

  it('decodes bodies exactly and keeps receipt and lease', () => {
    const [m] = parseConsumeResult(JSON.stringify({ topic: 't', channel: 'c', messages: [msg] }));
    expect(m).toEqual({ id: msg.id, attempts: 2, timestamp: 1.7e18, receipt: 'abc_-DEF', leaseMs: 60000, body: Buffer.from([0, 1, 255]) });
    expect(parseConsumeResult(JSON.stringify({ messages: [{ ...msg, encoding: 'json', body: { a: 1 } }] }))[0].body.toString()).toBe('{"a":1}');
  });

  it('refuses what it cannot trust', () => {
    for (const bad of [{ ...msg, id: 'short' }, { ...msg, attempts: 0 }, { ...msg, receipt: 'has space' }, { ...msg, receipt: 'x","y' }, { ...msg, encoding: 'rot13' }, { ...msg, lease_ms: '1' }])
      expect(() => parseConsumeResult(JSON.stringify({ messages: [bad] }))).toThrow(ClientError);
    expect(() => parseConsumeResult('{"nothing":[]}')).toThrow(ClientError);
  });
});

describe('stat from the gateway admin API', () => {
  const channel = (name: string, n: number) => ({ name, depth: n, backend_depth: 1, in_flight_count: 2, deferred_count: 3, message_count: 10 * n, requeue_count: 4, timeout_count: 5, client_count: 1 });
  const doc = { at: 0, topic: { name: 't', depth: 6, backend_depth: 2, message_count: 100, channels: [channel('a', 7), channel('b', 9)] }, shards: [] };

  it('gives a channel its own counters', () => {
    expect(sampleFromAdminTopic(doc, 'b')).toEqual({ depth: 9, memoryDepth: 8, backendDepth: 1, inFlight: 2, deferred: 3, requeued: 4, timedOut: 5, messages: 90, clients: 1 });
    expect(sampleFromAdminTopic(doc, 'missing').depth).toBe(0);
  });

  it('gives the topic its own depth and count with its channels’ other counters summed', () => {
    expect(sampleFromAdminTopic(doc, '')).toEqual({ depth: 6, memoryDepth: 4, backendDepth: 2, inFlight: 4, deferred: 6, requeued: 8, timedOut: 10, messages: 100, clients: 2 });
  });
});

describe('--gateway flags', () => {
  const cfg = (gateway: string, gatewayToken = '') => ({ gateway, gatewayToken });

  it('needs exactly one of the gateway and the TCP flags', () => {
    expect(gatewayTarget(cfg('http://127.0.0.1:4180', 'k'), false, '--x')).toEqual({ url: 'http://127.0.0.1:4180', token: 'k' });
    expect(gatewayTarget(cfg(''), true, '--x')).toBeNull();
    expect(() => gatewayTarget(cfg('http://127.0.0.1:4180'), true, '--x')).toThrow(ConfigError);
    expect(() => gatewayTarget(cfg(''), false, '--x')).toThrow(ConfigError);
    expect(() => gatewayTarget(cfg('', 'k'), true, '--x')).toThrow(ConfigError);
  });

  it('refuses a URL that is not http(s) and a key that would break the header', () => {
    expect(() => gatewayTarget(cfg('file:///etc/passwd'), false, '--x')).toThrow(ConfigError);
    expect(() => gatewayTarget(cfg('http://h', 'a b'), false, '--x')).toThrow(ConfigError);
    expect(() => gatewayTarget(cfg('http://h', 'a\r\nx-evil: 1'), false, '--x')).toThrow(ConfigError);
  });

  it('keeps the key out of log lines whatever the field is called', () => {
    expect(redact({ gateway_token: 'k', gatewayToken: 'k', nested: { authorization: 'Bearer k' } })).toEqual({ gateway_token: '[REDACTED]', gatewayToken: '[REDACTED]', nested: { authorization: '[REDACTED]' } });
  });
});
