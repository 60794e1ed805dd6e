// An engine process: the Engine over its replicas, the NBD frontend in front of it and the gRPC
// ControllerService beside it.
import { unlink } from 'node:fs/promises';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { NbdServer } from '../frontend/nbd/server.js';
import { ControllerServiceService } from '../proto/gen/engine.js';
import { formatHostPort, type HostPort } from '../util/address.js';
import { Engine } from './engine.js';
import { controllerService } from './grpc-service.js';

export interface EngineServerOptions {
  volume: string;
  size: number;
  replicas: string[];
  listen: HostPort;
  nbd: { tcp: HostPort } | { socket: string };
  ioTimeoutMs?: number;
  dataConnections?: number;
  logger: Logger;
}

export interface RunningEngine {
  engine: Engine;
  grpcAddress: string;
  /** nbd://HOST:PORT/VOLUME or nbd+unix:///VOLUME?socket=PATH */
  endpoint: string;
  close(): Promise<void>;
}

export async function startEngineServer(opts: EngineServerOptions): Promise<RunningEngine> {
  const engine = new Engine({
    volume: opts.volume,
    size: opts.size,
    logger: opts.logger,
    ioTimeoutMs: opts.ioTimeoutMs,
    dataConnections: opts.dataConnections,
  });
  await engine.start(opts.replicas);

  const nbd = new NbdServer({
    exportName: opts.volume,
    device: engine,
    logger: opts.logger.child({ frontend: 'nbd' }),
  });
  let endpoint: string;
  try {
    if ('tcp' in opts.nbd) {
      const bound = await nbd.listenTcp(opts.nbd.tcp.host, opts.nbd.tcp.port);
      endpoint = `nbd://${formatHostPort(bound)}/${encodeURIComponent(opts.volume)}`;
    } else {
      await unlink(opts.nbd.socket).catch(() => {});
      await nbd.listenUnix(opts.nbd.socket);
      endpoint = `nbd+unix:///${encodeURIComponent(opts.volume)}?socket=${opts.nbd.socket}`;
    }
  } catch (err) {
    await engine.shutdown();
    throw err;
  }
  let frontendUp = true;

  const grpc = new Server();
  grpc.addService(
    ControllerServiceService,
    controllerService(engine, () => ({ endpoint, state: frontendUp ? 'up' : 'down' })),
  );
  let grpcPort: number;
  try {
    grpcPort = await new Promise<number>((resolve, reject) =>
      grpc.bindAsync(formatHostPort(opts.listen), ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
  } catch (err) {
    await nbd.close();
    await engine.shutdown();
    throw new Error(`engine gRPC cannot listen on ${formatHostPort(opts.listen)}`, { cause: err });
  }

  let closing: Promise<void> | null = null;
  return {
    engine,
    grpcAddress: formatHostPort({ host: opts.listen.host, port: grpcPort }),
    endpoint,
    close: () => {
      closing ??= (async () => {
        frontendUp = false;
        await nbd.close();
        await engine.shutdown();
        await new Promise<void>((resolve) => grpc.tryShutdown(() => resolve()));
        if ('socket' in opts.nbd) await unlink(opts.nbd.socket).catch(() => {});
      })();
      return closing;
    },
  };
}
