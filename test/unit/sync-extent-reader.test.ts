// The rebuild sender looks extents up a batch at a time and cuts them per window: every window must
// get exactly what a FIEMAP of that window alone would give.
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sparse } from '../../dataplane/native/sparse.js';
import { ExtentReader } from '../../dataplane/sync/sync-stream.js';

const B = 4096;
const BLOCKS = 256;
let root: string;
let n = 0;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'shorthorn-extent-reader-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('ExtentReader', () => {
  it('gives each window the extents a FIEMAP of that window gives, for any layout, window and batch size', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: BLOCKS - 1 }), { maxLength: 120 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 300 }),
        fc.boolean(),
        (blocks, windowBlocks, batchBlocks, restart) => {
          const path = join(root, `f${n++}.img`);
          const fd = openSync(path, 'w+');
          try {
            const data = Buffer.alloc(B, 1);
            for (const b of blocks) writeSync(fd, data, 0, B, b * B);
            const reader = new ExtentReader(fd, batchBlocks * B);
            const windows: [number, number][] = [];
            for (let at = 0; at < BLOCKS * B; at += windowBlocks * B) {
              windows.push([at, Math.min(at + windowBlocks * B, BLOCKS * B)]);
            }
            // Going back to the start makes the reader look extents up again.
            if (restart) windows.push(...windows.slice(0, 3));
            for (const [start, end] of windows) {
              expect([...reader.window(start, end)]).toEqual([...sparse.dataExtents(fd, start, end)]);
            }
          } finally {
            closeSync(fd);
            rmSync(path);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
