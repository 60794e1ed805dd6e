// A replica: one volume's data as a directory of sparse layer files in Longhorn v1's on-disk format
// (reference §1.1–§1.3, DESIGN §6), read through a chain of layers and written to its head.
//
// All I/O is synchronous on purpose: a pread/pwrite into the page cache costs less than a hop to the
// libuv thread pool, and it makes each call atomic with respect to the others (a read-modify-write of
// an edge block needs no lock). Only flush waits for the disk, and it does so asynchronously.
//
// Invariant: the in-memory BlockIndex always equals what open() would build from the files, so what a
// replica reads before and after a close/reopen is the same.
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { EXTENT_HOLE, EXTENT_ZERO } from '../../block-device.js';
import { BLOCK_SIZE, BlockIndex, MAX_LAYERS, NO_LAYER } from './block-index.js';
import { type DiskMeta, goTimestamp, readAllDiskMetas, readDiskMeta, writeDiskMeta } from './disk-meta.js';
import { DISK_META_SUFFIX, headDiskName, isHeadDiskName } from './disk-names.js';
import { Layer } from './layer.js';
import { RevisionCounterFile, readRevisionCounter, writeRevisionCounterFile } from './revision-counter.js';
import {
  REPLICA_SECTOR_SIZE,
  readVolumeMeta,
  VOLUME_META_FILE,
  type VolumeMeta,
  writeVolumeMeta,
} from './volume-meta.js';

export type ReplicaState = 'initial' | 'closed' | 'open' | 'dirty' | 'rebuilding' | 'error';

export interface DiskInfo {
  name: string;
  parent: string;
  children: string[];
  removed: boolean;
  userCreated: boolean;
  created: string;
  /** Allocated bytes. */
  size: number;
  labels: Record<string, string>;
}

export interface ReplicaInfo {
  state: ReplicaState;
  dirty: boolean;
  rebuilding: boolean;
  head: string;
  parent: string;
  size: number;
  sectorSize: number;
  /** Head first, then its ancestors. */
  chain: string[];
  disks: Record<string, DiskInfo>;
  revisionCounter: number;
  /** Allocated bytes of the head. */
  headFileSize: number;
  error: string;
}

/** Source of zero bytes for writeZeroes over data a lower layer holds; never written to. */
const ZEROES = Buffer.alloc(1024 * 1024);
/**
 * Ranges that need the layers beneath the head resolved (writeZeroes, unmap) are handled this many
 * blocks at a time, so zeroing a whole large volume does not allocate an index as big as the volume.
 */
const RESOLVE_WINDOW_BLOCKS = 64 * 1024;
/** Extents are fetched per window for the same reason: a fragmented layer would yield a huge array. */
const EXTENT_WINDOW_BYTES = 1024 * 1024 * 1024;

/** Directories open in this process: two Replica objects writing one directory would corrupt it. */
const openDirs = new Set<string>();

interface OpenParts {
  dir: string;
  meta: VolumeMeta;
  disks: Map<string, DiskMeta>;
  layers: (Layer | null)[];
  index: BlockIndex;
  counterFile: RevisionCounterFile;
}

export class Replica {
  readonly dir: string;
  readonly size: number;
  /** Writes taken so far (+1 per write, writeZeroes and unmap); persisted by flush() and close(). */
  revisionCounter: number;

  private meta: VolumeMeta;
  /** Every layer described in the directory, including side branches outside the chain. */
  private readonly disks: Map<string, DiskMeta>;
  /** [0] is unused (index 0 = no layer), [1] = oldest … [n-1] = head, as in the BlockIndex. */
  private readonly layers: (Layer | null)[];
  private readonly index: BlockIndex;
  private readonly counterFile: RevisionCounterFile;

  private closing: Promise<void> | null = null;
  /** flush() calls still running; close() waits for them before closing the files they use. */
  private readonly flushes = new Set<Promise<void>>();
  // Flush bookkeeping: each counter below only grows, so a flush can tell what is already durable
  // without holding a lock across its awaits.
  private headChanges = 0;
  private headChangesSynced = 0;
  private flushCalls = 0;
  private counterWrittenByCall = 0;
  private counterInFile: number;
  private counterWrites = 0;
  private counterWritesSynced = 0;
  /** The first failed sync; every later flush fails with it (see persist). */
  private syncFailure: Error | null = null;

  private constructor(parts: OpenParts) {
    this.dir = parts.dir;
    this.meta = parts.meta;
    this.size = parts.meta.size;
    this.disks = parts.disks;
    this.layers = parts.layers;
    this.index = parts.index;
    this.counterFile = parts.counterFile;
    this.revisionCounter = parts.counterFile.initialValue;
    this.counterInFile = parts.counterFile.initialValue;
  }

  /**
   * Lays down an empty replica: a fully sparse volume-head-000.img and its meta, revision.counter = 0,
   * and volume.meta last, since its presence is what makes the directory a replica.
   */
  static create(dir: string, size: number): void {
    checkVolumeSize(size, `create replica ${dir}`);
    mkdirSync(dir, { recursive: true });
    if (existsSync(join(dir, VOLUME_META_FILE))) {
      throw new Error(`create replica ${dir}: volume.meta already exists`);
    }
    const oldHead = readdirSync(dir).find(isHeadDiskName);
    if (oldHead !== undefined) {
      // A head without volume.meta is a replica that lost its meta: open() recovers it.
      throw new Error(`create replica ${dir}: ${oldHead} already exists`);
    }
    const head = headDiskName(0);
    createSparseFile(join(dir, head), size);
    // The atomic writes below fsync the directory, which also makes the head's name durable.
    writeDiskMeta(dir, {
      name: head,
      parent: '',
      removed: false,
      userCreated: false,
      created: goTimestamp(),
      labels: {},
    });
    writeRevisionCounterFile(dir, 0);
    writeVolumeMeta(dir, {
      size,
      head,
      dirty: false,
      rebuilding: false,
      error: '',
      parent: '',
      sectorSize: REPLICA_SECTOR_SIZE,
      backingFilePath: '',
      encrypted: false,
    });
  }

  /** What a replica directory holds, without opening it. */
  static describe(dir: string): ReplicaInfo {
    let meta: VolumeMeta | null;
    try {
      meta = readVolumeMeta(dir);
    } catch (err) {
      return initialInfo((err as Error).message);
    }
    if (meta === null) return initialInfo('');
    let disks = new Map<string, DiskMeta>();
    let chain: string[] = [];
    let problem = meta.error;
    try {
      disks = readAllDiskMetas(dir);
      chain = walkChain(meta.head, disks);
    } catch (err) {
      if (problem === '') problem = (err as Error).message;
    }
    let revisionCounter = 0;
    try {
      revisionCounter = readRevisionCounter(dir) ?? 0;
    } catch (err) {
      if (problem === '') problem = (err as Error).message;
    }
    const state: ReplicaState = problem === '' ? 'closed' : 'error';
    return replicaInfo(state, { ...meta, error: problem }, disks, chain, revisionCounter, (name) =>
      allocatedBytesOf(join(dir, name)),
    );
  }

  /**
   * Opens the chain from the head down to the root, builds the block index from every layer's data
   * extents and marks the replica dirty in volume.meta until close().
   */
  static open(dir: string): Replica {
    const layers: (Layer | null)[] = [null];
    let counterFile: RevisionCounterFile | null = null;
    const key = resolve(dir);
    if (openDirs.has(key)) throw new Error(`open replica ${dir}: it is already open in this process`);
    try {
      let meta = readVolumeMeta(dir) ?? recoverVolumeMeta(dir);
      checkVolumeSize(meta.size, `${join(dir, VOLUME_META_FILE)}: Size`);
      if (meta.head === '') throw new Error('volume.meta names no Head');
      if (meta.backingFilePath !== '') {
        throw new Error(`backing files are not supported (BackingFilePath ${meta.backingFilePath})`);
      }
      const disks = readAllDiskMetas(dir);
      const chain = walkChain(meta.head, disks);
      for (let i = chain.length - 1; i >= 0; i--) {
        layers.push(Layer.open(dir, disks.get(chain[i]!)!, i === 0));
      }
      const index = new BlockIndex(meta.size / BLOCK_SIZE);
      for (let i = 1; i < layers.length; i++) markExtents(index, layers[i]!, i, 0, meta.size);
      counterFile = RevisionCounterFile.openOrCreate(dir);
      meta = { ...meta, parent: disks.get(meta.head)!.parent, dirty: true };
      writeVolumeMeta(dir, meta);
      openDirs.add(key);
      return new Replica({ dir, meta, disks, layers, index, counterFile });
    } catch (cause) {
      for (const layer of layers) layer?.close();
      counterFile?.close();
      throw new Error(`open replica ${dir}: ${(cause as Error).message}`, { cause });
    }
  }

  read(offset: number, length: number): Buffer {
    this.checkIo('read', offset, length);
    const buf = Buffer.allocUnsafe(length);
    this.readInto(buf, 0, offset, length);
    return buf;
  }

  write(offset: number, data: Buffer): void {
    this.checkIo('write', offset, data.length);
    this.revisionCounter++;
    if (data.length > 0) this.writeBlocks(offset, data);
  }

  writeZeroes(offset: number, length: number): void {
    this.checkIo('writeZeroes', offset, length);
    this.revisionCounter++;
    if (length === 0) return;
    const end = offset + length;
    const first = alignUp(offset);
    const last = alignDown(end);
    if (first >= last) {
      // No whole block inside: at most two partial blocks, zeroed by read-modify-write.
      this.writeBlocks(offset, ZEROES.subarray(0, length));
      return;
    }
    if (offset < first) this.writeBlocks(offset, ZEROES.subarray(0, first - offset));
    if (last < end) this.writeBlocks(last, ZEROES.subarray(0, end - last));
    for (let b = first / BLOCK_SIZE; b < last / BLOCK_SIZE; b += RESOLVE_WINDOW_BLOCKS) {
      this.zeroWholeBlocks(b, Math.min(b + RESOLVE_WINDOW_BLOCKS, last / BLOCK_SIZE));
    }
  }

  unmap(offset: number, length: number): number {
    this.checkIo('unmap', offset, length);
    this.revisionCounter++;
    const first = alignUp(offset);
    const last = alignDown(offset + length);
    if (last <= first) return 0;
    const head = this.head;
    const before = head.allocatedBytes();
    head.punchHole(first, last - first);
    this.headChanges++;
    // Only the head is punched (removed snapshots below it come later), so the data of lower layers
    // shows through again, exactly as the index built by the next open would have it.
    const headIndex = this.headIndex;
    for (let b = first / BLOCK_SIZE; b < last / BLOCK_SIZE; b += RESOLVE_WINDOW_BLOCKS) {
      const end = Math.min(b + RESOLVE_WINDOW_BLOCKS, last / BLOCK_SIZE);
      if (headIndex === 1) this.index.setRange(b, end, NO_LAYER);
      else if (this.index.includes(b, end, headIndex)) this.index.uncover(b, end, headIndex, this.beneathHead(b, end));
    }
    return Math.max(0, before - head.allocatedBytes());
  }

  blockStatus(offset: number, length: number): { length: number; flags: number }[] {
    this.checkIo('blockStatus', offset, length);
    const extents: { length: number; flags: number }[] = [];
    const end = offset + length;
    const limit = Math.ceil(end / BLOCK_SIZE);
    let pos = offset;
    while (pos < end) {
      const block = Math.floor(pos / BLOCK_SIZE);
      const runEnd = Math.min(this.index.presenceRunEnd(block, limit) * BLOCK_SIZE, end);
      const flags = this.index.layerAt(block) === NO_LAYER ? EXTENT_HOLE | EXTENT_ZERO : 0;
      extents.push({ length: runEnd - pos, flags });
      pos = runEnd;
    }
    return extents;
  }

  flush(): Promise<void> {
    if (this.closing !== null) return Promise.reject(new Error(`flush: replica ${this.dir} is closed`));
    const flushing = this.persist();
    this.flushes.add(flushing);
    const done = (): void => {
      this.flushes.delete(flushing);
    };
    flushing.then(done, done);
    return flushing;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  info(): ReplicaInfo {
    if (this.closing !== null) return Replica.describe(this.dir);
    const open = new Map<string, Layer>();
    for (const layer of this.layers) if (layer !== null) open.set(layer.name, layer);
    const chain = this.layers.flatMap((layer) => (layer === null ? [] : [layer.name])).reverse();
    const state: ReplicaState = this.meta.error !== '' ? 'error' : this.meta.rebuilding ? 'rebuilding' : 'open';
    return replicaInfo(state, this.meta, this.disks, chain, this.revisionCounter, (name) => {
      const layer = open.get(name);
      return layer !== undefined ? layer.allocatedBytes() : allocatedBytesOf(join(this.dir, name));
    });
  }

  private get headIndex(): number {
    return this.layers.length - 1;
  }

  private get head(): Layer {
    return this.layers[this.layers.length - 1]!;
  }

  private checkIo(op: string, offset: number, length: number): void {
    if (this.closing !== null) throw new Error(`${op}: replica ${this.dir} is closed`);
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > this.size
    ) {
      throw new RangeError(`${op} of ${length} bytes at ${offset} is outside the volume [0, ${this.size})`);
    }
  }

  /** Fills buf[at, at+length) with volume bytes [offset, offset+length): one pread per run of blocks. */
  private readInto(buf: Buffer, at: number, offset: number, length: number): void {
    const index = this.index;
    const end = offset + length;
    const limit = Math.ceil(end / BLOCK_SIZE);
    let pos = offset;
    while (pos < end) {
      const block = Math.floor(pos / BLOCK_SIZE);
      const runEnd = Math.min(index.runEnd(block, limit) * BLOCK_SIZE, end);
      const layer = index.layerAt(block);
      if (layer === NO_LAYER) buf.fill(0, at + pos - offset, at + runEnd - offset);
      else this.pread(this.layers[layer]!, buf, at + pos - offset, runEnd - pos, pos);
      pos = runEnd;
    }
  }

  private pread(layer: Layer, buf: Buffer, at: number, length: number, position: number): void {
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = readSync(layer.fd, buf, at + done, length - done, position + done);
      } catch (cause) {
        throw new Error(`read ${layer.name} at ${position + done}`, { cause });
      }
      if (n === 0) {
        // Past the layer's apparent size (a layer older than an expansion): zeros.
        buf.fill(0, at + done, at + length);
        return;
      }
      done += n;
    }
  }

  private pwrite(data: Buffer, at: number, length: number, position: number): void {
    const head = this.head;
    let done = 0;
    while (done < length) {
      try {
        done += writeSync(head.fd, data, at + done, length - done, position + done);
      } catch (cause) {
        throw new Error(`write ${head.name} at ${position + done}`, { cause });
      }
    }
  }

  /**
   * Writes `data` at `offset` to the head in whole blocks: a block in the head hides that block of
   * every lower layer, so unaligned edges are completed by reading the rest of the block through the
   * chain first (NBD clients may send 512-byte aligned I/O). One pwrite either way.
   */
  private writeBlocks(offset: number, data: Buffer): void {
    const end = offset + data.length;
    const start = alignDown(offset);
    const stop = alignUp(end);
    let out = data;
    if (start !== offset || stop !== end) {
      out = Buffer.allocUnsafe(stop - start);
      const lastBlock = stop - BLOCK_SIZE;
      if (offset !== start) this.readInto(out, 0, start, BLOCK_SIZE);
      if (end !== stop && (lastBlock !== start || offset === start)) {
        this.readInto(out, lastBlock - start, lastBlock, BLOCK_SIZE);
      }
      data.copy(out, offset - start);
    }
    // Marked before writing, as Longhorn does: after a failed write the head may hold part of the new
    // data, so it is the layer to read (and the replica is about to be failed anyway).
    this.index.setRange(start / BLOCK_SIZE, stop / BLOCK_SIZE, this.headIndex);
    this.headChanges++;
    this.pwrite(out, 0, out.length, start);
  }

  /**
   * Zeros blocks [first, end) durably: where no lower layer has data a hole in the head is enough
   * (and frees space); where one has, the head must hold explicit zeros or the old data would show
   * through again after a reopen.
   */
  private zeroWholeBlocks(first: number, end: number): void {
    const head = this.head;
    this.headChanges++;
    if (this.headIndex === 1) {
      head.punchHole(first * BLOCK_SIZE, (end - first) * BLOCK_SIZE);
      this.index.setRange(first, end, NO_LAYER);
      return;
    }
    const beneath = this.beneathHead(first, end);
    for (let b = first; b < end; ) {
      const runEnd = first + beneath.presenceRunEnd(b - first, end - first);
      if (beneath.layerAt(b - first) === NO_LAYER) {
        head.punchHole(b * BLOCK_SIZE, (runEnd - b) * BLOCK_SIZE);
        this.index.setRange(b, runEnd, NO_LAYER);
      } else {
        this.index.setRange(b, runEnd, this.headIndex);
        this.writeZeroBytes(b * BLOCK_SIZE, (runEnd - b) * BLOCK_SIZE);
      }
      b = runEnd;
    }
  }

  private writeZeroBytes(offset: number, length: number): void {
    for (let done = 0; done < length; done += ZEROES.length) {
      this.pwrite(ZEROES, 0, Math.min(ZEROES.length, length - done), offset + done);
    }
  }

  /**
   * For blocks [first, end), the topmost layer below the head that has data, as a BlockIndex whose
   * block 0 is `first`. Asks the files (SEEK_DATA/SEEK_HOLE): the index only knows the top layer.
   */
  private beneathHead(first: number, end: number): BlockIndex {
    const beneath = new BlockIndex(end - first);
    for (let i = 1; i < this.headIndex; i++) {
      markExtents(beneath, this.layers[i]!, i, first * BLOCK_SIZE, end * BLOCK_SIZE);
    }
    return beneath;
  }

  /**
   * Makes durable every write that returned before the call: fdatasync the head, then write and
   * fdatasync the revision counter, in that order, so the counter never claims data the head lacks.
   * What to cover is captured before the first await; later writes may ride along but are not promised.
   */
  private async persist(): Promise<void> {
    const call = ++this.flushCalls;
    const headChanges = this.headChanges;
    const counter = this.revisionCounter;
    if (this.syncFailure !== null) throw this.syncFailure;
    try {
      if (this.headChangesSynced < headChanges) {
        await this.head.fdatasync();
        this.headChangesSynced = Math.max(this.headChangesSynced, headChanges);
      }
      // A later flush call may have written a newer value while this one waited: keep the newer one.
      if (call > this.counterWrittenByCall && counter !== this.counterInFile) {
        this.counterFile.write(counter);
        this.counterInFile = counter;
        this.counterWrittenByCall = call;
        this.counterWrites++;
      }
      const counterWrites = this.counterWrites;
      if (this.counterWritesSynced < counterWrites) {
        await this.counterFile.sync();
        this.counterWritesSynced = Math.max(this.counterWritesSynced, counterWrites);
      }
    } catch (err) {
      // Linux reports a writeback error to one fdatasync only: a later one can succeed although the
      // data never reached the disk. So once a sync failed, no flush may claim durability again.
      this.syncFailure ??= err as Error;
      throw err;
    }
  }

  private async shutdown(): Promise<void> {
    // Our own final flush, plus any flush() still running: their files must stay open until they end.
    const [own] = await Promise.allSettled([this.persist(), ...this.flushes]);
    let failure: unknown = own?.status === 'rejected' ? own.reason : undefined;
    if (failure === undefined) {
      // Dirty=false only when everything is on disk: a dirty replica was not closed cleanly.
      try {
        this.meta = { ...this.meta, dirty: false };
        writeVolumeMeta(this.dir, this.meta);
      } catch (err) {
        failure = err;
      }
    }
    for (const layer of this.layers) layer?.close();
    this.counterFile.close();
    openDirs.delete(resolve(this.dir));
    if (failure !== undefined) {
      throw new Error(`close replica ${this.dir}: ${(failure as Error).message}`, { cause: failure });
    }
  }
}

function checkVolumeSize(size: number, what: string): void {
  if (!Number.isSafeInteger(size) || size <= 0 || size % BLOCK_SIZE !== 0) {
    throw new RangeError(`${what}: volume size must be a positive multiple of ${BLOCK_SIZE}, got ${size}`);
  }
}

function alignDown(offset: number): number {
  return offset - (offset % BLOCK_SIZE);
}

function alignUp(offset: number): number {
  const rest = offset % BLOCK_SIZE;
  return rest === 0 ? offset : offset + BLOCK_SIZE - rest;
}

/** Marks in `target` (whose block 0 is byte `start`) the blocks of [start, end) where `layer` has data. */
function markExtents(target: BlockIndex, layer: Layer, layerIndex: number, start: number, end: number): void {
  for (let window = start; window < end; window += EXTENT_WINDOW_BYTES) {
    const extents = layer.dataExtents(window, Math.min(window + EXTENT_WINDOW_BYTES, end));
    for (let i = 0; i < extents.length; i += 2) {
      target.markBytes(extents[i]! - start, extents[i + 1]!, layerIndex);
    }
  }
}

function createSparseFile(path: string, size: number): void {
  try {
    const fd = openSync(path, 'wx', 0o644);
    try {
      ftruncateSync(fd, size);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (cause) {
    throw new Error(`create ${path} (${size} bytes, sparse)`, { cause });
  }
}

/** The chain from `head` to the root by Parent, head first. */
function walkChain(head: string, disks: Map<string, DiskMeta>): string[] {
  const chain: string[] = [];
  for (let name = head; name !== ''; ) {
    const disk = disks.get(name);
    if (disk === undefined) {
      const child = chain.at(-1);
      throw new Error(
        child === undefined
          ? `head ${name} has no ${name}${DISK_META_SUFFIX}`
          : `${child} names parent ${name}, which has no ${name}${DISK_META_SUFFIX}`,
      );
    }
    if (chain.includes(name)) throw new Error(`the layer chain loops back to ${name}`);
    chain.push(name);
    if (chain.length > MAX_LAYERS) throw new Error(`the layer chain is longer than ${MAX_LAYERS} layers`);
    name = disk.parent;
  }
  return chain;
}

/**
 * Rebuilds a missing or empty volume.meta the way Longhorn's tryRecoverVolumeMetaFile does: the head
 * is the first volume-head file in name order. Longhorn takes the size from its command line; we have
 * none, so the head's apparent size (it is truncated to the volume size) stands in.
 */
function recoverVolumeMeta(dir: string): VolumeMeta {
  const head = readdirSync(dir).sort().find(isHeadDiskName);
  if (head === undefined) {
    throw new Error('volume.meta is missing or empty and there is no volume-head-NNN.img to recover it from');
  }
  return {
    size: statSync(join(dir, head)).size,
    head,
    dirty: true,
    rebuilding: false,
    error: '',
    parent: readDiskMeta(dir, head).parent,
    sectorSize: REPLICA_SECTOR_SIZE,
    backingFilePath: '',
    encrypted: false,
  };
}

function allocatedBytesOf(path: string): number {
  try {
    return statSync(path).blocks * 512;
  } catch {
    return 0;
  }
}

function initialInfo(error: string): ReplicaInfo {
  return {
    state: 'initial',
    dirty: false,
    rebuilding: false,
    head: '',
    parent: '',
    size: 0,
    sectorSize: REPLICA_SECTOR_SIZE,
    chain: [],
    disks: {},
    revisionCounter: 0,
    headFileSize: 0,
    error,
  };
}

function replicaInfo(
  state: ReplicaState,
  meta: VolumeMeta,
  disks: Map<string, DiskMeta>,
  chain: string[],
  revisionCounter: number,
  allocatedBytes: (name: string) => number,
): ReplicaInfo {
  const children = new Map<string, string[]>();
  for (const disk of disks.values()) {
    if (disk.parent === '') continue;
    const siblings = children.get(disk.parent);
    if (siblings === undefined) children.set(disk.parent, [disk.name]);
    else siblings.push(disk.name);
  }
  const infos: Record<string, DiskInfo> = {};
  for (const disk of disks.values()) {
    infos[disk.name] = {
      name: disk.name,
      parent: disk.parent,
      children: (children.get(disk.name) ?? []).sort(),
      removed: disk.removed,
      userCreated: disk.userCreated,
      created: disk.created,
      size: allocatedBytes(disk.name),
      labels: { ...disk.labels },
    };
  }
  return {
    state,
    dirty: meta.dirty,
    rebuilding: meta.rebuilding,
    head: meta.head,
    parent: meta.parent,
    size: meta.size,
    sectorSize: meta.sectorSize,
    chain,
    disks: infos,
    revisionCounter,
    headFileSize: meta.head === '' ? 0 : allocatedBytes(meta.head),
    error: meta.error,
  };
}
