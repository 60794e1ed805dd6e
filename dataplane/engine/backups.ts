// Backups as the engine drives them (reference/longhorn-engine.md §5.5): a backup runs in one RW
// replica process that holds the snapshot (BackupCreate is forwarded there and the engine remembers
// where); BackupStatus asks that replica. Restores are VolumeRestore's (restore.ts).
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { statusError } from '../grpc/status-error.js';
import { unary } from '../grpc/unary.js';
import type { EngineBackupCreateRequest, EngineBackupJob, EngineBackupStatusRequest } from '../proto/gen/engine.js';
import type { BackupJob, Replica as ReplicaInfo } from '../proto/gen/replica.js';
import { snapshotDiskName } from '../replica/store/disk-names.js';
import type { Engine } from './engine.js';
import type { ReplicaBackend } from './replica-backend.js';

const CONTROL_DEADLINE_MS = 60_000;
/** Backup name → the replica running it; the oldest entries go past this many. */
const REMEMBERED = 500;

export class VolumeBackups {
  private readonly where = new Map<string, string>();

  constructor(
    private readonly engine: Engine,
    private readonly log: Logger,
    /** Why a backup cannot start now (a restore writing the volume), or null. */
    private readonly busy: () => string | null,
  ) {}

  async create(req: EngineBackupCreateRequest): Promise<EngineBackupJob> {
    if (!req.snapshotName) throw statusError(status.INVALID_ARGUMENT, 'a snapshot name is required');
    if (!req.targetUrl) throw statusError(status.INVALID_ARGUMENT, 'a backup target URL is required');
    const why = this.busy();
    if (why !== null)
      throw statusError(status.FAILED_PRECONDITION, `cannot back up volume ${this.engine.volume}: ${why}`);
    const b = await this.pickReplica(req.snapshotName);
    const job = await unary(
      b.control.backupCreate,
      b.control,
      { ...req, volumeName: req.volumeName || this.engine.volume },
      CONTROL_DEADLINE_MS,
    ).catch(forwarded);
    this.remember(job.backupName, b.address);
    this.log.info(
      { backup: job.backupName, snapshot: job.snapshotName, replica: b.address, target: job.targetUrl },
      'backup started on a replica',
    );
    return toEngineJob(b.address, job);
  }

  async status(req: EngineBackupStatusRequest): Promise<EngineBackupJob> {
    if (!req.backupName) throw statusError(status.INVALID_ARGUMENT, 'a backup name is required');
    const address = req.replicaAddress || this.where.get(req.backupName);
    if (address) {
      const b = this.engine.find(address);
      if (b === undefined) {
        throw statusError(status.NOT_FOUND, `replica ${address} is not part of volume ${this.engine.volume}`);
      }
      const job = await unary(b.control.backupStatus, b.control, { backupName: req.backupName }).catch(forwarded);
      return toEngineJob(b.address, job);
    }
    // Started by someone else (the control plane straight on a replica): ask every replica.
    for (const b of this.engine.healthyReplicas()) {
      const job = await unary(b.control.backupStatus, b.control, { backupName: req.backupName }).catch(() => null);
      if (job !== null) {
        this.remember(job.backupName, b.address);
        return toEngineJob(b.address, job);
      }
    }
    throw statusError(status.NOT_FOUND, `no replica of volume ${this.engine.volume} knows backup ${req.backupName}`);
  }

  /**
   * Refuses `what` (purge, revert) while a replica reads a snapshot for a backup: they would change
   * the files under it. The replicas refuse too; asking first keeps them from being failed for it.
   */
  async checkNoBackup(what: string): Promise<void> {
    const targets = this.engine.healthyReplicas();
    const infos = await Promise.all(targets.map((b) => b.info().catch(() => null)));
    for (const [i, info] of infos.entries()) {
      const running = info?.backupsInProgress ?? [];
      if (running.length > 0) {
        throw statusError(
          status.FAILED_PRECONDITION,
          `${what} refused: backup ${running.join(', ')} in progress on replica ${targets[i]!.address}; try again when it is done`,
        );
      }
    }
  }

  /** An RW replica whose chain holds the snapshot, one with no backup running first. */
  private async pickReplica(snapshot: string): Promise<ReplicaBackend> {
    const rw = this.engine.rwReplicas();
    if (rw.length === 0)
      throw statusError(status.FAILED_PRECONDITION, `volume ${this.engine.volume} has no RW replica`);
    const infos = await Promise.all(rw.map((b) => b.info().catch(() => null)));
    const holders = rw
      .map((b, i) => ({ b, info: infos[i] }))
      .filter((x): x is { b: ReplicaBackend; info: ReplicaInfo } => x.info != null && inChain(x.info, snapshot));
    if (holders.length === 0) {
      const exists = infos.some((info) => info?.disks[snapshotDiskName(snapshot)] !== undefined);
      throw statusError(
        exists ? status.FAILED_PRECONDITION : status.NOT_FOUND,
        exists
          ? `snapshot ${snapshot} of volume ${this.engine.volume} is not in the current chain (a revert left it aside); it cannot be backed up`
          : `snapshot ${snapshot} does not exist in volume ${this.engine.volume}`,
      );
    }
    const idle = holders.find((x) => x.info.backupsInProgress.length === 0);
    return (idle ?? holders[0]!).b;
  }

  private remember(name: string, address: string): void {
    this.where.delete(name);
    this.where.set(name, address);
    if (this.where.size > REMEMBERED) this.where.delete(this.where.keys().next().value!);
  }
}

function inChain(info: ReplicaInfo, snapshot: string): boolean {
  return info.chain.includes(snapshotDiskName(snapshot));
}

function toEngineJob(replicaAddress: string, job: BackupJob): EngineBackupJob {
  return { replicaAddress, ...job };
}

/** A replica's refusal keeps its code and its own words. */
function forwarded(err: unknown): never {
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  const message = typeof e.details === 'string' && e.details ? e.details : String(e.message ?? err);
  throw statusError(typeof e.code === 'number' ? (e.code as status) : status.INTERNAL, message);
}
