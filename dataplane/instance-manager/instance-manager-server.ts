// An instance manager process: the supervisor of the node's instances behind the gRPC InstanceService.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { listenFailureReason } from '../grpc/listen-failure.js';
import { InstanceServiceService } from '../proto/gen/instance.js';
import { formatHostPort, type HostPort } from '../util/address.js';
import { lockDataDir } from './data-dir-lock.js';
import { instanceService } from './grpc-service.js';
import type { Launcher } from './instance-process.js';
import { InstanceSupervisor } from './instance-supervisor.js';
import type { PortRange } from './port-allocator.js';

export interface InstanceManagerOptions {
  node: string;
  listen: HostPort;
  dataDir: string;
  portRange: PortRange;
  launcher: Launcher;
  logger: Logger;
}

export interface RunningInstanceManager {
  supervisor: InstanceSupervisor;
  /** HOST:PORT the gRPC service is bound to */
  address: string;
  /** Stop every instance (engines first), then the server. */
  close(): Promise<void>;
}

export async function startInstanceManager(opts: InstanceManagerOptions): Promise<RunningInstanceManager> {
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const { start, end } = opts.portRange;
  if (opts.listen.port >= start && opts.listen.port <= end)
    throw new Error(`--listen port ${opts.listen.port} lies inside --port-range ${start}-${end}`);
  const unlock = lockDataDir(dataDir);
  // Instances listen on, and are reached at, the host the instance manager itself listens on.
  const supervisor = new InstanceSupervisor({
    dataDir,
    host: opts.listen.host,
    portRange: opts.portRange,
    launcher: opts.launcher,
    logger: opts.logger,
  });
  const grpc = new Server();
  let bound: number;
  const info = {
    node: opts.node,
    pid: process.pid,
    portRangeStart: start,
    portRangeEnd: end,
    dataDir,
    listen: '',
  };
  const service = instanceService(supervisor, info);
  grpc.addService(InstanceServiceService, service.implementation);
  try {
    bound = await new Promise<number>((res, rej) =>
      grpc.bindAsync(formatHostPort(opts.listen), ServerCredentials.createInsecure(), (err, port) =>
        err ? rej(err) : res(port),
      ),
    );
  } catch (err) {
    unlock();
    const why = await listenFailureReason(opts.listen.host, opts.listen.port);
    throw new Error(`instance manager gRPC cannot listen on ${formatHostPort(opts.listen)}${why ? ` (${why})` : ''}`, {
      cause: err,
    });
  }
  info.listen = formatHostPort({ host: opts.listen.host, port: bound });

  let closing: Promise<void> | null = null;
  return {
    supervisor,
    address: info.listen,
    close: () => {
      closing ??= (async () => {
        await supervisor.stopAll();
        service.endWatches();
        await new Promise<void>((res) => grpc.tryShutdown(() => res()));
        unlock();
      })();
      return closing;
    },
  };
}
