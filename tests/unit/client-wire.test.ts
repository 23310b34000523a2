// The client half of protocol V2 against the server half: every command the client encodes is
// decoded by the shard's CommandDecoder to what was meant, and every frame the shard writes is
// decoded by the client's FrameDecoder — whole, byte by byte, and many frames in one chunk.

import { MESSAGE_HEADER_LENGTH, type WireMessage } from '../../wire/message';
import { CommandDecoder, errorFrame, messageFrameLength, responseFrame, writeMessageFrame, type DecodedItem } from '../../wire/nsq-v2';
import {
  CLS_BYTES,
  encodeAuth,
  encodeDpub,
  encodeFin,
  encodeIdentify,
  encodeMpub,
  encodePub,
  encodeRdy,
  encodeReq,
  encodeSub,
  encodeTouch,
  FrameDecoder,
  MAGIC_BYTES,
  NOP_BYTES,
  parseErrorData,
  type ServerFrame,
} from '../../wire/nsq-v2-client';

const ID = '0123456789abcdef';
const server = (): CommandDecoder => new CommandDecoder({ maxMsgSize: 1 << 20, maxBodySize: 5 << 20 });

function messageFrame(m: WireMessage): Buffer {
  const buf = Buffer.alloc(messageFrameLength(m.body.length));
  writeMessageFrame(buf, 0, m);
  return buf;
}

function byteByByte(d: FrameDecoder, bytes: Buffer): ServerFrame[] {
  const out: ServerFrame[] = [];
  for (let i = 0; i < bytes.length; i++) out.push(...d.push(bytes.subarray(i, i + 1)));
  return out;
}

describe('client command encoders, read back by the shard’s decoder', () => {
  const cases: Array<[string, Buffer, DecodedItem]> = [
    ['SUB', encodeSub('orders', 'billing#ephemeral'), { type: 'SUB', topic: 'orders', channel: 'billing#ephemeral' }],
    ['RDY', encodeRdy(2500), { type: 'RDY', count: 2500 }],
    ['FIN', encodeFin(ID), { type: 'FIN', id: ID }],
    ['REQ', encodeReq(ID, 1500), { type: 'REQ', id: ID, timeoutMs: 1500 }],
    ['TOUCH', encodeTouch(ID), { type: 'TOUCH', id: ID }],
    ['NOP', NOP_BYTES, { type: 'NOP' }],
    ['CLS', CLS_BYTES, { type: 'CLS' }],
    ['PUB', encodePub('t', 'hello'), { type: 'PUB', topic: 't', body: Buffer.from('hello') }],
    ['DPUB', encodeDpub('t', 2000, Buffer.from([0, 1, 2])), { type: 'DPUB', topic: 't', deferMs: 2000, body: Buffer.from([0, 1, 2]) }],
    ['MPUB', encodeMpub('t', ['a', Buffer.from('bc'), 'x'.repeat(300)]), { type: 'MPUB', topic: 't', bodies: [Buffer.from('a'), Buffer.from('bc'), Buffer.from('x'.repeat(300))] }],
    ['IDENTIFY', encodeIdentify({ client_id: 'c', feature_negotiation: true }), { type: 'IDENTIFY', body: Buffer.from('{"client_id":"c","feature_negotiation":true}') }],
    ['AUTH', encodeAuth('s3cret'), { type: 'AUTH', body: Buffer.from('s3cret') }],
  ];

  it.each(cases)('%s', (_name, bytes, expected) => {
    expect(server().push(bytes)).toEqual([expected]);
  });

  it('all of them in one stream, fed one byte at a time', () => {
    const d = server();
    const all = Buffer.concat(cases.map((c) => c[1]));
    const out: DecodedItem[] = [];
    for (let i = 0; i < all.length; i++) out.push(...d.push(all.subarray(i, i + 1)));
    expect(out).toEqual(cases.map((c) => c[2]));
  });

  it('refuses what nsqd would refuse before anything is written', () => {
    expect(() => encodeSub('bad topic', 'c')).toThrow(RangeError);
    expect(() => encodePub('x'.repeat(65), 'b')).toThrow(RangeError);
    expect(() => encodeFin('short')).toThrow(RangeError);
    expect(() => encodeReq(ID, -1)).toThrow(RangeError);
    expect(() => encodeRdy(1.5)).toThrow(RangeError);
    expect(() => encodeMpub('t', [])).toThrow(RangeError);
    expect(MAGIC_BYTES.toString()).toBe('  V2');
  });
});

describe('FrameDecoder, fed the shard’s frames', () => {
  const msg: WireMessage = { timestamp: 1_700_000_000_123_456_789, attempts: 3, id: ID, body: Buffer.from('payload') };
  const frames = Buffer.concat([
    responseFrame('OK'),
    responseFrame('_heartbeat_'),
    errorFrame('E_FIN_FAILED', `FIN ${ID} failed not found`),
    messageFrame(msg),
    errorFrame('E_BAD_TOPIC', 'PUB topic name "x y" is not valid'),
    messageFrame({ ...msg, body: Buffer.alloc(0) }),
  ]);
  const expected: ServerFrame[] = [
    { type: 'response', text: 'OK' },
    { type: 'response', text: '_heartbeat_' },
    { type: 'error', code: 'E_FIN_FAILED', text: `FIN ${ID} failed not found`, fatal: false },
    { type: 'message', message: { ...msg, timestamp: expect.any(Number) } as unknown as WireMessage },
    { type: 'error', code: 'E_BAD_TOPIC', text: 'PUB topic name "x y" is not valid', fatal: true },
    { type: 'message', message: { ...msg, body: Buffer.alloc(0), timestamp: expect.any(Number) } as unknown as WireMessage },
  ];

  it('many frames in one chunk', () => {
    const out = new FrameDecoder().push(frames);
    expect(out).toEqual(expected);
    const m = out[3] as Extract<ServerFrame, { type: 'message' }>;
    expect(Math.abs(m.message.timestamp - msg.timestamp)).toBeLessThan(512); // a double holds ns to ~256
  });

  it('one byte at a time gives the same frames, and holds nothing afterwards', () => {
    const d = new FrameDecoder();
    expect(byteByByte(d, frames)).toEqual(expected);
    expect(d.bufferedBytes).toBe(0);
  });

  it('any split of the stream gives the same frames', () => {
    for (let cut = 1; cut < frames.length; cut += 7) {
      const d = new FrameDecoder();
      expect([...d.push(frames.subarray(0, cut)), ...d.push(frames.subarray(cut))]).toEqual(expected);
    }
  });

  it('a large message split over many chunks is reassembled once', () => {
    const big = { ...msg, body: Buffer.alloc(200_000, 7) };
    const bytes = messageFrame(big);
    const d = new FrameDecoder();
    const out: ServerFrame[] = [];
    for (let i = 0; i < bytes.length; i += 1000) out.push(...d.push(bytes.subarray(i, i + 1000)));
    expect(out).toHaveLength(1);
    expect((out[0] as Extract<ServerFrame, { type: 'message' }>).message.body.equals(big.body)).toBe(true);
  });

  it('refuses an oversize length from its header alone, before buffering the body', () => {
    const d = new FrameDecoder(1024);
    const head = Buffer.alloc(8);
    head.writeUInt32BE(4 + 1_000_000, 0);
    head.writeUInt32BE(2, 4);
    expect(byteByByte(d, head)).toEqual([{ type: 'invalid', reason: expect.stringContaining('exceeds 1024') }]);
    expect(d.halted).toBe(true);
    expect(d.push(responseFrame('OK'))).toEqual([]);
  });

  it('refuses unknown frame types and message frames shorter than a message header', () => {
    const bad = Buffer.alloc(12);
    bad.writeUInt32BE(8, 0);
    bad.writeUInt32BE(7, 4);
    expect(new FrameDecoder().push(bad)).toEqual([{ type: 'invalid', reason: 'unknown frame type 7' }]);
    const short = Buffer.alloc(8 + 10);
    short.writeUInt32BE(4 + 10, 0);
    short.writeUInt32BE(2, 4);
    expect(new FrameDecoder().push(short)[0]).toMatchObject({ type: 'invalid' });
    expect(MESSAGE_HEADER_LENGTH).toBeGreaterThan(10);
  });

  it('splits error data into code and text, fatal unless FIN/REQ/TOUCH failed', () => {
    expect(parseErrorData('E_BAD_PROTOCOL')).toEqual({ code: 'E_BAD_PROTOCOL', text: '', fatal: true });
    expect(parseErrorData('E_REQ_FAILED REQ x failed')).toEqual({ code: 'E_REQ_FAILED', text: 'REQ x failed', fatal: false });
  });
});
