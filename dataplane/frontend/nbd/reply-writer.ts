// Encodes transmission-phase replies and sends them in batches. Headers (and small read payloads) are
// packed back to back into a shared slab, so the replies finished in one event-loop turn usually leave
// as one buffer; large payloads go out as their own buffers (no copy). Everything queued in a turn is
// written once, from setImmediate, under cork: one writev per turn.

import {
  CHUNK_HEADER_SIZE,
  ReplyFlag,
  ReplyType,
  SIMPLE_REPLY_MAGIC,
  SIMPLE_REPLY_SIZE,
  STRUCTURED_REPLY_MAGIC,
} from './constants.js';

const TWO_32 = 0x1_0000_0000;
const SLAB_SIZE = 256 * 1024;
/** Read payloads up to this size are copied into the slab rather than queued as separate buffers. */
const COPY_LIMIT = 16 * 1024;
const MAX_MESSAGE = 4096;

/** What the writer needs from a socket. */
export interface ReplySink {
  readonly writable: boolean;
  cork(): void;
  uncork(): void;
  /** `done` runs once the chunk has left for the kernel (net.Socket's write callback). */
  write(chunk: Buffer, done?: () => void): boolean;
}

/** Identifies the request a reply answers. */
export interface ReplyTarget {
  readonly cookieHi: number;
  readonly cookieLo: number;
}

export class ReplyWriter {
  private slab: Buffer;
  /** Start of the slab bytes not yet queued, and the write position. */
  private segmentStart = 0;
  private pos = 0;
  private queue: Buffer[] = [];
  /** Full slabs whose bytes are queued or in the socket, and slabs free to fill again. */
  private retired: Buffer[] = [];
  private spare: Buffer[] = [];
  private scheduled = false;
  private readonly flushCallback = () => this.flush();

  /** Called after every flush that wrote something (flow control hook). */
  onFlush: (() => void) | null = null;

  constructor(
    private readonly sink: ReplySink,
    /** Whether structured replies were negotiated. */
    readonly structured: boolean,
    private readonly slabSize = SLAB_SIZE,
  ) {
    this.slab = Buffer.allocUnsafeSlow(slabSize);
  }

  /** Success without payload (WRITE, FLUSH, TRIM, WRITE_ZEROES): a simple reply is always allowed. */
  ok(target: ReplyTarget): void {
    const at = this.reserve(SIMPLE_REPLY_SIZE);
    this.writeSimpleHeader(at, 0, target);
    this.schedule();
  }

  /**
   * A successful READ: one OFFSET_DATA chunk flagged DONE, or a simple reply followed by the data.
   * `transient`: `data` is valid only during this call, so it is copied whatever its size.
   */
  readData(target: ReplyTarget, offset: number, data: Buffer, transient = false): void {
    if (this.structured) {
      const at = this.reserve(CHUNK_HEADER_SIZE + 8);
      this.writeChunkHeader(at, ReplyFlag.DONE, ReplyType.OFFSET_DATA, target, 8 + data.length);
      this.slab.writeUInt32BE(Math.floor(offset / TWO_32), at + CHUNK_HEADER_SIZE);
      this.slab.writeUInt32BE(offset >>> 0, at + CHUNK_HEADER_SIZE + 4);
    } else {
      this.writeSimpleHeader(this.reserve(SIMPLE_REPLY_SIZE), 0, target);
    }
    if (data.length <= COPY_LIMIT) {
      const at = this.reserve(data.length); // may switch slabs: read this.slab only afterwards
      data.copy(this.slab, at);
    } else {
      this.seal();
      this.queue.push(transient ? Buffer.from(data) : data);
    }
    this.schedule();
  }

  /** An error: an ERROR chunk with a message when structured replies are on, else a simple reply. */
  error(target: ReplyTarget, errno: number, message: string): void {
    if (!this.structured) {
      this.writeSimpleHeader(this.reserve(SIMPLE_REPLY_SIZE), errno, target);
      this.schedule();
      return;
    }
    let text = Buffer.from(message, 'utf8');
    if (text.length > MAX_MESSAGE) text = text.subarray(0, MAX_MESSAGE);
    const at = this.reserve(CHUNK_HEADER_SIZE + 6 + text.length);
    this.writeChunkHeader(at, ReplyFlag.DONE, ReplyType.ERROR, target, 6 + text.length);
    this.slab.writeUInt32BE(errno, at + CHUNK_HEADER_SIZE);
    this.slab.writeUInt16BE(text.length, at + CHUNK_HEADER_SIZE + 4);
    text.copy(this.slab, at + CHUNK_HEADER_SIZE + 6);
    this.schedule();
  }

  /**
   * A BLOCK_STATUS chunk flagged DONE for one metadata context. `extents` holds `count` pairs of
   * (length, flags), already clipped to the request and to u32.
   */
  blockStatus(target: ReplyTarget, contextId: number, extents: Uint32Array, count: number): void {
    const payload = 4 + 8 * count;
    const at = this.reserve(CHUNK_HEADER_SIZE + payload);
    const buf = this.slab;
    this.writeChunkHeader(at, ReplyFlag.DONE, ReplyType.BLOCK_STATUS, target, payload);
    buf.writeUInt32BE(contextId, at + CHUNK_HEADER_SIZE);
    let p = at + CHUNK_HEADER_SIZE + 4;
    for (let i = 0; i < 2 * count; i++, p += 4) buf.writeUInt32BE(extents[i]!, p);
    this.schedule();
  }

  /** Writes everything queued now (normally runs from setImmediate). */
  flush(): void {
    this.scheduled = false;
    this.seal();
    const queue = this.queue;
    if (queue.length === 0) return;
    this.queue = [];
    if (!this.sink.writable) return;
    // Slabs filled up to now are reused once this write is done: the socket writes in order, so the
    // callback of the last chunk means every earlier chunk is written too. Allocating a fresh slab per
    // fill instead made external memory churn the engine's main cause of major GCs.
    const retired = this.retired;
    const done = retired.length > 0 ? () => this.spare.push(...retired) : undefined;
    if (done) this.retired = [];
    const last = queue.length - 1;
    if (last === 0) {
      this.sink.write(queue[0]!, done);
    } else {
      this.sink.cork();
      for (let i = 0; i < last; i++) this.sink.write(queue[i]!);
      this.sink.write(queue[last]!, done);
      this.sink.uncork();
    }
    this.onFlush?.();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flushCallback);
  }

  /** Returns the slab offset of `n` free bytes, moving to a fresh slab when the current one is full. */
  private reserve(n: number): number {
    if (this.pos + n > this.slab.length) {
      this.seal();
      if (this.slab.length === this.slabSize) this.retired.push(this.slab);
      this.slab =
        (n <= this.slabSize ? this.spare.pop() : undefined) ?? Buffer.allocUnsafeSlow(Math.max(this.slabSize, n));
      this.segmentStart = 0;
      this.pos = 0;
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  /** Queues the slab bytes written since the last seal. Bytes already queued are never written again. */
  private seal(): void {
    if (this.pos > this.segmentStart) {
      this.queue.push(this.slab.subarray(this.segmentStart, this.pos));
      this.segmentStart = this.pos;
    }
  }

  private writeSimpleHeader(at: number, errno: number, target: ReplyTarget): void {
    const buf = this.slab;
    buf.writeUInt32BE(SIMPLE_REPLY_MAGIC, at);
    buf.writeUInt32BE(errno, at + 4);
    buf.writeUInt32BE(target.cookieHi, at + 8);
    buf.writeUInt32BE(target.cookieLo, at + 12);
  }

  private writeChunkHeader(at: number, flags: number, type: number, target: ReplyTarget, length: number): void {
    const buf = this.slab;
    buf.writeUInt32BE(STRUCTURED_REPLY_MAGIC, at);
    buf.writeUInt16BE(flags, at + 4);
    buf.writeUInt16BE(type, at + 6);
    buf.writeUInt32BE(target.cookieHi, at + 8);
    buf.writeUInt32BE(target.cookieLo, at + 12);
    buf.writeUInt32BE(length, at + 16);
  }
}
