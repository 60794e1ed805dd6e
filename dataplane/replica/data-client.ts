// The engine's side of a replica's data port (dataplane/PROTOCOL.md). Requests are spread over a few
// TCP connections, one event-loop turn's worth at a time, and matched to answers by seq in one map.
// The client only reports: any broken connection fails everything in flight and emits 'failed' once;
// timeouts and failover are the engine's business (it watches inFlight and lastReceivedAt).
import { EventEmitter } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { type Frame, FrameDecoder, MAX_PAYLOAD, MessageType } from '../protocol/frame.js';
import { FrameWriter } from '../protocol/frame-writer.js';

/** The replica answered the request with Error (or ENOSPC): the request failed, the connection is fine. */
export class ReplicaIoError extends Error {
  override name = 'ReplicaIoError';

  constructor(
    message: string,
    readonly enospc = false,
  ) {
    super(message);
  }
}

export interface ReplicaDataClientOptions {
  /** TCP connections to open (default 2, as Longhorn). */
  connections?: number;
  /** Give up connecting after this long (default 10 s). */
  connectTimeoutMs?: number;
}

export interface BlockStatusRun {
  length: number;
  flags: number;
}

const U32_MAX = 0xffff_ffff;
const POOL_MAX = 1024;

type Settle = (value: unknown) => void;
type Fail = (reason: Error) => void;
const noop = (): void => {};

/**
 * How readView reports: the error, or a view of the answer in the connection's receive buffer that is
 * valid only until the callback returns (copy what you keep). It is called once, from an I/O callback.
 */
export type ReadViewCallback = (err: Error | null, view: Buffer | null) => void;

/** One request awaiting its answer; records are pooled so the hot path allocates only the promise. */
interface Pending {
  type: number;
  length: number;
  resolve: Settle;
  reject: Fail;
  /** Set instead of resolve/reject for readView. */
  view: ReadViewCallback | null;
}

// A shared executor instead of a closure per request: it hands resolve/reject to the record being sent.
let executorTarget: Pending | null = null;
function pendingExecutor(resolve: Settle, reject: Fail): void {
  executorTarget!.resolve = resolve;
  executorTarget!.reject = reject;
}

interface Connection {
  socket: Socket;
  writer: FrameWriter;
  decoder: FrameDecoder;
}

export class ReplicaDataClient extends EventEmitter {
  private readonly conns: Connection[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly pool: Pending[] = [];
  private nextConn = 0;
  private nextSeq = 1;
  /** Set once: why requests now reject at once (a failure, or close()). */
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;
  private received = performance.now();
  private readonly onFrameBound = (f: Frame): void => this.onFrame(f);

  private constructor(
    readonly host: string,
    readonly port: number,
  ) {
    super();
  }

  /** Opens the connections; rejects (closing any that did open) if one cannot be opened. */
  static async connect(host: string, port: number, opts: ReplicaDataClientOptions = {}): Promise<ReplicaDataClient> {
    const n = opts.connections ?? 2;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`connections must be a positive integer, got ${n}`);
    const timeoutMs = opts.connectTimeoutMs ?? 10_000;
    const results = await Promise.allSettled(Array.from({ length: n }, () => openSocket(host, port, timeoutMs)));
    const sockets: Socket[] = [];
    let error: unknown = null;
    for (const r of results) {
      if (r.status === 'fulfilled') sockets.push(r.value);
      else error ??= r.reason;
    }
    if (error !== null) {
      for (const s of sockets) s.destroy();
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`cannot connect to the replica data port ${host}:${port}: ${message}`, { cause: error });
    }
    if (sockets.some((s) => s.destroyed)) {
      for (const s of sockets) s.destroy();
      throw new Error(`cannot connect to the replica data port ${host}:${port}: a connection broke while opening`);
    }
    const client = new ReplicaDataClient(host, port);
    for (const socket of sockets) client.attach(socket);
    return client;
  }

  /** Requests sent and not answered yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** performance.now() when bytes last arrived from the replica (or when the client connected). */
  get lastReceivedAt(): number {
    return this.received;
  }

  /** Whether the client failed or was closed (every request now rejects at once). */
  get broken(): boolean {
    return this.failure !== null;
  }

  /** The buffer may be a view into a larger receive buffer: copy it if you keep it for long. */
  read(offset: number, length: number): Promise<Buffer> {
    if (!(length >= 0 && length <= MAX_PAYLOAD)) return rangeError(`read length ${length} exceeds ${MAX_PAYLOAD}`);
    return this.send(MessageType.Read, offset, length, undefined) as Promise<Buffer>;
  }

  /**
   * read() without a promise or a copy, for the engine's hot path: `done` gets a view of the answer that
   * is valid only while it runs. Throws nothing; every failure goes to `done`.
   */
  readView(offset: number, length: number, done: ReadViewCallback): void {
    let refusal: Error | null = this.failure;
    if (refusal === null && !(length >= 0 && length <= MAX_PAYLOAD)) {
      refusal = new RangeError(`read length ${length} exceeds ${MAX_PAYLOAD}`);
    } else if (refusal === null && !(Number.isSafeInteger(offset) && offset >= 0)) {
      refusal = new RangeError(`offset ${offset} is not a valid byte offset`);
    }
    if (refusal !== null) {
      done(refusal, null);
      return;
    }
    const rec = this.record(MessageType.Read, length);
    rec.view = done;
    this.enqueue(rec, MessageType.Read, offset, length, undefined);
  }

  write(offset: number, data: Buffer): Promise<void> {
    if (data.length > MAX_PAYLOAD) return rangeError(`write of ${data.length} bytes exceeds ${MAX_PAYLOAD}`);
    return this.send(MessageType.Write, offset, data.length, data) as Promise<void>;
  }

  /** Resolves only once the data and the revision counter are durable on the replica. */
  writeFua(offset: number, data: Buffer): Promise<void> {
    if (data.length > MAX_PAYLOAD) return rangeError(`write of ${data.length} bytes exceeds ${MAX_PAYLOAD}`);
    return this.send(MessageType.WriteFua, offset, data.length, data) as Promise<void>;
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    if (!(length >= 0 && length <= U32_MAX)) return rangeError(`write-zeroes length ${length} exceeds u32`);
    return this.send(MessageType.WriteZeroes, offset, length, undefined) as Promise<void>;
  }

  /** Resolves with the bytes the replica freed. */
  unmap(offset: number, length: number): Promise<number> {
    if (!(length >= 0 && length <= U32_MAX)) return rangeError(`unmap length ${length} exceeds u32`);
    return this.send(MessageType.Unmap, offset, length, undefined) as Promise<number>;
  }

  /** Resolves once every write answered before this call is on stable storage. */
  flush(): Promise<void> {
    return this.send(MessageType.Flush, 0, 0, undefined) as Promise<void>;
  }

  blockStatus(offset: number, length: number): Promise<BlockStatusRun[]> {
    if (!(length >= 0 && length <= U32_MAX)) return rangeError(`block-status length ${length} exceeds u32`);
    return this.send(MessageType.BlockStatus, offset, length, undefined) as Promise<BlockStatusRun[]>;
  }

  ping(): Promise<void> {
    return this.send(MessageType.Ping, 0, 0, undefined) as Promise<void>;
  }

  /**
   * Rejects everything in flight with `reason`, destroys the connections and emits 'failed' (once);
   * later calls reject at once with `reason`.
   */
  fail(reason: Error): void {
    if (this.failure !== null) return;
    this.failure = reason;
    this.rejectAll(reason);
    for (const c of this.conns) {
      c.writer.discard();
      c.socket.destroy();
    }
    this.emit('failed', reason);
  }

  /**
   * Says Close to the replica and ends the connections. Requests still in flight are rejected; no
   * 'failed' is emitted for a close.
   */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    const wasFailed = this.failure !== null;
    if (!wasFailed) {
      this.failure = new Error(`replica data client for ${this.host}:${this.port} is closed`);
      this.rejectAll(this.failure);
    }
    const gone: Promise<void>[] = [];
    for (const c of this.conns) {
      const socket = c.socket;
      if (socket.destroyed) continue;
      gone.push(new Promise((resolve) => socket.once('close', () => resolve())));
      if (!wasFailed) {
        c.writer.push(0, MessageType.Close, 0, 0);
        c.writer.flush();
      }
      socket.end();
      setTimeout(() => socket.destroy(), 500).unref();
    }
    this.closing = Promise.all(gone).then(noop);
    return this.closing;
  }

  /** Whether requests of the current event-loop turn are queued here (they leave together at its end). */
  get queuedThisTurn(): boolean {
    return this.conns[this.nextConn]?.writer.busy ?? false;
  }

  private send(type: number, offset: number, size: number, payload: Buffer | undefined): Promise<unknown> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (!(Number.isSafeInteger(offset) && offset >= 0)) {
      return rangeError(`offset ${offset} is not a valid byte offset`);
    }
    const rec = this.record(type, size);
    executorTarget = rec;
    const promise = new Promise(pendingExecutor);
    executorTarget = null;
    this.enqueue(rec, type, offset, size, payload);
    return promise;
  }

  private record(type: number, size: number): Pending {
    const rec = this.pool.pop() ?? { type: 0, length: 0, resolve: noop, reject: noop, view: null };
    rec.type = type;
    rec.length = size;
    return rec;
  }

  private enqueue(rec: Pending, type: number, offset: number, size: number, payload: Buffer | undefined): void {
    let seq = this.nextSeq;
    // u32 seq space; 0 is left to unsolicited frames (Close). Skip ids still in flight after a wrap.
    while (seq === 0 || this.pending.has(seq)) seq = (seq + 1) >>> 0;
    this.nextSeq = (seq + 1) >>> 0;
    this.pending.set(seq, rec);
    // All requests of one event-loop turn ride one connection (one writev); the next turn takes the
    // next connection. Spreading single requests over connections would cost a syscall per request.
    const conns = this.conns;
    let c = conns[this.nextConn]!;
    if (!c.writer.busy) {
      this.nextConn = this.nextConn + 1 === conns.length ? 0 : this.nextConn + 1;
      c = conns[this.nextConn]!;
    }
    c.writer.push(seq, type, offset, size, payload);
  }

  private attach(socket: Socket): void {
    const decoder = new FrameDecoder(this.onFrameBound);
    const conn: Connection = { socket, writer: new FrameWriter(socket), decoder };
    this.conns.push(conn);
    const where = `${this.host}:${this.port}`;
    receiverOf(socket).onChunk = (chunk: Buffer) => {
      // Any byte counts as a sign of life: a large answer arriving slowly is not a silent replica.
      this.received = performance.now();
      try {
        decoder.push(chunk, true);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.fail(new Error(`replica data connection ${where}: ${message}`, { cause: err }));
      }
    };
    socket.on('error', (err) => {
      this.fail(new Error(`replica data connection ${where} failed: ${err.message}`, { cause: err }));
    });
    socket.on('end', () => this.fail(new Error(`replica data connection ${where} was closed by the replica`)));
    socket.on('close', () => this.fail(new Error(`replica data connection ${where} closed`)));
  }

  private onFrame(f: Frame): void {
    const type = f.type;
    if (type === MessageType.Close) {
      this.fail(new Error(`replica ${this.host}:${this.port} closed the data connection`));
      return;
    }
    const rec = this.pending.get(f.seq);
    if (rec === undefined) return; // answer to a request already failed; nothing waits for it
    this.pending.delete(f.seq);
    const resolve = rec.resolve;
    const reject = rec.reject;
    const view = rec.view;
    const reqType = rec.type;
    const length = rec.length;
    rec.resolve = noop;
    rec.reject = noop;
    rec.view = null;
    if (this.pool.length < POOL_MAX) this.pool.push(rec);
    if (view !== null) {
      if (type === MessageType.Response && f.data.length === length) view(null, f.data);
      else view(answerError(type, f.data, length), null);
      return;
    }
    if (type === MessageType.Response) {
      if (reqType === MessageType.Read) {
        if (f.data.length === length) resolve(copyOut(f.data));
        else reject(new ReplicaIoError(`short read: ${f.data.length} of ${length} bytes`));
      } else if (reqType === MessageType.Unmap) {
        resolve(f.size);
      } else if (reqType === MessageType.BlockStatus) {
        resolve(decodeRuns(f.data));
      } else {
        resolve(undefined);
      }
      return;
    }
    reject(answerError(type, f.data, length));
  }

  private rejectAll(reason: Error): void {
    if (this.pending.size === 0) return;
    const recs = [...this.pending.values()];
    this.pending.clear();
    for (const rec of recs) {
      const reject = rec.reject;
      const view = rec.view;
      rec.resolve = noop;
      rec.reject = noop;
      rec.view = null;
      if (view !== null) view(reason, null);
      else reject(reason);
    }
  }
}

/** The error a non-Response answer (or a Response of the wrong size to a read) stands for. */
function answerError(type: number, data: Buffer, length: number): ReplicaIoError {
  switch (type) {
    case MessageType.Response:
    case MessageType.EOF:
      return new ReplicaIoError(`short read: ${data.length} of ${length} bytes`);
    case MessageType.Error:
      return new ReplicaIoError(data.toString('utf8'));
    case MessageType.ENOSPC:
      return new ReplicaIoError(data.toString('utf8') || 'no space left on the replica', true);
    default:
      return new ReplicaIoError(`unexpected answer type ${type}`);
  }
}

function decodeRuns(data: Buffer): BlockStatusRun[] {
  const n = data.length >>> 3;
  const runs: BlockStatusRun[] = new Array(n);
  for (let i = 0; i < n; i++) runs[i] = { length: data.readUInt32LE(i * 8), flags: data.readUInt32LE(i * 8 + 4) };
  return runs;
}

function rangeError(message: string): Promise<never> {
  return Promise.reject(new RangeError(message));
}

/**
 * Answers are read into one reusable buffer per connection (`onread`) instead of a fresh allocation per
 * read: at tens of thousands of reads a second those allocations were the engine's main GC load. The
 * decoder copies what it must keep; read payloads are copied out into shared slabs (copyOut).
 */
interface Receiver {
  onChunk: ((chunk: Buffer) => void) | null;
}
const receivers = new WeakMap<Socket, Receiver>();
const RECEIVE_BUFFER = 256 * 1024;

function receiverOf(socket: Socket): Receiver {
  return receivers.get(socket)!;
}

const SLAB_SIZE = 1024 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabPos = 0;

/** A copy of a payload that lives in the transient receive buffer, carved from a shared slab. */
function copyOut(src: Buffer): Buffer {
  const n = src.length;
  if (n > SLAB_SIZE / 8) return Buffer.from(src);
  if (slabPos + n > SLAB_SIZE) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabPos = 0;
  }
  const out = slab.subarray(slabPos, slabPos + n);
  src.copy(out);
  slabPos = (slabPos + n + 7) & ~7;
  return out;
}

function openSocket(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const receiver: Receiver = { onChunk: null };
    const socket = netConnect({
      host,
      port,
      onread: {
        buffer: Buffer.allocUnsafeSlow(RECEIVE_BUFFER),
        callback: (n: number, buf: Uint8Array) => {
          receiver.onChunk?.(Buffer.from(buf.buffer, buf.byteOffset, n));
          return true;
        },
      },
    });
    receivers.set(socket, receiver);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      // Until the client attaches its own handlers (after all connections are up), an error must not
      // crash the process; connect() notices the destroyed socket.
      socket.on('error', noop);
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 10_000);
      resolve(socket);
    });
  });
}
