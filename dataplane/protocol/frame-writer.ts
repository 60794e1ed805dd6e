// Batched frame output for one socket: every frame queued during one event-loop turn leaves in a single
// cork/uncork (one writev). Headers are packed side by side in a scratch buffer; a payload is queued
// as its own buffer right after its header, never copied.
import type { Socket } from 'node:net';
import { HEADER_SIZE, writeFrameHeader } from './frame.js';

const SCRATCH_SIZE = 16 * 1024;

export class FrameWriter {
  private scratch = Buffer.allocUnsafeSlow(SCRATCH_SIZE);
  /** Start of the headers not yet queued in `out`, and end of the used part of `scratch`. */
  private start = 0;
  private pos = 0;
  private out: Buffer[] = [];
  private scheduled = false;
  /** Frames queued since the last flush. */
  private queued = 0;
  private readonly flushBound = (): void => {
    this.flush();
  };

  /** `onSaturated` runs when the socket's buffer is over its high-water mark after a flush. */
  constructor(
    private readonly socket: Socket,
    private readonly onSaturated?: () => void,
    /** Write as soon as this many frames are queued, without waiting for the end of the turn. */
    private readonly flushEvery = Number.POSITIVE_INFINITY,
  ) {}

  /** Queues one frame; it is written at the end of the current tick. */
  push(seq: number, type: number, offset: number, size: number, payload?: Buffer): void {
    if (this.pos + HEADER_SIZE > this.scratch.length) this.rotate();
    const dataLength = payload === undefined ? 0 : payload.length;
    writeFrameHeader(this.scratch, this.pos, seq, type, offset, size, dataLength);
    this.pos += HEADER_SIZE;
    if (dataLength > 0) {
      this.out.push(this.scratch.subarray(this.start, this.pos), payload!);
      this.start = this.pos;
    }
    if (++this.queued >= this.flushEvery) {
      // A flush already scheduled for the end of the turn stays: it writes whatever is queued after this.
      this.writeQueued();
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /** Writes everything queued now (also called by the tick hook). Returns false if the socket is saturated. */
  flush(): boolean {
    this.scheduled = false;
    return this.writeQueued();
  }

  private writeQueued(): boolean {
    this.queued = 0;
    if (this.pos > this.start) {
      this.out.push(this.scratch.subarray(this.start, this.pos));
      this.start = this.pos;
    }
    const out = this.out;
    if (out.length === 0) return true;
    this.out = [];
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return false;
    if (out.length === 1) {
      socket.write(out[0]!);
    } else {
      socket.cork();
      for (let i = 0; i < out.length; i++) socket.write(out[i]!);
      socket.uncork();
    }
    if (!socket.writableNeedDrain) return true;
    this.onSaturated?.();
    return false;
  }

  /** Whether frames are queued for the end of this turn. */
  get busy(): boolean {
    return this.scheduled;
  }

  /** Drops whatever is queued (the connection is going away). */
  discard(): void {
    this.out = [];
    this.start = this.pos;
  }

  private rotate(): void {
    // Slices already handed to the socket keep the old scratch alive until written; never reuse it.
    if (this.pos > this.start) this.out.push(this.scratch.subarray(this.start, this.pos));
    this.scratch = Buffer.allocUnsafeSlow(SCRATCH_SIZE);
    this.start = 0;
    this.pos = 0;
  }
}
