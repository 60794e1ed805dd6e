// dataExtents of the native addon: FIEMAP on the test's filesystem, the SEEK_DATA/SEEK_HOLE fallback on
// tmpfs (no FIEMAP there), both against the layout this test writes, including dirty pages not yet
// written back and a file fragmented into 4 KiB runs.
import { closeSync, fdatasyncSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { sparse } from '../../dataplane/native/sparse.js';

const B = 4096;
const dirs = [mkdtempSync(join(tmpdir(), 'shorthorn-extents-')), mkdtempSync('/dev/shm/shorthorn-extents-')];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Writes the given 4 KiB blocks into a sparse file of `blocks` blocks; returns the open fd. */
function layout(dir: string, name: string, blocks: number, data: number[], sync: boolean): number {
  const fd = openSync(join(dir, name), 'w+');
  ftruncateSync(fd, blocks * B);
  const buf = Buffer.alloc(B, 0x5a);
  for (const b of data) writeSync(fd, buf, 0, B, b * B);
  if (sync) fdatasyncSync(fd);
  return fd;
}

/** The expected merged runs of the written blocks, clipped to [start, end). */
function expected(data: number[], start: number, end: number): number[] {
  const out: number[] = [];
  for (const b of [...new Set(data)].sort((x, y) => x - y)) {
    const a = Math.max(b * B, start);
    const z = Math.min((b + 1) * B, end);
    if (z <= a) continue;
    const n = out.length;
    if (n > 0 && out[n - 2]! + out[n - 1]! === a) out[n - 1] = z - out[n - 2]!;
    else out.push(a, z - a);
  }
  return out;
}

describe.each(dirs)('dataExtents in %s', (dir) => {
  it('finds every run, merged and clipped, synced or still dirty', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 63 }), { maxLength: 40 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 64 * B }),
        fc.integer({ min: 0, max: 64 * B }),
        (data, sync, x, y) => {
          const fd = layout(dir, 'p.img', 64, data, sync);
          try {
            const [start, end] = x <= y ? [x, y] : [y, x];
            expect([...sparse.dataExtents(fd, start, end)]).toEqual(expected(data, start, end));
          } finally {
            closeSync(fd);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('lists a file fragmented into 4 KiB runs completely (more extents than one FIEMAP call returns)', () => {
    const data = Array.from({ length: 4096 }, (_, i) => i * 2);
    const fd = layout(dir, 'frag.img', 8192, data, true);
    try {
      const extents = sparse.dataExtents(fd, 0, 8192 * B);
      expect(extents.length).toBe(2 * 4096);
      expect([...extents.subarray(0, 4)]).toEqual([0, B, 2 * B, B]);
      expect(extents[extents.length - 2]).toBe(8190 * B);
    } finally {
      closeSync(fd);
    }
  });
});
