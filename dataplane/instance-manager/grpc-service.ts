// InstanceService (dataplane/proto/instance.proto) over the supervisor.
import { type ServerWritableStream, status } from '@grpc/grpc-js';
import { handleUnary, statusError } from '../grpc/status-error.js';
import type { Empty, InstanceListReply, InstanceServiceServer, ManagerInfoReply } from '../proto/gen/instance.js';
import { InstanceError, type InstanceErrorReason } from './instance-error.js';
import { infoToProto, specFromProto } from './instance-proto.js';
import type { InstanceSupervisor } from './instance-supervisor.js';

const codes: Record<InstanceErrorReason, status> = {
  invalid: status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  busy: status.FAILED_PRECONDITION,
  'no-ports': status.RESOURCE_EXHAUSTED,
};

/** Run a supervisor call, turning its InstanceErrors into the matching status codes. */
async function mapped<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof InstanceError) throw statusError(codes[err.reason], err.message);
    throw err;
  }
}

const DEFAULT_LOG_LINES = 100;
const MAX_LOG_LINES = 10_000;

export interface InstanceService {
  implementation: InstanceServiceServer;
  /** End every open watch stream (a server does not shut down while streams are open). */
  endWatches(): void;
}

export function instanceService(supervisor: InstanceSupervisor, info: ManagerInfoReply): InstanceService {
  // Each open watch and how to unsubscribe it.
  const watches = new Map<ServerWritableStream<Empty, InstanceListReply>, () => void>();
  const listReply = (): InstanceListReply => ({ instances: supervisor.list().map(infoToProto) });
  const needName = (name: string) => {
    if (!name) throw statusError(status.INVALID_ARGUMENT, 'an instance name is required');
    return name;
  };

  const implementation: InstanceServiceServer = {
    instanceCreate: handleUnary((req) => mapped(async () => infoToProto(await supervisor.create(specFromProto(req))))),
    instanceDelete: handleUnary((req) =>
      mapped(async () =>
        infoToProto(await supervisor.delete(needName(req.name), { cleanupDataDir: req.cleanupDataDir })),
      ),
    ),
    instanceGet: handleUnary((req) => {
      const found = supervisor.get(needName(req.name));
      if (!found) throw statusError(status.NOT_FOUND, `no instance ${req.name}`);
      return infoToProto(found);
    }),
    instanceList: handleUnary(listReply),
    instanceLog: handleUnary((req) =>
      mapped(() => ({
        text: supervisor.logs(needName(req.name), Math.min(req.tailLines || DEFAULT_LOG_LINES, MAX_LOG_LINES)),
      })),
    ),
    managerInfo: handleUnary(() => info),
    replicaDataDelete: handleUnary((req) =>
      mapped(async () => {
        supervisor.removeReplicaDataDir(req.dataDir);
        return {};
      }),
    ),
    instanceWatch: (call) => {
      const send = () => call.write(listReply());
      const unsubscribe = supervisor.onChange(send);
      const done = () => {
        unsubscribe();
        watches.delete(call);
      };
      watches.set(call, done);
      call.on('cancelled', done);
      call.on('close', done);
      call.on('error', done);
      send();
    },
  };
  return {
    implementation,
    endWatches: () => {
      for (const [call, done] of watches) {
        done();
        call.end();
      }
    },
  };
}
