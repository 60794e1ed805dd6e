// One replica as the engine sees it: its address, its mode (RW / WO / ERR), the gRPC control client
// and the data-port client that carries its block I/O.
import { credentials } from '@grpc/grpc-js';
import { unary } from '../grpc/unary.js';
import { volumeNameInterceptor } from '../grpc/volume-identity.js';
import { type Replica as ReplicaInfo, ReplicaServiceClient } from '../proto/gen/replica.js';
import { ReplicaDataClient } from '../replica/data-client.js';
import { formatHostPort, parseReplicaAddress } from '../util/address.js';

export type ReplicaMode = 'RW' | 'WO' | 'ERR';

export class ReplicaBackend {
  mode: ReplicaMode = 'RW';
  error = '';
  /** Last time (performance.now) this replica had nothing in flight; the I/O timeout counts from it. */
  idleAt = performance.now();
  lastPingAt = performance.now();

  private constructor(
    readonly address: string,
    readonly control: ReplicaServiceClient,
    readonly data: ReplicaDataClient,
    /** What the replica reported when it was opened (revision counter, whether it was dirty). */
    readonly openedAt: ReplicaInfo,
    /**
     * The replica process had it open already (an engine before us died): its revision counter is
     * exact. One opened from disk after a crash only has the counter of its last flush.
     */
    readonly foundOpen: boolean,
    /** Created empty by this connect: it holds nothing, whatever its revision counter says. */
    readonly createdNow: boolean,
  ) {}

  /**
   * Reach the replica at `address` (tcp://HOST:PORT, its gRPC port), create it if it is empty, open it
   * and connect its data port. Its size must be one `acceptSize` allows (the engine decides: at start a
   * larger one means the volume was expanded; a joining one may be smaller and gets expanded).
   */
  static async connect(
    volume: string,
    address: string,
    size: number,
    dataConnections: number,
    acceptSize: (replicaSize: number) => boolean = (s) => s === size,
  ): Promise<ReplicaBackend> {
    const hp = parseReplicaAddress(address);
    // Every control call says which volume it is for: a replica of another volume refuses it.
    const control = new ReplicaServiceClient(formatHostPort(hp), credentials.createInsecure(), {
      interceptors: [volumeNameInterceptor(volume)],
    });
    try {
      let info = await unary(control.replicaGet, control, {}, 10_000);
      const createdNow = info.state === 'initial';
      if (createdNow) info = await unary(control.replicaCreate, control, { size });
      if (info.state === 'error') throw new Error(`replica is in error: ${info.error}`);
      if (!acceptSize(info.size)) throw new Error(`replica size ${info.size} does not fit the volume size ${size}`);
      const foundOpen = info.state === 'open';
      info = await unary(control.replicaOpen, control, {});
      const data = await ReplicaDataClient.connect(hp.host, info.dataPort, { connections: dataConnections });
      return new ReplicaBackend(address, control, data, info, foundOpen, createdNow);
    } catch (err) {
      control.close();
      throw new Error(`replica ${address}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  async info(): Promise<ReplicaInfo> {
    return unary(this.control.replicaGet, this.control, {}, 10_000);
  }

  /** Close the replica cleanly (revision counter persisted, Dirty=false) and drop the connections. */
  async shutdown(closeReplica: boolean): Promise<void> {
    try {
      if (closeReplica) await unary(this.control.replicaClose, this.control, {}, 30_000);
    } finally {
      await this.data.close().catch(() => {});
      this.control.close();
    }
  }
}
