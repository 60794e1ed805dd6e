// Restoring a backup into a sink (reference §5.7). A full restore writes every block of the backup's
// map; an incremental one (standby/DR volumes) starts from a volume that already holds an earlier
// backup of the same volume and writes only the difference between the two maps.
import { boundedConcurrency, runBounded } from './bounded-pool.js';
import { decompressAndVerify } from './compression.js';
import { type BackupConfig, type BlockMapping, backupBlockSizeOf, isBackupInProgress } from './config.js';
import { readBackupConfig, readVolumeConfig } from './inspect.js';
import { assertValidName, blockPath } from './layout.js';
import { acquireLock, RESTORE_LOCK } from './locks.js';
import { BackupNotFoundError, type BackupStoreDriver, type Progress, type RestoreSink } from './types.js';

export interface RestoreBackupOptions {
  driver: BackupStoreDriver;
  volumeName: string;
  backupName: string;
  sink: RestoreSink;
  /** The backup the sink already holds: only blocks that differ from it are written, removed ones zeroed. */
  lastRestoredBackupName?: string;
  /** Blocks downloaded and decompressed at once. Default 4, at most 32. */
  concurrency?: number;
  onProgress?(p: Progress): void;
  signal?: AbortSignal;
  lockWaitMs?: number;
}

export interface RestoreBackupResult {
  blocksWritten: number;
  bytesWritten: number;
  bytesZeroed: number;
}

export type RestoreStep = { kind: 'write'; block: BlockMapping } | { kind: 'zero'; offset: number };

export async function restoreBackup(opts: RestoreBackupOptions): Promise<RestoreBackupResult> {
  const { driver, volumeName, backupName, sink, signal } = opts;
  assertValidName('volume', volumeName);
  assertValidName('backup', backupName);
  signal?.throwIfAborted();

  const lock = await acquireLock(driver, volumeName, RESTORE_LOCK, { waitMs: opts.lockWaitMs, signal });
  try {
    const volume = await readVolumeConfig(driver, volumeName);
    const backup = await readCompletedBackup(driver, volumeName, backupName);
    const blockSize = backupBlockSizeOf(backup);
    // volume.cfg holds the size at the *last* backup; a volume only grows, so it bounds every backup's map.
    const volumeSize = volume.size;
    if (volumeSize <= 0) throw new Error(`backup volume ${volumeName}: volume.cfg has an invalid size ${volumeSize}`);

    let steps: RestoreStep[];
    let zeroBlockSize = blockSize;
    if (opts.lastRestoredBackupName === undefined) {
      steps = backup.blocks.map((block) => ({ kind: 'write', block }));
    } else {
      const previous = await readCompletedBackup(driver, volumeName, opts.lastRestoredBackupName);
      zeroBlockSize = backupBlockSizeOf(previous);
      steps = diffBlockMaps(previous.blocks, backup.blocks);
    }

    const bytesTotal = steps.length * blockSize;
    let bytesDone = 0;
    const result: RestoreBackupResult = { blocksWritten: 0, bytesWritten: 0, bytesZeroed: 0 };
    await runBounded(
      steps,
      boundedConcurrency(opts.concurrency),
      async (step) => {
        if (step.kind === 'zero') {
          const length = Math.min(zeroBlockSize, volumeSize - step.offset);
          if (length > 0) {
            await sink.zero(step.offset, length);
            result.bytesZeroed += length;
          }
        } else {
          const data = await fetchBlock(driver, volumeName, backup, step.block);
          // The last block of a volume whose size is not a block multiple was padded at backup time.
          const length = Math.min(data.length, volumeSize - step.block.offset);
          if (length > 0) {
            await sink.write(step.block.offset, length === data.length ? data : data.subarray(0, length));
            result.blocksWritten++;
            result.bytesWritten += length;
          }
        }
        bytesDone += blockSize;
        opts.onProgress?.({ progress: Math.floor((bytesDone / bytesTotal) * 100), bytesDone, bytesTotal });
      },
      signal,
    );
    opts.onProgress?.({ progress: 100, bytesDone: bytesTotal, bytesTotal });
    return result;
  } finally {
    await lock.release().catch(() => undefined);
  }
}

async function readCompletedBackup(
  driver: BackupStoreDriver,
  volumeName: string,
  backupName: string,
): Promise<BackupConfig> {
  const backup = await readBackupConfig(driver, volumeName, backupName);
  if (isBackupInProgress(backup)) {
    throw new Error(
      `backup ${backupName} of volume ${volumeName} is not complete (in progress, or abandoned by a failed backup): cannot restore it`,
    );
  }
  return backup;
}

async function fetchBlock(
  driver: BackupStoreDriver,
  volumeName: string,
  backup: BackupConfig,
  block: BlockMapping,
): Promise<Buffer> {
  const path = blockPath(volumeName, block.checksum);
  const what = `backup ${backup.name} of volume ${volumeName}: block ${block.checksum} at offset ${block.offset}`;
  let stored: Buffer;
  try {
    stored = await driver.read(path);
  } catch (err) {
    if (err instanceof BackupNotFoundError) {
      throw new BackupNotFoundError(`${what}: ${path} is missing from the backup store`, { cause: err });
    }
    throw err;
  }
  return decompressAndVerify(backup.compressionMethod, stored, block.checksum, what);
}

/**
 * Longhorn's incremental restore: blocks new or changed since `previous` are written, blocks that
 * `previous` had and `next` does not (trimmed since) are zeroed, identical ones are left alone.
 */
export function diffBlockMaps(previous: readonly BlockMapping[], next: readonly BlockMapping[]): RestoreStep[] {
  const before = new Map(previous.map((b) => [b.offset, b.checksum]));
  const steps: RestoreStep[] = [];
  const present = new Set<number>();
  for (const block of next) {
    present.add(block.offset);
    if (before.get(block.offset) !== block.checksum) steps.push({ kind: 'write', block });
  }
  for (const block of previous) {
    if (!present.has(block.offset)) steps.push({ kind: 'zero', offset: block.offset });
  }
  return steps.sort((a, b) => offsetOf(a) - offsetOf(b));
}

function offsetOf(step: RestoreStep): number {
  return step.kind === 'write' ? step.block.offset : step.offset;
}
