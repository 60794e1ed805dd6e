// The engine↔replica data protocol (dataplane/PROTOCOL.md): a 26-byte little-endian header in
// Longhorn's dataconn layout, then `dataLength` payload bytes. Requests carry a sequence id that the
// answer repeats, so one connection can have many requests in flight, answered in any order.

export const MAGIC_VERSION = 0x1b01;
export const HEADER_SIZE = 26;
/** Largest payload a peer accepts; a frame announcing more is a protocol error (closes the connection). */
export const MAX_PAYLOAD = 32 * 1024 * 1024;
/** Offsets travel as u64 but are JS numbers on both sides: they must stay below 2^53. */
const MAX_OFFSET_HI = 0x20_0000;
const TWO_32 = 0x1_0000_0000;

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
  // Rebuild: the bulk copy of a layer file (dataplane/sync/sync-stream.ts).
  SyncRead: 13,
  SyncData: 14,
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
  /**
   * Payload: a view into the receive buffer (no copy). It stays valid as long as the caller holds it
   * (socket chunks are never reused), but it may share memory with neighbouring frames.
   */
  data: Buffer;
}

/**
 * Writes a header without allocating a header object (the hot path of both peers). Throws RangeError
 * for fields that do not fit (negative, non-integer offsets beyond 2^53, sizes beyond u32) rather than
 * silently sending a truncated value.
 */
export function writeFrameHeader(
  target: Buffer,
  at: number,
  seq: number,
  type: number,
  offset: number,
  size: number,
  dataLength: number,
): void {
  if (!(offset >= 0 && offset < MAX_OFFSET_HI * TWO_32 && Number.isInteger(offset))) {
    throw new RangeError(`frame offset ${offset} is not an integer in [0, 2^53)`);
  }
  target.writeUInt16LE(MAGIC_VERSION, at);
  target.writeUInt32LE(seq, at + 2);
  target.writeUInt32LE(type, at + 6);
  // Two exact 32-bit halves: JS bit operators would truncate to 32 bits.
  target.writeUInt32LE(offset % TWO_32, at + 10);
  target.writeUInt32LE(Math.floor(offset / TWO_32), at + 14);
  target.writeUInt32LE(size, at + 18);
  target.writeUInt32LE(dataLength, at + 22);
}

export function writeHeader(target: Buffer, at: number, h: FrameHeader): void {
  writeFrameHeader(target, at, h.seq, h.type, h.offset, h.size, h.dataLength);
}

export function encodeHeader(h: FrameHeader): Buffer {
  const b = Buffer.allocUnsafe(HEADER_SIZE);
  writeHeader(b, 0, h);
  return b;
}

export class ProtocolError extends Error {}

const EMPTY = Buffer.alloc(0);

function parseFrame(src: Buffer, at: number, withData: boolean): Frame {
  const magic = src.readUInt16LE(at);
  if (magic !== MAGIC_VERSION) throw new ProtocolError(`bad magic 0x${magic.toString(16)} (want 0x1b01)`);
  const lo = src.readUInt32LE(at + 10);
  const hi = src.readUInt32LE(at + 14);
  if (hi >= MAX_OFFSET_HI) throw new ProtocolError('offset out of range (>= 2^53)');
  const dataLength = src.readUInt32LE(at + 22);
  if (dataLength > MAX_PAYLOAD) throw new ProtocolError(`payload of ${dataLength} bytes exceeds ${MAX_PAYLOAD}`);
  const start = at + HEADER_SIZE;
  return {
    seq: src.readUInt32LE(at + 2),
    type: src.readUInt32LE(at + 6),
    offset: hi * TWO_32 + lo,
    size: src.readUInt32LE(at + 18),
    dataLength,
    data: withData && dataLength > 0 ? src.subarray(start, start + dataLength) : EMPTY,
  };
}

/** Throws ProtocolError on a bad magic, an offset beyond 2^53 or a payload beyond MAX_PAYLOAD. */
export function readHeader(src: Buffer, at: number): FrameHeader {
  const { data: _, ...h } = parseFrame(src, at, false);
  return h;
}

/**
 * Incremental frame parser for a byte stream. Feed it socket chunks; it calls `onFrame` for every
 * complete frame, in order. Payloads wholly inside one chunk are handed out as views (zero copy). A
 * frame split across chunks is kept as a list of pieces and joined once, when its last byte arrives,
 * so a 32 MiB payload arriving in 64 KiB chunks costs one copy, not one per chunk.
 */
export class FrameDecoder {
  /** Unconsumed bytes: pieces of one incomplete frame (or of an incomplete header). */
  private pieces: Buffer[] = [];
  private buffered = 0;
  /** Bytes needed in `pieces` before parsing can progress. */
  private need = HEADER_SIZE;

  constructor(private readonly onFrame: (frame: Frame) => void) {}

  /** Bytes received and not yet handed out as frames. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /**
   * Throws ProtocolError on a malformed header; the caller should close the connection (the decoder is
   * not usable afterwards). If `onFrame` throws, the frames after it stay buffered for the next push.
   * `transient`: the chunk's memory is reused after this call (a socket `onread` buffer), so bytes kept
   * for later are copied; frames handed to `onFrame` may still be views valid only during the call.
   */
  push(chunk: Buffer, transient = false): void {
    let buf = chunk;
    if (this.buffered > 0) {
      this.pieces.push(transient ? Buffer.from(chunk) : chunk);
      this.buffered += chunk.length;
      // `need` is HEADER_SIZE until a header is buffered, so garbage is refused before its "payload".
      if (this.buffered < this.need) return;
      buf = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.buffered);
      this.pieces = [];
      this.buffered = 0;
    }
    let at = 0;
    // Until the loop says otherwise (it may be left by an exception), any complete header is progress.
    this.need = HEADER_SIZE;
    try {
      for (;;) {
        const left = buf.length - at;
        if (left < HEADER_SIZE) break;
        const frame = parseFrame(buf, at, true);
        const end = at + HEADER_SIZE + frame.dataLength;
        if (end > buf.length) {
          this.need = HEADER_SIZE + frame.dataLength;
          break;
        }
        at = end;
        this.onFrame(frame);
      }
    } finally {
      if (at < buf.length) {
        // Keep a view, not a copy: the chunk is not reused by the socket, and the rest is joined once.
        const rest = at === 0 ? buf : buf.subarray(at);
        this.pieces.push(transient && buf === chunk ? Buffer.from(rest) : rest);
        this.buffered = buf.length - at;
      }
    }
  }
}
