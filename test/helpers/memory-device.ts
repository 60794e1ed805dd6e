// TEST DOUBLE: an in-memory BlockDevice standing in for the engine in frontend tests and benchmarks.
// Sparse map of 4 KiB blocks, so blockStatus reports never-written and trimmed ranges as holes.
// Not durable, not shared between processes; never use it outside tests/benchmarks.

import {
  type BlockDevice,
  BlockDeviceError,
  type DeviceReadCallback,
  EXTENT_HOLE,
  EXTENT_ZERO,
  type Extent,
} from '../../dataplane/block-device.js';

export type DeviceOp = 'read' | 'write' | 'flush' | 'trim' | 'writeZeroes' | 'blockStatus';

export interface DeviceCall {
  op: DeviceOp;
  offset: number;
  length: number;
  fua: boolean;
}

export class MemoryBlockDevice implements BlockDevice {
  static readonly BLOCK_SIZE = 4096;
  private readonly blocks = new Map<number, Buffer>();
  /** Every call, in order, when `record` is true. */
  readonly calls: DeviceCall[] = [];
  record = false;
  /** Return an error to make that call fail (checked before any effect). */
  failWith: ((call: DeviceCall) => BlockDeviceError | undefined) | null = null;
  /** While set, every call waits for this promise first (to hold requests in flight). */
  gate: Promise<void> | null = null;

  constructor(public size: number) {}

  readView(offset: number, length: number, done: DeviceReadCallback): void {
    this.read(offset, length).then(
      (data) => done(null, data),
      (err: Error) => done(err, null),
    );
  }

  async read(offset: number, length: number): Promise<Buffer> {
    await this.enter('read', offset, length, false);
    this.checkRange(offset, length);
    const out = Buffer.alloc(length);
    this.forEachBlock(offset, length, (block, from, to, at) => {
      this.blocks.get(block)?.copy(out, at, from, to);
    });
    return out;
  }

  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    await this.enter('write', offset, data.length, fua);
    this.checkRange(offset, data.length);
    this.forEachBlock(offset, data.length, (block, from, to, at) => {
      let b = this.blocks.get(block);
      if (!b) {
        b = Buffer.alloc(MemoryBlockDevice.BLOCK_SIZE);
        this.blocks.set(block, b);
      }
      data.copy(b, from, at, at + (to - from));
    });
  }

  async flush(): Promise<void> {
    await this.enter('flush', 0, 0, false);
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.enter('trim', offset, length, false);
    this.checkRange(offset, length);
    this.discard(offset, length);
  }

  async writeZeroes(offset: number, length: number, fua: boolean): Promise<void> {
    await this.enter('writeZeroes', offset, length, fua);
    this.checkRange(offset, length);
    this.discard(offset, length);
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    await this.enter('blockStatus', offset, length, false);
    this.checkRange(offset, length);
    const extents: Extent[] = [];
    const end = Math.min(this.size, offset + length);
    const bs = MemoryBlockDevice.BLOCK_SIZE;
    let pos = offset;
    while (pos < end) {
      const block = Math.floor(pos / bs);
      const blockEnd = Math.min((block + 1) * bs, this.size);
      const flags = this.blocks.has(block) ? 0 : EXTENT_HOLE | EXTENT_ZERO;
      const last = extents[extents.length - 1];
      if (last && last.flags === flags) last.length += blockEnd - pos;
      else extents.push({ length: blockEnd - pos, flags });
      pos = blockEnd;
    }
    return extents;
  }

  /** Number of allocated 4 KiB blocks. */
  get allocatedBlocks(): number {
    return this.blocks.size;
  }

  private async enter(op: DeviceOp, offset: number, length: number, fua: boolean): Promise<void> {
    const call = { op, offset, length, fua };
    if (this.record) this.calls.push(call);
    if (this.gate) await this.gate;
    const err = this.failWith?.(call);
    if (err) throw err;
  }

  private checkRange(offset: number, length: number): void {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new BlockDeviceError(`[${offset}, +${length}) is outside the device`, 'EINVAL');
    }
  }

  /** Whole blocks become holes; partial blocks are zeroed in place. */
  private discard(offset: number, length: number): void {
    const bs = MemoryBlockDevice.BLOCK_SIZE;
    this.forEachBlock(offset, length, (block, from, to) => {
      if (from === 0 && (to === bs || block * bs + to >= this.size)) this.blocks.delete(block);
      else this.blocks.get(block)?.fill(0, from, to);
    });
  }

  /** Calls fn for each block touched by [offset, offset+length): block index, byte range in it, position in the I/O. */
  private forEachBlock(
    offset: number,
    length: number,
    fn: (block: number, from: number, to: number, at: number) => void,
  ): void {
    const bs = MemoryBlockDevice.BLOCK_SIZE;
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const block = Math.floor(pos / bs);
      const from = pos - block * bs;
      const to = Math.min(bs, end - block * bs);
      fn(block, from, to, pos - offset);
      pos += to - from;
    }
  }
}
