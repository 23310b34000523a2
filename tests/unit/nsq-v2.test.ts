// The TCP protocol V2 codec against byte fixtures: every command, every malformed input with
// nsqd's exact error, byte-by-byte and many-per-chunk feeding, encoders, and a fuzzed stream.

import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import {
  BAD_PROTOCOL,
  CommandDecoder,
  MAX_LINE_LENGTH,
  V2Errors,
  checkMagic,
  checkState,
  clampReqTimeout,
  errorData,
  errorFrame,
  frameLength,
  goQuote,
  messageFrameLength,
  responseFrame,
  validateRdy,
  writeErrorFrame,
  writeMessageFrame,
  writeResponseFrame,
  type Command,
  type DecodedItem,
  type DecoderLimits,
  type ProtocolError,
} from '../../wire/nsq-v2';

const NSQD: DecoderLimits = { maxMsgSize: 1048576, maxBodySize: 5242880 };
const ID = '0123456789abcdef';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
function u32(n: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE(n >>> 0);
  return buf;
}
/** A command line followed by a size-prefixed body. */
const withBody = (line: string, body: Buffer): Buffer => Buffer.concat([b(line), u32(body.length), body]);
/** An MPUB body: [4B count]([4B size][message])*. */
const mpubBody = (msgs: Buffer[]): Buffer => Buffer.concat([u32(msgs.length), ...msgs.flatMap((m) => [u32(m.length), m])]);

function decodeWhole(bytes: Buffer, limits = NSQD): DecodedItem[] {
  return new CommandDecoder(limits).push(bytes);
}
function feedByteByByte(d: CommandDecoder, bytes: Buffer): DecodedItem[] {
  const out: DecodedItem[] = [];
  for (let i = 0; i < bytes.length; i++) out.push(...d.push(bytes.subarray(i, i + 1)));
  return out;
}
function decodeByteByByte(bytes: Buffer, limits = NSQD): DecodedItem[] {
  return feedByteByByte(new CommandDecoder(limits), bytes);
}
function only(items: DecodedItem[]): DecodedItem {
  expect(items).toHaveLength(1);
  return items[0];
}

describe('encoders write exactly nsqd bytes', () => {
  it('response frames: [size = 4 + len][type 0][data]', () => {
    expect([...responseFrame('OK')]).toEqual([0, 0, 0, 6, 0, 0, 0, 0, 0x4f, 0x4b]);
    expect([...responseFrame('_heartbeat_')]).toEqual([0, 0, 0, 15, 0, 0, 0, 0, ...b('_heartbeat_')]);
    expect([...responseFrame(b('CLOSE_WAIT'))]).toEqual([0, 0, 0, 14, 0, 0, 0, 0, ...b('CLOSE_WAIT')]);
  });

  it('error frames: type 1, "CODE text", and a bare E_BAD_PROTOCOL', () => {
    expect([...errorFrame('E_INVALID', 'invalid command X')]).toEqual([0, 0, 0, 31, 0, 0, 0, 1, ...b('E_INVALID invalid command X')]);
    expect([...errorFrame(BAD_PROTOCOL.code, BAD_PROTOCOL.text)]).toEqual([0, 0, 0, 18, 0, 0, 0, 1, ...b('E_BAD_PROTOCOL')]);
    expect(errorData('E_FIN_FAILED', 'FIN x failed y')).toBe('E_FIN_FAILED FIN x failed y');
  });

  it('message frames: [size][type 2][8B ts][2B attempts][16B id][body]', () => {
    const out = Buffer.alloc(50, 0xee);
    const msg = { timestamp: 1_700_000_000_000_000_000, attempts: 3, id: ID, body: b('hi') };
    const end = writeMessageFrame(out, 5, msg);
    expect(end).toBe(5 + messageFrameLength(2));
    expect(messageFrameLength(2)).toBe(36);
    expect([...out.subarray(5, end)]).toEqual([
      0, 0, 0, 32, 0, 0, 0, 2,
      0x17, 0x97, 0x9c, 0xfe, 0x36, 0x2a, 0x00, 0x00,
      0, 3,
      ...b(ID),
      0x68, 0x69,
    ]);
    expect(out[4]).toBe(0xee);
    expect(out[end]).toBe(0xee);
  });

  it('write* place frames back to back at offsets and return the next offset', () => {
    const out = Buffer.alloc(64);
    let off = writeResponseFrame(out, 0, 'OK');
    off = writeErrorFrame(out, off, 'E_INVALID é');
    expect(off).toBe(frameLength('OK') + frameLength('E_INVALID é'));
    expect(out.subarray(0, off)).toEqual(Buffer.concat([responseFrame('OK'), errorFrame('E_INVALID', 'é')]));
  });

  it('checks the "  V2" magic only once four bytes are there', () => {
    expect(checkMagic(b('  V2'))).toBe('ok');
    expect(checkMagic(b('xx  V2PUB'), 2)).toBe('ok');
    expect(checkMagic(b('  V'))).toBe('incomplete');
    expect(checkMagic(b('  V1'))).toBe('bad');
    expect(checkMagic(b('GET '))).toBe('bad');
    expect(BAD_PROTOCOL).toMatchObject({ code: 'E_BAD_PROTOCOL', text: '', fatal: true });
  });
});

describe('command fixtures', () => {
  const json = b('{"client_id":"c","feature_negotiation":true}');
  const cases: Array<[string, Buffer, Command]> = [
    ['IDENTIFY', withBody('IDENTIFY\n', json), { type: 'IDENTIFY', body: json }],
    ['AUTH', withBody('AUTH\n', b('s3cret')), { type: 'AUTH', body: b('s3cret') }],
    ['SUB', b('SUB orders billing#ephemeral\n'), { type: 'SUB', topic: 'orders', channel: 'billing#ephemeral' }],
    ['SUB with the old short/long id params', b('SUB t c short long\n'), { type: 'SUB', topic: 't', channel: 'c' }],
    ['PUB', withBody('PUB orders\n', b('hello')), { type: 'PUB', topic: 'orders', body: b('hello') }],
    ['MPUB', withBody('MPUB t\n', mpubBody([b('a'), b('bc')])), { type: 'MPUB', topic: 't', bodies: [b('a'), b('bc')] }],
    ['DPUB', withBody('DPUB t 1500\n', b('later')), { type: 'DPUB', topic: 't', deferMs: 1500, body: b('later') }],
    ['DPUB at the max defer', withBody('DPUB t 3600000\n', b('x')), { type: 'DPUB', topic: 't', deferMs: 3600000, body: b('x') }],
    ['RDY', b('RDY 2500\n'), { type: 'RDY', count: 2500 }],
    ['RDY without a count means 1', b('RDY\n'), { type: 'RDY', count: 1 }],
    ['RDY with an empty count is 0 (ByteToBase10 of "")', b('RDY \n'), { type: 'RDY', count: 0 }],
    ['RDY wraps like int64(uint64)', b('RDY 18446744073709551615\n'), { type: 'RDY', count: -1 }],
    ['FIN', b(`FIN ${ID}\n`), { type: 'FIN', id: ID }],
    ['FIN ignores extra params', b(`FIN ${ID} extra\n`), { type: 'FIN', id: ID }],
    ['REQ', b(`REQ ${ID} 500\n`), { type: 'REQ', id: ID, timeoutMs: 500 }],
    ['REQ keeps an over-max timeout for the handler to clamp', b(`REQ ${ID} 99999999\n`), { type: 'REQ', id: ID, timeoutMs: 99999999 }],
    ['TOUCH', b(`TOUCH ${ID}\n`), { type: 'TOUCH', id: ID }],
    ['CLS', b('CLS\n'), { type: 'CLS' }],
    ['NOP', b('NOP\n'), { type: 'NOP' }],
    ['a trailing \\r is trimmed', b(`FIN ${ID}\r\n`), { type: 'FIN', id: ID }],
    ['\\r before the body size', withBody('PUB t\r\n', b('x')), { type: 'PUB', topic: 't', body: b('x') }],
  ];

  it.each(cases)('%s', (_name, bytes, expected) => {
    expect(only(decodeWhole(bytes))).toEqual(expected);
    expect(only(decodeByteByByte(bytes))).toEqual(expected);
  });

  it('only one \\r is trimmed, as in nsqd', () => {
    expect(only(decodeWhole(b('NOP\r\r\n')))).toMatchObject({ code: 'E_INVALID', text: 'invalid command NOP\r' });
  });

  it('a binary body may contain newlines, spaces and NULs', () => {
    const body = Buffer.from([10, 32, 0, 13, 10, 255]);
    expect(only(decodeByteByByte(withBody('PUB t\n', body)))).toEqual({ type: 'PUB', topic: 't', body });
  });
});

describe('streams', () => {
  const stream = Buffer.concat([
    withBody('IDENTIFY\n', b('{}')),
    b('SUB t c\n'),
    b('RDY 10\n'),
    withBody('PUB t\n', b('one')),
    withBody('MPUB t\n', mpubBody([b('m1'), b('m2'), b('m3')])),
    b(`FIN ${ID}\n`),
    withBody('DPUB t 5\n', b('d')),
    b(`REQ ${ID} 0\nTOUCH ${ID}\nNOP\nCLS\n`),
  ]);

  it('fed one byte at a time yields what one chunk yields', () => {
    const whole = decodeWhole(stream);
    expect(whole.map((c) => c.type)).toEqual(['IDENTIFY', 'SUB', 'RDY', 'PUB', 'MPUB', 'FIN', 'DPUB', 'REQ', 'TOUCH', 'NOP', 'CLS']);
    expect(decodeByteByByte(stream)).toEqual(whole);
  });

  it('any split into chunks yields the same commands', () => {
    const whole = decodeWhole(stream);
    fc.assert(
      fc.property(fc.array(fc.nat(stream.length), { maxLength: 12 }), (cuts) => {
        const d = new CommandDecoder(NSQD);
        const points = [0, ...cuts.sort((x, y) => x - y), stream.length];
        const got: DecodedItem[] = [];
        for (let i = 1; i < points.length; i++) got.push(...d.push(stream.subarray(points[i - 1], points[i])));
        expect(got).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });

  it('decodes many frames from one chunk in place: bodies are views of the chunk', () => {
    const frames: Buffer[] = [];
    for (let i = 0; i < 1000; i++) frames.push(withBody('PUB t\n', b(`body-${i}`)));
    const chunk = Buffer.concat(frames);
    const items = new CommandDecoder(NSQD).push(chunk);
    expect(items).toHaveLength(1000);
    items.forEach((item, i) => {
      expect(item).toEqual({ type: 'PUB', topic: 't', body: b(`body-${i}`) });
      if (item.type === 'PUB') expect(item.body.buffer).toBe(chunk.buffer);
    });
  });

  it('a body that straddles chunks is copied once into its own buffer, which is never reused', () => {
    const d = new CommandDecoder(NSQD);
    const frame = withBody('PUB t\n', b('0123456789'));
    expect(d.push(frame.subarray(0, 14))).toEqual([]);
    expect(d.bufferedBytes).toBe(4); // the line and size were consumed, 4 body bytes are carried
    const [first] = d.push(frame.subarray(14));
    expect(first).toEqual({ type: 'PUB', topic: 't', body: b('0123456789') });
    // more traffic, including another straddling body, must not disturb the body handed out
    d.push(Buffer.concat([frame, frame.subarray(0, 12)]));
    d.push(frame.subarray(12));
    expect(first).toEqual({ type: 'PUB', topic: 't', body: b('0123456789') });
    expect(d.bufferedBytes).toBe(0);
  });

  it('keeps truncated frames pending and reports at EOF what nsqd reports', () => {
    const d = new CommandDecoder(NSQD);
    expect(d.push(b('PUB t\n'))).toEqual([]);
    expect(d.end()).toEqual({ type: 'error', command: 'PUB', code: 'E_BAD_MESSAGE', text: 'PUB failed to read message body size', fatal: true });
    expect(d.halted).toBe(true);

    const cases: Array<[Buffer, string, string]> = [
      [withBody('PUB t\n', b('hello')).subarray(0, -2), 'E_BAD_MESSAGE', 'PUB failed to read message body'],
      [withBody('DPUB t 1\n', b('hello')).subarray(0, -1), 'E_BAD_MESSAGE', 'DPUB failed to read message body'],
      [b('DPUB t 1\n\0\0'), 'E_BAD_MESSAGE', 'DPUB failed to read message body size'],
      [b('IDENTIFY\n\0'), 'E_BAD_BODY', 'IDENTIFY failed to read body size'],
      [withBody('IDENTIFY\n', b('{}')).subarray(0, -1), 'E_BAD_BODY', 'IDENTIFY failed to read body'],
      [b('AUTH\n'), 'E_BAD_BODY', 'AUTH failed to read body size'],
      [withBody('AUTH\n', b('secret')).subarray(0, -1), 'E_BAD_BODY', 'AUTH failed to read body'],
      [b('MPUB t\n\0\0\0'), 'E_BAD_BODY', 'MPUB failed to read body size'],
      [Buffer.concat([b('MPUB t\n'), u32(20), u32(2)]).subarray(0, -1), 'E_BAD_BODY', 'MPUB failed to read message count'],
      [Buffer.concat([b('MPUB t\n'), u32(20), u32(2), u32(1), b('a')]), 'E_BAD_MESSAGE', 'MPUB failed to read message(1) body size'],
      [Buffer.concat([b('MPUB t\n'), u32(20), u32(2), u32(5), b('ab')]), 'E_BAD_MESSAGE', 'MPUB failed to read message body'],
      [Buffer.concat([b('MPUB t\n'), u32(20), u32(0)]), 'E_BAD_BODY', 'MPUB invalid message count 0'],
    ];
    for (const [bytes, code, text] of cases) {
      for (const feed of [(d: CommandDecoder) => d.push(bytes), (d: CommandDecoder) => feedByteByByte(d, bytes)]) {
        const d = new CommandDecoder(NSQD);
        expect(feed(d)).toEqual([]); // pending, not an error, until the stream ends
        expect(d.end()).toEqual({ type: 'error', command: expect.any(String), code, text, fatal: true });
      }
    }
    // nsqd drops a partial line at EOF without a word
    const partial = new CommandDecoder(NSQD);
    expect(partial.push(b('PUB to'))).toEqual([]);
    expect(partial.end()).toBeNull();
  });
});

describe('malformed input gets nsqd’s exact error, and ends the stream', () => {
  const big = (line: string, size: number) => Buffer.concat([b(line), u32(size)]);
  const mpub = (size: number, rest: Buffer) => Buffer.concat([b('MPUB t\n'), u32(size), rest]);
  // [input, code, text, command]; every one of these is a FatalClientErr in nsqd
  const cases: Array<[Buffer, string, string, string]> = [
    [b('FOO\n'), 'E_INVALID', 'invalid command FOO', 'FOO'],
    [b('pub t\n'), 'E_INVALID', 'invalid command pub', 'pub'],
    [b('\n'), 'E_INVALID', 'invalid command ', ''],
    [b(' NOP\n'), 'E_INVALID', 'invalid command ', ''],
    [b('FIN\n'), 'E_INVALID', 'FIN insufficient number of params', 'FIN'],
    [b('FIN \n'), 'E_INVALID', 'Invalid Message ID', 'FIN'],
    [b(`FIN  ${ID}\n`), 'E_INVALID', 'Invalid Message ID', 'FIN'],
    [b('FIN 0123456789abcde\n'), 'E_INVALID', 'Invalid Message ID', 'FIN'],
    [b('FIN 0123456789abcdef0\n'), 'E_INVALID', 'Invalid Message ID', 'FIN'],
    [b('TOUCH\n'), 'E_INVALID', 'TOUCH insufficient number of params', 'TOUCH'],
    [b('TOUCH abc\n'), 'E_INVALID', 'Invalid Message ID', 'TOUCH'],
    [b(`REQ ${ID}\n`), 'E_INVALID', 'REQ insufficient number of params', 'REQ'],
    [b('REQ short 10\n'), 'E_INVALID', 'Invalid Message ID', 'REQ'],
    [b(`REQ ${ID} -1\n`), 'E_INVALID', 'REQ could not parse timeout -1', 'REQ'],
    [b(`REQ ${ID} 1e3\n`), 'E_INVALID', 'REQ could not parse timeout 1e3', 'REQ'],
    [b('RDY -1\n'), 'E_INVALID', 'RDY could not parse count -1', 'RDY'],
    [b('RDY ten\n'), 'E_INVALID', 'RDY could not parse count ten', 'RDY'],
    [b('RDY +5\n'), 'E_INVALID', 'RDY could not parse count +5', 'RDY'],
    [b('SUB t\n'), 'E_INVALID', 'SUB insufficient number of parameters', 'SUB'],
    [b('SUB a/b c\n'), 'E_BAD_TOPIC', 'SUB topic name "a/b" is not valid', 'SUB'],
    [b('SUB t c!\n'), 'E_BAD_CHANNEL', 'SUB channel name "c!" is not valid', 'SUB'],
    [b(`SUB ${'t'.repeat(65)} c\n`), 'E_BAD_TOPIC', `SUB topic name "${'t'.repeat(65)}" is not valid`, 'SUB'],
    [b('PUB\n'), 'E_INVALID', 'PUB insufficient number of parameters', 'PUB'],
    [b('PUB \n'), 'E_BAD_TOPIC', 'PUB topic name "" is not valid', 'PUB'],
    [b('PUB t\x01"\xff\n'), 'E_BAD_TOPIC', 'PUB topic name "t\\x01\\"\\xff" is not valid', 'PUB'],
    [b('MPUB\n'), 'E_INVALID', 'MPUB insufficient number of parameters', 'MPUB'],
    [b('MPUB t*\n'), 'E_BAD_TOPIC', 'E_BAD_TOPIC MPUB topic name "t*" is not valid', 'MPUB'],
    [b('DPUB t\n'), 'E_INVALID', 'DPUB insufficient number of parameters', 'DPUB'],
    [b('DPUB t? 5\n'), 'E_BAD_TOPIC', 'DPUB topic name "t?" is not valid', 'DPUB'],
    [b('DPUB t -5\n'), 'E_INVALID', 'DPUB could not parse timeout -5', 'DPUB'],
    [b('DPUB t 3600001\n'), 'E_INVALID', 'DPUB timeout 3600001 out of range 0-3600000', 'DPUB'],
    [b('DPUB t 99999999999999999999\n'), 'E_INVALID', 'DPUB timeout 7766279631452241919 out of range 0-3600000', 'DPUB'],
    [b('AUTH x\n'), 'E_INVALID', 'AUTH invalid number of parameters', 'AUTH'],
    [b('AUTH \n'), 'E_INVALID', 'AUTH invalid number of parameters', 'AUTH'],
    // length prefixes: judged before a single body byte arrives
    [big('PUB t\n', 0), 'E_BAD_MESSAGE', 'PUB invalid message body size 0', 'PUB'],
    [big('PUB t\n', 0xffffffff), 'E_BAD_MESSAGE', 'PUB invalid message body size -1', 'PUB'],
    [big('PUB t\n', 2000000), 'E_BAD_MESSAGE', 'PUB message too big 2000000 > 1048576', 'PUB'],
    [big('PUB t\n', 0x7fffffff), 'E_BAD_MESSAGE', 'PUB message too big 2147483647 > 1048576', 'PUB'],
    [big('DPUB t 0\n', 0), 'E_BAD_MESSAGE', 'DPUB invalid message body size 0', 'DPUB'],
    [big('DPUB t 0\n', 1048577), 'E_BAD_MESSAGE', 'DPUB message too big 1048577 > 1048576', 'DPUB'],
    [big('IDENTIFY\n', 0), 'E_BAD_BODY', 'IDENTIFY invalid body size 0', 'IDENTIFY'],
    [big('IDENTIFY\n', 0x80000000), 'E_BAD_BODY', 'IDENTIFY invalid body size -2147483648', 'IDENTIFY'],
    [big('IDENTIFY\n', 6000000), 'E_BAD_BODY', 'IDENTIFY body too big 6000000 > 5242880', 'IDENTIFY'],
    [big('AUTH\n', 0), 'E_BAD_BODY', 'AUTH invalid body size 0', 'AUTH'],
    [big('AUTH\n', 5242881), 'E_BAD_BODY', 'AUTH body too big 5242881 > 5242880', 'AUTH'],
    [big('MPUB t\n', 0), 'E_BAD_BODY', 'MPUB invalid body size 0', 'MPUB'],
    [big('MPUB t\n', 0xfffffffe), 'E_BAD_BODY', 'MPUB invalid body size -2', 'MPUB'],
    [big('MPUB t\n', 6000000), 'E_BAD_BODY', 'MPUB body too big 6000000 > 5242880', 'MPUB'],
    // inside an MPUB body
    [mpub(3, b('\0\0\0')), 'E_BAD_BODY', 'MPUB failed to read message count', 'MPUB'],
    [mpub(4, u32(0)), 'E_BAD_BODY', 'MPUB invalid message count 0', 'MPUB'],
    [mpub(4, u32(0xffffffff)), 'E_BAD_BODY', 'MPUB invalid message count -1', 'MPUB'],
    [mpub(4, u32(1048576)), 'E_BAD_BODY', 'MPUB invalid message count 1048576', 'MPUB'], // > (5242880-4)/5
    [mpub(9, Buffer.concat([u32(1), u32(0), b('x')])), 'E_BAD_MESSAGE', 'MPUB invalid message(0) body size 0', 'MPUB'],
    [mpub(14, Buffer.concat([u32(2), u32(1), b('x'), u32(0xffffffff), b('x')])), 'E_BAD_MESSAGE', 'MPUB invalid message(1) body size -1', 'MPUB'],
    [mpub(13, Buffer.concat([u32(2), u32(2000000), b('x'.repeat(5))])), 'E_BAD_MESSAGE', 'MPUB message too big 2000000 > 1048576', 'MPUB'],
    [mpub(9, Buffer.concat([u32(1), u32(2), b('x')])), 'E_BAD_MESSAGE', 'MPUB failed to read message body', 'MPUB'],
    [mpub(9, Buffer.concat([u32(2), u32(1), b('x')])), 'E_BAD_MESSAGE', 'MPUB failed to read message(1) body size', 'MPUB'],
    // Sluice frames MPUB by its declared size; nsqd would run the leftover bytes as commands
    [mpub(12, Buffer.concat([u32(1), u32(1), b('xNOP')])), 'E_BAD_BODY', 'MPUB body size 12 does not match the 9 bytes its messages use', 'MPUB'],
    // nsqd's 16 KiB line buffer (it closes without a frame; we say why)
    [b('N'.repeat(MAX_LINE_LENGTH)), 'E_INVALID', 'command line longer than 16383 bytes', ''],
    [b(`PUB ${'t'.repeat(MAX_LINE_LENGTH - 4)}\n`), 'E_INVALID', 'command line longer than 16383 bytes', ''],
  ];

  it.each(cases.map((c) => [JSON.stringify(c[0].toString('latin1').slice(0, 40)), ...c] as const))(
    '%s',
    (_label, bytes, code, text, command) => {
      const expected: ProtocolError = { type: 'error', command, code, text, fatal: true };
      for (const feed of ['whole', 'byte-by-byte']) {
        const d = new CommandDecoder(NSQD);
        const items = feed === 'whole' ? d.push(bytes) : feedByteByByte(d, bytes);
        expect(items).toEqual([expected]);
        expect(d.halted).toBe(true);
        expect(d.retainedBytes).toBe(0);
        // after a fatal error nothing else is decoded
        expect(d.push(b('NOP\n'))).toEqual([]);
      }
    },
  );

  it('errors come after the commands before them, and nothing after', () => {
    const items = decodeWhole(b(`NOP\nRDY 1\nBAD\nNOP\nFIN ${ID}\n`));
    expect(items.map((i) => i.type)).toEqual(['NOP', 'RDY', 'error']);
  });

  it('rejects a 2 GB announcement at once, without buffering anything', () => {
    const d = new CommandDecoder(NSQD);
    const [err] = d.push(Buffer.concat([b('PUB t\n'), u32(0x7fffffff), Buffer.alloc(1000)]));
    expect(err).toMatchObject({ code: 'E_BAD_MESSAGE', fatal: true });
    expect(d.retainedBytes).toBe(0);
  });

  it('carries a line up to nsqd’s limit across chunks', () => {
    const d = new CommandDecoder(NSQD);
    const line = b(`SUB t c ${'x'.repeat(MAX_LINE_LENGTH - 9)}\n`); // 16384 bytes with its '\n'
    expect(line.length).toBe(MAX_LINE_LENGTH);
    expect(d.push(line.subarray(0, 100))).toEqual([]);
    expect(d.push(line.subarray(100))).toEqual([{ type: 'SUB', topic: 't', channel: 'c' }]);
    expect(d.retainedBytes).toBeLessThanOrEqual(4096); // a grown line buffer is dropped once used
  });
});

describe('handler checks', () => {
  it('checkState follows nsqd’s per-command state rules', () => {
    expect(checkState('SUB', 'init')).toBeNull();
    expect(checkState('SUB', 'subscribed')).toEqual(V2Errors.wrongState('SUB'));
    expect(checkState('IDENTIFY', 'subscribed')).toMatchObject({ code: 'E_INVALID', text: 'cannot IDENTIFY in current state', fatal: true });
    expect(checkState('AUTH', 'closing')).toMatchObject({ text: 'cannot AUTH in current state' });
    expect(checkState('RDY', 'init')).toMatchObject({ text: 'cannot RDY in current state' });
    expect(checkState('RDY', 'subscribed')).toBeNull();
    expect(checkState('RDY', 'closing')).toBe('ignore');
    for (const c of ['FIN', 'REQ', 'TOUCH']) {
      expect(checkState(c, 'init')).toMatchObject({ text: `cannot ${c} in current state` });
      expect(checkState(c, 'subscribed')).toBeNull();
      expect(checkState(c, 'closing')).toBeNull();
    }
    expect(checkState('CLS', 'closing')).toMatchObject({ text: 'cannot CLS in current state' });
    expect(checkState('CLS', 'subscribed')).toBeNull();
    for (const c of ['PUB', 'MPUB', 'DPUB', 'NOP', 'FOO']) expect(checkState(c, 'closing')).toBeNull();
  });

  it('validateRdy and clampReqTimeout', () => {
    expect(validateRdy(2500, 2500)).toBeNull();
    expect(validateRdy(0, 2500)).toBeNull();
    expect(validateRdy(2501, 2500)).toMatchObject({ code: 'E_INVALID', text: 'RDY count 2501 out of range 0-2500', fatal: true });
    expect(validateRdy(-1, 2500)).toMatchObject({ text: 'RDY count -1 out of range 0-2500' });
    expect(clampReqTimeout(500, 3600000)).toBe(500);
    expect(clampReqTimeout(99999999, 3600000)).toBe(3600000);
  });

  it('only FIN/REQ/TOUCH failures are non-fatal', () => {
    expect(V2Errors.finFailed(ID, 'ID not in flight')).toEqual({
      type: 'error', command: 'FIN', code: 'E_FIN_FAILED', text: `FIN ${ID} failed ID not in flight`, fatal: false,
    });
    expect(V2Errors.reqFailed(ID, 'x')).toMatchObject({ code: 'E_REQ_FAILED', fatal: false });
    expect(V2Errors.touchFailed(ID, 'x')).toMatchObject({ code: 'E_TOUCH_FAILED', fatal: false });
    expect(V2Errors.putFailed('MPUB', 'exiting')).toMatchObject({ code: 'E_MPUB_FAILED', text: 'MPUB failed exiting', fatal: true });
    expect(V2Errors.tlsRequired('PUB')).toMatchObject({ text: 'cannot PUB in current state (TLS required)', fatal: true });
    expect(V2Errors.unauthorized('SUB', 't', 'c')).toMatchObject({ code: 'E_UNAUTHORIZED', text: 'AUTH failed for SUB on "t" "c"' });
  });

  it('goQuote renders like Go’s %q', () => {
    expect(goQuote('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(goQuote('\t\n\r\0\x7f\x07')).toBe('"\\t\\n\\r\\x00\\x7f\\a"');
    expect(goQuote('héllo ✓ 😀')).toBe('"héllo ✓ 😀"');
    expect(goQuote('\u00a0\u200b\ue000\u0085')).toBe('"\\u00a0\\u200b\\ue000\\u0085"');
    expect(goQuote('\u{1d173}')).toBe('"\\U0001d173"');
    expect(goQuote(Buffer.from([0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xe2, 0x82]))).toBe('"\\xff\\xc3(\\xed\\xa0\\x80\\xe2\\x82"');
  });
});

// ---- against a real client: nsqjs encodes commands and parses our frames ----

// nsqjs ships no types; these are the parts of its wire module and frame parser used here.
interface NsqjsWire {
  identify(data: Record<string, unknown>): Buffer;
  auth(token: string): Buffer;
  subscribe(topic: string, channel: string): Buffer;
  pub(topic: string, data: Buffer | string): Buffer;
  mpub(topic: string, data: Array<Buffer | string>): Buffer;
  dpub(topic: string, data: Buffer | string, timeMs: number): Buffer;
  ready(count: number): Buffer;
  finish(id: string): Buffer;
  requeue(id: string, timeMs: number): Buffer;
  touch(id: string): Buffer;
  nop(): Buffer;
  close(): Buffer;
  unpackMessage(data: Buffer): [string, bigint, number, Buffer];
}
interface NsqjsFrameBuffer {
  consume(raw: Buffer): void;
  nextFrame(): [number, Buffer] | undefined;
}
const nsqjsWire = require('nsqjs/lib/wire') as NsqjsWire;
const NsqjsFrames = require('nsqjs/lib/framebuffer') as new () => NsqjsFrameBuffer;

describe('interop with nsqjs', () => {
  it('decodes the bytes nsqjs sends', () => {
    const stream = Buffer.concat([
      nsqjsWire.identify({ client_id: 'c', feature_negotiation: true, heartbeat_interval: 30000 }),
      nsqjsWire.auth('token'),
      nsqjsWire.subscribe('orders', 'billing'),
      nsqjsWire.ready(100),
      nsqjsWire.pub('orders', 'héllo'),
      nsqjsWire.mpub('orders', ['a', Buffer.from([0, 1, 2])]),
      nsqjsWire.dpub('orders', 'later', 2500),
      nsqjsWire.finish(ID),
      nsqjsWire.requeue(ID, 1000),
      nsqjsWire.touch(ID),
      nsqjsWire.nop(),
      nsqjsWire.close(),
    ]);
    const items = decodeByteByByte(stream);
    expect(items).toEqual(decodeWhole(stream));
    expect(items.slice(1)).toEqual([
      { type: 'AUTH', body: b('token') },
      { type: 'SUB', topic: 'orders', channel: 'billing' },
      { type: 'RDY', count: 100 },
      { type: 'PUB', topic: 'orders', body: Buffer.from('héllo') },
      { type: 'MPUB', topic: 'orders', bodies: [b('a'), Buffer.from([0, 1, 2])] },
      { type: 'DPUB', topic: 'orders', deferMs: 2500, body: b('later') },
      { type: 'FIN', id: ID },
      { type: 'REQ', id: ID, timeoutMs: 1000 },
      { type: 'TOUCH', id: ID },
      { type: 'NOP' },
      { type: 'CLS' },
    ]);
    const identify = items[0];
    expect(identify.type === 'IDENTIFY' && JSON.parse(identify.body.toString())).toEqual({
      client_id: 'c', feature_negotiation: true, heartbeat_interval: 30000,
    });
  });

  it('nsqjs parses the frames we write', () => {
    const out = Buffer.alloc(256);
    let off = writeResponseFrame(out, 0, 'OK');
    off = writeErrorFrame(out, off, errorData('E_FIN_FAILED', `FIN ${ID} failed ID not in flight`));
    off = writeMessageFrame(out, off, { timestamp: 1_700_000_000_000_000_000, attempts: 2, id: ID, body: b('payload') });
    const frames = new NsqjsFrames();
    frames.consume(out.subarray(0, off));
    const [okType, ok] = frames.nextFrame() ?? [];
    expect([okType, ok?.toString()]).toEqual([0, 'OK']);
    const [errType, err] = frames.nextFrame() ?? [];
    expect([errType, err?.toString()]).toEqual([1, `E_FIN_FAILED FIN ${ID} failed ID not in flight`]);
    const [msgType, msg] = frames.nextFrame() ?? [];
    expect(msgType).toBe(2);
    expect(nsqjsWire.unpackMessage(msg ?? Buffer.alloc(0))).toEqual([ID, 1_700_000_000_000_000_000n, 2, b('payload')]);
    expect(frames.nextFrame()).toBeUndefined();
  });
});

// ---- fuzz: random valid streams, then mutated, fed in random chunks ----

const LIMITS: DecoderLimits = { maxMsgSize: 64, maxBodySize: 300, maxReqTimeoutMs: 5000 };
const COMMAND_TYPES = new Set(['IDENTIFY', 'AUTH', 'SUB', 'PUB', 'MPUB', 'DPUB', 'RDY', 'FIN', 'REQ', 'TOUCH', 'CLS', 'NOP']);

const nameChar = fc.constantFrom(...'abcxyz0189._-');
const nameArb = fc
  .tuple(fc.string({ unit: nameChar, minLength: 1, maxLength: 10 }), fc.boolean())
  .map(([n, ephemeral]) => (ephemeral ? n + '#ephemeral' : n));
// within LIMITS, so a clean stream must decode without errors; mutations push past them
const bodyArb = fc.uint8Array({ minLength: 1, maxLength: 60 }).map((a) => Buffer.from(a));
const idArb = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 16, maxLength: 16 });
const frameArb: fc.Arbitrary<[Buffer, Command]> = fc.oneof(
  bodyArb.map((x): [Buffer, Command] => [withBody('IDENTIFY\n', x), { type: 'IDENTIFY', body: x }]),
  bodyArb.map((x): [Buffer, Command] => [withBody('AUTH\n', x), { type: 'AUTH', body: x }]),
  fc.tuple(nameArb, nameArb).map(([t, c]): [Buffer, Command] => [b(`SUB ${t} ${c}\n`), { type: 'SUB', topic: t, channel: c }]),
  fc.tuple(nameArb, bodyArb).map(([t, x]): [Buffer, Command] => [withBody(`PUB ${t}\n`, x), { type: 'PUB', topic: t, body: x }]),
  fc
    .tuple(nameArb, fc.array(bodyArb, { minLength: 1, maxLength: 4 }))
    .map(([t, xs]): [Buffer, Command] => [withBody(`MPUB ${t}\n`, mpubBody(xs)), { type: 'MPUB', topic: t, bodies: xs }]),
  fc
    .tuple(nameArb, fc.nat(5000), bodyArb)
    .map(([t, ms, x]): [Buffer, Command] => [withBody(`DPUB ${t} ${ms}\n`, x), { type: 'DPUB', topic: t, deferMs: ms, body: x }]),
  fc.nat(3000).map((n): [Buffer, Command] => [b(`RDY ${n}\n`), { type: 'RDY', count: n }]),
  idArb.map((id): [Buffer, Command] => [b(`FIN ${id}\n`), { type: 'FIN', id }]),
  fc.tuple(idArb, fc.nat(10000)).map(([id, ms]): [Buffer, Command] => [b(`REQ ${id} ${ms}\r\n`), { type: 'REQ', id, timeoutMs: ms }]),
  idArb.map((id): [Buffer, Command] => [b(`TOUCH ${id}\n`), { type: 'TOUCH', id }]),
  fc.constant<[Buffer, Command]>([b('CLS\n'), { type: 'CLS' }]),
  fc.constant<[Buffer, Command]>([b('NOP\n'), { type: 'NOP' }]),
);
const mutationArb = fc.oneof(
  fc.constant({ kind: 'none' as const }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 12 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), length: fc.nat(20) }),
);
type Mutation = typeof mutationArb extends fc.Arbitrary<infer M> ? M : never;

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

function mutate(stream: Buffer, m: Mutation): Buffer {
  if (m.kind === 'none' || stream.length === 0) return stream;
  const at = m.at % stream.length;
  switch (m.kind) {
    case 'flip': {
      const copy = Buffer.from(stream);
      copy[at] = m.value;
      return copy;
    }
    case 'truncate':
      return stream.subarray(0, at);
    case 'splice':
      return Buffer.concat([stream.subarray(0, at), Buffer.from(m.bytes), stream.subarray(at)]);
    case 'cut':
      return Buffer.concat([stream.subarray(0, at), stream.subarray(at + m.length)]);
  }
}

describe('fuzzed streams', () => {
  it('never throw, stop at the first error, stay bounded, and decode the same however chunked', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 6 }),
        fc.array(mutationArb, { maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (frames, mutations, cuts) => {
          // plain checks instead of expect(): this body runs 20k times
          const clean = Buffer.concat(frames.map(([bytes]) => bytes));
          const stream = mutations.reduce(mutate, clean);
          const reference = new CommandDecoder(LIMITS).push(stream);

          const d = new CommandDecoder(LIMITS);
          const points = [0, ...cuts.map((c) => c % (stream.length + 1)).sort((x, y) => x - y), stream.length];
          const items: DecodedItem[] = [];
          for (let i = 1; i < points.length; i++) {
            items.push(...d.push(stream.subarray(points[i - 1], points[i])));
            check(d.bufferedBytes < Math.max(MAX_LINE_LENGTH, LIMITS.maxBodySize), 'buffered bytes bounded');
            check(d.retainedBytes <= MAX_LINE_LENGTH + LIMITS.maxBodySize, 'retained bytes bounded');
          }
          check(isDeepStrictEqual(items, reference), 'same items however chunked');
          items.forEach((item, i) => {
            if (item.type === 'error') {
              check(item.fatal && i === items.length - 1 && /^E_[A-Z_]+$/.test(item.code), 'errors are fatal and last');
            } else {
              check(COMMAND_TYPES.has(item.type), 'known command');
            }
          });
          const tail = d.end();
          check(tail === null || tail.fatal, 'EOF errors are fatal');
          // an unmutated stream decodes into exactly the commands it was made from
          if (stream === clean) {
            check(isDeepStrictEqual(items, frames.map(([, command]) => command)), 'clean stream round-trips');
            check(tail === null, 'clean stream ends cleanly');
          }
        },
      ),
      { numRuns: 20000 },
    );
  });
});
