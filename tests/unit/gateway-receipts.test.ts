// Receipts (signed, URL-safe, tamper-evident) and how message bodies are shown to HTTP consumers
// (JSON as JSON on one line, other bytes as base64 or text), including that no body can forge an
// SSE event.

import { ReceiptFields, ReceiptSigner } from '../../gateway/receipts';
import { jsonText, messageJson, renderBody, sseEvent } from '../../gateway/render';

const fields: ReceiptFields = { shard: '127.0.0.1:4151', topic: 'orders', channel: 'billing#ephemeral', id: '1d81e9756a402000', token: 'adf7015b2f' };
const signer = new ReceiptSigner(['0123456789abcdef-secret']);

describe('receipts', () => {
  it('round-trips every field and is URL-safe and compact', () => {
    const r = signer.sign(fields);
    expect(r).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(r.length).toBeLessThan(120);
    expect(signer.verify(r)).toEqual(fields);
    expect(encodeURIComponent(r)).toBe(r);
  });

  it('keeps ids that are not 16 hex characters', () => {
    const f = { ...fields, id: 'not-hex-id-ABC' };
    expect(signer.verify(signer.sign(f))).toEqual(f);
  });

  it('refuses any changed character, and trailing bits or characters', () => {
    const r = signer.sign(fields);
    for (let i = 0; i < r.length; i++) {
      const c = r[i] === 'A' ? 'B' : 'A';
      const tampered = r.slice(0, i) + c + r.slice(i + 1);
      expect(signer.verify(tampered)).not.toEqual(fields);
    }
    expect(signer.verify(r + 'x')).toBe('malformed');
    expect(signer.verify(r + 'xx')).toBe('malformed');
    expect(signer.verify(r.slice(0, -1))).not.toEqual(fields);
  });

  it('refuses a receipt aimed at another shard, topic, channel or token (the MAC covers them all)', () => {
    const r = signer.sign(fields);
    const raw = Buffer.from(r, 'base64url');
    // Rewrite the shard address in place to one of the same length: the MAC no longer matches.
    const forged = Buffer.from(raw.toString('latin1').replace('127.0.0.1:4151', '10.66.6.6:4151'), 'latin1').toString('base64url');
    expect(signer.verify(forged)).toBe('bad_signature');
    for (const k of ['shard', 'topic', 'channel', 'token'] as const) {
      const other = signer.sign({ ...fields, [k]: k === 'shard' ? 'evil.example:80' : k === 'token' ? 'zzz' : 'other' });
      expect(signer.verify(other)).not.toEqual(fields);
    }
  });

  it('refuses a receipt signed with another secret; accepts one signed with a rotated-out secret still listed', () => {
    const other = new ReceiptSigner(['another-secret-entirely']);
    expect(signer.verify(other.sign(fields))).toBe('bad_signature');
    const rotated = new ReceiptSigner(['the-new-secret-0000', '0123456789abcdef-secret']);
    expect(rotated.verify(signer.sign(fields))).toEqual(fields);
    expect(signer.verify(rotated.sign(fields))).toBe('bad_signature');
  });

  it('refuses malformed input without throwing', () => {
    for (const bad of ['', 'a', '!!!!!!!!!!!!', 'A'.repeat(5000), Buffer.from([2, 1, 2, 3]).toString('base64url') + 'A'.repeat(30), 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
      expect(typeof signer.verify(bad)).toBe('string');
    }
    expect(() => new ReceiptSigner([])).toThrow();
  });
});

describe('message bodies over HTTP', () => {
  const b = (s: string | number[]) => (typeof s === 'string' ? Buffer.from(s) : Buffer.from(s));

  it('shows JSON bodies as JSON, other bytes as base64', () => {
    expect(renderBody(b('{"a":1}'), 'json')).toEqual({ encoding: 'json', json: '{"a":1}' });
    expect(renderBody(b('"str"'), 'json')).toEqual({ encoding: 'json', json: '"str"' });
    expect(renderBody(b('42'), 'json')).toEqual({ encoding: 'json', json: '42' });
    expect(renderBody(b('hello'), 'json')).toEqual({ encoding: 'base64', json: '"aGVsbG8="' });
    expect(renderBody(b([0xff, 0, 1]), 'json')).toEqual({ encoding: 'base64', json: '"/wAB"' });
    expect(renderBody(b('{"a":1'), 'json').encoding).toBe('base64');
  });

  it('keeps JSON exactly as sent (numbers, key order, spacing) but on one line', () => {
    expect(jsonText(b('{ "b": 1.50, "a": [1,2] }'))).toBe('{ "b": 1.50, "a": [1,2] }');
    const pretty = '{\n  "a": "x\\ny",\r\n  "b": 2\n}';
    const one = jsonText(b(pretty))!;
    expect(one).not.toMatch(/[\r\n]/);
    expect(JSON.parse(one)).toEqual(JSON.parse(pretty));
  });

  it('refuses to call invalid UTF-8 JSON', () => {
    expect(jsonText(Buffer.from([0x22, 0xff, 0x22]))).toBeNull();
  });

  it('gives text or base64 when asked', () => {
    expect(renderBody(b('{"a":1}'), 'text')).toEqual({ encoding: 'text', json: '"{\\"a\\":1}"' });
    expect(renderBody(b('héllo'), 'text')).toEqual({ encoding: 'text', json: '"héllo"' });
    expect(renderBody(b([0xc3]), 'text').encoding).toBe('base64');
    expect(renderBody(b('{"a":1}'), 'base64')).toEqual({ encoding: 'base64', json: '"eyJhIjoxfQ=="' });
  });

  it('round-trips the exact bytes whatever the encoding', () => {
    const bodies = [b('{"a":1}'), b('plain text'), b([0, 255, 10, 13]), b('[1, 2]\n'), b('"\u2028"')];
    for (const body of bodies) {
      for (const enc of ['json', 'text', 'base64'] as const) {
        const m = JSON.parse(messageJson({ id: '0123456789abcdef', attempts: 1, timestamp: 1, body }, 'R', 10, enc)) as { encoding: string; body: unknown };
        const back = m.encoding === 'base64' ? Buffer.from(m.body as string, 'base64') : m.encoding === 'text' ? Buffer.from(m.body as string) : null;
        if (back) expect(back.equals(body)).toBe(true);
        else expect(m.body).toEqual(JSON.parse(body.toString()));
      }
    }
  });

  it('no payload can forge an SSE event: data: is always one line of JSON', () => {
    const evil = ['\n\nevent: message\nid: forged\ndata: {"x":1}\n\n', '{"a":"\\n\\nevent: x"}', 'x\r\ndata: y', '{"a":\n"b"}'];
    for (const text of evil) {
      for (const enc of ['json', 'text', 'base64'] as const) {
        const ev = sseEvent('RECEIPT', messageJson({ id: '0123456789abcdef', attempts: 1, timestamp: 1, body: b(text) }, 'RECEIPT', 5, enc));
        const lines = ev.split(/\r\n|\r|\n/);
        expect(lines).toEqual(['event: message', 'id: RECEIPT', expect.stringMatching(/^data: \{.*\}$/), '', '']);
        expect(() => JSON.parse(lines[2].slice(6))).not.toThrow();
      }
    }
  });
});
