// Creating a backup of one snapshot (Longhorn's CreateDeltaBlockBackup, reference §5.5). The order of
// writes is what keeps the store consistent without transactions: blocks first, then the backup cfg
// that references them, then volume.cfg that points at the backup. A crash at any point leaves at
// worst an in-progress cfg (CreatedTime '') and unreferenced blocks, which deletion collects.
import { boundedConcurrency, runBounded } from './bounded-pool.js';
import { blockChecksumAsync, compressBlock } from './compression.js';
import {
  BACKUP_PARAM_BLOCK_SIZE,
  BACKUP_PARAM_MODE,
  type BackupConfig,
  type BlockMapping,
  backupBlockSizeOf,
  encodeBackupConfig,
  encodeVolumeConfig,
  isBackupInProgress,
  type VolumeConfig,
} from './config.js';
import { goNow } from './go-time.js';
import { readBackupConfig, readVolumeConfig } from './inspect.js';
import { assertValidName, backupConfigPath, blockPath, generateBackupName, volumeConfigPath } from './layout.js';
import { acquireLock, BACKUP_LOCK } from './locks.js';
import { encodeBackupUrl } from './target-url.js';
import {
  BACKUP_BLOCK_SIZE,
  BackupNotFoundError,
  type BackupSource,
  type BackupStoreDriver,
  type CompressionMethod,
  type Progress,
} from './types.js';

export type BackupMode = 'incremental' | 'full';

export interface CreateBackupOptions {
  driver: BackupStoreDriver;
  volumeName: string;
  volumeSize: number;
  /** Recorded in volume.cfg (Longhorn keeps e.g. recurring-job labels there). */
  volumeLabels?: Record<string, string>;
  snapshotName: string;
  /** The snapshot's creation time (RFC 3339); becomes SnapshotCreatedAt and volume.cfg LastBackupAt. */
  snapshotCreatedAt: string;
  /** Default: a fresh `backup-<16 hex>`. */
  backupName?: string;
  labels?: Record<string, string>;
  /** 'full' scans and re-uploads every block even when an identical one is stored (repairs a damaged store). */
  mode?: BackupMode;
  /** Used only at the volume's first backup; later backups use what volume.cfg recorded. Default lz4. */
  compression?: CompressionMethod;
  /** Default BACKUP_BLOCK_SIZE (2 MiB); must divide or be a multiple of it. */
  blockSize?: number;
  source: BackupSource;
  /** Blocks read, compressed and uploaded at once. Default 4, at most 32. */
  concurrency?: number;
  onProgress?(p: Progress): void;
  signal?: AbortSignal;
  /** The lock's announce-then-check pause (Longhorn: 2 s); tests shorten it. */
  lockWaitMs?: number;
  /** volume.cfg fields recorded when the backup volume is created. */
  storageClassName?: string;
  dataEngine?: string;
  backingImageName?: string;
  backingImageChecksum?: string;
}

export interface CreateBackupResult {
  backupName: string;
  /** `<target>?backup=<name>&volume=<volume>`, Longhorn's backup URL. */
  url: string;
  isIncremental: boolean;
  /** .blk objects written by this backup. */
  blocksUploaded: number;
  /** Compressed bytes written for them. */
  bytesUploaded: number;
  /** Changed blocks whose content was already stored. */
  blocksReused: number;
  /** Blocks in the backup's complete map. */
  blockCount: number;
}

/** Longhorn's progress stops at 95 % for the data; the configs are the last 5 %. */
const PROGRESS_DATA_PERCENT = 95;

export async function createBackup(opts: CreateBackupOptions): Promise<CreateBackupResult> {
  const { driver, volumeName, source, signal } = opts;
  const backupName = opts.backupName ?? generateBackupName();
  const mode: BackupMode = opts.mode ?? 'incremental';
  const blockSize = opts.blockSize ?? BACKUP_BLOCK_SIZE;
  assertValidName('volume', volumeName);
  assertValidName('backup', backupName);
  checkBlockSize(blockSize);
  if (!Number.isSafeInteger(opts.volumeSize) || opts.volumeSize <= 0) {
    throw new Error(`volume ${volumeName}: invalid size ${opts.volumeSize}`);
  }
  signal?.throwIfAborted();

  const lock = await acquireLock(driver, volumeName, BACKUP_LOCK, { waitMs: opts.lockWaitMs, signal });
  try {
    const volume = await loadOrAddVolume(opts);
    const compression = volume.compressionMethod;
    const cfgPath = backupConfigPath(volumeName, backupName);
    if (await driver.exists(cfgPath)) throw new Error(`backup ${backupName} of volume ${volumeName} already exists`);

    const last = await lastBackupForIncremental(opts, volume, mode, blockSize);
    const inProgress: BackupConfig = {
      name: backupName,
      volumeName,
      snapshotName: opts.snapshotName,
      snapshotCreatedAt: opts.snapshotCreatedAt,
      createdTime: '',
      size: 0,
      labels: opts.labels ?? {},
      parameters: { [BACKUP_PARAM_BLOCK_SIZE]: String(blockSize), [BACKUP_PARAM_MODE]: mode },
      isIncremental: last !== undefined,
      compressionMethod: compression,
      newlyUploadedDataSize: 0,
      reUploadedDataSize: 0,
      blocks: [],
      singleFile: { filePath: '' },
    };
    // Written before any block so a crash mid-way is visible (and blocks GC until cleaned up).
    await driver.write(cfgPath, encodeBackupConfig(inProgress));

    const changed = backupOffsets(await source.changedBlocks(last?.snapshotName), source.size, blockSize);
    signal?.throwIfAborted();

    const upload = new BlockUploader(driver, volumeName, compression, mode === 'full');
    const changedMap = new Map<number, string>();
    const bytesTotal = changed.length * blockSize;
    let bytesDone = 0;
    await runBounded(
      changed,
      boundedConcurrency(opts.concurrency),
      async (offset) => {
        const length = Math.min(blockSize, source.size - offset);
        let data = await source.read(offset, length);
        if (data.length !== length) {
          throw new Error(`volume ${volumeName}: read ${data.length} bytes at ${offset}, expected ${length}`);
        }
        // Longhorn's blocks are always whole; a short last block is padded with the zeros a read past
        // the end would give, and a restore clips it back to the volume size.
        if (length < blockSize) data = Buffer.concat([data, Buffer.alloc(blockSize - length)]);
        signal?.throwIfAborted();
        changedMap.set(offset, await upload.store(data));
        bytesDone += blockSize;
        opts.onProgress?.({
          progress: Math.floor((bytesDone / bytesTotal) * PROGRESS_DATA_PERCENT),
          bytesDone,
          bytesTotal,
        });
      },
      signal,
    );

    const blocks = mergeBlockMaps(last?.blocks ?? [], changedMap);
    const done: BackupConfig = {
      ...inProgress,
      createdTime: goNow(),
      size: blocks.length * blockSize,
      newlyUploadedDataSize: upload.newlyUploadedBytes,
      reUploadedDataSize: upload.reUploadedBytes,
      blocks,
    };
    signal?.throwIfAborted();
    await driver.write(cfgPath, encodeBackupConfig(done));

    const fresh = await readVolumeConfig(driver, volumeName);
    await driver.write(
      volumeConfigPath(volumeName),
      encodeVolumeConfig({
        ...fresh,
        size: opts.volumeSize,
        labels: opts.volumeLabels ?? fresh.labels,
        lastBackupName: backupName,
        lastBackupAt: opts.snapshotCreatedAt,
        blockCount: fresh.blockCount + upload.newBlocks,
      }),
    );
    opts.onProgress?.({ progress: 100, bytesDone: bytesTotal, bytesTotal });
    return {
      backupName,
      url: encodeBackupUrl(driver.url, backupName, volumeName),
      isIncremental: last !== undefined,
      blocksUploaded: upload.blocksUploaded,
      bytesUploaded: upload.newlyUploadedBytes + upload.reUploadedBytes,
      blocksReused: upload.blocksReused,
      blockCount: blocks.length,
    };
  } finally {
    await lock.release().catch(() => undefined);
  }
}

/** Longhorn's addVolume + loadVolume: the first backup creates volume.cfg and fixes its compression. */
async function loadOrAddVolume(opts: CreateBackupOptions): Promise<VolumeConfig> {
  try {
    return await readVolumeConfig(opts.driver, opts.volumeName);
  } catch (err) {
    if (!(err instanceof BackupNotFoundError)) throw err;
  }
  const volume: VolumeConfig = {
    name: opts.volumeName,
    size: opts.volumeSize,
    labels: opts.volumeLabels ?? null,
    createdTime: goNow(),
    lastBackupName: '',
    lastBackupAt: '',
    blockCount: 0,
    backingImageName: opts.backingImageName ?? '',
    backingImageChecksum: opts.backingImageChecksum ?? '',
    compressionMethod: opts.compression ?? 'lz4',
    storageClassName: opts.storageClassName ?? '',
    dataEngine: opts.dataEngine ?? 'v1',
  };
  await opts.driver.write(volumeConfigPath(opts.volumeName), encodeVolumeConfig(volume));
  return volume;
}

/**
 * The previous backup an incremental backup builds on, or undefined for a full scan: there is none,
 * full mode was asked for, its cfg cannot be read, it was cut in another block size, it is of this
 * very snapshot, or the replica no longer has its snapshot (nothing to diff against).
 */
async function lastBackupForIncremental(
  opts: CreateBackupOptions,
  volume: VolumeConfig,
  mode: BackupMode,
  blockSize: number,
): Promise<BackupConfig | undefined> {
  if (mode === 'full' || volume.lastBackupName === '') return undefined;
  let last: BackupConfig;
  try {
    last = await readBackupConfig(opts.driver, opts.volumeName, volume.lastBackupName);
  } catch (err) {
    if ((err as { code?: string }).code === 'TARGET_UNAVAILABLE') throw err;
    return undefined;
  }
  if (isBackupInProgress(last)) return undefined;
  if (last.snapshotName === opts.snapshotName) return undefined;
  if (backupBlockSizeOf(last) !== blockSize) return undefined;
  if (!opts.source.hasSnapshot(last.snapshotName)) return undefined;
  return last;
}

/** The source lists changed 2 MiB blocks; map them onto this backup's block size, ascending, unique. */
function backupOffsets(changed: readonly number[], size: number, blockSize: number): number[] {
  const offsets = new Set<number>();
  for (const offset of changed) {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= size || offset % BACKUP_BLOCK_SIZE !== 0) {
      throw new Error(`backup source listed an invalid changed block offset ${offset} (volume size ${size})`);
    }
    if (blockSize >= BACKUP_BLOCK_SIZE) {
      offsets.add(offset - (offset % blockSize));
    } else {
      for (let o = offset; o < Math.min(offset + BACKUP_BLOCK_SIZE, size); o += blockSize) offsets.add(o);
    }
  }
  return [...offsets].sort((a, b) => a - b);
}

/** The previous complete map overlaid with this backup's changed blocks: every backup restores alone. */
export function mergeBlockMaps(
  previous: readonly BlockMapping[],
  changed: ReadonlyMap<number, string>,
): BlockMapping[] {
  const merged = new Map<number, string>(previous.map((b) => [b.offset, b.checksum]));
  for (const [offset, checksum] of changed) merged.set(offset, checksum);
  return [...merged.entries()].sort((a, b) => a[0] - b[0]).map(([offset, checksum]) => ({ offset, checksum }));
}

function checkBlockSize(blockSize: number): void {
  const ok =
    Number.isSafeInteger(blockSize) &&
    blockSize >= 4096 &&
    (blockSize % BACKUP_BLOCK_SIZE === 0 || BACKUP_BLOCK_SIZE % blockSize === 0);
  if (!ok)
    throw new Error(`invalid backup block size ${blockSize}: must divide or be a multiple of ${BACKUP_BLOCK_SIZE}`);
}

/**
 * Stores blocks by checksum. Two offsets with the same content in one backup (zeroed but allocated
 * blocks, copies) share one upload instead of racing to write the same object.
 */
class BlockUploader {
  blocksUploaded = 0;
  blocksReused = 0;
  /** Objects that did not exist before: volume.cfg's BlockCount grows by this much. */
  newBlocks = 0;
  newlyUploadedBytes = 0;
  reUploadedBytes = 0;
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(
    private readonly driver: BackupStoreDriver,
    private readonly volumeName: string,
    private readonly compression: CompressionMethod,
    private readonly reUpload: boolean,
  ) {}

  async store(data: Buffer): Promise<string> {
    const checksum = await blockChecksumAsync(data);
    const pending = this.inFlight.get(checksum);
    if (pending !== undefined) {
      await pending;
      this.blocksReused++;
      return checksum;
    }
    const work = this.put(checksum, data);
    this.inFlight.set(checksum, work);
    await work;
    return checksum;
  }

  private async put(checksum: string, data: Buffer): Promise<void> {
    const path = blockPath(this.volumeName, checksum);
    const existed = await this.driver.exists(path);
    if (existed && !this.reUpload) {
      this.blocksReused++;
      return;
    }
    const compressed = await compressBlock(this.compression, data);
    await this.driver.write(path, compressed);
    this.blocksUploaded++;
    if (existed) {
      this.reUploadedBytes += compressed.length;
    } else {
      this.newBlocks++;
      this.newlyUploadedBytes += compressed.length;
    }
  }
}
