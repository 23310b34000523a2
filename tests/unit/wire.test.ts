import { IdGenerator, readMessage, writeMessage, encodedMessageLength, isValidMessageId } from '../../wire/message';
import { isValidName, isEphemeral } from '../../wire/names';

describe('names', () => {
  it('accepts nsqd-valid names and rejects the rest', () => {
    for (const ok of ['a', 'orders', 'a.b-c_d', 'x#ephemeral', '.', 'a'.repeat(64)]) expect(isValidName(ok)).toBe(true);
    for (const bad of ['', 'a'.repeat(65), 'a b', '../x', 'a/b', 'é', 'a\0', 'x#ephemeral#ephemeral', '#ephemeral', 'a:b'])
      expect(isValidName(bad)).toBe(false);
    expect(isEphemeral('x#ephemeral')).toBe(true);
    expect(isEphemeral('x')).toBe(false);
  });
});

describe('message ids', () => {
  it('are 16 hex chars, unique and increasing even within one millisecond', () => {
    const gen = new IdGenerator(7, () => 1_700_000_000_000);
    const seen = new Set<string>();
    let prev = '';
    for (let i = 0; i < 20000; i++) {
      const id = gen.next();
      expect(id).toMatch(/^[0-9a-f]{16}$/);
      expect(id > prev).toBe(true);
      prev = id;
      seen.add(id);
    }
    expect(seen.size).toBe(20000);
    expect(isValidMessageId(prev)).toBe(true);
  });

  it('stay unique when the clock steps back', () => {
    let now = 1_700_000_000_000;
    const gen = new IdGenerator(1, () => now);
    const a = gen.next();
    now -= 5000;
    const b = gen.next();
    expect(b > a).toBe(true);
  });
});

describe('message layout', () => {
  it('round-trips timestamp, attempts, id and body', () => {
    const m = { timestamp: 1_700_000_000_123_456_768, attempts: 3, id: '0123456789abcdef', body: Buffer.from([0, 1, 2, 255]) };
    const buf = Buffer.alloc(encodedMessageLength(m) + 4);
    const end = writeMessage(buf, 4, m);
    expect(end).toBe(buf.length);
    const back = readMessage(buf, 4);
    expect(back).toEqual(m);
  });
});
