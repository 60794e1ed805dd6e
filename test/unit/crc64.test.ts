import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sparse } from '../../dataplane/native/sparse.js';
import { referenceCrc64 } from '../fixtures/crc64-reference.js';

const ascii = (s: string) => new TextEncoder().encode(s);

describe('crc64 (native)', () => {
  it('matches Go\'s crc64.Checksum("123456789", ISO) check value', () => {
    expect(sparse.crc64(ascii('123456789'), 0n)).toBe(0xb90956c775a41001n);
    expect(referenceCrc64(ascii('123456789'))).toBe(0xb90956c775a41001n);
  });

  it('is 0 for no bytes and leaves prev unchanged for no bytes', () => {
    expect(sparse.crc64(new Uint8Array(0), 0n)).toBe(0n);
    expect(sparse.crc64(new Uint8Array(0), 0x0123456789abcdefn)).toBe(0x0123456789abcdefn);
  });

  it('agrees with the bitwise reference on random input and random prev', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (bytes, prev) => {
        expect(sparse.crc64(bytes, prev)).toBe(referenceCrc64(bytes, prev));
      }),
    );
  });

  it('hashes only the view of a subarray (byteOffset honoured, unaligned start)', () => {
    const backing = new Uint8Array(1000).map((_, i) => (i * 37 + 11) & 0xff);
    for (const [start, end] of [
      [1, 999],
      [3, 20],
      [7, 7],
      [13, 530],
    ] as const) {
      const view = backing.subarray(start, end);
      expect(sparse.crc64(view, 0n)).toBe(referenceCrc64(view));
    }
  });

  it('chains: crc64(b, crc64(a)) equals crc64(a + b) for any split points', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 6 }), (bytes, rawCuts) => {
        const cuts = [...new Set(rawCuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        let crc = 0n;
        let from = 0;
        for (const cut of [...cuts, bytes.length]) {
          crc = sparse.crc64(bytes.subarray(from, cut), crc);
          from = cut;
        }
        expect(crc).toBe(sparse.crc64(bytes, 0n));
      }),
    );
  });

  it('accepts a Buffer and refuses other typed arrays, non-bigint and out-of-range prev', () => {
    expect(sparse.crc64(Buffer.from('123456789'), 0n)).toBe(0xb90956c775a41001n);
    expect(() => sparse.crc64(new Uint16Array(4) as unknown as Uint8Array, 0n)).toThrow(TypeError);
    expect(() => sparse.crc64(ascii('x'), 0 as unknown as bigint)).toThrow(TypeError);
    expect(() => sparse.crc64(ascii('x'), -1n)).toThrow(RangeError);
    expect(() => sparse.crc64(ascii('x'), 1n << 64n)).toThrow(RangeError);
  });
});

describe('crc64Blocks (native)', () => {
  it('returns each block’s crc64 as little-endian u64s', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 0, max: 20 }), fc.nat(), (blockSize, n, seed) => {
        const buf = new Uint8Array(blockSize * n).map((_, i) => (i * 131 + seed) & 0xff);
        const out = sparse.crc64Blocks(buf, blockSize);
        expect(out.length).toBe(n * 8);
        for (let i = 0; i < n; i++) {
          const block = buf.subarray(i * blockSize, (i + 1) * blockSize);
          expect(out.readBigUInt64LE(i * 8)).toBe(sparse.crc64(block, 0n));
        }
      }),
    );
  });

  it('4 KiB blocks match the bitwise reference', () => {
    const buf = new Uint8Array(3 * 4096).map((_, i) => (i * 7 + (i >> 12)) & 0xff);
    buf.fill(0, 4096, 8192); // an all-zero block, as a hole reads
    const out = sparse.crc64Blocks(buf, 4096);
    for (let i = 0; i < 3; i++) {
      expect(out.readBigUInt64LE(i * 8)).toBe(referenceCrc64(buf.subarray(i * 4096, (i + 1) * 4096)));
    }
  });

  it('rejects a length that is not a multiple of blockSize, and a bad blockSize', () => {
    expect(() => sparse.crc64Blocks(new Uint8Array(4097), 4096)).toThrow(TypeError);
    expect(() => sparse.crc64Blocks(new Uint8Array(8), 0)).toThrow(TypeError);
    expect(() => sparse.crc64Blocks(new Uint8Array(8), -4)).toThrow(TypeError);
    expect(() => sparse.crc64Blocks(new Uint8Array(8), 2.5)).toThrow(TypeError);
    expect(() => sparse.crc64Blocks(new Uint8Array(8), Number.NaN)).toThrow(TypeError);
  });

  it('returns an empty Buffer for an empty input', () => {
    expect(sparse.crc64Blocks(new Uint8Array(0), 4096).length).toBe(0);
  });
});
