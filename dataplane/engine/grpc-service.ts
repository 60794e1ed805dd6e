// ControllerService: the engine's control API (dataplane/proto/engine.proto).
import { status } from '@grpc/grpc-js';
import { handleUnary, statusError } from '../grpc/status-error.js';
import {
  type ControllerReplica,
  type ControllerServiceServer,
  ReplicaMode as ProtoMode,
  type Volume,
} from '../proto/gen/engine.js';
import type { Engine, ReplicaStatus } from './engine.js';
import type { ReplicaMode } from './replica-backend.js';

export interface FrontendState {
  endpoint: string;
  state: 'up' | 'down';
}

const toProto: Record<ReplicaMode, ProtoMode> = { RW: ProtoMode.RW, WO: ProtoMode.WO, ERR: ProtoMode.ERR };
const fromProto: Record<number, ReplicaMode> = { [ProtoMode.RW]: 'RW', [ProtoMode.WO]: 'WO', [ProtoMode.ERR]: 'ERR' };

export function controllerService(engine: Engine, frontend: () => FrontendState): ControllerServiceServer {
  const replicaOf = async (s: ReplicaStatus): Promise<ControllerReplica> => {
    const b = s.mode === 'ERR' ? undefined : engine.find(s.address);
    const revisionCounter = b ? ((await b.info().catch(() => null))?.revisionCounter ?? 0) : 0;
    return { address: s.address, mode: toProto[s.mode], error: s.error, revisionCounter };
  };
  const need = (address: string) => {
    if (!address) throw statusError(status.INVALID_ARGUMENT, 'address is required (tcp://HOST:PORT)');
    return address;
  };
  const failed = (code: status) => (err: unknown) => {
    throw statusError(code, err instanceof Error ? err.message : String(err));
  };

  return {
    volumeGet: handleUnary(async (): Promise<Volume> => {
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
    }),
    replicaList: handleUnary(async () => ({ replicas: await Promise.all(engine.list().map(replicaOf)) })),
    replicaGet: handleUnary(async (req: { address: string }) => {
      const s = engine.list().find((r) => r.address === need(req.address));
      if (!s) throw statusError(status.NOT_FOUND, `replica ${req.address} is not part of volume ${engine.volume}`);
      return replicaOf(s);
    }),
    replicaCreate: handleUnary(async (req: { address: string }) =>
      replicaOf(await engine.addReplica(need(req.address)).catch(failed(status.FAILED_PRECONDITION))),
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
  };
}
