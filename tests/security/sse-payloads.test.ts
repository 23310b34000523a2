// Hostile payloads over SSE, end to end with real processes: bodies holding CR, CRLF, a lone CR at
// the end, blank lines, `event:`/`data:`/`id:` lines, NUL bytes and invalid UTF-8 are published
// through the gateway byte for byte, then read from a real stream by the eventsource package and
// by a raw reader of the byte stream (undici) that splits events itself as the SSE spec says.
// Each message must be exactly one event, and its body must decode to the published bytes.

import { isUtf8 } from 'node:buffer';
import { isDeepStrictEqual } from 'node:util';
import { EventSource } from 'eventsource';
import { request } from 'undici';
import { startShard, ShardProcess, call } from '../helpers/shard';
import { startGateway, GatewayProcess } from '../helpers/gateway';
import { tempDir, waitFor } from '../helpers/process';

const TOPIC = 'hostile';
const utf8 = (s: string) => Buffer.from(s, 'utf8');

const PAYLOADS: Buffer[] = [
  utf8('a\rb'),
  utf8('line1\r\nline2\r\n'),
  utf8('ends with a lone CR\r'),
  utf8('\r'),
  utf8('\n'),
  utf8('\r\n\r\n'),
  utf8('two\n\nblank lines\n\n'),
  utf8('event: x\ndata: y\n\n'),
  utf8('data: y\r\n\r\nid: 1\r\n\r\n'),
  utf8('event: message\nid: forged\ndata: {"receipt":"forged"}\n\n'),
  utf8(': comment\n\nretry: 1\n\n'),
  utf8('\0nul\0bytes\0'),
  utf8('\0'),
  Buffer.from([0xff, 0xfe, 0x0a, 0x0d, 0x80, 0x00, 0x0a, 0x0a, 0xc3]), // invalid UTF-8, ends mid-sequence
  Buffer.from([0xc3, 0x0d, 0xa9, 0x0a]), // a CR and an LF inside what would be a two-byte sequence
  utf8('é\r€\n😀\r\n'),
  utf8('\u2028\u2029\ufeffdata: after a BOM'),
  // valid JSON whose whitespace holds CR and LF, and strings that look like SSE fields
  utf8('{\r\n  "event: x": "data: y\\n\\n",\r\n  "n": [1,\n2]\r}\r\n'),
  utf8('"\\u0000\\r\\n\\r"'),
  utf8('42\r'),
  utf8('x\n'.repeat(20_000) + '\r'),
];

interface Event {
  type: string;
  id: string;
  data: string;
}

/**
 * The SSE spec's event parsing, written independently of the gateway and of eventsource: lines
 * end at CRLF, CR or LF; an empty line dispatches the event if it has data; a line starting with
 * ':' is a comment; the field name runs to the first ':' and one leading space of the value is
 * dropped. Lines after the last empty line are incomplete and not dispatched.
 */
function parseSse(text: string): Event[] {
  const out: Event[] = [];
  let type = '';
  let data: string[] = [];
  let id = '';
  let hasData = false;
  const lines = text.split(/\r\n|\r|\n/);
  lines.pop(); // whatever follows the last line break is not a complete line
  for (const line of lines) {
    if (line === '') {
      if (hasData) out.push({ type: type || 'message', id, data: data.join('\n') });
      type = '';
      data = [];
      hasData = false;
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') type = value;
    else if (field === 'data') {
      data.push(value);
      hasData = true;
    } else if (field === 'id' && !value.includes('\0')) id = value;
  }
  return out;
}

interface Delivered {
  id: string;
  receipt: string;
  encoding: 'json' | 'text' | 'base64';
  body: unknown;
}

/** Whether a delivered body is the published bytes: exactly for base64 and text, as the same JSON value for json. */
function sameBody(m: Delivered, published: Buffer): boolean {
  if (m.encoding === 'base64') return typeof m.body === 'string' && Buffer.from(m.body, 'base64').equals(published);
  if (m.encoding === 'text') return typeof m.body === 'string' && utf8(m.body).equals(published);
  // shown as JSON only when the bytes are one JSON value in UTF-8
  return isUtf8(published) && isDeepStrictEqual(m.body, JSON.parse(published.toString('utf8')));
}

describe('SSE with hostile payloads, end to end', () => {
  const dir = tempDir();
  let shard: ShardProcess;
  let gw: GatewayProcess;
  const sources: EventSource[] = [];
  const raws: { destroy(): void }[] = [];
  /** Message id → the bytes published. */
  const published = new Map<string, Buffer>();

  const streamUrl = (channel: string, query: string) => `http://${gw.http}/v1/topics/${TOPIC}/channels/${channel}/stream?max_in_flight=100&${query}`;

  beforeAll(async () => {
    shard = await startShard([], dir.path);
    gw = await startGateway(['--shard-http-address', shard.http, '--receipt-secret', 'sse-payloads-secret-0123456789']);
    // every channel exists before the first publish, so each gets every message
    expect((await call(shard.url(`/topic/create?topic=${TOPIC}`), 'POST')).status).toBe(200);
    for (const ch of ['es-json', 'es-base64', 'raw-json', 'raw-text', 'raw-base64']) expect((await call(shard.url(`/channel/create?topic=${TOPIC}&channel=${ch}`), 'POST')).status).toBe(200);
    // half one by one as raw bodies, half in a batch as base64: both byte for byte
    const half = Math.ceil(PAYLOADS.length / 2);
    for (const p of PAYLOADS.slice(0, half)) {
      const r = await gw.call(`/v1/topics/${TOPIC}/messages`, 'POST', p, { 'content-type': 'application/octet-stream' });
      expect(r.status).toBe(200);
      published.set(r.json().id, p);
    }
    const rest = PAYLOADS.slice(half);
    const r = await gw.call(`/v1/topics/${TOPIC}/batch`, 'POST', JSON.stringify(rest.map((p) => ({ body_base64: p.toString('base64') }))), { 'content-type': 'application/json' });
    expect(r.status).toBe(200);
    (r.json().results as { id: string }[]).forEach((x, i) => published.set(x.id, rest[i]));
    expect(published.size).toBe(PAYLOADS.length);
  });

  afterAll(async () => {
    for (const s of sources) s.close();
    for (const r of raws) r.destroy();
    await gw?.stop();
    await shard?.stop();
    dir.remove();
  });

  const ack = async (receipt: string) => expect((await gw.call(`/v1/receipts/ack?receipt=${receipt}`, 'POST')).status).toBe(200);

  it.each(['json', 'base64'])('eventsource (v4, encoding=%s) receives each message once, its id the receipt, its body the published bytes', async (encoding) => {
    const got: Delivered[] = [];
    const es = new EventSource(streamUrl(`es-${encoding}`, encoding === 'json' ? '' : `encoding=${encoding}`)); // json is the default
    sources.push(es);
    const acks: Promise<void>[] = [];
    es.addEventListener('message', (ev) => {
      const m = JSON.parse(ev.data) as Delivered;
      expect(ev.lastEventId).toBe(m.receipt);
      got.push(m);
      acks.push(ack(m.receipt));
    });
    // names a forged event would have, had a payload broken out of its data line
    for (const type of ['x', 'y', 'forged']) es.addEventListener(type, () => got.push({ id: `forged ${type}`, receipt: '', encoding: 'text', body: '' }));
    await waitFor(() => got.length >= PAYLOADS.length, 10_000, 'every message on the EventSource');
    await Promise.all(acks);
    expect(got.map((m) => m.id).sort()).toEqual([...published.keys()].sort());
    for (const m of got) {
      if (encoding === 'base64') expect(m.encoding).toBe('base64');
      expect([m.id, sameBody(m, published.get(m.id)!)]).toEqual([m.id, true]);
    }
  });

  it.each(['json', 'text', 'base64'])('a raw reader of the byte stream (encoding=%s) splits exactly one event per message, and each body decodes to the published bytes', async (encoding) => {
    const res = await request(streamUrl(`raw-${encoding}`, `encoding=${encoding}`), { method: 'GET' });
    raws.push(res.body);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    const chunks: Buffer[] = [];
    res.body.on('data', (c: Buffer) => chunks.push(c));
    const events = () => parseSse(Buffer.concat(chunks).toString('utf8'));
    await waitFor(() => events().length >= PAYLOADS.length, 10_000, 'every message on the raw stream');
    const bytes = Buffer.concat(chunks);
    expect(isUtf8(bytes)).toBe(true); // an SSE stream is UTF-8: invalid payload bytes must not reach it raw
    const got = events();
    expect(got).toHaveLength(PAYLOADS.length);
    const seen = new Set<string>();
    for (const ev of got) {
      expect(ev.type).toBe('message');
      expect(ev.data).not.toContain('\n'); // one data line per event
      const m = JSON.parse(ev.data) as Delivered;
      expect(ev.id).toBe(m.receipt);
      expect(published.has(m.id)).toBe(true);
      expect(seen.has(m.id)).toBe(false);
      seen.add(m.id);
      const p = published.get(m.id)!;
      expect([m.id, m.encoding, sameBody(m, p)]).toEqual([m.id, m.encoding, true]);
      // each encoding shows what it promises: base64 always; text for valid UTF-8; JSON values as JSON
      if (encoding === 'base64') expect(m.encoding).toBe('base64');
      if (encoding === 'text') expect(m.encoding).toBe(isUtf8(p) ? 'text' : 'base64');
      if (encoding === 'json' && m.encoding !== 'json') expect(m.encoding).toBe('base64');
      await ack(m.receipt);
    }
    if (encoding === 'json') expect(got.filter((ev) => (JSON.parse(ev.data) as Delivered).encoding === 'json').length).toBe(3);
  });
});
