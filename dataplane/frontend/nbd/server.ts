// Serves one BlockDevice as one NBD export over TCP and/or unix sockets.

import { lstat, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { BlockDevice } from '../../block-device.js';
import { NbdConnection } from './connection.js';
import type { ExportDescriptor } from './handshake.js';

export interface NbdServerOptions {
  exportName: string;
  description?: string;
  device: BlockDevice;
  logger: Logger;
}

/** How long close() waits for connections to answer their in-flight requests before destroying them. */
const CLOSE_TIMEOUT_MS = 30_000;

export class NbdServer {
  private readonly listeners: Server[] = [];
  private readonly connections = new Set<NbdConnection>();
  private readonly export: ExportDescriptor;
  private readonly device: BlockDevice;
  private readonly log: Logger;
  private nextConnectionId = 1;
  private closing: Promise<void> | null = null;

  constructor(opts: NbdServerOptions) {
    this.device = opts.device;
    this.log = opts.logger;
    const device = opts.device;
    this.export = {
      name: opts.exportName,
      description: opts.description,
      size: () => device.size,
    };
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async listenTcp(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = await this.listen((s) => s.listen({ host, port }));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('TCP listener has no address');
    this.log.info({ host: address.address, port: address.port, export: this.export.name }, 'NBD listening on TCP');
    return { host: address.address, port: address.port };
  }

  async listenUnix(path: string): Promise<void> {
    await removeStaleSocket(path);
    await this.listen((s) => s.listen({ path }));
    this.log.info({ path, export: this.export.name }, 'NBD listening on unix socket');
  }

  /** Stop accepting, wait for in-flight requests to be answered, close client connections. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const stopped = this.listeners.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    const drained = Promise.all([...this.connections].map((c) => c.shutdown()));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), CLOSE_TIMEOUT_MS);
    });
    if ((await Promise.race([drained, timeout])) === 'timeout') {
      this.log.warn({ connections: this.connections.size }, 'NBD connections did not drain in time; destroying');
      for (const c of this.connections) c.destroy();
    }
    clearTimeout(timer);
    await Promise.all(stopped);
    this.log.info('NBD server closed');
  }

  private listen(start: (server: Server) => void): Promise<Server> {
    if (this.closing) return Promise.reject(new Error('NBD server is closed'));
    const server = createServer({ noDelay: true, pauseOnConnect: false }, (socket) => this.accept(socket));
    return new Promise<Server>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.once('listening', () => {
        server.off('error', onError);
        server.on('error', (err) => this.log.error({ err }, 'NBD listener error'));
        this.listeners.push(server);
        resolve(server);
      });
      start(server);
    });
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    const id = this.nextConnectionId++;
    const remote = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    const connection = new NbdConnection(socket, this.device, this.export, this.log.child({ conn: id, remote }));
    this.connections.add(connection);
    void connection.closed.then(() => this.connections.delete(connection));
  }
}

/** Removes a unix socket left behind by a dead process; refuses a live one or a file that is not a socket. */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    if (!(await lstat(path)).isSocket()) throw new Error(`${path} exists and is not a socket`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect({ path }, () => {
      probe.destroy();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
  });
  if (live) throw Object.assign(new Error(`${path} is in use by a running server`), { code: 'EADDRINUSE' });
  await unlink(path);
}
