// The control plane's view of one node's instance manager: promises and plain types instead of
// callbacks and proto enums, a deadline on every call.
import { type ClientReadableStream, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { unary } from '../grpc/unary.js';
import { type InstanceListReply, InstanceServiceClient } from '../proto/gen/instance.js';
import { infoFromProto, managerInfoFromProto, specToProto } from './instance-proto.js';
import type { InstanceCreateSpec, InstanceInfo, ManagerInfo } from './instance-types.js';

export type { InstanceCreateSpec, InstanceInfo, InstanceState, InstanceType, ManagerInfo } from './instance-types.js';

// Create answers once the process is ready (up to 30 s) or failed; delete may wait out a 10 s grace period.
const CREATE_DEADLINE_MS = 60_000;
const DELETE_DEADLINE_MS = 30_000;
const QUERY_DEADLINE_MS = 10_000;

export class InstanceManagerClient {
  private readonly grpc: InstanceServiceClient;

  /** `address`: HOST:PORT of the instance manager's gRPC service. */
  constructor(readonly address: string) {
    this.grpc = new InstanceServiceClient(address, credentials.createInsecure());
  }

  /** Resolves once the instance is RUNNING, or ERROR (see errorMsg): a failed start is not a rejection. */
  async create(spec: InstanceCreateSpec): Promise<InstanceInfo> {
    return infoFromProto(await unary(this.grpc.instanceCreate, this.grpc, specToProto(spec), CREATE_DEADLINE_MS));
  }

  /** Stops it (SIGTERM, then SIGKILL) and forgets it; rejects with NOT_FOUND for an unknown name. */
  async delete(name: string, opts: { cleanupDataDir?: boolean } = {}): Promise<InstanceInfo> {
    const req = { name, cleanupDataDir: opts.cleanupDataDir ?? false };
    return infoFromProto(await unary(this.grpc.instanceDelete, this.grpc, req, DELETE_DEADLINE_MS));
  }

  /** Removes a replica directory whose process is gone (refused while an instance uses it). */
  async deleteReplicaData(dataDir: string): Promise<void> {
    await unary(this.grpc.replicaDataDelete, this.grpc, { dataDir }, QUERY_DEADLINE_MS);
  }

  async get(name: string): Promise<InstanceInfo | undefined> {
    try {
      return infoFromProto(await unary(this.grpc.instanceGet, this.grpc, { name }, QUERY_DEADLINE_MS));
    } catch (err) {
      if ((err as Partial<ServiceError>).code === status.NOT_FOUND) return undefined;
      throw err;
    }
  }

  async list(): Promise<InstanceInfo[]> {
    const reply = await unary(this.grpc.instanceList, this.grpc, {}, QUERY_DEADLINE_MS);
    return reply.instances.map(infoFromProto);
  }

  /**
   * The full list now and after every change. `onError` is called once when the stream breaks or the
   * instance manager ends it (it stopped); the caller decides when to watch again. Not after stop().
   */
  watch(onList: (instances: InstanceInfo[]) => void, onError: (err: Error) => void): { stop(): void } {
    const call: ClientReadableStream<InstanceListReply> = this.grpc.instanceWatch({});
    let over = false;
    const fail = (err: Error) => {
      if (over) return;
      over = true;
      onError(err);
    };
    call.on('data', (reply: InstanceListReply) => {
      if (!over) onList(reply.instances.map(infoFromProto));
    });
    call.on('error', fail);
    call.on('end', () => fail(new Error(`instance manager ${this.address} ended the watch`)));
    return {
      stop: () => {
        over = true;
        call.cancel();
      },
    };
  }

  /** The last `tailLines` lines (default 100) of the instance's stdout and stderr. */
  async logs(name: string, tailLines = 0): Promise<string> {
    return (await unary(this.grpc.instanceLog, this.grpc, { name, tailLines }, QUERY_DEADLINE_MS)).text;
  }

  async info(): Promise<ManagerInfo> {
    return managerInfoFromProto(await unary(this.grpc.managerInfo, this.grpc, {}, QUERY_DEADLINE_MS));
  }

  close(): void {
    this.grpc.close();
  }
}
