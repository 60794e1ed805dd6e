// The replica's snapshot view (what a backup reads): readSnapshot sees the chain up to a snapshot,
// changedBlocks lists the backup blocks written after a base snapshot, and a held snapshot keeps purge,
// revert and trims of the snapshot chain away. Checked against a plain in-memory model of the volume.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReplicaSnapshotSource } from '../../dataplane/replica/snapshot-source.js';
import { Replica, ReplicaChainError } from '../../dataplane/replica/store/replica.js';
import { patternBytes } from '../fixtures/longhorn-replica-dir.js';

const B = 4096;
/** A small backup block (4 blocks of 4 KiB) keeps the volumes tiny and the block maths visible. */
const BB = 4 * B;
const SIZE = 64 * B;
let root: string;
let dirs = 0;
const opened: Replica[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'shorthorn-snapshot-view-'));
});
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((r) => r.close()));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function fresh(size = SIZE): Replica {
  const dir = join(root, `r${dirs++}`);
  Replica.create(dir, size);
  const r = Replica.open(dir);
  opened.push(r);
  return r;
}

const snap = { userCreated: true, created: '2026-11-29T10:00:00Z', labels: {} };

/** Backup-block offsets touched by byte ranges [offset, offset+length). */
function blocksOf(ranges: [number, number][], blockSize = BB): number[] {
  const set = new Set<number>();
  for (const [offset, length] of ranges) {
    for (let o = Math.floor(offset / blockSize) * blockSize; o < offset + length; o += blockSize) set.add(o);
  }
  return [...set].sort((a, b) => a - b);
}

describe('snapshot view', () => {
  it('reads the chain up to the snapshot, holes as zeros, whatever the head holds now', () => {
    const r = fresh();
    const v1 = Buffer.alloc(SIZE);
    r.write(0, patternBytes(3 * B, 1));
    patternBytes(3 * B, 1).copy(v1, 0);
    r.snapshot('s1', snap);
    r.write(2 * B, patternBytes(2 * B, 2));
    const v2 = Buffer.from(v1);
    patternBytes(2 * B, 2).copy(v2, 2 * B);
    r.snapshot('s2', snap);
    r.write(0, patternBytes(SIZE, 3)); // the head overwrites everything
    r.writeZeroes(10 * B, 4 * B);

    expect(r.readSnapshot('s1', 0, SIZE).equals(v1)).toBe(true);
    expect(r.readSnapshot('s2', 0, SIZE).equals(v2)).toBe(true);
    // Unaligned pieces read the same bytes as the whole.
    expect(r.readSnapshot('s2', 3 * B - 100, 1000).equals(v2.subarray(3 * B - 100, 3 * B + 900))).toBe(true);
    expect(r.readSnapshot('s2', 20 * B, B).equals(Buffer.alloc(B))).toBe(true);
  });

  it('lists changed backup blocks: all data for a full backup, only what came after the base otherwise', () => {
    const r = fresh();
    r.write(0, patternBytes(B, 1)); // backup block 0
    r.write(9 * B, patternBytes(2 * B, 1)); // blocks 2
    r.snapshot('base', snap);
    r.write(1 * B, patternBytes(B, 2)); // block 0 again
    r.write(20 * B, patternBytes(5 * B, 2)); // blocks 5 and 6
    r.snapshot('mid', snap);
    r.write(40 * B, patternBytes(B, 3)); // block 10
    r.snapshot('top', snap);
    r.write(60 * B, patternBytes(B, 4)); // head only: never listed

    expect(r.changedBlocks('base', undefined, BB)).toEqual(
      blocksOf([
        [0, B],
        [9 * B, 2 * B],
      ]),
    );
    expect(r.changedBlocks('top', undefined, BB)).toEqual(
      blocksOf([
        [0, 2 * B],
        [9 * B, 2 * B],
        [20 * B, 5 * B],
        [40 * B, B],
      ]),
    );
    expect(r.changedBlocks('top', 'base', BB)).toEqual(
      blocksOf([
        [B, B],
        [20 * B, 5 * B],
        [40 * B, B],
      ]),
    );
    expect(r.changedBlocks('top', 'mid', BB)).toEqual(blocksOf([[40 * B, B]]));
    expect(r.changedBlocks('mid', 'base', BB)).toEqual(
      blocksOf([
        [B, B],
        [20 * B, 5 * B],
      ]),
    );
    // The whole volume as one backup block, and 4 KiB backup blocks.
    expect(r.changedBlocks('top', 'mid', SIZE)).toEqual([0]);
    expect(r.changedBlocks('mid', 'base', B)).toEqual([B, 20 * B, 21 * B, 22 * B, 23 * B, 24 * B]);

    expect(r.isSnapshotBelow('base', 'top')).toBe(true);
    expect(r.isSnapshotBelow('top', 'base')).toBe(false);
    expect(r.isSnapshotBelow('gone', 'top')).toBe(false);
    expect(() => r.changedBlocks('base', 'top', BB)).toThrow(/not below/);
    expect(() => r.changedBlocks('nope', undefined, BB)).toThrow(ReplicaChainError);
    expect(() => r.changedBlocks('top', undefined, 1000)).toThrow(RangeError);
  });

  it('property: changedBlocks(s, base) covers exactly the blocks whose content may differ from base', () => {
    const write = fc.record({ block: fc.nat(SIZE / B - 1), blocks: fc.integer({ min: 1, max: 6 }), seed: fc.nat(255) });
    fc.assert(
      fc.property(fc.array(fc.array(write, { maxLength: 6 }), { minLength: 2, maxLength: 5 }), (rounds) => {
        const r = fresh();
        try {
          const model: Buffer[] = [];
          const touched: [number, number][][] = [];
          const image = Buffer.alloc(SIZE);
          rounds.forEach((round, i) => {
            const ranges: [number, number][] = [];
            for (const w of round) {
              const length = Math.min(w.blocks * B, SIZE - w.block * B);
              const data = patternBytes(length, w.seed + i);
              r.write(w.block * B, data);
              data.copy(image, w.block * B);
              ranges.push([w.block * B, length]);
            }
            r.snapshot(`s${i}`, snap);
            model.push(Buffer.from(image));
            touched.push(ranges);
          });
          for (let i = 0; i < rounds.length; i++) {
            expect(r.readSnapshot(`s${i}`, 0, SIZE).equals(model[i]!)).toBe(true);
            expect(r.changedBlocks(`s${i}`, undefined, BB)).toEqual(blocksOf(touched.slice(0, i + 1).flat()));
            for (let base = 0; base < i; base++) {
              expect(r.changedBlocks(`s${i}`, `s${base}`, BB)).toEqual(blocksOf(touched.slice(base + 1, i + 1).flat()));
            }
          }
        } finally {
          opened.splice(opened.indexOf(r), 1);
          void r.close();
        }
      }),
      { numRuns: 30 },
    );
  });

  it('a snapshot taken before an expansion reads at its own size, zeros beyond', () => {
    const r = fresh();
    r.write(SIZE - B, patternBytes(B, 7));
    r.snapshot('small', snap);
    r.expand(2 * SIZE);
    r.write(SIZE, patternBytes(B, 8));
    expect(r.snapshotSize('small')).toBe(SIZE);
    expect(r.changedBlocks('small', undefined, BB)).toEqual([SIZE - BB]);
    expect(r.readSnapshot('small', SIZE - B, 2 * B).equals(Buffer.concat([patternBytes(B, 7), Buffer.alloc(B)]))).toBe(
      true,
    );
  });

  it('a snapshot left on a side branch by a revert cannot be read', () => {
    const r = fresh();
    r.snapshot('a', snap);
    r.snapshot('b', snap);
    r.revert('a', snap.created);
    expect(() => r.readSnapshot('b', 0, B)).toThrow(/not in the current chain/);
    expect(r.readSnapshot('a', 0, B).equals(Buffer.alloc(B))).toBe(true);
  });
});

describe('holding a snapshot (a backup in progress)', () => {
  it('refuses purge, revert and reload while held, naming the backup; allows them after release', async () => {
    const r = fresh();
    r.write(0, patternBytes(4 * B, 1));
    r.snapshot('s1', snap);
    r.write(0, patternBytes(4 * B, 2));
    r.snapshot('s2', snap);
    r.markRemoved('s1');
    const source = new ReplicaSnapshotSource(r, 's2', 'backup backup-x', BB);
    expect(source.size).toBe(SIZE);
    expect(r.snapshotHolders()).toEqual([{ holder: 'backup backup-x', snapshot: 's2' }]);

    await expect(r.purge()).rejects.toThrow(/purge refused: backup backup-x in progress/);
    expect(() => r.revert('s2', snap.created)).toThrow(/revert refused: backup backup-x in progress/);
    expect(() => r.reload()).toThrow(/backup backup-x in progress/);
    // Reading-only jobs and new snapshots on top go on.
    await r.hashSnapshot('s2', false);
    r.snapshot('s3', snap);
    expect((await source.read(0, 4 * B)).equals(patternBytes(4 * B, 2))).toBe(true);
    expect(await source.changedBlocks(undefined)).toEqual([0]);
    expect(source.hasSnapshot('s1')).toBe(true);
    expect(source.hasSnapshot('s3')).toBe(false);

    source.close();
    source.close();
    expect(r.snapshotHolders()).toEqual([]);
    const actions = await r.purge();
    expect(actions.length).toBeGreaterThan(0);
    expect(r.readSnapshot('s2', 0, 4 * B).equals(patternBytes(4 * B, 2))).toBe(true);
  });

  it('a purge in progress refuses a new hold; a missing snapshot is named', async () => {
    const r = fresh();
    r.write(0, patternBytes(B, 1));
    r.snapshot('s1', snap);
    r.markRemoved('s1');
    r.snapshot('s2', snap);
    const purging = r.purge();
    expect(() => r.holdSnapshot('backup b', 's2')).toThrow(/purge is in progress/);
    await purging;
    expect(() => new ReplicaSnapshotSource(r, 'missing', 'backup c')).toThrow(/snapshot missing does not exist/);
    expect(r.snapshotHolders()).toEqual([]);
  });

  it('trims with unmap-mark-chain-removed do not punch a held snapshot or what lies under it', () => {
    const r = fresh();
    r.unmapMarkChainRemoved = true;
    r.write(0, patternBytes(8 * B, 1));
    r.snapshot('held', snap);
    r.write(8 * B, patternBytes(8 * B, 2));
    r.snapshot('above', snap);
    const release = r.holdSnapshot('backup b', 'held');
    r.unmap(0, 16 * B);
    // The snapshot above the held one could be marked removed and punched; the held one could not.
    expect(r.readSnapshot('held', 0, 8 * B).equals(patternBytes(8 * B, 1))).toBe(true);
    expect(r.diskMetas().find((d) => d.name === 'volume-snap-held.img')?.removed).toBe(false);
    expect(r.diskMetas().find((d) => d.name === 'volume-snap-above.img')?.removed).toBe(true);
    release();
  });
});
