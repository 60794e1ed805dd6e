// ControllerService: the engine's control API (dataplane/proto/engine.proto).
import { status } from '@grpc/grpc-js';
import { handleUnary, statusError } from '../grpc/status-error.js';
import {
  type BackupRestoreRequest,
  type ControllerReplica,
  type ControllerServiceServer,
  type EngineBackupCreateRequest,
  type EngineBackupStatusRequest,
  ReplicaMode as ProtoMode,
  type Volume,
} from '../proto/gen/engine.js';
import type { Engine, ReplicaStatus } from './engine.js';
import type { ReplicaMode } from './replica-backend.js';

export interface FrontendState {
  endpoint: string;
  state: 'up' | 'down';
}

/** The NBD frontend of the engine process: its state, and stopping/starting it (for revert). */
export interface FrontendControl {
  state(): FrontendState;
  stop(): Promise<void>;
  start(): Promise<void>;
}

const toProto: Record<ReplicaMode, ProtoMode> = { RW: ProtoMode.RW, WO: ProtoMode.WO, ERR: ProtoMode.ERR };
const fromProto: Record<number, ReplicaMode> = { [ProtoMode.RW]: 'RW', [ProtoMode.WO]: 'WO', [ProtoMode.ERR]: 'ERR' };

export function controllerService(engine: Engine, frontendControl: FrontendControl): ControllerServiceServer {
  const frontend = () => frontendControl.state();
  const replicaOf = async (s: ReplicaStatus): Promise<ControllerReplica> => {
    const b = s.mode === 'ERR' ? undefined : engine.find(s.address);
    const revisionCounter = b ? ((await b.info().catch(() => null))?.revisionCounter ?? 0) : 0;
    return { address: s.address, mode: toProto[s.mode], error: s.error, revisionCounter };
  };
  const need = (address: string) => {
    if (!address) throw statusError(status.INVALID_ARGUMENT, 'address is required (tcp://HOST:PORT)');
    return address;
  };
  const needName = (name: string) => {
    if (!name) throw statusError(status.INVALID_ARGUMENT, 'a snapshot name is required');
    return name;
  };
  const failed = (code: status) => (err: unknown) => {
    throw statusError(code, err instanceof Error ? err.message : String(err));
  };

  const volume = async (): Promise<Volume> => {
    const replicas = engine.list();
    const rw = replicas.find((r) => r.mode === 'RW');
    const fe = frontend();
    return {
      name: engine.volume,
      size: engine.size,
      replicaCount: replicas.length,
      endpoint: fe.endpoint,
      frontend: 'nbd',
      frontendState: fe.state,
      revisionCounter: rw ? (await replicaOf(rw)).revisionCounter : 0,
    };
  };
  const snapshots = engine.snapshots;

  return {
    volumeGet: handleUnary(volume),
    replicaList: handleUnary(async () => ({ replicas: await Promise.all(engine.list().map(replicaOf)) })),
    replicaGet: handleUnary(async (req: { address: string }) => {
      const s = engine.list().find((r) => r.address === need(req.address));
      if (!s) throw statusError(status.NOT_FOUND, `replica ${req.address} is not part of volume ${engine.volume}`);
      return replicaOf(s);
    }),
    replicaCreate: handleUnary(async (req: { address: string }) =>
      replicaOf(await engine.rebuilder.add(need(req.address)).catch(failed(status.FAILED_PRECONDITION))),
    ),
    replicaDelete: handleUnary(async (req: { address: string }) => {
      await engine.removeReplica(need(req.address)).catch(failed(status.FAILED_PRECONDITION));
      return {};
    }),
    replicaUpdate: handleUnary(async (req: { address: string; mode: ProtoMode }) => {
      const mode = fromProto[req.mode];
      if (!mode) throw statusError(status.INVALID_ARGUMENT, `unknown replica mode ${req.mode}`);
      return replicaOf(await engine.setReplicaMode(need(req.address), mode).catch(failed(status.FAILED_PRECONDITION)));
    }),
    metricsGet: handleUnary(() => engine.metrics.snapshot()),
    snapshotCreate: handleUnary((req: { name: string; labels: Record<string, string> }) =>
      snapshots.create(req.name, req.labels),
    ),
    snapshotList: handleUnary(async () => ({ snapshots: await snapshots.list() })),
    snapshotRemove: handleUnary(async (req: { name: string }) => {
      await snapshots.remove(needName(req.name));
      return {};
    }),
    snapshotPurge: handleUnary(async () => ({ replicas: await snapshots.purge() })),
    snapshotRevert: handleUnary(async (req: { name: string }) => {
      await snapshots.revert(needName(req.name));
      return {};
    }),
    snapshotHash: handleUnary(async (req: { name: string; rehash: boolean }) => ({
      name: req.name,
      ...(await snapshots.hash(needName(req.name), req.rehash)),
    })),
    volumeExpand: handleUnary(async (req: { size: number }) => {
      await snapshots.expand(req.size);
      return volume();
    }),
    volumeFrontendShutdown: handleUnary(async () => {
      await frontendControl.stop();
      return volume();
    }),
    volumeFrontendStart: handleUnary(async () => {
      if (engine.restore.inProgress) {
        throw statusError(
          status.FAILED_PRECONDITION,
          `volume ${engine.volume} is restoring backup ${engine.restore.status().backupName}; start the frontend once it is complete (BackupRestoreStatus)`,
        );
      }
      await frontendControl.start().catch(failed(status.UNAVAILABLE));
      return volume();
    }),
    volumeSalvage: handleUnary(async () => {
      const list = await engine.salvage().catch(failed(status.FAILED_PRECONDITION));
      return { replicas: await Promise.all(list.map(replicaOf)) };
    }),
    replicaRebuildStatus: handleUnary((req: { address: string }) => {
      const address = need(req.address);
      const b = engine.find(address);
      const progress = engine.rebuilder.progress(address);
      if (!b && !progress)
        throw statusError(status.NOT_FOUND, `replica ${address} is not part of volume ${engine.volume}`);
      return {
        address,
        state: progress?.state ?? 'idle',
        error: progress?.error ?? '',
        bytesDone: progress?.bytesDone ?? 0,
        bytesTotal: progress?.bytesTotal ?? 0,
        bytesTransferred: progress?.bytesTransferred ?? 0,
        mode: b ? b.mode : 'ERR',
      };
    }),
    backupCreate: handleUnary((req: EngineBackupCreateRequest) => engine.backups.create(req)),
    backupStatus: handleUnary((req: EngineBackupStatusRequest) => engine.backups.status(req)),
    backupRestore: handleUnary((req: BackupRestoreRequest) => engine.restore.start(req)),
    backupRestoreStatus: handleUnary(() => engine.restore.status()),
  };
}
