// A raw TCP client for hostile-input tests: send arbitrary bytes, read exact counts, observe the
// server closing the connection. Speaks just enough NBD (written from the protocol document, not from
// the product code) to get past the handshake with NBD_OPT_EXPORT_NAME and issue simple requests.
import { connect, type Socket } from 'node:net';

export const NBD = {
  NBDMAGIC: 0x4e42444d41474943n,
  IHAVEOPT: 0x49484156454f5054n,
  OPTION_REPLY_MAGIC: 0x3e889045565a9n,
  REQUEST_MAGIC: 0x25609513,
  SIMPLE_REPLY_MAGIC: 0x67446698,
  FLAG_FIXED_NEWSTYLE: 1,
  FLAG_NO_ZEROES: 2,
  OPT_EXPORT_NAME: 1,
  CMD_READ: 0,
  CMD_WRITE: 1,
  CMD_DISC: 2,
} as const;

export class RawSocket {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  readonly closed: Promise<void>;
  isClosed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.waiter?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.isClosed = true;
        this.waiter?.();
        resolve();
      }),
    );
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RawSocket(s));
      });
    });
  }

  write(data: Buffer): void {
    if (!this.isClosed) this.socket.write(data);
  }

  /** Exactly `n` bytes, or an error if the peer closes first or `timeoutMs` passes. */
  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.isClosed) throw new Error(`connection closed after ${this.buf.length} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.buf.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Whether the peer closed the connection within `timeoutMs` (any bytes it sent are discarded). */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const r = await Promise.race([this.closed.then(() => true), timedOut]);
    clearTimeout(timer);
    return r;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Read the server greeting, answer it, and select `exportName` with NBD_OPT_EXPORT_NAME. */
export async function nbdHandshake(sock: RawSocket, exportName: string): Promise<{ size: bigint; flags: number }> {
  const greeting = await sock.read(18);
  if (greeting.readBigUInt64BE(0) !== NBD.NBDMAGIC) throw new Error(`bad NBDMAGIC ${greeting.toString('hex')}`);
  if (greeting.readBigUInt64BE(8) !== NBD.IHAVEOPT) throw new Error(`not newstyle ${greeting.toString('hex')}`);
  const serverFlags = greeting.readUInt16BE(16);
  const noZeroes = (serverFlags & NBD.FLAG_NO_ZEROES) !== 0;
  const clientFlags = Buffer.alloc(4);
  clientFlags.writeUInt32BE(NBD.FLAG_FIXED_NEWSTYLE | (noZeroes ? NBD.FLAG_NO_ZEROES : 0));
  sock.write(clientFlags);
  sock.write(nbdOption(NBD.OPT_EXPORT_NAME, Buffer.from(exportName)));
  const info = await sock.read(10);
  if (!noZeroes) await sock.read(124);
  return { size: info.readBigUInt64BE(0), flags: info.readUInt16BE(8) };
}

export function nbdOption(option: number, data: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(NBD.IHAVEOPT, 0);
  h.writeUInt32BE(option, 8);
  h.writeUInt32BE(data.length, 12);
  return Buffer.concat([h, data]);
}

export function nbdRequest(
  type: number,
  opts: { flags?: number; cookie?: bigint; offset?: bigint; length: number; magic?: number },
): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(opts.magic ?? NBD.REQUEST_MAGIC, 0);
  b.writeUInt16BE(opts.flags ?? 0, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(opts.cookie ?? 1n, 8);
  b.writeBigUInt64BE(opts.offset ?? 0n, 16);
  b.writeUInt32BE(opts.length, 24);
  return b;
}

/** A simple reply header: {error, cookie}; throws on a bad magic (e.g. a structured reply). */
export async function readSimpleReply(sock: RawSocket, timeoutMs = 5000): Promise<{ error: number; cookie: bigint }> {
  const h = await sock.read(16, timeoutMs);
  const magic = h.readUInt32BE(0);
  if (magic !== NBD.SIMPLE_REPLY_MAGIC) throw new Error(`expected a simple reply, got magic 0x${magic.toString(16)}`);
  return { error: h.readUInt32BE(4), cookie: h.readBigUInt64BE(8) };
}

/** One fixed-newstyle option reply: {option, type, data}; throws on a bad magic. */
export async function readOptionReply(
  sock: RawSocket,
  timeoutMs = 5000,
): Promise<{ option: number; type: number; data: Buffer }> {
  const h = await sock.read(20, timeoutMs);
  if (h.readBigUInt64BE(0) !== NBD.OPTION_REPLY_MAGIC) throw new Error(`bad option reply magic ${h.toString('hex')}`);
  const length = h.readUInt32BE(16);
  const data = length > 0 ? await sock.read(length, timeoutMs) : Buffer.alloc(0);
  return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data };
}
