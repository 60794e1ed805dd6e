// Backups run by this replica process (reference/longhorn-engine.md §5.5): BackupCreate starts a job
// that reads one snapshot through a ReplicaSnapshotSource and hands it to the backup store; the caller
// follows it with BackupStatus. Jobs live in memory only: the running ones plus the last finished.
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { createBackup } from '../backupstore/backup.js';
import { openTarget } from '../backupstore/open-target.js';
import type { BackupStoreDriver, CompressionMethod, Progress } from '../backupstore/types.js';
import type { BackupCreateRequest, BackupJob } from '../proto/gen/replica.js';
import { ReplicaSnapshotSource } from './snapshot-source.js';
import { snapshotDiskName } from './store/disk-names.js';
import { checkSnapshotName, type Replica, ReplicaChainError } from './store/replica.js';

/** Finished jobs kept for BackupStatus after they end; older ones are forgotten. */
export const FINISHED_JOBS_KEPT = 50;
const MODES = new Set(['', 'incremental', 'full']);
const COMPRESSIONS = new Set(['', 'none', 'gzip', 'lz4']);
/** Longhorn's backup names: what the store accepts in a file name. */
const BACKUP_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** A refusal of BackupCreate/BackupStatus with the gRPC status it maps to. */
export class BackupJobError extends Error {
  constructor(
    message: string,
    readonly code: status,
  ) {
    super(message);
  }
}

interface RunningJob {
  job: BackupJob;
  abort: AbortController;
  done: Promise<void>;
}

export interface BackupJobsOptions {
  replica: () => Replica | null;
  logger: Logger;
  /** The replica's --volume: the backup volume's name when a request names none. */
  volume?: string;
}

export class BackupJobs {
  private readonly jobs = new Map<string, RunningJob>();

  constructor(private readonly opts: BackupJobsOptions) {}

  /** Names of the backups running now. */
  inProgress(): string[] {
    return [...this.jobs.values()].filter((j) => j.job.state === 'in_progress').map((j) => j.job.backupName);
  }

  status(name: string): BackupJob {
    const j = this.jobs.get(name);
    if (j === undefined) {
      throw new BackupJobError(
        `no backup ${name} in this replica process (it never ran here, or it finished long ago: only the last ${FINISHED_JOBS_KEPT} are kept)`,
        status.NOT_FOUND,
      );
    }
    return { ...j.job };
  }

  list(): BackupJob[] {
    const all = [...this.jobs.values()].map((j) => ({ ...j.job }));
    return [...all.filter((j) => j.state === 'in_progress'), ...all.filter((j) => j.state !== 'in_progress')];
  }

  /** Validates, holds the snapshot and starts the job; returns its first status at once. */
  start(req: BackupCreateRequest): BackupJob {
    const replica = this.opts.replica();
    if (replica === null) {
      throw new BackupJobError('backup: the replica is not open', status.FAILED_PRECONDITION);
    }
    const name = req.backupName || `backup-${randomBytes(8).toString('hex')}`;
    if (!BACKUP_NAME.test(name)) {
      throw new BackupJobError(
        `invalid backup name ${JSON.stringify(name)}: use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit`,
        status.INVALID_ARGUMENT,
      );
    }
    if (this.jobs.get(name)?.job.state === 'in_progress') {
      throw new BackupJobError(`backup ${name} is already in progress`, status.ALREADY_EXISTS);
    }
    if (!req.snapshotName) throw new BackupJobError('a snapshot name is required', status.INVALID_ARGUMENT);
    try {
      checkSnapshotName(req.snapshotName);
    } catch (err) {
      throw new BackupJobError((err as Error).message, status.INVALID_ARGUMENT);
    }
    const volumeName = req.volumeName || this.opts.volume || '';
    if (volumeName === '') {
      throw new BackupJobError(
        'a volume name is required (this replica was started without --volume)',
        status.INVALID_ARGUMENT,
      );
    }
    if (!req.targetUrl) throw new BackupJobError('a target URL is required', status.INVALID_ARGUMENT);
    if (!MODES.has(req.mode)) {
      throw new BackupJobError(`backup mode must be incremental or full, got ${req.mode}`, status.INVALID_ARGUMENT);
    }
    if (!COMPRESSIONS.has(req.compression)) {
      throw new BackupJobError(
        `compression must be lz4, gzip or none, got ${req.compression}`,
        status.INVALID_ARGUMENT,
      );
    }
    if (req.concurrency < 0 || req.blockSize < 0 || req.volumeSize < 0) {
      throw new BackupJobError('concurrency, block_size and volume_size must not be negative', status.INVALID_ARGUMENT);
    }
    let driver: BackupStoreDriver;
    try {
      driver = openTarget(req.targetUrl, req.credential);
    } catch (err) {
      throw new BackupJobError((err as Error).message, status.INVALID_ARGUMENT);
    }
    let source: ReplicaSnapshotSource;
    try {
      // The store asks for changed blocks in 2 MiB units whatever its block size (it maps them itself).
      source = new ReplicaSnapshotSource(replica, req.snapshotName, `backup ${name}`);
    } catch (err) {
      void driver.close().catch(() => {});
      throw refusal(err);
    }
    const created = replica.diskMetas().find((d) => d.name === snapshotDiskName(req.snapshotName))?.created ?? '';
    const job: BackupJob = {
      backupName: name,
      snapshotName: req.snapshotName,
      state: 'in_progress',
      progress: 0,
      error: '',
      url: '',
      isIncremental: false,
      blocksUploaded: 0,
      bytesUploaded: 0,
      blocksReused: 0,
      volumeName,
      targetUrl: driver.url,
      bytesDone: 0,
      bytesTotal: 0,
      blockCount: 0,
      startedAt: new Date().toISOString(),
      finishedAt: '',
    };
    const abort = new AbortController();
    const log = this.opts.logger.child({ backup: name, snapshot: req.snapshotName, target: driver.url });
    log.info({ volume: volumeName, mode: req.mode || 'incremental', size: source.size }, 'backup started');
    let loggedStep = 0;
    const onProgress = (p: Progress): void => {
      job.progress = Math.max(0, Math.min(100, Math.floor(p.progress)));
      job.bytesDone = p.bytesDone;
      job.bytesTotal = p.bytesTotal;
      const step = Math.floor(job.progress / 10);
      if (step > loggedStep && job.progress < 100) {
        loggedStep = step;
        log.info({ progress: job.progress, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }, 'backup progress');
      }
    };
    const run = async (): Promise<void> => {
      try {
        const result = await createBackup({
          driver,
          volumeName,
          volumeSize: req.volumeSize || source.size,
          volumeLabels: req.volumeLabels,
          snapshotName: req.snapshotName,
          snapshotCreatedAt: created,
          backupName: name,
          labels: req.labels,
          mode: req.mode === 'full' ? 'full' : 'incremental',
          compression: (req.compression || undefined) as CompressionMethod | undefined,
          blockSize: req.blockSize || undefined,
          source,
          concurrency: req.concurrency || undefined,
          onProgress,
          signal: abort.signal,
        });
        Object.assign(job, {
          state: 'complete',
          progress: 100,
          url: result.url,
          isIncremental: result.isIncremental,
          blocksUploaded: result.blocksUploaded,
          bytesUploaded: result.bytesUploaded,
          blocksReused: result.blocksReused,
          blockCount: result.blockCount,
        });
        job.bytesDone = job.bytesTotal;
        log.info(
          {
            url: result.url,
            incremental: result.isIncremental,
            blocksUploaded: result.blocksUploaded,
            bytesUploaded: result.bytesUploaded,
            blocksReused: result.blocksReused,
          },
          'backup complete',
        );
      } catch (err) {
        job.state = 'error';
        job.error = abort.signal.aborted ? `${String(abort.signal.reason ?? 'aborted')}` : messageOf(err);
        log.error({ err }, 'backup failed');
      } finally {
        job.finishedAt = new Date().toISOString();
        source.close();
        await driver.close().catch(() => {});
        this.forgetOldJobs();
      }
    };
    const entry: RunningJob = { job, abort, done: Promise.resolve() };
    this.jobs.delete(name);
    this.jobs.set(name, entry);
    entry.done = run();
    return { ...job };
  }

  /** Ends every running job (the replica closes): they fail with `reason`. Resolves once they ended. */
  async abortAll(reason: string): Promise<void> {
    const running = [...this.jobs.values()].filter((j) => j.job.state === 'in_progress');
    for (const j of running) j.abort.abort(reason);
    await Promise.allSettled(running.map((j) => j.done));
  }

  private forgetOldJobs(): void {
    const finished = [...this.jobs.values()].filter((j) => j.job.state !== 'in_progress');
    for (const j of finished.slice(0, Math.max(0, finished.length - FINISHED_JOBS_KEPT))) {
      this.jobs.delete(j.job.backupName);
    }
  }
}

function refusal(err: unknown): BackupJobError {
  if (err instanceof ReplicaChainError) {
    const code =
      err.code === 'not-found'
        ? status.NOT_FOUND
        : err.code === 'busy'
          ? status.FAILED_PRECONDITION
          : status.INVALID_ARGUMENT;
    return new BackupJobError(`backup: ${err.message}`, code);
  }
  return new BackupJobError(`backup: ${messageOf(err)}`, status.INTERNAL);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
