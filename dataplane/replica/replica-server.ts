// One replica process: ReplicaService and SyncService (rebuild source) on gRPC port P, the block I/O data port on P+1 (Longhorn's
// layout). The replica directory is created on first start; the replica then stays closed until an
// engine calls ReplicaOpen.
import { mkdirSync } from 'node:fs';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { type Logger, pino } from 'pino';
import { ReplicaServiceService } from '../proto/gen/replica.js';
import { SyncServiceService } from '../proto/gen/sync.js';
import { createSyncService } from '../sync/sync-source.js';
import { SyncFileServer } from '../sync/sync-stream.js';
import { formatHostPort } from '../util/address.js';
import { ReplicaDataServer } from './data-server.js';
import { createReplicaService, ReplicaControl } from './grpc-service.js';
import { Replica } from './store/replica.js';

export interface ReplicaServerOptions {
  dir: string;
  /** Volume size in bytes; used to create the replica, checked against an existing one. Optional if it exists. */
  size?: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** gRPC port; the data port is port+1. 0 picks a free pair. */
  port: number;
  /** The volume this replica belongs to; engines and rebuilding replicas of another volume are refused. */
  volume?: string;
  logger?: Logger;
}

export interface ReplicaServer {
  grpcPort: number;
  dataPort: number;
  /** The replica's directory. */
  dir: string;
  /** Stops both ports and closes the replica cleanly (revision counter persisted, Dirty=false). */
  close(): Promise<void>;
}

/** Attempts at finding a free port pair when asked for port 0. */
const PORT_PAIR_ATTEMPTS = 20;
const GRPC_SHUTDOWN_GRACE_MS = 2_000;

export async function startReplicaServer(opts: ReplicaServerOptions): Promise<ReplicaServer> {
  const { dir, size, port } = opts;
  const host = opts.host ?? '127.0.0.1';
  const logger = opts.logger ?? pino({ name: 'replica' });
  if (!Number.isInteger(port) || port < 0 || port > 65534) {
    throw new Error(`replica port must be in [0, 65534] (the data port is port+1), got ${port}`);
  }
  prepareReplica(dir, size, logger);

  const control = new ReplicaControl({ dir, logger, volume: opts.volume });
  const service = createReplicaService(control, logger, opts.volume);
  const headName = () => control.replica?.headName ?? null;
  const sync = createSyncService({ dir, headName, volume: opts.volume });
  const syncFiles = new SyncFileServer(dir, headName, logger);
  let grpc!: Server;
  let data!: ReplicaDataServer;
  let grpcPort = 0;
  let dataPort = 0;
  for (let attempt = 1; ; attempt++) {
    const g = new Server();
    g.addService(ReplicaServiceService, service);
    g.addService(SyncServiceService, sync);
    try {
      grpcPort = await bindGrpc(g, formatHostPort({ host, port }));
    } catch (err) {
      g.forceShutdown();
      throw new Error(`replica gRPC port ${formatHostPort({ host, port })}: ${messageOf(err)}`, { cause: err });
    }
    const d = new ReplicaDataServer({ getReplica: () => control.replica, logger, syncFiles });
    try {
      dataPort = await d.listen(grpcPort + 1, host);
      grpc = g;
      data = d;
      break;
    } catch (err) {
      g.forceShutdown();
      const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (port !== 0 || !inUse || attempt >= PORT_PAIR_ATTEMPTS) {
        throw new Error(`replica data port ${formatHostPort({ host, port: grpcPort + 1 })}: ${messageOf(err)}`, {
          cause: err,
        });
      }
    }
  }
  control.dataPort = dataPort;
  logger.info({ dir, grpcPort, dataPort }, 'replica serving (closed until an engine opens it)');

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const grpcDown = shutdownGrpc(grpc);
      await data.close();
      await control.close();
      await grpcDown;
      logger.info({ dir }, 'replica server stopped');
    })();
    return closing;
  };
  return { grpcPort, dataPort, dir, close };
}

/** Creates the replica if the directory has none; refuses one of another size. */
function prepareReplica(dir: string, size: number | undefined, logger: Logger): void {
  mkdirSync(dir, { recursive: true });
  const info = Replica.describe(dir);
  if (info.state === 'initial') {
    if (size === undefined) throw new Error(`there is no replica in ${dir} and no size was given to create one`);
    if (!Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
      throw new Error(`replica size must be a positive multiple of 4096 bytes, got ${size}`);
    }
    Replica.create(dir, size);
    logger.info({ dir, size }, 'replica created');
    return;
  }
  if (info.state === 'error') {
    // Serve it anyway: ReplicaGet reports the error and ReplicaOpen refuses, which tells the operator more
    // than a process that will not start.
    logger.error({ dir, error: info.error }, 'the replica is in error');
    return;
  }
  if (size !== undefined && info.size !== size) {
    throw new Error(`the replica in ${dir} has size ${info.size} bytes, not the requested ${size}`);
  }
}

function bindGrpc(server: Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, ServerCredentials.createInsecure(), (err, boundPort) => {
      if (err) reject(err);
      else resolve(boundPort);
    });
  });
}

function shutdownGrpc(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, GRPC_SHUTDOWN_GRACE_MS);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
