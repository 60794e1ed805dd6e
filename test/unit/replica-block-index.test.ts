import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BLOCK_SIZE, BlockIndex, MAX_LAYERS, NO_LAYER } from '../../dataplane/replica/store/block-index.js';

/** Builds an index from a literal list of layers per block. */
function indexOf(layers: number[]): BlockIndex {
  const index = new BlockIndex(layers.length);
  layers.forEach((layer, block) => {
    index.setRange(block, block + 1, layer);
  });
  return index;
}

function contents(index: BlockIndex): number[] {
  return Array.from({ length: index.blockCount }, (_, b) => index.layerAt(b));
}

describe('BlockIndex', () => {
  it('starts with no layer anywhere', () => {
    const index = new BlockIndex(5);
    expect(index.blockCount).toBe(5);
    expect(contents(index)).toEqual([0, 0, 0, 0, 0]);
  });

  it.each([
    { layers: [1, 1, 2, 2, 2, 0], block: 0, limit: 6, end: 2 },
    { layers: [1, 1, 2, 2, 2, 0], block: 2, limit: 6, end: 5 },
    { layers: [1, 1, 2, 2, 2, 0], block: 3, limit: 4, end: 4 },
    { layers: [1, 1, 2, 2, 2, 0], block: 5, limit: 6, end: 6 },
    { layers: [1, 1, 2, 2, 2, 0], block: 0, limit: 99, end: 2 },
    { layers: [3, 3, 3, 3], block: 1, limit: 4, end: 4 },
    { layers: [0, 0, 0, 7], block: 0, limit: 4, end: 3 },
  ])('runEnd($layers, $block, $limit) = $end', ({ layers, block, limit, end }) => {
    expect(indexOf(layers).runEnd(block, limit)).toBe(end);
  });

  it.each([
    { layers: [1, 2, 3, 0, 0, 4], block: 0, limit: 6, end: 3 },
    { layers: [1, 2, 3, 0, 0, 4], block: 3, limit: 6, end: 5 },
    { layers: [1, 2, 3, 0, 0, 4], block: 5, limit: 6, end: 6 },
    { layers: [0, 0, 0], block: 1, limit: 3, end: 3 },
    { layers: [5, 6, 7], block: 0, limit: 2, end: 2 },
  ])('presenceRunEnd($layers, $block, $limit) = $end', ({ layers, block, limit, end }) => {
    expect(indexOf(layers).presenceRunEnd(block, limit)).toBe(end);
  });

  it.each([
    { offset: 0, length: 4096, blocks: [1, 0, 0, 0] },
    { offset: 0, length: 1, blocks: [1, 0, 0, 0] },
    { offset: 4095, length: 2, blocks: [1, 1, 0, 0] },
    { offset: 4096, length: 8192, blocks: [0, 1, 1, 0] },
    { offset: 4097, length: 8192, blocks: [0, 1, 1, 1] },
    { offset: 12288, length: 99999, blocks: [0, 0, 0, 1] },
    { offset: 8192, length: 0, blocks: [0, 0, 0, 0] },
  ])('markBytes($offset, $length) rounds outward to whole blocks', ({ offset, length, blocks }) => {
    const index = new BlockIndex(4);
    index.markBytes(offset, length, 1);
    expect(contents(index)).toEqual(blocks);
  });

  it('setRange overwrites, later layers winning', () => {
    const index = new BlockIndex(8);
    index.setRange(0, 6, 1);
    index.setRange(2, 4, 2);
    index.setRange(3, 8, 3);
    expect(contents(index)).toEqual([1, 1, 2, 3, 3, 3, 3, 3]);
    index.setRange(1, 7, NO_LAYER);
    expect(contents(index)).toEqual([1, 0, 0, 0, 0, 0, 0, 3]);
  });

  it('uncover lets only the given layer fall through to what lies beneath', () => {
    const index = indexOf([3, 3, 1, 3, 2, 3]);
    const beneath = indexOf([0, 2, 1, 1, 2]);
    index.uncover(1, 6, 3, beneath);
    expect(contents(index)).toEqual([3, 0, 1, 1, 2, 2]);
  });

  it('includes finds a layer only inside the range', () => {
    const index = indexOf([1, 2, 2, 1]);
    expect(index.includes(0, 4, 2)).toBe(true);
    expect(index.includes(3, 4, 2)).toBe(false);
    expect(index.includes(1, 1, 2)).toBe(false);
  });

  it('grow keeps the old blocks and adds empty ones', () => {
    const index = indexOf([1, 2]);
    index.grow(4);
    expect(contents(index)).toEqual([1, 2, 0, 0]);
    expect(() => index.grow(3)).toThrow(RangeError);
  });

  it('rejects ranges outside the index and impossible layers', () => {
    const index = new BlockIndex(4);
    expect(() => index.setRange(0, 5, 1)).toThrow(RangeError);
    expect(() => index.setRange(-1, 2, 1)).toThrow(RangeError);
    expect(() => index.setRange(3, 2, 1)).toThrow(RangeError);
    expect(() => index.setRange(0, 1, MAX_LAYERS + 1)).toThrow(RangeError);
    expect(() => index.setRange(0, 1, 1.5)).toThrow(RangeError);
    expect(() => new BlockIndex(-1)).toThrow(RangeError);
    index.setRange(0, 4, MAX_LAYERS);
    expect(index.layerAt(3)).toBe(MAX_LAYERS);
  });

  describe('against a naive model', () => {
    const blocks = 64;
    const block = fc.integer({ min: 0, max: blocks });
    const layer = fc.integer({ min: 0, max: MAX_LAYERS });
    const op = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), a: block, b: block, layer }),
      fc.record({
        kind: fc.constant('mark' as const),
        offset: fc.integer({ min: 0, max: blocks * BLOCK_SIZE }),
        length: fc.integer({ min: 0, max: 10 * BLOCK_SIZE }),
        layer: fc.integer({ min: 1, max: MAX_LAYERS }),
      }),
      fc.record({
        kind: fc.constant('uncover' as const),
        a: block,
        b: block,
        layer,
        beneath: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: blocks, maxLength: blocks }),
      }),
    );

    it('set/mark/uncover then lookups agree with an array of layers', () => {
      fc.assert(
        fc.property(fc.array(op, { maxLength: 30 }), block, block, (ops, p, q) => {
          const index = new BlockIndex(blocks);
          const model = new Array<number>(blocks).fill(0);
          for (const o of ops) {
            if (o.kind === 'set') {
              const [first, end] = o.a <= o.b ? [o.a, o.b] : [o.b, o.a];
              index.setRange(first, end, o.layer);
              for (let i = first; i < end; i++) model[i] = o.layer;
            } else if (o.kind === 'mark') {
              index.markBytes(o.offset, o.length, o.layer);
              if (o.length > 0) {
                const last = Math.min(Math.ceil((o.offset + o.length) / BLOCK_SIZE), blocks);
                for (let i = Math.floor(o.offset / BLOCK_SIZE); i < last; i++) model[i] = o.layer;
              }
            } else {
              const [first, end] = o.a <= o.b ? [o.a, o.b] : [o.b, o.a];
              const beneath = new BlockIndex(end - first);
              for (let i = first; i < end; i++) beneath.setRange(i - first, i - first + 1, o.beneath[i]!);
              index.uncover(first, end, o.layer, beneath);
              for (let i = first; i < end; i++) if (model[i] === o.layer) model[i] = o.beneath[i]!;
            }
          }
          expect(contents(index)).toEqual(model);
          const [start, limit] = p <= q ? [p, q] : [q, p];
          if (start < limit) {
            let runEnd = start + 1;
            while (runEnd < limit && model[runEnd] === model[start]) runEnd++;
            expect(index.runEnd(start, limit)).toBe(runEnd);
            let presenceEnd = start + 1;
            while (presenceEnd < limit && (model[presenceEnd] === 0) === (model[start] === 0)) presenceEnd++;
            expect(index.presenceRunEnd(start, limit)).toBe(presenceEnd);
            expect(index.includes(start, limit, model[start]!)).toBe(true);
          }
        }),
        { numRuns: 300 },
      );
    });

    it('runs found by runEnd tile any range exactly', () => {
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 80 }), (layers) => {
          const index = indexOf(layers);
          let b = 0;
          const rebuilt: number[] = [];
          while (b < layers.length) {
            const end = index.runEnd(b, layers.length);
            expect(end).toBeGreaterThan(b);
            if (end < layers.length) expect(layers[end]).not.toBe(layers[b]);
            for (let i = b; i < end; i++) rebuilt.push(index.layerAt(b));
            b = end;
          }
          expect(rebuilt).toEqual(layers);
        }),
      );
    });
  });
});
