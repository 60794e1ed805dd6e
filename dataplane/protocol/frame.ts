// The engine↔replica data protocol (dataplane/PROTOCOL.md): a 26-byte little-endian header in
// Longhorn's dataconn layout, then `dataLength` payload bytes. Requests carry a sequence id that the
// answer repeats, so one connection can have many requests in flight, answered in any order.

export const MAGIC_VERSION = 0x1b01;
export const HEADER_SIZE = 26;
/** Largest payload a peer accepts; a frame announcing more is a protocol error (closes the connection). */
export const MAX_PAYLOAD = 32 * 1024 * 1024;

export const MessageType = {
  Read: 0,
  Write: 1,
  Response: 2,
  Error: 3,
  EOF: 4,
  Close: 5,
  Ping: 6,
  Unmap: 7,
  ENOSPC: 8,
  // Shorthorn additions (Longhorn has no flush: its layers are O_DIRECT and it writes the revision
  // counter on every write; we write through the page cache and make it durable on demand).
  Flush: 9,
  WriteZeroes: 10,
  BlockStatus: 11,
  WriteFua: 12,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export interface FrameHeader {
  seq: number;
  type: number;
  offset: number;
  size: number;
  dataLength: number;
}

export interface Frame extends FrameHeader {
  /** Payload; a view into the receive buffer when it arrived in one chunk (no copy), else a fresh copy. */
  data: Buffer;
}

export function writeHeader(target: Buffer, at: number, h: FrameHeader): void {
  target.writeUInt16LE(MAGIC_VERSION, at);
  target.writeUInt32LE(h.seq >>> 0, at + 2);
  target.writeUInt32LE(h.type, at + 6);
  // Offsets stay below 2^53 (volume sizes are JS numbers), so two 32-bit halves are exact.
  target.writeUInt32LE(h.offset % 0x1_0000_0000, at + 10);
  target.writeUInt32LE(Math.floor(h.offset / 0x1_0000_0000), at + 14);
  target.writeUInt32LE(h.size >>> 0, at + 18);
  target.writeUInt32LE(h.dataLength >>> 0, at + 22);
}

export function encodeHeader(h: FrameHeader): Buffer {
  const b = Buffer.allocUnsafe(HEADER_SIZE);
  writeHeader(b, 0, h);
  return b;
}

export class ProtocolError extends Error {}

export function readHeader(src: Buffer, at: number): FrameHeader {
  const magic = src.readUInt16LE(at);
  if (magic !== MAGIC_VERSION) throw new ProtocolError(`bad magic 0x${magic.toString(16)} (want 0x1b01)`);
  const lo = src.readUInt32LE(at + 10);
  const hi = src.readInt32LE(at + 14);
  if (hi < 0 || hi >= 0x20_0000) throw new ProtocolError('offset out of range');
  const dataLength = src.readUInt32LE(at + 22);
  if (dataLength > MAX_PAYLOAD) throw new ProtocolError(`payload of ${dataLength} bytes exceeds ${MAX_PAYLOAD}`);
  return {
    seq: src.readUInt32LE(at + 2),
    type: src.readUInt32LE(at + 6),
    offset: hi * 0x1_0000_0000 + lo,
    size: src.readUInt32LE(at + 18),
    dataLength,
  };
}

const EMPTY = Buffer.alloc(0);

/**
 * Incremental frame parser for a byte stream. Feed it socket chunks; it calls `onFrame` for every
 * complete frame. Payloads that sit wholly inside one chunk are handed out as views (zero copy);
 * only frames split across chunks are assembled into a new buffer.
 */
export class FrameDecoder {
  private pending: Buffer = EMPTY;

  constructor(private readonly onFrame: (frame: Frame) => void) {}

  /** Throws ProtocolError on a malformed header; the caller should close the connection. */
  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending.length > 0) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = EMPTY;
    }
    let at = 0;
    while (buf.length - at >= HEADER_SIZE) {
      const h = readHeader(buf, at);
      const end = at + HEADER_SIZE + h.dataLength;
      if (end > buf.length) break;
      const data = h.dataLength === 0 ? EMPTY : buf.subarray(at + HEADER_SIZE, end);
      at = end;
      this.onFrame({ ...h, data });
    }
    if (at < buf.length) this.pending = Buffer.from(buf.subarray(at));
  }
}
