// The backup store end to end on a real directory: backup, incremental backup, restore (full and
// incremental), deletion with block GC, abandoned backups, locks. The replica and the engine are
// in-memory doubles (test/helpers/backup-doubles.ts); everything the store writes is real files.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createBackup } from '../../dataplane/backupstore/backup.js';
import { isBackupInProgress } from '../../dataplane/backupstore/config.js';
import { collectGarbage, deleteBackup, deleteBackupVolume } from '../../dataplane/backupstore/delete.js';
import { createFileDriver } from '../../dataplane/backupstore/file-driver.js';
import {
  listBackups,
  listBackupVolumes,
  readBackupConfig,
  readVolumeConfig,
} from '../../dataplane/backupstore/inspect.js';
import { blockPath, volumePath } from '../../dataplane/backupstore/layout.js';
import { openTarget } from '../../dataplane/backupstore/open-target.js';
import { restoreBackup } from '../../dataplane/backupstore/restore.js';
import {
  BACKUP_BLOCK_SIZE,
  BackupLockedError,
  BackupNotFoundError,
  type BackupStoreDriver,
  BackupTargetError,
} from '../../dataplane/backupstore/types.js';
import { InMemoryReplicaDouble, InMemoryRestoreSinkDouble } from '../helpers/backup-doubles.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const LOCK_WAIT_MS = 30;

/** Passes everything through to the real driver and counts the .blk objects written. */
function countingBlockPuts(inner: BackupStoreDriver): BackupStoreDriver & { blockPuts: number } {
  const wrapper = {
    kind: inner.kind,
    url: inner.url,
    stats: inner.stats,
    blockPuts: 0,
    exists: (p: string) => inner.exists(p),
    read: (p: string) => inner.read(p),
    write: async (p: string, d: Buffer) => {
      await inner.write(p, d);
      if (p.endsWith('.blk')) wrapper.blockPuts++;
    },
    remove: (p: string) => inner.remove(p),
    list: (p: string) => inner.list(p),
    mtime: (p: string) => inner.mtime(p),
    consistentListing: () => inner.consistentListing(),
    close: () => inner.close(),
  };
  return wrapper;
}

function blockFiles(root: string, volume: string): string[] {
  const dir = join(root, volumePath(volume), 'blocks');
  const out: string[] = [];
  for (const l1 of safeReaddir(dir))
    for (const l2 of safeReaddir(join(dir, l1))) for (const f of safeReaddir(join(dir, l1, l2))) out.push(f);
  return out.sort();
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** ~40 % of the volume with data: random blocks, compressible runs, a partly written block, and an
 * allocated all-zero block (Longhorn uploads those too). */
function fillVolume(replica: InMemoryReplicaDouble): void {
  for (let b = 0; b < SIZE / BACKUP_BLOCK_SIZE; b++) {
    const offset = b * BACKUP_BLOCK_SIZE;
    if (b % 5 === 0) replica.write(offset, randomBytes(BACKUP_BLOCK_SIZE));
    else if (b % 5 === 2) replica.write(offset + 4096, Buffer.alloc(300 * 1024, b));
  }
  replica.write(31 * BACKUP_BLOCK_SIZE, Buffer.alloc(BACKUP_BLOCK_SIZE));
}

describe('backup store on a directory', () => {
  let root: string;
  let driver: ReturnType<typeof countingBlockPuts>;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'shorthorn-backupstore-'));
    driver = countingBlockPuts(openTarget(`file://${root}`));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  async function backup(replica: InMemoryReplicaDouble, volumeName: string, snapshotName: string, extra = {}) {
    return createBackup({
      driver,
      volumeName,
      volumeSize: SIZE,
      snapshotName,
      snapshotCreatedAt: new Date(Date.now() + replica.reads).toISOString().replace(/\.\d+Z$/, 'Z'),
      source: replica.source(snapshotName),
      lockWaitMs: LOCK_WAIT_MS,
      ...extra,
    });
  }

  async function restore(volumeName: string, backupName: string, into?: InMemoryRestoreSinkDouble, last?: string) {
    const sink = into ?? new InMemoryRestoreSinkDouble(SIZE);
    const result = await restoreBackup({
      driver,
      volumeName,
      backupName,
      sink,
      lockWaitMs: LOCK_WAIT_MS,
      ...(last === undefined ? {} : { lastRestoredBackupName: last }),
    });
    return { sink, result };
  }

  it('backs up, restores byte for byte, backs up incrementally, and garbage-collects on delete', async () => {
    const replica = new InMemoryReplicaDouble(SIZE);
    fillVolume(replica);
    const snap1 = replica.snapshot('snap-1');
    const allocatedBlocks = 7 + 6 + 1; // b%5==0 (0..30), b%5==2 (2..27), and block 31

    const progress: number[] = [];
    const first = await backup(replica, 'vol-a', 'snap-1', {
      onProgress: (p: { progress: number }) => progress.push(p.progress),
    });
    expect(first.isIncremental).toBe(false);
    expect(first.blockCount).toBe(allocatedBlocks);
    expect(first.blocksUploaded).toBe(allocatedBlocks);
    expect(driver.blockPuts).toBe(allocatedBlocks);
    expect(blockFiles(root, 'vol-a')).toHaveLength(allocatedBlocks);
    expect(first.url).toBe(`file://${root}?backup=${first.backupName}&volume=vol-a`);
    expect(progress.at(-1)).toBe(100);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));

    const r1 = await restore('vol-a', first.backupName);
    expect(r1.sink.data.equals(snap1)).toBe(true);
    expect(r1.result.blocksWritten).toBe(allocatedBlocks);

    const volume1 = await readVolumeConfig(driver, 'vol-a');
    expect(volume1).toMatchObject({
      lastBackupName: first.backupName,
      blockCount: allocatedBlocks,
      compressionMethod: 'lz4',
      size: SIZE,
    });

    // ~5 % more: 1 MiB into three blocks (5 and 20 with data already, 13 a hole until now).
    for (const b of [5, 13, 20]) replica.write(b * BACKUP_BLOCK_SIZE + 512 * 1024, randomBytes(MiB));
    const snap2 = replica.snapshot('snap-2');
    const putsBefore = driver.blockPuts;
    const statsPutsBefore = driver.stats.puts;
    replica.reads = 0;
    const second = await backup(replica, 'vol-a', 'snap-2');
    expect(second.isIncremental).toBe(true);
    expect(second.blocksUploaded).toBe(3);
    expect(driver.blockPuts - putsBefore).toBe(3);
    // Besides the 3 blocks: lock announce + acquire, backup cfg twice (in progress, done), volume.cfg.
    expect(driver.stats.puts - statsPutsBefore).toBe(3 + 5);
    expect(replica.reads).toBe(3);
    expect(second.blockCount).toBe(allocatedBlocks + 1);

    const cfg2 = await readBackupConfig(driver, 'vol-a', second.backupName);
    expect(cfg2).toMatchObject({
      isIncremental: true,
      compressionMethod: 'lz4',
      size: (allocatedBlocks + 1) * BACKUP_BLOCK_SIZE,
    });
    expect(cfg2.blocks.map((b) => b.offset)).toEqual([...cfg2.blocks.map((b) => b.offset)].sort((a, b) => a - b));

    expect((await restore('vol-a', second.backupName)).sink.data.equals(snap2)).toBe(true);
    // A standby volume holding backup 1 catches up by writing only the 3 changed blocks.
    const standby = new InMemoryRestoreSinkDouble(SIZE, snap1);
    const inc = await restore('vol-a', second.backupName, standby, first.backupName);
    expect(inc.result.blocksWritten).toBe(3);
    expect(standby.data.equals(snap2)).toBe(true);

    // Delete the first backup: the second still restores, and exactly the blocks only the first used are gone.
    const cfg1 = await readBackupConfig(driver, 'vol-a', first.backupName);
    const needed = new Set(cfg2.blocks.map((b) => b.checksum));
    const onlyFirst = cfg1.blocks.map((b) => b.checksum).filter((c) => !needed.has(c));
    expect(onlyFirst).toHaveLength(2); // blocks 5 and 20 changed content; block 13 was a hole
    const deletion = await deleteBackup(driver, 'vol-a', first.backupName, { lockWaitMs: LOCK_WAIT_MS });
    expect(deletion).toMatchObject({ deleted: true, blocksRemoved: 2 });
    expect(deletion.gcSkipped).toBeUndefined();
    for (const c of onlyFirst) expect(await driver.exists(blockPath('vol-a', c))).toBe(false);
    for (const c of needed) expect(await driver.exists(blockPath('vol-a', c))).toBe(true);
    expect((await restore('vol-a', second.backupName)).sink.data.equals(snap2)).toBe(true);
    expect(await readVolumeConfig(driver, 'vol-a')).toMatchObject({
      lastBackupName: second.backupName,
      blockCount: needed.size,
    });
    await expect(readBackupConfig(driver, 'vol-a', first.backupName)).rejects.toBeInstanceOf(BackupNotFoundError);
    // Deleting again is a no-op, not an error (controllers retry).
    expect(await deleteBackup(driver, 'vol-a', first.backupName, { lockWaitMs: LOCK_WAIT_MS })).toMatchObject({
      deleted: false,
    });
  });

  it('an aborted backup never lists as complete, blocks GC until abandoned, then its blocks are collected', async () => {
    const replica = new InMemoryReplicaDouble(SIZE);
    fillVolume(replica);
    replica.snapshot('snap-1');
    const first = await backup(replica, 'vol-b', 'snap-1');
    for (const b of [1, 3, 4, 6, 8]) replica.write(b * BACKUP_BLOCK_SIZE, randomBytes(BACKUP_BLOCK_SIZE));
    replica.snapshot('snap-2');
    const blocksBefore = blockFiles(root, 'vol-b');

    const abort = new AbortController();
    let uploaded = 0;
    await expect(
      backup(replica, 'vol-b', 'snap-2', {
        backupName: 'backup-aborted',
        concurrency: 1,
        signal: abort.signal,
        onProgress: () => {
          if (++uploaded === 2) abort.abort(new Error('stopped by the test'));
        },
      }),
    ).rejects.toThrow('stopped by the test');

    const listed = await listBackups(driver, 'vol-b');
    const aborted = listed.find((b) => b.name === 'backup-aborted');
    expect(aborted && isBackupInProgress(aborted)).toBe(true);
    expect(listed.filter((b) => !isBackupInProgress(b)).map((b) => b.name)).toEqual([first.backupName]);
    expect((await readVolumeConfig(driver, 'vol-b')).lastBackupName).toBe(first.backupName);
    const leaked = blockFiles(root, 'vol-b').filter((f) => !blocksBefore.includes(f));
    expect(leaked).toHaveLength(2);
    await expect(restore('vol-b', 'backup-aborted')).rejects.toThrow(/not complete/);
    // The lock was released despite the failure: a deletion can run.

    // A young in-progress cfg stops GC (it may be a live backup), and cannot be deleted by name.
    const gc1 = await collectGarbage(driver, 'vol-b', { lockWaitMs: LOCK_WAIT_MS });
    expect(gc1.gcSkipped).toMatch(/backup-aborted is in progress/);
    await expect(deleteBackup(driver, 'vol-b', 'backup-aborted', { lockWaitMs: LOCK_WAIT_MS })).rejects.toThrow(
      /in progress/,
    );
    // Once abandoned (age ≥ abandonedAfterMs), the next cleanup removes it and the blocks only it uploaded.
    const gc2 = await collectGarbage(driver, 'vol-b', { lockWaitMs: LOCK_WAIT_MS, abandonedAfterMs: 0 });
    expect(gc2).toMatchObject({ abandonedRemoved: ['backup-aborted'], blocksRemoved: 2 });
    expect(gc2.gcSkipped).toBeUndefined();
    expect(blockFiles(root, 'vol-b')).toEqual(blocksBefore);
    expect((await listBackups(driver, 'vol-b')).map((b) => b.name)).toEqual([first.backupName]);
  });

  it('a deletion while a backup holds the lock fails with BackupLockedError', async () => {
    const replica = new InMemoryReplicaDouble(SIZE);
    fillVolume(replica);
    replica.snapshot('snap-1');
    const first = await backup(replica, 'vol-c', 'snap-1');
    replica.write(0, randomBytes(MiB));
    replica.snapshot('snap-2');

    let reading!: () => void;
    const readStarted = new Promise<void>((resolve) => (reading = resolve));
    let proceed!: () => void;
    const gate = new Promise<void>((resolve) => (proceed = resolve));
    const running = createBackup({
      driver,
      volumeName: 'vol-c',
      volumeSize: SIZE,
      snapshotName: 'snap-2',
      snapshotCreatedAt: '2030-01-01T00:00:00Z',
      source: replica.source('snap-2', {
        beforeRead: async () => {
          reading();
          await gate;
        },
      }),
      lockWaitMs: LOCK_WAIT_MS,
    });
    await readStarted;
    const blocked = deleteBackup(driver, 'vol-c', first.backupName, { lockWaitMs: LOCK_WAIT_MS });
    await expect(blocked).rejects.toBeInstanceOf(BackupLockedError);
    await expect(blocked).rejects.toThrow(/locked by a backup or restore in progress/);
    // A restore takes the same lock type as a backup: it runs alongside.
    const r = await restore('vol-c', first.backupName);
    expect(r.result.blocksWritten).toBeGreaterThan(0);
    proceed();
    const second = await running;
    expect(second.isIncremental).toBe(true);
    // The failed deletion left no lock behind, and the backup released its own.
    expect(safeReaddir(join(root, volumePath('vol-c'), 'locks'))).toEqual([]);
    expect((await deleteBackup(driver, 'vol-c', first.backupName, { lockWaitMs: LOCK_WAIT_MS })).deleted).toBe(true);
  });

  it('keeps blocks per volume (no dedup across volumes), fixes compression at the first backup, and full mode re-uploads', async () => {
    const replica = new InMemoryReplicaDouble(SIZE);
    fillVolume(replica);
    const snap1 = replica.snapshot('snap-1');
    const a = await backup(replica, 'vol-d', 'snap-1', { compression: 'gzip' });
    const b = await backup(replica, 'vol-e', 'snap-1', { compression: 'none' });
    // Longhorn's blocks live under each volume: the same data is stored twice.
    expect(b.blocksUploaded).toBe(a.blocksUploaded);
    expect(blockFiles(root, 'vol-d')).toEqual(blockFiles(root, 'vol-e'));
    expect(await listBackupVolumes(driver)).toEqual(['vol-d', 'vol-e']);

    // A later request for lz4 is overridden by what volume.cfg recorded.
    replica.write(0, randomBytes(MiB));
    const snap2 = replica.snapshot('snap-2');
    const c = await backup(replica, 'vol-d', 'snap-2', { compression: 'lz4' });
    expect((await readBackupConfig(driver, 'vol-d', c.backupName)).compressionMethod).toBe('gzip');
    expect((await readVolumeConfig(driver, 'vol-d')).compressionMethod).toBe('gzip');
    expect((await restore('vol-d', c.backupName)).sink.data.equals(snap2)).toBe(true);
    expect((await restore('vol-e', b.backupName)).sink.data.equals(snap1)).toBe(true);

    // Full mode re-uploads every block even though all are stored.
    const full = await backup(replica, 'vol-d', 'snap-2', { mode: 'full', backupName: 'backup-full' });
    expect(full).toMatchObject({ isIncremental: false, blocksUploaded: c.blockCount, blocksReused: 0 });
    const fullCfg = await readBackupConfig(driver, 'vol-d', 'backup-full');
    expect(fullCfg.reUploadedDataSize).toBeGreaterThan(0);
    expect(fullCfg.newlyUploadedDataSize).toBe(0);
    expect(fullCfg.parameters).toEqual({ 'backup-block-size': String(BACKUP_BLOCK_SIZE), 'backup-mode': 'full' });

    // Without the last backup's snapshot on the replica, the backup falls back to a full scan,
    // which finds every block already stored.
    replica.write(2 * MiB, randomBytes(MiB));
    replica.snapshot('snap-3');
    replica.removeSnapshot('snap-2');
    const d = await backup(replica, 'vol-d', 'snap-3');
    expect(d.isIncremental).toBe(false);
    expect(d.blocksUploaded).toBe(1);

    await deleteBackupVolume(driver, 'vol-d', { lockWaitMs: LOCK_WAIT_MS });
    expect(await listBackupVolumes(driver)).toEqual(['vol-e']);
    expect(blockFiles(root, 'vol-d')).toEqual([]);
  });

  it('a trimmed block disappears from the next backup map and an incremental restore zeroes it', async () => {
    const replica = new InMemoryReplicaDouble(SIZE);
    fillVolume(replica);
    const snap1 = replica.snapshot('snap-1');
    const first = await backup(replica, 'vol-f', 'snap-1');
    replica.trim(10 * BACKUP_BLOCK_SIZE, BACKUP_BLOCK_SIZE);
    replica.write(11 * BACKUP_BLOCK_SIZE, Buffer.alloc(4096, 1));
    const snap2 = replica.snapshot('snap-2');
    // A trim is only visible to a full scan (Longhorn's incremental map overlays the previous one).
    const second = await backup(replica, 'vol-f', 'snap-2', { mode: 'full' });
    const cfg = await readBackupConfig(driver, 'vol-f', second.backupName);
    expect(cfg.blocks.some((b) => b.offset === 10 * BACKUP_BLOCK_SIZE)).toBe(false);
    const standby = new InMemoryRestoreSinkDouble(SIZE, snap1);
    const inc = await restore('vol-f', second.backupName, standby, first.backupName);
    expect(inc.result.bytesZeroed).toBe(BACKUP_BLOCK_SIZE);
    expect(standby.data.equals(snap2)).toBe(true);
  });

  it('tells a missing target from a missing object', async () => {
    const gone = createFileDriver({ kind: 'file', url: `file://${root}/not-mounted`, dir: `${root}/not-mounted` });
    await expect(gone.list('backupstore/volumes')).rejects.toBeInstanceOf(BackupTargetError);
    await expect(gone.write('backupstore/x', Buffer.from('x'))).rejects.toThrow(`${root}/not-mounted does not exist`);
    await expect(driver.read('backupstore/nothing')).rejects.toBeInstanceOf(BackupNotFoundError);
    await expect(readVolumeConfig(driver, 'vol-none')).rejects.toThrow(/backup volume vol-none does not exist/);
    expect(await listBackupVolumes(driver)).toEqual([]);
    await driver.write('backupstore/a/b/c', Buffer.from('abc'));
    expect(await driver.list('backupstore/a')).toEqual(['b']);
    expect((await driver.read('backupstore/a/b/c')).toString()).toBe('abc');
    await driver.remove('backupstore/a/');
    expect(await driver.exists('backupstore/a/b/c')).toBe(false);
  });
});
