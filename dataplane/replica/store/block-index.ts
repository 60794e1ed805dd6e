// Which layer holds each 4 KiB block of the volume, in Longhorn's layout (reference §1.3): one byte
// per block, 0 = no layer has the block, otherwise an index into the replica's layer list
// (1 = oldest … n-1 = head). A byte per block keeps a 1 TiB volume at 256 MiB and makes the read path
// a scan over a Uint8Array instead of a probe of every layer file.
//
// Longhorn fills its map lazily and probes the files on a miss; we fill it eagerly at open, so 0 here
// means "no layer has data" for sure and reads of such blocks need no system call at all.

/** Granularity of the index, of read-modify-write and of unmap alignment (Longhorn's VolumeSectorSize). */
export const BLOCK_SIZE = 4096;
/** Index 0 is reserved for "no layer", so a chain can hold at most 255 layers. */
export const MAX_LAYERS = 255;
export const NO_LAYER = 0;

export class BlockIndex {
  private blocks: Uint8Array;

  constructor(blockCount: number) {
    if (!Number.isSafeInteger(blockCount) || blockCount < 0) {
      throw new RangeError(`block count must be a non-negative integer, got ${blockCount}`);
    }
    this.blocks = new Uint8Array(blockCount);
  }

  get blockCount(): number {
    return this.blocks.length;
  }

  /** The layer that holds `block` (NO_LAYER if none). */
  layerAt(block: number): number {
    return this.blocks[block] ?? NO_LAYER;
  }

  /**
   * End (exclusive) of the run of blocks from `block` that all live in the same layer as `block`,
   * stopping at `limit`. This is what lets a read issue one pread per run instead of one per block.
   */
  runEnd(block: number, limit: number): number {
    const blocks = this.blocks;
    const end = Math.min(limit, blocks.length);
    const layer = blocks[block];
    let i = block + 1;
    while (i < end && blocks[i] === layer) i++;
    return i;
  }

  /**
   * End (exclusive) of the run from `block` whose blocks are all held by some layer, or all by none
   * (which layer does not matter): the runs NBD block status reports.
   */
  presenceRunEnd(block: number, limit: number): number {
    const blocks = this.blocks;
    const end = Math.min(limit, blocks.length);
    let i = block + 1;
    if (blocks[block] === NO_LAYER) {
      while (i < end && blocks[i] === NO_LAYER) i++;
    } else {
      while (i < end && blocks[i] !== NO_LAYER) i++;
    }
    return i;
  }

  /** Whether any block in [first, end) is held by `layer`. */
  includes(first: number, end: number, layer: number): boolean {
    this.checkRange(first, end);
    return this.blocks.subarray(first, end).includes(layer);
  }

  /** Blocks [first, end) now live in `layer` (a write to the head, or NO_LAYER after a hole punch). */
  setRange(first: number, end: number, layer: number): void {
    this.checkRange(first, end);
    checkLayer(layer);
    this.blocks.fill(layer, first, end);
  }

  /**
   * Byte range [offset, offset+length) of `layer` holds data. Rounded outward: a layer that holds any
   * byte of a block serves the whole block, as in Longhorn, whose writes are always whole blocks.
   */
  markBytes(offset: number, length: number, layer: number): void {
    if (length <= 0) return;
    const first = Math.floor(offset / BLOCK_SIZE);
    const end = Math.min(Math.ceil((offset + length) / BLOCK_SIZE), this.blocks.length);
    if (first >= end) return;
    this.setRange(first, end, layer);
  }

  /**
   * Blocks in [first, end) held by `layer` fall through to what lies beneath: `beneath` holds, for
   * block `first + i` at its position `i`, the topmost layer under `layer` that has it. Used after a
   * hole punch in `layer`, so the index keeps matching what a reopen would build from the files.
   */
  uncover(first: number, end: number, layer: number, beneath: BlockIndex): void {
    this.checkRange(first, end);
    if (beneath.blockCount < end - first) {
      throw new RangeError(`uncover: ${beneath.blockCount} blocks beneath, ${end - first} needed`);
    }
    const blocks = this.blocks;
    const below = beneath.blocks;
    for (let i = first; i < end; i++) {
      if (blocks[i] === layer) blocks[i] = below[i - first];
    }
  }

  /**
   * Purge coalesced layer `layer` into the one right above it, and the merged file now sits at
   * `layer`: blocks of `layer` and `layer + 1` both map to `layer`, every higher layer moves down one.
   */
  mergeWithLayerAbove(layer: number): void {
    checkLayer(layer);
    if (layer === NO_LAYER) throw new RangeError('cannot merge the "no layer" entry');
    const blocks = this.blocks;
    for (let i = 0; i < blocks.length; i++) {
      const v = blocks[i]!;
      if (v > layer) blocks[i] = v - 1;
    }
  }

  /** Blocks [first, first + source.blockCount) take the entries of `source` (block 0 of source = `first`). */
  copyFrom(first: number, source: BlockIndex): void {
    this.checkRange(first, first + source.blocks.length);
    this.blocks.set(source.blocks, first);
  }

  /** Make room for `blockCount` blocks (volume expansion); new blocks belong to no layer. */
  grow(blockCount: number): void {
    if (!Number.isSafeInteger(blockCount) || blockCount < this.blocks.length) {
      throw new RangeError(`cannot grow a block index of ${this.blocks.length} blocks to ${blockCount}`);
    }
    if (blockCount === this.blocks.length) return;
    const grown = new Uint8Array(blockCount);
    grown.set(this.blocks);
    this.blocks = grown;
  }

  private checkRange(first: number, end: number): void {
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(end) || first < 0 || end < first) {
      throw new RangeError(`invalid block range [${first}, ${end})`);
    }
    if (end > this.blocks.length) {
      throw new RangeError(`block range [${first}, ${end}) is beyond the ${this.blocks.length} blocks of the index`);
    }
  }
}

function checkLayer(layer: number): void {
  if (!Number.isInteger(layer) || layer < NO_LAYER || layer > MAX_LAYERS) {
    throw new RangeError(`layer index must be an integer in [0, ${MAX_LAYERS}], got ${layer}`);
  }
}
