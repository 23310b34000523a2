// The "  V1" lookup codec against byte fixtures: framing, byte-at-a-time feeding, nsqlookupd's exact
// error texts, IDENTIFY body rules, and a property test that arbitrary bytes never throw.

import fc from 'fast-check';
import {
  DecodedItem,
  LookupResponseDecoder,
  LookupV1Decoder,
  MAGIC_V1,
  MAX_IDENTIFY_BODY,
  MAX_LINE_LENGTH,
  encodeIdentify,
  encodePing,
  encodeRegister,
  encodeResponse,
  encodeUnregister,
  parseIdentifyBody,
  parseTopicChannel,
  toGoJson,
} from '../../wire/lookup-v1';

const IDENTIFY_JSON = { broadcast_address: 'node1', hostname: 'node1.local', tcp_port: 4150, http_port: 4151, version: '1.3.0' };

/** What nsqd's lookupPeer sends on a fresh connection, then a few commands. */
function session(): Buffer {
  return Buffer.concat([
    MAGIC_V1,
    encodeIdentify(IDENTIFY_JSON),
    encodeRegister('orders'),
    encodeRegister('orders', 'billing'),
    encodePing(),
    encodeUnregister('orders', 'billing'),
    encodeUnregister('orders'),
  ]);
}

function decodeWhole(bytes: Buffer): DecodedItem[] {
  return new LookupV1Decoder().push(bytes);
}

function decodeByteByByte(bytes: Buffer): DecodedItem[] {
  const d = new LookupV1Decoder();
  const out: DecodedItem[] = [];
  for (let i = 0; i < bytes.length; i++) out.push(...d.push(bytes.subarray(i, i + 1)));
  return out;
}

function errorOf(items: DecodedItem[]): string | undefined {
  const last = items[items.length - 1];
  return last?.type === 'error' ? last.error.message : undefined;
}

describe('lookup V1 byte fixtures', () => {
  it('encodes what nsqd sends, byte for byte', () => {
    expect(encodePing()).toEqual(Buffer.from('PING\n'));
    expect(encodeRegister('t')).toEqual(Buffer.from('REGISTER t\n'));
    expect(encodeRegister('t', 'c')).toEqual(Buffer.from('REGISTER t c\n'));
    expect(encodeUnregister('t', 'c')).toEqual(Buffer.from('UNREGISTER t c\n'));
    const identify = encodeIdentify({ a: 1 });
    expect(identify).toEqual(Buffer.concat([Buffer.from('IDENTIFY\n'), Buffer.from([0, 0, 0, 7]), Buffer.from('{"a":1}')]));
  });

  it('frames responses as [4B size][data] with no frame type', () => {
    expect(encodeResponse('OK')).toEqual(Buffer.from([0, 0, 0, 2, 0x4f, 0x4b]));
    expect(encodeResponse('')).toEqual(Buffer.from([0, 0, 0, 0]));
  });

  it('decodes a whole session in one chunk', () => {
    const items = decodeWhole(session());
    expect(items.map((i) => (i.type === 'command' ? [i.command.name, ...i.command.params] : ['error']))).toEqual([
      ['IDENTIFY'],
      ['REGISTER', 'orders'],
      ['REGISTER', 'orders', 'billing'],
      ['PING'],
      ['UNREGISTER', 'orders', 'billing'],
      ['UNREGISTER', 'orders'],
    ]);
    const identify = items[0];
    expect(identify.type === 'command' && identify.command.name === 'IDENTIFY' && JSON.parse(identify.command.body.toString())).toEqual(
      IDENTIFY_JSON,
    );
  });

  it('decodes the same session fed one byte at a time', () => {
    expect(decodeByteByByte(session())).toEqual(decodeWhole(session()));
  });

  it('trims whitespace around a line like Go strings.TrimSpace and splits on single spaces', () => {
    const d = new LookupV1Decoder({ expectMagic: false });
    const items = d.push(Buffer.from('  PING \r\n\tPING\u00a0\nREGISTER  t\n'));
    expect(items.slice(0, 2).map((i) => i.type === 'command' && i.command.name)).toEqual(['PING', 'PING']);
    expect(items[2]).toEqual({ type: 'command', command: { name: 'REGISTER', params: ['', 't'] } });
  });
});

describe('lookup V1 malformed input', () => {
  it('answers a wrong magic with E_BAD_PROTOCOL and decodes nothing more', () => {
    const d = new LookupV1Decoder();
    expect(errorOf(d.push(Buffer.from('  V2PING\n')))).toBe('E_BAD_PROTOCOL');
    expect(d.push(Buffer.from('PING\n'))).toEqual([]);
  });

  it('rejects unknown and empty commands with nsqlookupd texts, all fatal', () => {
    const bad = decodeWhole(Buffer.concat([MAGIC_V1, Buffer.from('ping\nPING\n')]));
    expect(bad).toEqual([{ type: 'error', error: { code: 'E_INVALID', message: 'E_INVALID invalid command ping', fatal: true } }]);
    expect(errorOf(decodeWhole(Buffer.concat([MAGIC_V1, Buffer.from('\n')])))).toBe('E_INVALID invalid command ');
  });

  it('refuses a second IDENTIFY at once, without waiting for its body', () => {
    const d = new LookupV1Decoder();
    d.push(Buffer.concat([MAGIC_V1, encodeIdentify(IDENTIFY_JSON)]));
    expect(errorOf(d.push(Buffer.from('IDENTIFY\n')))).toBe('E_INVALID cannot IDENTIFY again');
  });

  it('rejects a negative or oversize IDENTIFY size before buffering the body', () => {
    for (const size of [-1, MAX_IDENTIFY_BODY + 1, 0x7fffffff]) {
      const d = new LookupV1Decoder();
      const header = Buffer.alloc(4);
      header.writeInt32BE(size);
      const items = d.push(Buffer.concat([MAGIC_V1, Buffer.from('IDENTIFY\n'), header]));
      expect(items).toEqual([{ type: 'error', error: expect.objectContaining({ code: 'E_BAD_BODY', fatal: true }) }]);
    }
  });

  it('reports a stream that ends inside IDENTIFY as nsqlookupd does', () => {
    const noSize = new LookupV1Decoder();
    noSize.push(Buffer.concat([MAGIC_V1, Buffer.from('IDENTIFY\n\0\0')]));
    expect(errorOf(noSize.end())).toBe('E_BAD_BODY IDENTIFY failed to read body size');
    const shortBody = new LookupV1Decoder();
    shortBody.push(Buffer.concat([MAGIC_V1, encodeIdentify(IDENTIFY_JSON).subarray(0, 20)])); // 9 + 4 + 7 body bytes
    expect(errorOf(shortBody.end())).toBe('E_BAD_BODY IDENTIFY failed to read body');
    const partialLine = new LookupV1Decoder();
    partialLine.push(Buffer.concat([MAGIC_V1, Buffer.from('PIN')]));
    expect(partialLine.end()).toEqual([]);
  });

  it('refuses an endless line once it passes the limit', () => {
    const d = new LookupV1Decoder({ expectMagic: false });
    expect(d.push(Buffer.alloc(MAX_LINE_LENGTH, 0x41))).toEqual([]);
    expect(errorOf(d.push(Buffer.from('A')))).toMatch(/^E_INVALID /);
  });
});

describe('IDENTIFY body', () => {
  const body = (v: unknown): Buffer => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

  it('accepts what nsqd sends and ignores unknown keys', () => {
    expect(parseIdentifyBody(body({ ...IDENTIFY_JSON, extra: [1] }))).toEqual({
      ok: true,
      info: { broadcastAddress: 'node1', hostname: 'node1.local', tcpPort: 4150, httpPort: 4151, version: '1.3.0' },
    });
  });

  it('requires broadcast_address, tcp_port, http_port and version but not hostname', () => {
    const { hostname: _h, ...noHostname } = IDENTIFY_JSON;
    expect(parseIdentifyBody(body(noHostname)).ok).toBe(true);
    for (const key of ['broadcast_address', 'tcp_port', 'http_port', 'version'] as const) {
      const partial: Record<string, unknown> = { ...IDENTIFY_JSON };
      delete partial[key];
      const r = parseIdentifyBody(body(partial));
      expect(!r.ok && r.error.message).toBe('E_BAD_BODY IDENTIFY missing fields');
    }
    const zeroPort = parseIdentifyBody(body({ ...IDENTIFY_JSON, tcp_port: 0 }));
    expect(!zeroPort.ok && zeroPort.error.message).toBe('E_BAD_BODY IDENTIFY missing fields');
    const nullBody = parseIdentifyBody(body('null'));
    expect(!nullBody.ok && nullBody.error.message).toBe('E_BAD_BODY IDENTIFY missing fields');
  });

  it('reports undecodable JSON and wrong types as a decode failure', () => {
    for (const bad of ['{', '[]', '"x"', '7', { ...IDENTIFY_JSON, tcp_port: '4150' }, { ...IDENTIFY_JSON, tcp_port: 1.5 }, { ...IDENTIFY_JSON, version: 3 }]) {
      const r = parseIdentifyBody(body(bad));
      expect(!r.ok && r.error.message).toBe('E_BAD_BODY IDENTIFY failed to decode JSON body');
    }
  });

  it('matches keys case-insensitively like Go and is not fooled by prototype keys', () => {
    const r = parseIdentifyBody(body('{"__proto__":1,"constructor":"x","BROADCAST_ADDRESS":"n","Tcp_Port":1,"http_port":2,"version":"v"}'));
    expect(r.ok && r.info).toEqual({ broadcastAddress: 'n', hostname: '', tcpPort: 1, httpPort: 2, version: 'v' });
  });
});

describe('REGISTER/UNREGISTER arguments', () => {
  it('takes a topic and an optional channel, ignoring extra params', () => {
    expect(parseTopicChannel('REGISTER', ['t'])).toEqual({ ok: true, topic: 't', channel: '' });
    expect(parseTopicChannel('REGISTER', ['t', 'c', 'x'])).toEqual({ ok: true, topic: 't', channel: 'c' });
    expect(parseTopicChannel('REGISTER', ['t#ephemeral', 'c#ephemeral'])).toEqual({ ok: true, topic: 't#ephemeral', channel: 'c#ephemeral' });
    expect(parseTopicChannel('REGISTER', ['t', '', 'c'])).toEqual({ ok: true, topic: 't', channel: '' });
  });

  it('uses nsqlookupd error texts', () => {
    const msg = (r: ReturnType<typeof parseTopicChannel>): string | false => !r.ok && r.error.message;
    expect(msg(parseTopicChannel('REGISTER', []))).toBe('E_INVALID REGISTER insufficient number of params');
    expect(msg(parseTopicChannel('UNREGISTER', ['bad/name']))).toBe("E_BAD_TOPIC UNREGISTER topic name 'bad/name' is not valid");
    expect(msg(parseTopicChannel('REGISTER', ['', 't']))).toBe("E_BAD_TOPIC REGISTER topic name '' is not valid");
    expect(msg(parseTopicChannel('REGISTER', ['t', 'c!']))).toBe("E_BAD_CHANNEL REGISTER channel name 'c!' is not valid");
  });
});

describe('response decoder and Go JSON', () => {
  it('splits replies fed a byte at a time and refuses oversize ones', () => {
    const stream = Buffer.concat([encodeResponse('OK'), encodeResponse('{"tcp_port":1}'), encodeResponse('')]);
    const d = new LookupResponseDecoder();
    const out: string[] = [];
    for (const b of stream) out.push(...d.push(Buffer.from([b])).map((x) => x.toString()));
    expect(out).toEqual(['OK', '{"tcp_port":1}', '']);
    expect(() => new LookupResponseDecoder(10).push(Buffer.from([0, 0, 0, 11]))).toThrow(RangeError);
  });

  it('escapes like encoding/json', () => {
    expect(toGoJson({ h: '<a&b>\u2028' })).toBe('{"h":"\\u003ca\\u0026b\\u003e\\u2028"}');
  });
});

describe('decoder properties', () => {
  const split = (bytes: Buffer, cuts: number[]): Buffer[] => {
    const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
    const parts: Buffer[] = [];
    let prev = 0;
    for (const p of points) {
      parts.push(bytes.subarray(prev, p));
      prev = p;
    }
    parts.push(bytes.subarray(prev));
    return parts;
  };

  const decodeParts = (parts: Buffer[]): DecodedItem[] => {
    const d = new LookupV1Decoder();
    const out: DecodedItem[] = [];
    for (const p of parts) out.push(...d.push(p));
    out.push(...d.end());
    return out;
  };

  const wellFormed = (items: DecodedItem[]): boolean => {
    const errors = items.filter((i) => i.type === 'error');
    if (errors.length > 1) return false;
    if (errors.length === 1 && items[items.length - 1].type !== 'error') return false;
    return items.every((i) => (i.type === 'error' ? i.error.fatal && /^E_[A-Z_]+/.test(i.error.message) : ['PING', 'IDENTIFY', 'REGISTER', 'UNREGISTER'].includes(i.command.name)));
  };

  it('never throws on random bytes and yields only commands, then at most one final error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, withMagic) => {
        const input = withMagic ? Buffer.concat([MAGIC_V1, Buffer.from(bytes)]) : Buffer.from(bytes);
        return wellFormed(decodeParts([input]));
      }),
      { numRuns: 500 },
    );
  });

  it('gives the same items for mutated sessions however the stream is chunked', () => {
    const base = session();
    const mutation = fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), kind: fc.constantFrom('flip', 'insert', 'delete') });
    fc.assert(
      fc.property(fc.array(mutation, { maxLength: 4 }), fc.array(fc.nat(), { maxLength: 8 }), (mutations, cuts) => {
        let bytes = Buffer.from(base);
        for (const m of mutations) {
          const at = m.at % (bytes.length + 1);
          if (m.kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([m.byte]), bytes.subarray(at)]);
          else if (at < bytes.length && m.kind === 'delete') bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
          else if (at < bytes.length) bytes[at] = m.byte;
        }
        const whole = decodeParts([bytes]);
        expect(decodeParts(split(bytes, cuts))).toEqual(whole);
        return wellFormed(whole);
      }),
      { numRuns: 500 },
    );
  });
});
