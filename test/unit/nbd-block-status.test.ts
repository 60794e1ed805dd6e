import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeExtents } from '../../dataplane/frontend/nbd/block-status.js';

function pairs(e: { values: Uint32Array; count: number }): number[][] {
  return Array.from({ length: e.count }, (_, i) => [e.values[2 * i]!, e.values[2 * i + 1]!]);
}

describe('encodeExtents', () => {
  it('clips to the request, merges equal neighbours, drops empty extents and unknown flag bits', () => {
    const e = encodeExtents(
      [
        { length: 4096, flags: 3 },
        { length: 0, flags: 0 },
        { length: 4096, flags: 3 | 8 },
        { length: 8192, flags: 0 },
        { length: 1 << 30, flags: 3 },
      ],
      20_000,
      false,
    );
    expect(pairs(e)).toEqual([
      [8192, 3],
      [8192, 0],
      [20_000 - 16_384, 3],
    ]);
  });

  it('returns a single descriptor for REQ_ONE and a safe status-0 answer when the device gives nothing', () => {
    expect(
      pairs(
        encodeExtents(
          [
            { length: 512, flags: 1 },
            { length: 512, flags: 0 },
          ],
          1024,
          true,
        ),
      ),
    ).toEqual([[512, 1]]);
    expect(pairs(encodeExtents([], 1024, false))).toEqual([[1024, 0]]);
  });

  it('never exceeds the requested length and never emits zero-length descriptors', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ length: fc.integer({ min: 0, max: 1 << 20 }), flags: fc.integer({ min: 0, max: 7 }) })),
        fc.integer({ min: 1, max: 0xffff_ffff }),
        fc.boolean(),
        (extents, length, reqOne) => {
          const out = pairs(encodeExtents(extents, length, reqOne));
          expect(out.length).toBeGreaterThan(0);
          if (reqOne) expect(out).toHaveLength(1);
          expect(out.reduce((s, [l]) => s + l!, 0)).toBeLessThanOrEqual(length);
          for (const [l, f] of out) {
            expect(l).toBeGreaterThan(0);
            expect(f! & ~3).toBe(0);
          }
        },
      ),
    );
  });
});
