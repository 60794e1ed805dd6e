// An engine process: the Engine over its replicas, the NBD frontend in front of it and the gRPC
// ControllerService beside it.
import { unlink } from 'node:fs/promises';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { NbdServer } from '../frontend/nbd/server.js';
import { listenFailureReason } from '../grpc/listen-failure.js';
import { ControllerServiceService } from '../proto/gen/engine.js';
import { formatHostPort, type HostPort } from '../util/address.js';
import { Engine } from './engine.js';
import { controllerService, type FrontendControl } from './grpc-service.js';

export interface EngineServerOptions {
  volume: string;
  size: number;
  replicas: string[];
  listen: HostPort;
  nbd: { tcp: HostPort } | { socket: string };
  ioTimeoutMs?: number;
  dataConnections?: number;
  unmapMarkSnapChainRemoved?: boolean;
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
    unmapMarkSnapChainRemoved: opts.unmapMarkSnapChainRemoved,
  });
  await engine.start(opts.replicas);

  // The frontend can be stopped and started again (revert needs it down); each start is a new server
  // on the same address, so the endpoint stays the same.
  let nbd: NbdServer | null = null;
  let endpoint = '';
  let tcpAddress: HostPort | null = 'tcp' in opts.nbd ? opts.nbd.tcp : null;
  const startFrontend = async (): Promise<void> => {
    if (nbd !== null) return;
    const server = new NbdServer({
      exportName: opts.volume,
      device: engine,
      logger: opts.logger.child({ frontend: 'nbd' }),
    });
    if (tcpAddress !== null) {
      const bound = await server.listenTcp(tcpAddress.host, tcpAddress.port);
      tcpAddress = bound;
      endpoint = `nbd://${formatHostPort(bound)}/${encodeURIComponent(opts.volume)}`;
    } else if ('socket' in opts.nbd) {
      await unlink(opts.nbd.socket).catch(() => {});
      await server.listenUnix(opts.nbd.socket);
      endpoint = `nbd+unix:///${encodeURIComponent(opts.volume)}?socket=${opts.nbd.socket}`;
    }
    nbd = server;
    engine.frontendActive = true;
  };
  const stopFrontend = async (): Promise<void> => {
    const server = nbd;
    if (server === null) return;
    nbd = null;
    await server.close();
    engine.frontendActive = false;
  };
  try {
    await startFrontend();
  } catch (err) {
    await engine.shutdown();
    throw err;
  }
  const frontend: FrontendControl = {
    state: () => ({ endpoint, state: nbd !== null ? 'up' : 'down' }),
    start: startFrontend,
    stop: stopFrontend,
  };

  const grpc = new Server();
  grpc.addService(ControllerServiceService, controllerService(engine, frontend));
  let grpcPort: number;
  try {
    grpcPort = await new Promise<number>((resolve, reject) =>
      grpc.bindAsync(formatHostPort(opts.listen), ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
  } catch (err) {
    await stopFrontend();
    await engine.shutdown();
    const why = await listenFailureReason(opts.listen.host, opts.listen.port);
    throw new Error(`engine gRPC cannot listen on ${formatHostPort(opts.listen)}${why ? ` (${why})` : ''}`, {
      cause: err,
    });
  }

  let closing: Promise<void> | null = null;
  return {
    engine,
    grpcAddress: formatHostPort({ host: opts.listen.host, port: grpcPort }),
    endpoint,
    close: () => {
      closing ??= (async () => {
        await stopFrontend();
        await engine.shutdown();
        await new Promise<void>((resolve) => grpc.tryShutdown(() => resolve()));
        if ('socket' in opts.nbd) await unlink(opts.nbd.socket).catch(() => {});
      })();
      return closing;
    },
  };
}
