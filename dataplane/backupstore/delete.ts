// Deleting backups and collecting the blocks no backup references any more (Longhorn's
// DeleteDeltaBlockBackup, reference §5.6). Blocks are shared by every backup of a volume, so a block may
// go only when no remaining backup cfg names it — and only when we can be sure we saw every cfg that
// could name it. Whenever that is in doubt the cfg is still deleted but the GC is skipped: a leaked
// block costs space until the next deletion; a wrongly removed one breaks a backup for good.
import { boundedConcurrency, runBounded } from './bounded-pool.js';
import { type BackupConfig, encodeVolumeConfig, isBackupInProgress } from './config.js';
import { parseGoTime } from './go-time.js';
import { listBackupNames, readBackupConfig, readVolumeConfig } from './inspect.js';
import {
  assertValidName,
  backupConfigPath,
  backupsDir,
  blockPath,
  blocksDir,
  checksumOfBlockFile,
  volumeConfigPath,
  volumePath,
} from './layout.js';
import { acquireLock, DELETION_LOCK } from './locks.js';
import { BackupNotFoundError, type BackupStoreDriver } from './types.js';

/**
 * An in-progress cfg older than this, seen while we hold the deletion lock, belongs to a backup that
 * died: a live backup holds a backup lock that would have kept us out. The margin covers lock races.
 */
export const ABANDONED_BACKUP_AFTER_MS = 10 * 60_000;

export interface DeleteBackupOptions {
  lockWaitMs?: number;
  /** Age of an in-progress cfg after which it counts as abandoned; 0 treats every one as abandoned. */
  abandonedAfterMs?: number;
  /** Parallel block removals. */
  concurrency?: number;
}

export interface GarbageCollectionResult {
  /** .blk objects removed. */
  blocksRemoved: number;
  /** Why block GC did not run (the cfg deletion itself still happened); undefined when it ran. */
  gcSkipped?: string;
  /** In-progress cfgs of dead backups that were removed so their blocks could be collected. */
  abandonedRemoved: string[];
}

export interface DeleteBackupResult extends GarbageCollectionResult {
  /** False when the backup did not exist (deletion is idempotent). */
  deleted: boolean;
}

export async function deleteBackup(
  driver: BackupStoreDriver,
  volumeName: string,
  backupName: string,
  opts: DeleteBackupOptions = {},
): Promise<DeleteBackupResult> {
  assertValidName('volume', volumeName);
  assertValidName('backup', backupName);
  const abandonedAfterMs = opts.abandonedAfterMs ?? ABANDONED_BACKUP_AFTER_MS;
  const lock = await acquireLock(driver, volumeName, DELETION_LOCK, { waitMs: opts.lockWaitMs });
  try {
    let deleted = false;
    const cfgPath = backupConfigPath(volumeName, backupName);
    const cfg = await readBackupConfig(driver, volumeName, backupName).catch((err: unknown) => {
      if (err instanceof BackupNotFoundError) return undefined;
      // An unreadable cfg is still deleted: it cannot be restored anyway.
      if ((err as { code?: string }).code === 'TARGET_UNAVAILABLE') throw err;
      return null;
    });
    if (cfg !== undefined) {
      if (cfg !== null && isBackupInProgress(cfg) && !(await isAbandoned(driver, cfgPath, abandonedAfterMs))) {
        throw new Error(
          `backup ${backupName} of volume ${volumeName} is in progress: it can be deleted once it has finished, ` +
            `or after ${Math.round(abandonedAfterMs / 1000)} s if it was abandoned`,
        );
      }
      await driver.remove(cfgPath);
      deleted = true;
    }
    const gc = await collectUnderLock(driver, volumeName, abandonedAfterMs, opts.concurrency);
    return { deleted, ...gc };
  } finally {
    await lock.release().catch(() => undefined);
  }
}

/**
 * Block GC and volume.cfg bookkeeping without deleting a backup: cleans up after failed backups
 * (their in-progress cfgs once abandoned, and the blocks only they uploaded).
 */
export async function collectGarbage(
  driver: BackupStoreDriver,
  volumeName: string,
  opts: DeleteBackupOptions = {},
): Promise<GarbageCollectionResult> {
  assertValidName('volume', volumeName);
  const lock = await acquireLock(driver, volumeName, DELETION_LOCK, { waitMs: opts.lockWaitMs });
  try {
    return await collectUnderLock(
      driver,
      volumeName,
      opts.abandonedAfterMs ?? ABANDONED_BACKUP_AFTER_MS,
      opts.concurrency,
    );
  } finally {
    await lock.release().catch(() => undefined);
  }
}

/** Removes everything the store holds for the volume: backups, blocks, locks, volume.cfg. */
export async function deleteBackupVolume(
  driver: BackupStoreDriver,
  volumeName: string,
  opts: { lockWaitMs?: number } = {},
): Promise<void> {
  assertValidName('volume', volumeName);
  // The lock keeps us from pulling blocks from under a running backup or restore; it goes with the rest.
  const lock = await acquireLock(driver, volumeName, DELETION_LOCK, { waitMs: opts.lockWaitMs });
  try {
    await driver.remove(`${backupsDir(volumeName)}/`);
    await driver.remove(`${blocksDir(volumeName)}/`);
    await driver.remove(volumeConfigPath(volumeName));
    await driver.remove(`${volumePath(volumeName)}/`);
  } finally {
    await lock.release().catch(() => undefined);
  }
}

async function collectUnderLock(
  driver: BackupStoreDriver,
  volumeName: string,
  abandonedAfterMs: number,
  concurrency: number | undefined,
): Promise<GarbageCollectionResult> {
  const result: GarbageCollectionResult = { blocksRemoved: 0, abandonedRemoved: [] };
  const namesBefore = await listBackupNames(driver, volumeName);
  const completed: BackupConfig[] = [];
  const referenced = new Set<string>();
  for (const name of namesBefore) {
    let cfg: BackupConfig;
    try {
      cfg = await readBackupConfig(driver, volumeName, name);
    } catch (err) {
      if ((err as { code?: string }).code === 'TARGET_UNAVAILABLE') throw err;
      if (err instanceof BackupNotFoundError) {
        result.gcSkipped ??= `backup ${name} vanished while the backups were being read`;
      } else {
        result.gcSkipped ??= `backup ${name} cannot be read (${(err as Error).message})`;
      }
      continue;
    }
    if (isBackupInProgress(cfg)) {
      const cfgPath = backupConfigPath(volumeName, name);
      if (await isAbandoned(driver, cfgPath, abandonedAfterMs)) {
        await driver.remove(cfgPath);
        result.abandonedRemoved.push(name);
      } else {
        result.gcSkipped ??= `backup ${name} is in progress`;
      }
      continue;
    }
    completed.push(cfg);
    for (const block of cfg.blocks) referenced.add(block.checksum);
  }

  let liveBlocks: number | undefined;
  if (result.gcSkipped === undefined) {
    const stored = await listStoredBlocks(driver, volumeName);
    // A backup that appeared while we counted could reference a block we are about to remove.
    const namesAfter = await listBackupNames(driver, volumeName);
    const expected = namesBefore.filter((n) => !result.abandonedRemoved.includes(n));
    if (namesAfter.join('\n') !== expected.join('\n')) {
      result.gcSkipped = 'the list of backups changed while blocks were being counted';
    } else {
      const garbage = stored.filter((c) => !referenced.has(c));
      await runBounded(garbage, boundedConcurrency(concurrency, 8), async (checksum) => {
        await driver.remove(blockPath(volumeName, checksum));
        result.blocksRemoved++;
      });
      liveBlocks = stored.length - garbage.length;
    }
  }

  await updateVolumeConfig(driver, volumeName, completed, liveBlocks);
  return result;
}

/** Every .blk checksum stored for the volume, walking blocks/<xx>/<yy>/. */
async function listStoredBlocks(driver: BackupStoreDriver, volumeName: string): Promise<string[]> {
  const root = blocksDir(volumeName);
  const checksums: string[] = [];
  for (const l1 of await driver.list(root)) {
    for (const l2 of await driver.list(`${root}/${l1}`)) {
      for (const file of await driver.list(`${root}/${l1}/${l2}`)) {
        const checksum = checksumOfBlockFile(file);
        if (checksum !== undefined) checksums.push(checksum);
      }
    }
  }
  return checksums;
}

/** LastBackupName/At follow the newest remaining snapshot; BlockCount is recounted when GC ran. */
async function updateVolumeConfig(
  driver: BackupStoreDriver,
  volumeName: string,
  completed: readonly BackupConfig[],
  liveBlocks: number | undefined,
): Promise<void> {
  let volume: Awaited<ReturnType<typeof readVolumeConfig>>;
  try {
    volume = await readVolumeConfig(driver, volumeName);
  } catch (err) {
    if (err instanceof BackupNotFoundError) return;
    throw err;
  }
  const latest = [...completed].sort(compareNewestFirst)[0];
  const next = {
    ...volume,
    lastBackupName: latest?.name ?? '',
    lastBackupAt: latest?.snapshotCreatedAt ?? '',
    blockCount: liveBlocks ?? volume.blockCount,
  };
  if (
    next.lastBackupName !== volume.lastBackupName ||
    next.lastBackupAt !== volume.lastBackupAt ||
    next.blockCount !== volume.blockCount
  ) {
    await driver.write(volumeConfigPath(volumeName), encodeVolumeConfig(next));
  }
}

function compareNewestFirst(a: BackupConfig, b: BackupConfig): number {
  const ta = parseGoTime(a.snapshotCreatedAt) ?? 0;
  const tb = parseGoTime(b.snapshotCreatedAt) ?? 0;
  if (ta !== tb) return tb - ta;
  const ca = parseGoTime(a.createdTime) ?? 0;
  const cb = parseGoTime(b.createdTime) ?? 0;
  if (ca !== cb) return cb - ca;
  return a.name < b.name ? 1 : a.name > b.name ? -1 : 0;
}

async function isAbandoned(driver: BackupStoreDriver, cfgPath: string, abandonedAfterMs: number): Promise<boolean> {
  const mtime = await driver.mtime(cfgPath);
  return mtime === undefined || Date.now() - mtime.getTime() >= abandonedAfterMs;
}
