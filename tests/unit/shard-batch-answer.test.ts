// The /sluice/mpub answer is rendered by hand; it must parse to exactly what JSON.stringify of
// the same value would give, whatever ids the idempotency window hands back.

import fc from 'fast-check';
import { batchAnswer } from '../../shard/http/publish-api';
import { JsonText } from '../../shard/http/router';

function rendered(out: { ids: string[]; duplicates: number[] }): string {
  const a = batchAnswer(out);
  return a instanceof JsonText ? a.text : JSON.stringify(a);
}

describe('batchAnswer', () => {
  it('is byte-for-byte JSON.stringify of {ids, duplicates} for minted ids', () => {
    const id = fc.stringMatching(/^[0-9a-f]{16}$/);
    fc.assert(
      fc.property(fc.array(id, { maxLength: 50 }), (ids) => {
        const out = { ids, duplicates: ids.map((_, i) => i).filter((i) => i % 3 === 1) };
        expect(batchAnswer(out)).toBeInstanceOf(JsonText);
        expect(rendered(out)).toBe(JSON.stringify(out));
      }),
    );
  });

  it('falls back to JSON.stringify when a duplicate id would need escaping', () => {
    fc.assert(
      fc.property(fc.array(fc.string(), { minLength: 1, maxLength: 20 }), (ids) => {
        const out = { ids, duplicates: ids.map((_, i) => i) };
        expect(JSON.parse(rendered(out))).toEqual(out);
      }),
    );
    const odd = { ids: ['ab"c', '0123456789abcdef'], duplicates: [0] };
    expect(batchAnswer(odd)).not.toBeInstanceOf(JsonText);
  });
});
