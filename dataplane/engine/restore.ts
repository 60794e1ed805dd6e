// Restoring a backup into the volume (reference/longhorn-engine.md §5.7), in the engine: every block
// goes through the engine's own write path, so every replica (RW and WO alike) receives the same
// writes and ends identical, and a zeroed range goes through write-zeroes (holes where possible).
// Then a flush and a snapshot `restore-<backup>`, the base later incremental restores and backups
// build on.
//
// The frontend must be down for the whole restore (Longhorn restores into a volume that has none: a
// restoring or standby volume is not attached for use). A client reading meanwhile would see a mix of
// old and restored blocks and a mounted filesystem would cache what the restore overwrites, so there is
// deliberately no flag to restore under a live frontend; stop it first (engine-ctl frontend stop).
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { backupBlockSizeOf } from '../backupstore/config.js';
import { readBackupConfig } from '../backupstore/inspect.js';
import { openTarget } from '../backupstore/open-target.js';
import { restoreBackup } from '../backupstore/restore.js';
import { decodeBackupUrl } from '../backupstore/target-url.js';
import type { BackupStoreDriver, Progress, RestoreSink } from '../backupstore/types.js';
import { statusError } from '../grpc/status-error.js';
import type { BackupRestoreRequest, RestoreStatus } from '../proto/gen/engine.js';
import type { Engine } from './engine.js';

/** The label the restore snapshot carries: which backup it holds. */
export const RESTORED_FROM_LABEL = 'shorthorn.io/restored-from';
/** Write-zeroes are sent in pieces of at most this many bytes (the engine takes up to 4 GiB - 1). */
const ZERO_PIECE = 1024 * 1024 * 1024;

export class VolumeRestore {
  private current: RestoreStatus = idle();
  private abort: AbortController | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly engine: Engine,
    private readonly log: Logger,
  ) {}

  /** A restore is writing the volume. */
  get inProgress(): boolean {
    return this.current.state === 'in_progress';
  }

  status(): RestoreStatus {
    return { ...this.current };
  }

  start(req: BackupRestoreRequest): RestoreStatus {
    const engine = this.engine;
    if (this.inProgress) {
      throw statusError(
        status.FAILED_PRECONDITION,
        `volume ${engine.volume} is already restoring backup ${this.current.backupName}; one restore at a time`,
      );
    }
    if (engine.frontendActive) {
      throw statusError(
        status.FAILED_PRECONDITION,
        `volume ${engine.volume} is serving its frontend; a restore needs it down (engine-ctl frontend stop) so no client sees the data change underneath`,
      );
    }
    if (engine.rwReplicas().length === 0) {
      throw statusError(status.FAILED_PRECONDITION, `volume ${engine.volume} has no RW replica to restore into`);
    }
    if (!req.backupUrl) throw statusError(status.INVALID_ARGUMENT, 'a backup URL is required');
    if (req.concurrency < 0) throw statusError(status.INVALID_ARGUMENT, 'concurrency must not be negative');
    let backupName: string;
    let volumeName: string;
    let driver: BackupStoreDriver;
    try {
      const url = decodeBackupUrl(req.backupUrl);
      backupName = url.backupName;
      volumeName = url.volumeName;
      driver = openTarget(url.targetUrl, req.credential);
    } catch (err) {
      throw statusError(status.INVALID_ARGUMENT, (err as Error).message);
    }
    const last = req.lastRestoredBackupName;
    this.current = {
      ...idle(),
      state: 'in_progress',
      backupName,
      backupUrl: req.backupUrl,
      lastRestoredBackupName: this.current.lastRestoredBackupName,
      isIncremental: last !== '',
    };
    const abort = new AbortController();
    this.abort = abort;
    const log = this.log.child({ restore: backupName, backupVolume: volumeName, target: driver.url });
    log.info({ lastRestored: last || undefined }, last ? 'incremental restore started' : 'restore started');
    this.running = this.run(driver, volumeName, backupName, req, abort.signal, log).finally(() => {
      this.abort = null;
      this.running = null;
    });
    return this.status();
  }

  /** Ends a running restore (the engine shuts down); it finishes as failed. */
  async stop(reason: string): Promise<void> {
    this.abort?.abort(reason);
    await this.running?.catch(() => {});
  }

  private async run(
    driver: BackupStoreDriver,
    volumeName: string,
    backupName: string,
    req: BackupRestoreRequest,
    signal: AbortSignal,
    log: Logger,
  ): Promise<void> {
    const engine = this.engine;
    const st = this.current;
    let loggedStep = 0;
    const onProgress = (p: Progress): void => {
      st.progress = Math.max(0, Math.min(99, Math.floor(p.progress)));
      st.bytesDone = p.bytesDone;
      st.bytesTotal = p.bytesTotal;
      const step = Math.floor(st.progress / 10);
      if (step > loggedStep) {
        loggedStep = step;
        log.info({ progress: st.progress, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }, 'restore progress');
      }
    };
    const zero = async (offset: number, length: number): Promise<void> => {
      const end = Math.min(offset + length, engine.size);
      for (let at = offset; at < end; at += ZERO_PIECE) {
        signal.throwIfAborted();
        await engine.writeZeroes(at, Math.min(ZERO_PIECE, end - at), false);
      }
    };
    const sink: RestoreSink = {
      write: async (offset, data) => {
        signal.throwIfAborted();
        // The last block of a backup may run past a volume whose size is not a block multiple.
        const inside = Math.min(data.length, engine.size - offset);
        if (inside < data.length && data.subarray(inside).some((byte) => byte !== 0)) {
          throw new Error(`backup block at ${offset} holds data past the end of the volume (${engine.size} bytes)`);
        }
        await engine.write(offset, inside === data.length ? data : data.subarray(0, inside), false);
      },
      zero,
    };
    try {
      const cfg = await readBackupConfig(driver, volumeName, backupName);
      if (cfg.createdTime === '')
        throw new Error(`backup ${backupName} is not complete (still in progress, or it failed)`);
      const end = cfg.blocks.reduce((max, b) => Math.max(max, b.offset + 1), 0);
      if (end > engine.size) {
        throw new Error(
          `backup ${backupName} holds data at ${end - 1}, past the end of volume ${engine.volume} (${engine.size} bytes); restore into a volume at least as large as the backed-up one`,
        );
      }
      if (!req.lastRestoredBackupName) {
        // A full restore makes the volume equal the backup: what the backup does not hold reads as
        // zeros, whatever the volume held before (on a fresh volume these are cheap hole punches).
        await zeroGaps(cfg.blocks, backupBlockSizeOf(cfg), engine.size, zero);
      }
      const result = await restoreBackup({
        driver,
        volumeName,
        backupName,
        sink,
        lastRestoredBackupName: req.lastRestoredBackupName || undefined,
        concurrency: req.concurrency || undefined,
        onProgress,
        signal,
      });
      await engine.flush();
      st.snapshotName = await this.snapshot(backupName);
      Object.assign(st, {
        state: 'complete',
        progress: 100,
        lastRestoredBackupName: backupName,
        blocksWritten: result.blocksWritten,
        bytesZeroed: result.bytesZeroed,
      });
      st.bytesDone = st.bytesTotal;
      log.info(
        { snapshot: st.snapshotName, blocksWritten: result.blocksWritten, bytesZeroed: result.bytesZeroed },
        'restore complete',
      );
    } catch (err) {
      st.state = 'error';
      st.error = signal.aborted ? String(signal.reason ?? 'aborted') : messageOf(err);
      log.error({ err }, 'restore failed');
    } finally {
      await driver.close().catch(() => {});
    }
  }

  /** `restore-<backup>`, or with a suffix when that name is taken (the same backup restored again). */
  private async snapshot(backupName: string): Promise<string> {
    const labels = { [RESTORED_FROM_LABEL]: backupName };
    const taken = new Set((await this.engine.snapshots.list()).map((s) => s.name));
    let name = `restore-${backupName}`;
    if (taken.has(name)) name = `${name}-${randomBytes(4).toString('hex')}`;
    await this.engine.snapshots.create(name, labels);
    return name;
  }
}

/** Zeroes every range of [0, size) that no backup block covers. */
async function zeroGaps(
  blocks: readonly { offset: number }[],
  blockSize: number,
  size: number,
  zero: (offset: number, length: number) => Promise<void>,
): Promise<void> {
  const starts = blocks.map((b) => b.offset).sort((a, b) => a - b);
  let pos = 0;
  for (const start of starts) {
    if (start > pos) await zero(pos, Math.min(start, size) - pos);
    pos = Math.max(pos, start + blockSize);
    if (pos >= size) return;
  }
  if (pos < size) await zero(pos, size - pos);
}

function idle(): RestoreStatus {
  return {
    state: 'idle',
    progress: 0,
    error: '',
    backupName: '',
    lastRestoredBackupName: '',
    bytesDone: 0,
    bytesTotal: 0,
    backupUrl: '',
    snapshotName: '',
    isIncremental: false,
    blocksWritten: 0,
    bytesZeroed: 0,
  };
}

function messageOf(err: unknown): string {
  if (err && typeof err === 'object' && 'details' in err && typeof err.details === 'string' && err.details)
    return err.details;
  return err instanceof Error ? err.message : String(err);
}
