// The replica's data port: block I/O frames (dataplane/PROTOCOL.md) applied to the open replica.
// Every volume I/O passes here, so the loop is lean: all frames of a socket chunk are handled in one
// pass, synchronous store calls are answered on the spot, and all answers of a tick leave in one
// writev (FrameWriter). Only Flush and WriteFua wait (for fdatasync); the connection keeps flowing.
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { type Frame, FrameDecoder, MAX_PAYLOAD, MessageType, ProtocolError } from '../protocol/frame.js';
import { FrameWriter } from '../protocol/frame-writer.js';
import type { SyncFileServer } from '../sync/sync-stream.js';

/** What the data port needs of a replica (the store's Replica class has it). */
export interface ReplicaIo {
  readonly size: number;
  /**
   * Fills all of `buf` with volume bytes from `offset`: undefined when done on the spot, else a promise
   * (the part not in the page cache is read without blocking the loop).
   */
  readToCached(buf: Buffer, offset: number): Promise<void> | undefined;
  write(offset: number, data: Buffer): void;
  writeZeroes(offset: number, length: number): void;
  unmap(offset: number, length: number): number;
  blockStatus(offset: number, length: number): { length: number; flags: number }[];
  flush(): Promise<void>;
}

export interface ReplicaDataServerOptions {
  /** The replica I/O goes to right now, or null while it is not open. */
  getReplica: () => ReplicaIo | null;
  logger: Logger;
  /** Serves SyncRead (a rebuild copying this replica's layer files); without it SyncRead is refused. */
  syncFiles?: SyncFileServer;
}

const U32_MAX = 0xffff_ffff;
/**
 * Answers leave every 8 frames, not only at the end of the turn: a chunk of 32 reads takes the loop
 * ~200 µs, and the engine (on the other core) can pass the first answers on to its client meanwhile
 * instead of waiting for all of them. A/B: 1-replica randread QD32 +10 % (bench/RESULTS.md).
 */
const ANSWER_FLUSH_EVERY = 8;
/**
 * Read answers up to 64 KiB are cut from 1 MiB slabs rather than allocated one by one: a 4 KiB
 * Buffer is its own ArrayBuffer in Node (the shared pool stops below 4 KiB), and one per read kept the
 * GC busy. A slab is never reused; it is collected once the socket has written its last answer.
 */
const ANSWER_SLAB_SIZE = 1024 * 1024;
const ANSWER_SLAB_PIECE_MAX = 64 * 1024;
/** How long close() lets a peer read its Close frame before cutting the connection. */
const CLOSE_GRACE_MS = 500;

class RequestError extends Error {}

/**
 * Joins concurrent flush requests of one replica: a request that arrives while an fdatasync runs must
 * not ride on it (that sync may have started before the writes it must cover), so it waits for the
 * next one, which every request arriving meanwhile shares. Under load that is one sync per round.
 */
class FlushBatcher {
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;

  constructor(private readonly replica: ReplicaIo) {}

  flush(): Promise<void> {
    if (this.running === null) return this.start();
    if (this.next === null) {
      const after = (): Promise<void> => {
        this.next = null;
        return this.start();
      };
      this.next = this.running.then(after, after);
    }
    return this.next;
  }

  private start(): Promise<void> {
    const p = this.replica.flush();
    this.running = p;
    const done = (): void => {
      if (this.running === p) this.running = null;
    };
    p.then(done, done);
    return p;
  }
}

class DataConnection {
  readonly decoder: FrameDecoder;
  readonly writer: FrameWriter;
  closed = false;

  constructor(
    readonly socket: Socket,
    readonly server: ReplicaDataServer,
  ) {
    this.writer = new FrameWriter(socket, () => this.saturated(), ANSWER_FLUSH_EVERY);
    this.decoder = new FrameDecoder((frame) => server.handle(this, frame));
  }

  /** The peer does not read its answers fast enough: stop reading its requests until it catches up. */
  private saturated(): void {
    if (this.socket.isPaused()) return;
    this.socket.pause();
    this.socket.once('drain', () => {
      if (!this.closed) this.socket.resume();
    });
  }
}

export class ReplicaDataServer {
  private readonly server: Server;
  private readonly connections = new Set<DataConnection>();
  private readonly getReplica: () => ReplicaIo | null;
  private readonly logger: Logger;
  private readonly syncFiles: SyncFileServer | undefined;
  private batcher: FlushBatcher | null = null;
  private batcherOf: ReplicaIo | null = null;
  private closing: Promise<void> | null = null;
  private boundPort = 0;
  private answerSlab = Buffer.allocUnsafeSlow(0);
  private answerSlabUsed = 0;

  constructor(opts: ReplicaDataServerOptions) {
    this.getReplica = opts.getReplica;
    this.logger = opts.logger;
    this.syncFiles = opts.syncFiles;
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  /** Listens on host:port (0 = any free port) and resolves with the bound port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ port, host, exclusive: true }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.logger.error({ err }, 'data server error'));
        const addr = this.server.address();
        this.boundPort = typeof addr === 'object' && addr !== null ? addr.port : port;
        resolve(this.boundPort);
      });
    });
  }

  get port(): number {
    return this.boundPort;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Stops accepting, tells every peer Close (best effort) and ends its connection; connections that
   * are not gone after a short grace are destroyed.
   */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closing = (async () => {
      const serverClosed = new Promise<void>((resolve) => {
        if (!this.server.listening) resolve();
        else this.server.close(() => resolve());
      });
      const gone: Promise<void>[] = [];
      for (const conn of this.connections) {
        const socket = conn.socket;
        if (socket.destroyed) continue;
        gone.push(new Promise((resolve) => socket.once('close', () => resolve())));
        conn.closed = true;
        conn.writer.push(0, MessageType.Close, 0, 0);
        conn.writer.flush();
        socket.end();
        setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
      }
      await Promise.all(gone);
      await serverClosed;
    })();
    return this.closing;
  }

  private accept(socket: Socket): void {
    if (this.closing !== null) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    const conn = new DataConnection(socket, this);
    this.connections.add(conn);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.logger.debug({ peer }, 'data connection opened');
    socket.on('data', (chunk: Buffer) => {
      if (conn.closed) return;
      try {
        conn.decoder.push(chunk);
      } catch (err) {
        conn.closed = true;
        if (err instanceof ProtocolError) {
          this.logger.warn({ peer, err: err.message }, 'malformed frame on the data port; closing that connection');
        } else {
          this.logger.error({ peer, err }, 'data connection failed; closing it');
        }
        // Read nothing more; send the answers of the requests before the bad frame, then hang up.
        socket.pause();
        conn.writer.flush();
        socket.end();
        setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
      }
    });
    socket.on('error', (err) => this.logger.debug({ peer, err: err.message }, 'data connection error'));
    socket.on('close', () => {
      conn.closed = true;
      this.connections.delete(conn);
      this.logger.debug({ peer }, 'data connection closed');
    });
  }

  /**
   * Applies one request (called by the connection's decoder). Synchronous store calls answer at once;
   * flushes answer when durable.
   */
  handle(conn: DataConnection, f: Frame): void {
    // After a Close (or a bad frame) nothing more of this connection is applied.
    if (conn.closed) return;
    const w = conn.writer;
    const seq = f.seq;
    const type = f.type;
    if (type === MessageType.Ping) {
      w.push(seq, MessageType.Response, 0, 0);
      return;
    }
    if (type === MessageType.Close) {
      conn.closed = true;
      conn.socket.end();
      return;
    }
    if (type === MessageType.SyncRead) {
      // Reads layer files, not the open replica's chain: it works whether or not the replica is open.
      if (this.syncFiles === undefined) this.answerError(conn, seq, 0, 'this replica serves no sync reads');
      else this.syncFiles.serve(conn.socket, w, seq, f.data);
      return;
    }
    const r = this.getReplica();
    if (r === null) {
      this.answerError(conn, seq, f.offset, 'replica is not open');
      return;
    }
    const offset = f.offset;
    const size = f.size;
    try {
      switch (type) {
        case MessageType.Read: {
          if (size > MAX_PAYLOAD) throw new RequestError(`read of ${size} bytes exceeds the ${MAX_PAYLOAD} limit`);
          checkRange(r, offset, size);
          const data = size <= ANSWER_SLAB_PIECE_MAX ? this.answerMemory(size) : Buffer.allocUnsafe(size);
          const pending = r.readToCached(data, offset);
          if (pending === undefined) w.push(seq, MessageType.Response, offset, data.length, data);
          else this.answerWhenRead(conn, pending, seq, offset, data);
          return;
        }
        case MessageType.Write:
        case MessageType.WriteFua: {
          if (size !== f.dataLength) {
            throw new RequestError(`write size ${size} does not match its ${f.dataLength} payload bytes`);
          }
          checkRange(r, offset, size);
          r.write(offset, f.data);
          if (type === MessageType.Write) w.push(seq, MessageType.Response, offset, size);
          else this.answerWhenFlushed(conn, r, seq, offset, size);
          return;
        }
        case MessageType.Flush:
          this.answerWhenFlushed(conn, r, seq, 0, 0);
          return;
        case MessageType.WriteZeroes:
          checkRange(r, offset, size);
          r.writeZeroes(offset, size);
          w.push(seq, MessageType.Response, offset, size);
          return;
        case MessageType.Unmap: {
          checkRange(r, offset, size);
          const freed = r.unmap(offset, size);
          w.push(seq, MessageType.Response, offset, freed);
          return;
        }
        case MessageType.BlockStatus: {
          checkRange(r, offset, size);
          const runs = r.blockStatus(offset, size);
          const payload = Buffer.allocUnsafe(runs.length * 8);
          for (let i = 0; i < runs.length; i++) {
            const run = runs[i]!;
            // The request covers at most u32 bytes, so a clamped run still covers all of it.
            payload.writeUInt32LE(Math.min(run.length, U32_MAX), i * 8);
            payload.writeUInt32LE(run.flags, i * 8 + 4);
          }
          w.push(seq, MessageType.Response, offset, payload.length, payload);
          return;
        }
        default:
          throw new RequestError(`unsupported request type ${type}`);
      }
    } catch (err) {
      this.answerFailure(conn, seq, offset, err);
    }
  }

  /** `size` bytes of a slab for one read answer (size ≤ ANSWER_SLAB_PIECE_MAX). */
  private answerMemory(size: number): Buffer {
    if (this.answerSlabUsed + size > this.answerSlab.length) {
      this.answerSlab = Buffer.allocUnsafeSlow(ANSWER_SLAB_SIZE);
      this.answerSlabUsed = 0;
    }
    const at = this.answerSlabUsed;
    this.answerSlabUsed = at + size;
    return this.answerSlab.subarray(at, at + size);
  }

  /** Answers a read that waits for the disk; the connection serves its other requests meanwhile. */
  private answerWhenRead(
    conn: DataConnection,
    pending: Promise<void>,
    seq: number,
    offset: number,
    data: Buffer,
  ): void {
    pending.then(
      () => {
        if (!conn.closed) conn.writer.push(seq, MessageType.Response, offset, data.length, data);
      },
      (err: unknown) => {
        if (!conn.closed) this.answerFailure(conn, seq, offset, err);
      },
    );
  }

  private answerWhenFlushed(conn: DataConnection, r: ReplicaIo, seq: number, offset: number, size: number): void {
    if (this.batcherOf !== r) {
      this.batcher = new FlushBatcher(r);
      this.batcherOf = r;
    }
    this.batcher!.flush().then(
      () => conn.writer.push(seq, MessageType.Response, offset, size),
      (err: unknown) => this.answerFailure(conn, seq, offset, err),
    );
  }

  private answerFailure(conn: DataConnection, seq: number, offset: number, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    const code = (err as NodeJS.ErrnoException | null)?.code;
    if (code === 'ENOSPC') {
      const payload = Buffer.from(message);
      conn.writer.push(seq, MessageType.ENOSPC, offset, payload.length, payload);
      return;
    }
    if (!(err instanceof RequestError)) this.logger.warn({ err: message, seq }, 'replica I/O failed');
    this.answerError(conn, seq, offset, message);
  }

  private answerError(conn: DataConnection, seq: number, offset: number, message: string): void {
    const payload = Buffer.from(message || 'unknown error');
    conn.writer.push(seq, MessageType.Error, offset, payload.length, payload);
  }
}

function checkRange(r: ReplicaIo, offset: number, length: number): void {
  if (offset + length > r.size) {
    throw new RequestError(`range [${offset}, ${offset + length}) is beyond the end of the volume (${r.size} bytes)`);
  }
}
