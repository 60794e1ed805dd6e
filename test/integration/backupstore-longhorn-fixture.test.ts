// Restoring backups that Shorthorn did not write: a backup store tree laid out by hand the way
// Longhorn lays it out, its configs written as literal Longhorn JSON (not through our encoder), and
// its blocks compressed by the system's own `lz4` (LZ4 frames, like pierrec/lz4) and `gzip` tools.
// If we restore these byte for byte, we read what Longhorn writes independently of how we write.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compressBlock } from '../../dataplane/backupstore/compression.js';
import { createFileDriver } from '../../dataplane/backupstore/file-driver.js';
import { listBackups, listBackupVolumes, readVolumeConfig } from '../../dataplane/backupstore/inspect.js';
import { restoreBackup } from '../../dataplane/backupstore/restore.js';
import type { BackupStoreDriver } from '../../dataplane/backupstore/types.js';
import { InMemoryRestoreSinkDouble } from '../helpers/backup-doubles.js';
import { requireTool, runOk } from '../helpers/tools.js';

const LZ4 = '/usr/bin/lz4';
const GZIP = '/bin/gzip';
const BLOCK = 2 * 1024 * 1024;
const VOLUME_SIZE = 5 * BLOCK;

/** Independent of the code under test: SHA-512, hex, first 64 digits; two-level dirs of 2 hex digits. */
const sha = (data: Buffer | string) => createHash('sha512').update(data).digest('hex');
const volumeDir = (volume: string) =>
  `backupstore/volumes/${sha(volume).slice(0, 2)}/${sha(volume).slice(2, 4)}/${volume}`;

interface FixtureBlock {
  offset: number;
  checksum: string;
}

describe('restoring a Longhorn-written backup store', () => {
  let root: string;
  let work: string;
  let driver: BackupStoreDriver;
  /** The volume images the fixture backups hold. */
  const images = new Map<string, Buffer>();

  function writeFile(rel: string, data: Buffer | string): void {
    const path = join(root, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, data);
  }

  /** Compress a block with the system tool and store it where Longhorn would. */
  async function storeBlock(volume: string, tool: 'lz4' | 'gzip', data: Buffer): Promise<string> {
    const checksum = sha(data).slice(0, 64);
    const plain = join(work, `${checksum}.raw`);
    writeFileSync(plain, data);
    let compressed: string;
    if (tool === 'lz4') {
      compressed = `${plain}.lz4`;
      await runOk(LZ4, ['-q', '-f', plain, compressed]);
    } else {
      await runOk(GZIP, ['-f', '-k', '-n', plain]);
      compressed = `${plain}.gz`;
    }
    writeFile(
      `${volumeDir(volume)}/blocks/${checksum.slice(0, 2)}/${checksum.slice(2, 4)}/${checksum}.blk`,
      readFileSync(compressed),
    );
    return checksum;
  }

  /** Block contents: random, a compressible pattern, text; offsets with holes between them. */
  function content(seed: number): Buffer {
    if (seed % 3 === 0) return randomBytes(BLOCK);
    if (seed % 3 === 1) return Buffer.alloc(BLOCK, `longhorn block ${seed} `);
    const b = Buffer.alloc(BLOCK);
    randomBytes(BLOCK / 4).copy(b, BLOCK / 2);
    return b;
  }

  function image(blocks: Array<[number, Buffer]>): Buffer {
    const img = Buffer.alloc(VOLUME_SIZE);
    for (const [offset, data] of blocks) data.copy(img, offset);
    return img;
  }

  const blocksJson = (blocks: FixtureBlock[]) =>
    blocks.map((b) => `{"Offset":${b.offset},"BlockChecksum":"${b.checksum}"}`).join(',');

  beforeAll(async () => {
    // Fail loudly, never skip: these tools are part of the test environment (scripts/ensure-system-tools.js).
    requireTool(LZ4);
    requireTool(GZIP);
    root = mkdtempSync(join(tmpdir(), 'shorthorn-lh-store-'));
    work = mkdtempSync(join(tmpdir(), 'shorthorn-lh-work-'));
    driver = createFileDriver({ kind: 'file', url: `file://${root}`, dir: root });

    // Volume 1: a current Longhorn volume with lz4 blocks, one backup, a hole at block 2.
    const v1 = 'pvc-lz4-fixture';
    const v1Data: Array<[number, Buffer]> = [
      [0, content(0)],
      [BLOCK, content(1)],
      [3 * BLOCK, content(2)],
      [4 * BLOCK, content(4)],
    ];
    const v1Blocks: FixtureBlock[] = [];
    for (const [offset, data] of v1Data) v1Blocks.push({ offset, checksum: await storeBlock(v1, 'lz4', data) });
    writeFile(
      `${volumeDir(v1)}/volume.cfg`,
      `{"Name":"${v1}","Size":"${VOLUME_SIZE}","Labels":{"longhorn.io/volume-access-mode":"rwo"},` +
        `"CreatedTime":"2025-03-01T08:00:00Z","LastBackupName":"backup-1a2b3c4d5e6f7081",` +
        `"LastBackupAt":"2025-03-01T08:10:00Z","BlockCount":"4","BackingImageName":"\\"\\"",` +
        `"BackingImageChecksum":"\\"\\"","CompressionMethod":"\\"lz4\\"","StorageClassName":"\\"longhorn\\"",` +
        `"DataEngine":"\\"v1\\""}`,
    );
    writeFile(
      `${volumeDir(v1)}/backups/backup_backup-1a2b3c4d5e6f7081.cfg`,
      `{"Name":"backup-1a2b3c4d5e6f7081","VolumeName":"${v1}","SnapshotName":"snap-a",` +
        `"SnapshotCreatedAt":"2025-03-01T08:10:00Z","CreatedTime":"2025-03-01T08:10:05Z","Size":"${4 * BLOCK}",` +
        `"Labels":{},"Parameters":{"backup-block-size":"2097152","backup-mode":"incremental"},"IsIncremental":false,` +
        `"CompressionMethod":"lz4","NewlyUploadedDataSize":"1234","ReUploadedDataSize":"0","ProcessingBlocks":null,` +
        `"Blocks":[${blocksJson(v1Blocks)}],"SingleFile":{"FilePath":""}}`,
    );
    images.set('backup-1a2b3c4d5e6f7081', image(v1Data));

    // Volume 2: a legacy volume (no CompressionMethod in volume.cfg, "" in its first backup: gzip),
    // with a second backup that changed block 0, dropped block 3 and added block 4.
    const v2 = 'legacy-gzip-vol';
    const a0 = content(5);
    const a1 = content(7);
    const a3 = content(8);
    const b0 = content(9);
    const b4 = content(10);
    const aData: Array<[number, Buffer]> = [
      [0, a0],
      [BLOCK, a1],
      [3 * BLOCK, a3],
    ];
    const bData: Array<[number, Buffer]> = [
      [0, b0],
      [BLOCK, a1],
      [4 * BLOCK, b4],
    ];
    const aBlocks: FixtureBlock[] = [];
    for (const [offset, data] of aData) aBlocks.push({ offset, checksum: await storeBlock(v2, 'gzip', data) });
    const bBlocks: FixtureBlock[] = [
      { offset: 0, checksum: await storeBlock(v2, 'gzip', b0) },
      aBlocks[1]!,
      { offset: 4 * BLOCK, checksum: await storeBlock(v2, 'gzip', b4) },
    ];
    writeFile(
      `${volumeDir(v2)}/volume.cfg`,
      `{"Name":"${v2}","Size":"${VOLUME_SIZE}","Labels":null,"CreatedTime":"2020-06-01T00:00:00Z",` +
        `"LastBackupName":"backup-legacy-b","LastBackupAt":"2020-06-02T00:00:00Z","BlockCount":"5",` +
        `"BackingImageName":"\\"\\"","BackingImageChecksum":"\\"\\""}`,
    );
    writeFile(
      `${volumeDir(v2)}/backups/backup_backup-legacy-a.cfg`,
      `{"Name":"backup-legacy-a","VolumeName":"${v2}","SnapshotName":"snap-old-1","SnapshotCreatedAt":` +
        `"2020-06-01T00:00:00Z","CreatedTime":"2020-06-01T00:01:00Z","Size":"${3 * BLOCK}","Labels":null,` +
        `"IsIncremental":false,"CompressionMethod":"","ProcessingBlocks":null,"Blocks":[${blocksJson(aBlocks)}],` +
        `"SingleFile":{"FilePath":""}}`,
    );
    writeFile(
      `${volumeDir(v2)}/backups/backup_backup-legacy-b.cfg`,
      `{"Name":"backup-legacy-b","VolumeName":"${v2}","SnapshotName":"snap-old-2","SnapshotCreatedAt":` +
        `"2020-06-02T00:00:00Z","CreatedTime":"2020-06-02T00:01:00Z","Size":"${3 * BLOCK}","Labels":null,` +
        `"IsIncremental":true,"CompressionMethod":"gzip","ProcessingBlocks":null,"Blocks":[${blocksJson(bBlocks)}],` +
        `"SingleFile":{"FilePath":""}}`,
    );
    images.set('backup-legacy-a', image(aData));
    images.set('backup-legacy-b', image(bData));
  });

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('lists the volumes and backups', async () => {
    expect(await listBackupVolumes(driver)).toEqual(['legacy-gzip-vol', 'pvc-lz4-fixture']);
    expect((await readVolumeConfig(driver, 'legacy-gzip-vol')).compressionMethod).toBe('gzip');
    expect((await readVolumeConfig(driver, 'pvc-lz4-fixture')).storageClassName).toBe('longhorn');
    const backups = await listBackups(driver, 'legacy-gzip-vol');
    expect(backups.map((b) => [b.name, b.compressionMethod])).toEqual([
      ['backup-legacy-a', 'gzip'],
      ['backup-legacy-b', 'gzip'],
    ]);
  });

  it('restores the lz4 backup (system lz4 frames) byte for byte', async () => {
    const sink = new InMemoryRestoreSinkDouble(VOLUME_SIZE);
    const r = await restoreBackup({
      driver,
      volumeName: 'pvc-lz4-fixture',
      backupName: 'backup-1a2b3c4d5e6f7081',
      sink,
      lockWaitMs: 20,
    });
    expect(r.blocksWritten).toBe(4);
    expect(sink.data.equals(images.get('backup-1a2b3c4d5e6f7081')!)).toBe(true);
  });

  it('restores the gzip backups (CompressionMethod "" and "gzip") byte for byte, fully and incrementally', async () => {
    for (const name of ['backup-legacy-a', 'backup-legacy-b']) {
      const sink = new InMemoryRestoreSinkDouble(VOLUME_SIZE);
      await restoreBackup({ driver, volumeName: 'legacy-gzip-vol', backupName: name, sink, lockWaitMs: 20 });
      expect(sink.data.equals(images.get(name)!), name).toBe(true);
    }
    const standby = new InMemoryRestoreSinkDouble(VOLUME_SIZE, images.get('backup-legacy-a'));
    const r = await restoreBackup({
      driver,
      volumeName: 'legacy-gzip-vol',
      backupName: 'backup-legacy-b',
      lastRestoredBackupName: 'backup-legacy-a',
      sink: standby,
      lockWaitMs: 20,
    });
    expect(r).toEqual({ blocksWritten: 2, bytesWritten: 2 * BLOCK, bytesZeroed: BLOCK });
    expect(standby.data.equals(images.get('backup-legacy-b')!)).toBe(true);
  });

  it('fails naming the block when a stored block is corrupt', async () => {
    const cfg = JSON.parse(
      readFileSync(join(root, volumeDir('pvc-lz4-fixture'), 'backups/backup_backup-1a2b3c4d5e6f7081.cfg'), 'utf8'),
    ) as { Blocks: Array<{ Offset: number; BlockChecksum: string }> };
    const victim = cfg.Blocks[1]!;
    const c = victim.BlockChecksum;
    const path = join(root, volumeDir('pvc-lz4-fixture'), `blocks/${c.slice(0, 2)}/${c.slice(2, 4)}/${c}.blk`);
    const original = readFileSync(path);
    // A valid lz4 frame of other content: decompresses fine, fails the checksum.
    writeFileSync(path, await compressBlock('lz4', Buffer.alloc(BLOCK, 1)));
    try {
      await expect(
        restoreBackup({
          driver,
          volumeName: 'pvc-lz4-fixture',
          backupName: 'backup-1a2b3c4d5e6f7081',
          sink: new InMemoryRestoreSinkDouble(VOLUME_SIZE),
          lockWaitMs: 20,
        }),
      ).rejects.toThrow(new RegExp(`block ${c} at offset ${victim.Offset}: checksum mismatch`));
    } finally {
      writeFileSync(path, original);
    }
  });

  it('writes lz4 blocks the system lz4 tool (and so Longhorn) decompresses', async () => {
    const data = Buffer.concat([randomBytes(BLOCK / 2), Buffer.alloc(BLOCK / 2, 'z')]);
    const file = join(work, 'ours.lz4');
    writeFileSync(file, await compressBlock('lz4', data));
    await runOk(LZ4, ['-d', '-q', '-f', file, join(work, 'ours.raw')]);
    expect(readFileSync(join(work, 'ours.raw')).equals(data)).toBe(true);
    const gz = join(work, 'ours.raw.gz');
    writeFileSync(gz, await compressBlock('gzip', data));
    await runOk(GZIP, ['-d', '-f', gz]);
    expect(readFileSync(join(work, 'ours.raw')).equals(data)).toBe(true);
  });
});
