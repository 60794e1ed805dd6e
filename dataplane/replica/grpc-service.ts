// ReplicaService (dataplane/proto/replica.proto): the control port of one replica process. The
// replica stays closed until an engine opens it (Longhorn semantics); opening an open replica just
// reports it, so an engine that restarts takes over the same replica process.

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { type handleUnaryCall, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { statusError } from '../grpc/status-error.js';
import { checkVolumeName } from '../grpc/volume-identity.js';
import type {
  BackupCreateRequest,
  BackupJob,
  DiskInfo as DiskInfoMessage,
  PurgeReply,
  RebuildStatus,
  Replica as ReplicaMessage,
  ReplicaRebuildRequest,
  ReplicaServiceServer,
  SnapshotChecksum,
} from '../proto/gen/replica.js';
import { RebuildTarget } from '../sync/rebuild-target.js';
import { BackupJobError, BackupJobs } from './backup-jobs.js';
import { Replica, ReplicaChainError, type ReplicaInfo, type SnapshotOptions } from './store/replica.js';

/** A control request that failed, with the gRPC status it maps to. */
export class ReplicaControlError extends Error {
  constructor(
    message: string,
    readonly code: status,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface ReplicaControlOptions {
  dir: string;
  logger: Logger;
  /** This replica's volume (sent along when it pulls from another replica during a rebuild). */
  volume?: string;
}

/**
 * Owns the one replica of this process: which Replica object is open (the data port asks it) and the
 * create/open/close transitions, run one at a time.
 */
export class ReplicaControl {
  readonly dir: string;
  /** Reported in every Replica message; set once the data port listens. */
  dataPort = 0;
  private current: Replica | null = null;
  /** volume.meta said Dirty when this process opened the replica: it was not closed cleanly before. */
  private openedDirty = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly logger: Logger;
  readonly rebuild: RebuildTarget;
  readonly backups: BackupJobs;

  constructor(opts: ReplicaControlOptions) {
    this.dir = opts.dir;
    this.logger = opts.logger;
    this.rebuild = new RebuildTarget({
      dir: opts.dir,
      replica: () => this.current,
      logger: opts.logger,
      volume: opts.volume,
    });
    this.backups = new BackupJobs({
      replica: () => this.current,
      logger: opts.logger.child({ component: 'backup' }),
      volume: opts.volume,
    });
  }

  /** Starts a backup job (BackupCreate); returns at once. */
  startBackup(req: BackupCreateRequest): BackupJob {
    try {
      return this.backups.start(req);
    } catch (err) {
      if (err instanceof BackupJobError) throw new ReplicaControlError(err.message, err.code, { cause: err });
      throw err;
    }
  }

  backupStatus(name: string): BackupJob {
    if (!name) throw new ReplicaControlError('a backup name is required', status.INVALID_ARGUMENT);
    try {
      return this.backups.status(name);
    } catch (err) {
      if (err instanceof BackupJobError) throw new ReplicaControlError(err.message, err.code, { cause: err });
      throw err;
    }
  }

  /** The open replica, or null while closed. */
  get replica(): Replica | null {
    return this.current;
  }

  get(): ReplicaMessage {
    let info: ReplicaInfo;
    try {
      info = this.current !== null ? this.current.info() : Replica.describe(this.dir);
    } catch (err) {
      throw new ReplicaControlError(`cannot read the replica in ${this.dir}: ${messageOf(err)}`, status.INTERNAL, {
        cause: err,
      });
    }
    return toMessage(info, this.dataPort, this.dir, {
      headMtimeUs: headMtimeUs(this.dir, info.head),
      openedDirty: this.current !== null && this.openedDirty,
      unmapMarkChainRemoved: this.current?.unmapMarkChainRemoved ?? false,
      backupsInProgress: this.backups.inProgress(),
    });
  }

  snapshot(name: string, opts: SnapshotOptions): Promise<ReplicaMessage> {
    return this.withOpen('snapshot', (r) => r.snapshot(name, opts));
  }

  revert(name: string, created: string): Promise<ReplicaMessage> {
    return this.withOpen('revert', (r) => r.revert(name, created));
  }

  expand(size: number): Promise<ReplicaMessage> {
    return this.withOpen('expand', (r) => r.expand(size));
  }

  markRemoved(name: string): Promise<ReplicaMessage> {
    return this.withOpen('remove snapshot', (r) => r.markRemoved(name));
  }

  setRebuilding(rebuilding: boolean): Promise<ReplicaMessage> {
    return this.withOpen('set rebuilding', (r) => r.setRebuilding(rebuilding));
  }

  setRevisionCounter(counter: number): Promise<ReplicaMessage> {
    return this.withOpen('set revision counter', (r) => r.setRevisionCounter(counter));
  }

  setUnmapMarkChainRemoved(enabled: boolean): Promise<ReplicaMessage> {
    return this.withOpen('set unmap mode', (r) => {
      r.unmapMarkChainRemoved = enabled;
    });
  }

  /** Long-running: not queued behind the other transitions, the store refuses what cannot overlap. */
  async purge(): Promise<PurgeReply> {
    const r = this.openReplica('purge');
    const log: string[] = [];
    try {
      await r.purge((p) => {
        const a = p.action;
        log.push(a.kind === 'coalesce' ? `coalesce ${a.parent} into ${a.child}` : `${a.kind} ${a.disk}`);
      });
    } catch (err) {
      throw chainError('purge', err);
    }
    this.logger.info({ actions: log }, 'snapshots purged');
    return { actions: log.length, log };
  }

  async hash(name: string, rehash: boolean): Promise<SnapshotChecksum> {
    const r = this.openReplica('hash');
    try {
      const { checksum, rehashed } = await r.hashSnapshot(name, rehash);
      if (checksum.silentlyCorrupted)
        this.logger.error({ snapshot: name, checksum }, 'snapshot file silently corrupted');
      return {
        name,
        method: checksum.method,
        checksum: checksum.checksum,
        silentlyCorrupted: checksum.silentlyCorrupted,
        rehashed,
        lastHashedAt: checksum.lastHashedAt,
      };
    } catch (err) {
      throw chainError('hash', err);
    }
  }

  startRebuild(req: ReplicaRebuildRequest): RebuildStatus {
    if (!req.fromAddress) throw new ReplicaControlError('from_address is required', status.INVALID_ARGUMENT);
    try {
      return this.rebuild.start(req);
    } catch (err) {
      throw new ReplicaControlError(messageOf(err), status.FAILED_PRECONDITION, { cause: err });
    }
  }

  private openReplica(op: string): Replica {
    if (this.current === null) {
      throw new ReplicaControlError(`${op}: the replica in ${this.dir} is not open`, status.FAILED_PRECONDITION);
    }
    return this.current;
  }

  /** Runs a synchronous chain operation on the open replica, queued with open/close. */
  private withOpen(op: string, fn: (r: Replica) => void): Promise<ReplicaMessage> {
    return this.exclusive(() => {
      const r = this.openReplica(op);
      try {
        fn(r);
      } catch (err) {
        throw chainError(op, err);
      }
      return this.get();
    });
  }

  create(size: number): Promise<ReplicaMessage> {
    return this.exclusive(() => {
      checkSize(size);
      const state = this.current !== null ? 'open' : Replica.describe(this.dir).state;
      if (state !== 'initial') {
        throw new ReplicaControlError(
          `a replica already exists in ${this.dir} (state ${state})`,
          status.ALREADY_EXISTS,
        );
      }
      try {
        Replica.create(this.dir, size);
      } catch (err) {
        throw new ReplicaControlError(`cannot create a replica in ${this.dir}: ${messageOf(err)}`, status.INTERNAL, {
          cause: err,
        });
      }
      this.logger.info({ dir: this.dir, size }, 'replica created');
      return this.get();
    });
  }

  open(): Promise<ReplicaMessage> {
    return this.exclusive(() => {
      if (this.current !== null) return this.get();
      const info = Replica.describe(this.dir);
      if (info.state === 'initial') {
        throw new ReplicaControlError(
          `there is no replica in ${this.dir}; call ReplicaCreate first`,
          status.FAILED_PRECONDITION,
        );
      }
      if (info.state === 'error') {
        throw new ReplicaControlError(
          `the replica in ${this.dir} is in error: ${info.error}`,
          status.FAILED_PRECONDITION,
        );
      }
      try {
        this.openedDirty = info.dirty;
        this.current = Replica.open(this.dir);
      } catch (err) {
        throw new ReplicaControlError(`cannot open the replica in ${this.dir}: ${messageOf(err)}`, status.INTERNAL, {
          cause: err,
        });
      }
      this.logger.info({ dir: this.dir, revisionCounter: this.current.revisionCounter }, 'replica opened');
      return this.get();
    });
  }

  /** Persists the revision counter, marks the meta clean, closes the layers. A closed replica is left as is. */
  close(): Promise<ReplicaMessage> {
    return this.exclusive(async () => {
      const r = this.current;
      if (r === null) return this.get();
      // A backup reads through the open layers: it ends (as failed) before they close.
      await this.backups.abortAll('the replica was closed while the backup ran');
      // From here on the data port answers "not open"; the object is not used again even if close fails.
      this.current = null;
      try {
        await r.close();
      } catch (err) {
        throw new ReplicaControlError(`cannot close the replica in ${this.dir}: ${messageOf(err)}`, status.INTERNAL, {
          cause: err,
        });
      }
      this.logger.info({ dir: this.dir, revisionCounter: r.revisionCounter }, 'replica closed');
      return this.get();
    });
  }

  private exclusive<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.then(
      () => {},
      () => {},
    );
    return run;
  }
}

/** The gRPC handlers of ReplicaService over a ReplicaControl. */
export function createReplicaService(control: ReplicaControl, logger: Logger, volume?: string): ReplicaServiceServer {
  const handle =
    <Req, Res>(name: string, fn: (req: Req) => Res | Promise<Res>): handleUnaryCall<Req, Res> =>
    (call, callback) => {
      Promise.resolve()
        .then(() => {
          checkVolumeName(call.metadata, volume);
          return fn(call.request);
        })
        .then(
          (res) => callback(null, res),
          (err: unknown) => {
            const code =
              err instanceof ReplicaControlError
                ? err.code
                : typeof (err as { code?: unknown }).code === 'number'
                  ? (err as { code: status }).code
                  : status.INTERNAL;
            if (code === status.INTERNAL) logger.error({ err, rpc: name }, 'replica control request failed');
            callback(statusError(code, messageOf(err)), null);
          },
        );
    };
  return {
    replicaCreate: handle('ReplicaCreate', (req) => control.create(req.size)),
    replicaOpen: handle('ReplicaOpen', () => control.open()),
    replicaClose: handle('ReplicaClose', () => control.close()),
    replicaGet: handle('ReplicaGet', () => control.get()),
    replicaSnapshot: handle('ReplicaSnapshot', (req) =>
      control.snapshot(req.name, { userCreated: req.userCreated, created: req.created, labels: req.labels }),
    ),
    replicaRevert: handle('ReplicaRevert', (req) => control.revert(req.name, req.created)),
    replicaExpand: handle('ReplicaExpand', (req) => control.expand(req.size)),
    diskMarkAsRemoved: handle('DiskMarkAsRemoved', (req) => control.markRemoved(req.name)),
    snapshotPurge: handle('SnapshotPurge', () => control.purge()),
    snapshotHash: handle('SnapshotHash', (req) => control.hash(req.name, req.rehash)),
    rebuildingSet: handle('RebuildingSet', (req) => control.setRebuilding(req.rebuilding)),
    revisionCounterSet: handle('RevisionCounterSet', (req) => control.setRevisionCounter(req.counter)),
    unmapMarkChainRemovedSet: handle('UnmapMarkChainRemovedSet', (req) =>
      control.setUnmapMarkChainRemoved(req.enabled),
    ),
    replicaRebuild: handle('ReplicaRebuild', (req) => control.startRebuild(req)),
    replicaRebuildStatus: handle('ReplicaRebuildStatus', () => control.rebuild.status()),
    backupCreate: handle('BackupCreate', (req) => control.startBackup(req)),
    backupStatus: handle('BackupStatus', (req) => control.backupStatus(req.backupName)),
    backupList: handle('BackupList', () => ({ jobs: control.backups.list() })),
  };
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
    throw new ReplicaControlError(
      `replica size must be a positive multiple of 4096 bytes, got ${size}`,
      status.INVALID_ARGUMENT,
    );
  }
}

/** A store refusal maps to the status a caller can act on; anything else stays INTERNAL. */
function chainError(op: string, err: unknown): ReplicaControlError {
  if (err instanceof ReplicaControlError) return err;
  const codes: Record<ReplicaChainError['code'], status> = {
    'not-found': status.NOT_FOUND,
    exists: status.ALREADY_EXISTS,
    limit: status.RESOURCE_EXHAUSTED,
    invalid: status.INVALID_ARGUMENT,
    busy: status.FAILED_PRECONDITION,
  };
  const code = err instanceof ReplicaChainError ? codes[err.code] : status.INTERNAL;
  return new ReplicaControlError(err instanceof ReplicaChainError ? messageOf(err) : `${op}: ${messageOf(err)}`, code, {
    cause: err,
  });
}

function headMtimeUs(dir: string, head: string): number {
  if (head === '') return 0;
  try {
    return Number(statSync(join(dir, head), { bigint: true }).mtimeNs / 1000n);
  } catch {
    return 0;
  }
}

function toMessage(
  info: ReplicaInfo,
  dataPort: number,
  dir: string,
  extra: Pick<ReplicaMessage, 'headMtimeUs' | 'openedDirty' | 'unmapMarkChainRemoved' | 'backupsInProgress'>,
): ReplicaMessage {
  const disks: Record<string, DiskInfoMessage> = {};
  for (const [name, d] of Object.entries(info.disks)) {
    disks[name] = {
      name: d.name,
      parent: d.parent,
      children: [...d.children],
      removed: d.removed,
      userCreated: d.userCreated,
      created: d.created,
      size: d.size,
      labels: { ...d.labels },
    };
  }
  return {
    state: info.state,
    dirty: info.dirty,
    rebuilding: info.rebuilding,
    head: info.head,
    parent: info.parent,
    size: info.size,
    sectorSize: info.sectorSize,
    chain: [...info.chain],
    disks,
    revisionCounter: info.revisionCounter,
    headFileSize: info.headFileSize,
    error: info.error,
    dataPort,
    dir,
    ...extra,
  };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
