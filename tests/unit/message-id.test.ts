// The id generator renders ids from a cached per-millisecond prefix and a table of sequence
// digits; these properties hold it to the plain formula it replaced, for any clock readings.

import fc from 'fast-check';
import { IdGenerator } from '../../wire/message';

const GUID_EPOCH_MS = 1288834974657;

/** The straightforward rendering: (ms << 22 | worker << 12 | seq) as 16 hex digits. */
class ReferenceIds {
  private lastMs = 0;
  private seq = 0;
  constructor(private readonly workerId: number) {}
  next(wallMs: number): string {
    let ms = wallMs - GUID_EPOCH_MS;
    if (ms <= this.lastMs) {
      ms = this.lastMs;
      this.seq++;
      if (this.seq > 4095) {
        ms = ++this.lastMs;
        this.seq = 0;
      }
    } else {
      this.lastMs = ms;
      this.seq = 0;
    }
    const id = (BigInt(ms) << 22n) | (BigInt(this.workerId) << 12n) | BigInt(this.seq);
    return id.toString(16).padStart(16, '0');
  }
}

describe('IdGenerator against a reference', () => {
  it('renders the same ids for any sequence of clock readings, steps back and bursts included', () => {
    const step = fc.oneof(
      fc.record({ dt: fc.integer({ min: -5000, max: 5000 }), n: fc.integer({ min: 1, max: 20 }) }),
      // a burst long enough to run the 12-bit sequence out within one millisecond
      fc.record({ dt: fc.constant(0), n: fc.integer({ min: 4000, max: 9000 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1023 }), fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 }), fc.array(step, { maxLength: 12 }), (worker, start, steps) => {
        let now = start;
        const gen = new IdGenerator(worker, () => now);
        const ref = new ReferenceIds(worker);
        for (const s of steps) {
          now += s.dt;
          for (let i = 0; i < s.n; i++) {
            // alternate the two entry points: next() reads the clock, nextAt() is handed it
            const got = i % 2 === 0 ? gen.next() : gen.nextAt(now);
            const want = ref.next(now);
            if (got !== want) throw new Error(`id ${got} != ${want} at ${now}`);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('puts the worker id where nsqd does: bits 12..21', () => {
    const gen = new IdGenerator(0x3ff, () => GUID_EPOCH_MS + 1);
    expect(gen.next()).toBe(((1n << 22n) | (0x3ffn << 12n)).toString(16).padStart(16, '0'));
  });
});
