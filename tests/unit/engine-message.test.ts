// The engine's Message: its timestamp comes back exactly as given however it is stored, and its
// delivery state reads as "none" until a channel sets it; copies for other channels keep only the
// fields a fresh copy should.

import fc from 'fast-check';
import { LEASE_OWNER, Message } from '../../shard/engine/message';
import { decodeRecord, encodeRecord } from '../../shard/engine/record';
import { readMessage, writeMessage, MESSAGE_HEADER_LENGTH } from '../../wire/message';

const ID = '0123456789abcdef';

describe('engine Message: timestamp', () => {
  it('gives back every double exactly (Object.is: -0, NaN and infinities included)', () => {
    fc.assert(
      fc.property(fc.double(), (t) => {
        expect(Object.is(new Message(ID, Buffer.alloc(0), t).timestamp, t)).toBe(true);
      }),
      { numRuns: 5000 },
    );
    for (const t of [0, -0, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 31 - 1, 2 ** 53 + 2, 2 ** 62, 2 ** 64 - 2048, Number.MAX_VALUE, Number.MIN_VALUE, -(2 ** 62) - 4096]) {
      expect(Object.is(new Message(ID, Buffer.alloc(0), t).timestamp, t)).toBe(true);
    }
  });

  it('gives back every 64-bit wire timestamp exactly, and a copy carries the same one', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (big) => {
        const t = Number(big);
        const m = new Message(ID, Buffer.alloc(0), t);
        expect(m.timestamp).toBe(t);
        expect(m.copy().timestamp).toBe(t);
      }),
      { numRuns: 5000 },
    );
  });

  it('writes the same 8 timestamp bytes to the wire and to a record as the number it was given', () => {
    const t = 1_795_781_234_567_000_000;
    const m = new Message(ID, Buffer.from('hello'), t);
    const buf = Buffer.alloc(MESSAGE_HEADER_LENGTH + 5);
    writeMessage(buf, 0, m);
    const plain = Buffer.alloc(MESSAGE_HEADER_LENGTH + 5);
    writeMessage(plain, 0, { id: ID, body: Buffer.from('hello'), attempts: 0, timestamp: t });
    expect(buf.equals(plain)).toBe(true);
    expect(readMessage(buf).timestamp).toBe(t);
    const back = decodeRecord(Buffer.from(encodeRecord(m)))!;
    expect(back.timestamp).toBe(t);
  });
});

describe('engine Message: delivery state', () => {
  it('reads as not in flight, in no heap and not deferred until set, also after setting the defaults', () => {
    const m = new Message(ID, Buffer.from('x'), 1);
    const none = { ownerId: -1, token: '', pri: 0, heapIndex: -1, deliveredAt: 0, timeoutMs: 0, journalSeq: 0, deferUntil: 0, deferDueMono: 0 };
    const read = (x: Message) => ({ ownerId: x.ownerId, token: x.token, pri: x.pri, heapIndex: x.heapIndex, deliveredAt: x.deliveredAt, timeoutMs: x.timeoutMs, journalSeq: x.journalSeq, deferUntil: x.deferUntil, deferDueMono: x.deferDueMono });
    expect(read(m)).toEqual(none);
    Object.assign(m, none);
    expect(read(m)).toEqual(none);
    const set = { ownerId: LEASE_OWNER, token: 'tok', pri: 12.5, heapIndex: 3, deliveredAt: 2.25, timeoutMs: 10.25, journalSeq: 7, deferUntil: 1_700_000_000_123, deferDueMono: 99.5 };
    Object.assign(m, set);
    expect(read(m)).toEqual(set);
    Object.assign(m, none);
    expect(read(m)).toEqual(none);
  });

  it('copies attempts and a deferred publish’s due times, not the in-flight state', () => {
    const m = new Message(ID, Buffer.from('x'), 5);
    m.attempts = 3;
    m.deferUntil = 1_700_000_000_500;
    m.deferDueMono = 1234.5;
    m.ownerId = 9;
    m.token = 'tok';
    m.pri = 77.5;
    m.heapIndex = 2;
    m.journalSeq = 4;
    const c = m.copy();
    expect([c.id, c.body, c.timestamp, c.attempts, c.deferUntil, c.deferDueMono]).toEqual([ID, m.body, 5, 3, 1_700_000_000_500, 1234.5]);
    expect([c.ownerId, c.token, c.pri, c.heapIndex, c.journalSeq]).toEqual([-1, '', 0, -1, 0]);
    c.deferUntil = 0;
    expect(m.deferUntil).toBe(1_700_000_000_500);
    const plain = new Message(ID, Buffer.from('y'), 6).copy();
    expect([plain.deferUntil, plain.deferDueMono, plain.attempts]).toEqual([0, 0, 0]);
  });
});
