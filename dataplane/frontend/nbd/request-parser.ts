// Incremental parser of transmission-phase requests. Pure: bytes in, requests out, no I/O.
// One pass over each received chunk; a WRITE payload that arrives whole inside a chunk is a view into
// that chunk (no copy); only payloads split across chunks are assembled into a fresh buffer.

import { Cmd, MAX_PAYLOAD, REQUEST_HEADER_SIZE, REQUEST_MAGIC } from './constants.js';

const TWO_32 = 0x1_0000_0000;

export class NbdRequest {
  constructor(
    readonly flags: number,
    readonly type: number,
    /** The 64-bit cookie as two 32-bit halves, echoed verbatim in the reply. */
    readonly cookieHi: number,
    readonly cookieLo: number,
    /** Exact below 2^53; larger offsets lose precision but stay far beyond any export size. */
    readonly offset: number,
    readonly length: number,
    /** WRITE payload (`length` bytes); null for every other command. */
    public data: Buffer | null,
  ) {}
}

/** The byte stream is not a sequence of NBD requests; the connection cannot continue. */
export class NbdProtocolError extends Error {}

export class RequestParser {
  private readonly header = Buffer.allocUnsafe(REQUEST_HEADER_SIZE);
  private headerFill = 0;
  /** A WRITE whose payload is still arriving, and the bytes of it gathered so far. */
  private pending: NbdRequest | null = null;
  private payloadFill = 0;
  private failure: NbdProtocolError | null = null;

  constructor(private readonly maxWritePayload = MAX_PAYLOAD) {}

  /** True between requests (nothing buffered). */
  get idle(): boolean {
    return this.headerFill === 0 && this.pending === null;
  }

  /**
   * Appends every request completed by `chunk` to `out`, in stream order. Throws NbdProtocolError on a bad
   * magic or an oversized WRITE; requests before the bad one are already in `out`, and every later call
   * throws the same error.
   */
  push(chunk: Buffer, out: NbdRequest[]): void {
    if (this.failure) throw this.failure;
    const end = chunk.length;
    let pos = 0;

    if (this.pending !== null) {
      pos = this.fillPayload(chunk, 0, out);
      if (this.pending !== null) return;
    }

    if (this.headerFill > 0) {
      const take = Math.min(REQUEST_HEADER_SIZE - this.headerFill, end);
      chunk.copy(this.header, this.headerFill, pos, pos + take);
      this.headerFill += take;
      pos += take;
      if (this.headerFill < REQUEST_HEADER_SIZE) return;
      this.headerFill = 0;
      const req = this.parseHeader(this.header, 0);
      if (req.type === Cmd.WRITE && req.length > 0) {
        this.startPayload(req);
        pos = this.fillPayload(chunk, pos, out);
        if (this.pending !== null) return;
      } else {
        out.push(req);
      }
    }

    while (end - pos >= REQUEST_HEADER_SIZE) {
      const req = this.parseHeader(chunk, pos);
      pos += REQUEST_HEADER_SIZE;
      if (req.type === Cmd.WRITE && req.length > 0) {
        if (end - pos >= req.length) {
          req.data = chunk.subarray(pos, pos + req.length);
          pos += req.length;
        } else {
          this.startPayload(req);
          this.fillPayload(chunk, pos, out);
          return;
        }
      }
      out.push(req);
    }

    if (pos < end) {
      chunk.copy(this.header, 0, pos, end);
      this.headerFill = end - pos;
    }
  }

  private parseHeader(buf: Buffer, at: number): NbdRequest {
    const magic = buf.readUInt32BE(at);
    if (magic !== REQUEST_MAGIC) {
      throw this.fail(`bad request magic 0x${magic.toString(16).padStart(8, '0')}`);
    }
    const type = buf.readUInt16BE(at + 6);
    const length = buf.readUInt32BE(at + 24);
    if (type === Cmd.WRITE && length > this.maxWritePayload) {
      throw this.fail(`WRITE payload of ${length} bytes exceeds the maximum of ${this.maxWritePayload}`);
    }
    const data = type === Cmd.WRITE && length === 0 ? EMPTY : null;
    return new NbdRequest(
      buf.readUInt16BE(at + 4),
      type,
      buf.readUInt32BE(at + 8),
      buf.readUInt32BE(at + 12),
      buf.readUInt32BE(at + 16) * TWO_32 + buf.readUInt32BE(at + 20),
      length,
      data,
    );
  }

  private startPayload(req: NbdRequest): void {
    req.data = Buffer.allocUnsafe(req.length);
    this.pending = req;
    this.payloadFill = 0;
  }

  /** Copies payload bytes from `chunk[pos..]`; returns the position after them. */
  private fillPayload(chunk: Buffer, pos: number, out: NbdRequest[]): number {
    const req = this.pending!;
    const data = req.data!;
    const take = Math.min(data.length - this.payloadFill, chunk.length - pos);
    chunk.copy(data, this.payloadFill, pos, pos + take);
    this.payloadFill += take;
    if (this.payloadFill === data.length) {
      this.pending = null;
      out.push(req);
    }
    return pos + take;
  }

  private fail(message: string): NbdProtocolError {
    this.failure = new NbdProtocolError(message);
    return this.failure;
  }
}

const EMPTY = Buffer.alloc(0);
