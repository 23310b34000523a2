// The utilities' pure pieces: stdin split into messages, the publish rate limiter, nsq_stat's
// columns from /stats documents, and short flags such as -n.

import { ConfigError } from '../../runtime/config';
import { shortFlags } from '../../tools/common';
import { LineSplitter, RateLimiter } from '../../tools/pacing';
import { addSamples, formatRow, HEADER, sampleFromStats, type Sample } from '../../tools/stat';

const lines = (bufs: Buffer[]): string[] => bufs.map((b) => b.toString());

describe('LineSplitter', () => {
  it('splits on newlines, drops a trailing CR and empty lines, keeps the last unterminated line', () => {
    const s = new LineSplitter(100);
    expect(lines(s.push(Buffer.from('a\r\nb\n\n\r\nc')))).toEqual(['a', 'b']);
    expect(lines(s.end())).toEqual(['c']);
  });

  it('gives the same lines whatever the chunking (byte by byte here)', () => {
    const input = Buffer.from('one\ntwo\r\n\nthree\nfour');
    const s = new LineSplitter(100);
    const out: Buffer[] = [];
    for (let i = 0; i < input.length; i++) out.push(...s.push(input.subarray(i, i + 1)));
    out.push(...s.end());
    expect(lines(out)).toEqual(['one', 'two', 'three', 'four']);
  });

  it('skips lines longer than the limit without buffering them, and counts them', () => {
    const s = new LineSplitter(4);
    const out = [...s.push(Buffer.from('ok\n' + 'x'.repeat(3))), ...s.push(Buffer.from('x'.repeat(1000))), ...s.push(Buffer.from('\n1234\r\n12345\nfine\n'))];
    expect(lines(out)).toEqual(['ok', '1234', 'fine']);
    expect(s.tooLong).toBe(2);
  });
});

describe('RateLimiter', () => {
  it('without a rate lets everything through', () => {
    expect(new RateLimiter(0, 0).take(1000, 0)).toEqual({ n: 1000, waitMs: 0 });
  });

  it('allows about rate × seconds, in bursts of at most a tenth of a second', () => {
    const r = new RateLimiter(100, 0);
    let sent = 0;
    for (let t = 0; t <= 2000; t += 5) sent += r.take(50, t).n;
    expect(sent).toBeGreaterThanOrEqual(200);
    expect(sent).toBeLessThanOrEqual(211);
    expect(new RateLimiter(100, 0).take(50, 0).n).toBe(10);
  });

  it('says how long to wait when nothing may go', () => {
    const r = new RateLimiter(10, 0);
    expect(r.take(5, 0).n).toBe(1);
    const next = r.take(5, 0);
    expect(next.n).toBe(0);
    expect(next.waitMs).toBe(100);
    expect(r.take(5, 100).n).toBe(1);
  });
});

describe('stat', () => {
  const doc = {
    version: '1.3.0',
    topics: [
      {
        topic_name: 'orders',
        depth: 3,
        backend_depth: 1,
        message_count: 40,
        channels: [
          { channel_name: 'billing', depth: 10, backend_depth: 4, in_flight_count: 2, deferred_count: 1, requeue_count: 5, timeout_count: 6, message_count: 30, client_count: 2, clients: [] },
          { channel_name: 'audit', depth: 1, backend_depth: 0, in_flight_count: 0, deferred_count: 0, requeue_count: 0, timeout_count: 0, message_count: 30, clients: [{}, {}, {}] },
        ],
      },
      { topic_name: 'other', depth: 99, channels: [] },
    ],
  };

  it('reads a channel’s counters from nsqd’s /stats document', () => {
    expect(sampleFromStats(doc, 'orders', 'billing')).toEqual({
      depth: 10, memoryDepth: 6, backendDepth: 4, inFlight: 2, deferred: 1, requeued: 5, timedOut: 6, messages: 30, clients: 2,
    });
    // nsqd has no client_count: the clients are counted
    expect(sampleFromStats(doc, 'orders', 'audit').clients).toBe(3);
    expect(sampleFromStats({ data: doc }, 'orders', 'audit').depth).toBe(1); // nsqd < 1.0 wrapped it
  });

  it('without a channel, the topic’s own depth with its channels’ counters summed', () => {
    expect(sampleFromStats(doc, 'orders', '')).toEqual({
      depth: 3, memoryDepth: 2, backendDepth: 1, inFlight: 2, deferred: 1, requeued: 5, timedOut: 6, messages: 40, clients: 5,
    });
  });

  it('a shard without the topic or channel counts as zero; a document that is not /stats is refused', () => {
    expect(sampleFromStats(doc, 'missing', '').depth).toBe(0);
    expect(sampleFromStats(doc, 'orders', 'missing').depth).toBe(0);
    expect(() => sampleFromStats('nonsense', 'orders', '')).toThrow('no topics array');
  });

  it('prints nsq_stat’s columns; rates need a previous row', () => {
    const a = sampleFromStats(doc, 'orders', 'billing');
    const sum: Sample = addSamples(a, a);
    expect(HEADER.split('\n')[1].trim().split(/\s+/)).toEqual(['ingress', 'egress', '|', 'total', 'mem', 'disk', 'inflt', 'def', '|', 'req', 't-o', 'msgs', 'clients']);
    expect(formatRow(sum, null, 2).trim().split(/\s+/)).toEqual(['-', '-', '|', '20', '12', '8', '4', '2', '|', '10', '12', '60', '4']);
    // 20 messages in 2 s, depth up by 10: 10/s in, 5/s out
    const later: Sample = { ...sum, messages: 80, depth: 30 };
    expect(formatRow(later, sum, 2).trim().split(/\s+/).slice(0, 2)).toEqual(['10', '5']);
  });
});

describe('shortFlags', () => {
  it('reads -n N and refuses anything else positional', () => {
    expect(shortFlags(['-n', '5'], { '-n': 'count' })).toEqual({ count: '5' });
    expect(shortFlags([], { '-n': 'count' })).toEqual({});
    expect(() => shortFlags(['-n'], { '-n': 'count' })).toThrow(ConfigError);
    expect(() => shortFlags(['extra'], { '-n': 'count' })).toThrow(ConfigError);
  });
});
