// A replica: one volume's data as a directory of sparse layer files in Longhorn v1's on-disk format
// (reference §1.1–§1.3, DESIGN §6), read through a chain of layers and written to its head.
//
// All I/O is synchronous on purpose: a pread/pwrite into the page cache costs less than a hop to the
// libuv thread pool, and it makes each call atomic with respect to the others (a read-modify-write of
// an edge block needs no lock). Two things wait for the disk, asynchronously: flush, and the part of a
// readToCached() that is not in the page cache (it goes to the thread pool instead of stalling the
// loop; it is a read, so no other call depends on its being atomic).
//
// Invariant: the in-memory BlockIndex always equals what open() would build from the files, so what a
// replica reads before and after a close/reopen is the same.
import {
  closeSync,
  existsSync,
  fdatasync,
  fsyncSync,
  ftruncateSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { EXTENT_HOLE, EXTENT_ZERO } from '../../block-device.js';
import { sparse } from '../../native/sparse.js';
import { fsyncDirectory } from './atomic-file.js';
import { BLOCK_SIZE, BlockIndex, MAX_LAYERS, NO_LAYER } from './block-index.js';
import type { CopiedLayersSync } from './copied-layers-sync.js';
import {
  childrenByParent,
  type DiskMeta,
  goTimestamp,
  readAllDiskMetas,
  readDiskMeta,
  writeDiskMeta,
} from './disk-meta.js';
import {
  DISK_META_SUFFIX,
  headDiskName,
  headGeneration,
  isHeadDiskName,
  snapshotDiskName,
  snapshotNameOfDisk,
} from './disk-names.js';
import { Layer } from './layer.js';
import { foldFile, pruneWindow } from './layer-fold.js';
import { nextPurgeAction, type PurgeAction } from './purge-plan.js';
import { RevisionCounterFile, readRevisionCounter, writeRevisionCounterFile } from './revision-counter.js';
import { hashSnapshot, removeSnapshotChecksum, type SnapshotChecksum } from './snapshot-checksum.js';
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
 * The head is written in pieces of at most 16 KiB, cut at 16 KiB file offsets. Linux (6.16+) gives
 * ext4 files large page-cache folios sized by the write, and both ends of that are slow for a block
 * device's head: filling 1 MiB with one pwrite cost 1.4 ms CPU against 0.3 ms in 16 KiB pieces, and a
 * later 4 KiB write into such a folio walks all its buffer heads (9.7 µs against 2.7 µs a write; 64
 * KiB pieces: 3.9 µs, 8 KiB: 2.6 µs but more syscalls). Measured on kernel 6.18, bench/RESULTS.md.
 */
const HEAD_WRITE_PIECE = 16 * 1024;
/**
 * Ranges that need the layers beneath the head resolved (writeZeroes, unmap) are handled this many
 * blocks at a time, so zeroing a whole large volume does not allocate an index as big as the volume.
 */
const RESOLVE_WINDOW_BLOCKS = 64 * 1024;
/** Extents are fetched per window for the same reason: a fragmented layer would yield a huge array. */
const EXTENT_WINDOW_BYTES = 1024 * 1024 * 1024;

/** A chain operation refused for a reason the caller can act on; `code` says which. */
export class ReplicaChainError extends Error {
  constructor(
    message: string,
    readonly code: 'not-found' | 'exists' | 'limit' | 'invalid' | 'busy',
  ) {
    super(message);
  }
}

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

export interface SnapshotOptions {
  userCreated: boolean;
  /** RFC 3339 UTC, whole seconds; the engine gives every replica the same value. */
  created: string;
  labels: Record<string, string>;
}

export interface PurgeProgress {
  /** Actions done so far / planned so far (the plan grows as coalesces open up new ones). */
  done: number;
  action: PurgeAction;
}

/**
 * At most this many snapshots per volume (Longhorn's MaximumTotalSnapshotCount). Removed snapshots
 * count until purged: they still occupy a layer of the chain.
 */
export const MAX_SNAPSHOTS = 250;
/** Snapshot names end up in file names and URLs: keep them to what every layer accepts. */
const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$/;
/** Prune and chain-unmap work in windows this large so one synchronous step stays short. */
const PRUNE_WINDOW_BYTES = 64 * 1024 * 1024;

export class Replica {
  readonly dir: string;
  /** Grows with expand(). */
  size: number;
  /** Writes taken so far (+1 per write, writeZeroes and unmap); persisted by flush() and close(). */
  revisionCounter: number;

  /**
   * Trims also free snapshot space: before unmapping, the run of snapshots right under the head is
   * marked removed and punched too (Longhorn's unmap-mark-disk-chain-removed). Set by the engine.
   */
  unmapMarkChainRemoved = false;

  private meta: VolumeMeta;
  /** Every layer described in the directory, including side branches outside the chain. */
  private disks: Map<string, DiskMeta>;
  /** [0] is unused (index 0 = no layer), [1] = oldest … [n-1] = head, as in the BlockIndex. */
  private layers: (Layer | null)[];
  private index: BlockIndex;
  /**
   * Former heads whose writes have not reached the disk yet: a snapshot turns the head into a
   * snapshot layer without syncing it (that would stall I/O), so the next flush syncs them too.
   */
  private readonly unsyncedLayers = new Set<Layer>();
  /** A purge or another long chain operation in progress; they run one at a time. */
  private chainJob: string | null = null;
  /**
   * Snapshots held by readers (backups), by hold token: while any is held, nothing may rewrite or drop
   * a layer of the chain (purge, revert, reload) and trims do not punch a held snapshot or anything
   * under it. Snapshots and expansions stay allowed: they only add layers above.
   */
  private readonly snapshotHolds = new Map<number, { holder: string; disk: string }>();
  private nextHold = 1;
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
  /** Layers a finished rebuild copied in, still being synced: volume.meta keeps Rebuilding=true meanwhile. */
  private copiedLayers: CopiedLayersSync | null = null;

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
      removeInterruptedLeftovers(dir, meta.head, disks);
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

  /** Like read(), into `buf` (all of it) — for a caller that brings its own memory. */
  readTo(buf: Buffer, offset: number): void {
    this.checkIo('read', offset, buf.length);
    this.readInto(buf, 0, offset, buf.length);
  }

  /**
   * Like readTo(), but what the page cache does not hold is read on the libuv thread pool: returns
   * undefined when all of `buf` is filled on the spot, else a promise that settles once the rest is in.
   * A read served this way sees the chain as of when each of its runs is read: writes sent before it
   * are in it; writes sent after it while it waits may or may not be (as for any concurrent request).
   */
  readToCached(buf: Buffer, offset: number): Promise<void> | undefined {
    this.checkIo('read', offset, buf.length);
    const end = offset + buf.length;
    let pos = offset;
    while (pos < end) {
      const runEnd = this.runEndFrom(pos, end);
      const layer = this.index.layerAt(Math.floor(pos / BLOCK_SIZE));
      if (layer === NO_LAYER) {
        buf.fill(0, pos - offset, runEnd - offset);
      } else {
        const cached = this.preadCached(this.layers[layer]!, buf, pos - offset, runEnd - pos, pos);
        if (cached < runEnd - pos) return this.readRestOnThreadPool(buf, offset, pos + cached);
      }
      pos = runEnd;
    }
    return undefined;
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
    const below = this.meta.rebuilding ? [] : this.removedRunBelowHead();
    let freed = 0;
    const before = head.allocatedBytes();
    head.punchHole(first, last - first);
    this.headChanges++;
    freed += Math.max(0, before - head.allocatedBytes());
    for (const layer of below) freed += this.punchSnapshotLayer(layer, first, last);
    // Punched layers let the data of lower layers show through again, exactly as the index built by
    // the next open would have it.
    const headIndex = this.headIndex;
    for (let b = first / BLOCK_SIZE; b < last / BLOCK_SIZE; b += RESOLVE_WINDOW_BLOCKS) {
      const end = Math.min(b + RESOLVE_WINDOW_BLOCKS, last / BLOCK_SIZE);
      if (below.length > 0) this.index.copyFrom(b, this.beneath(b, end, headIndex + 1));
      else if (headIndex === 1) this.index.setRange(b, end, NO_LAYER);
      else if (this.index.includes(b, end, headIndex)) this.index.uncover(b, end, headIndex, this.beneathHead(b, end));
    }
    return freed;
  }

  /**
   * The snapshots an unmap punches besides the head: the run of removed snapshots right under it, each
   * with no child but the layer above (a snapshot with a side branch is still needed as it is). With
   * unmapMarkChainRemoved the run is first extended by marking the snapshots under the head removed.
   */
  private removedRunBelowHead(): Layer[] {
    const children = childrenByParent(this.disks.values());
    const run: Layer[] = [];
    // A held snapshot is being read by a backup: it and every layer under it must stay as they are.
    const floor = this.highestHeldLayer();
    for (let i = this.headIndex - 1; i > floor; i--) {
      const layer = this.layers[i]!;
      if ((children.get(layer.name)?.length ?? 0) !== 1) break;
      if (!layer.meta.removed) {
        if (!this.unmapMarkChainRemoved) break;
        this.updateDiskMeta({ ...layer.meta, removed: true });
      }
      run.push(layer);
    }
    return run;
  }

  /** Punches [first, last) of a snapshot layer (clipped to its size); returns the bytes freed. */
  private punchSnapshotLayer(layer: Layer, first: number, last: number): number {
    const end = Math.min(last, layer.apparentSize());
    if (end <= first) return 0;
    const before = layer.allocatedBytes();
    const fd = openSync(layer.path, 'r+');
    try {
      sparse.punchHole(fd, first, end - first);
    } catch (cause) {
      throw new Error(`punch hole in ${layer.name} at ${first} length ${end - first}`, { cause });
    } finally {
      closeSync(fd);
    }
    removeSnapshotChecksum(this.dir, layer.name);
    return Math.max(0, before - layer.allocatedBytes());
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

  // ---- snapshot chain ------------------------------------------------------------------------------

  /**
   * Longhorn's createDisk (reference §1.4): the head becomes snapshot `name` (a hard link, no data
   * copied) and a new empty head on top of it takes the writes. Synchronous, so no I/O of this process
   * interleaves; the engine has paused the volume's I/O around it anyway.
   */
  snapshot(name: string, opts: SnapshotOptions): void {
    this.checkOpen('snapshot');
    checkSnapshotName(name);
    const count = this.snapshotCount();
    if (opts.userCreated && count >= MAX_SNAPSHOTS) {
      throw new ReplicaChainError(
        `volume has ${count} snapshots (removed ones count until purged), the most is ${MAX_SNAPSHOTS}: delete and purge some first`,
        'limit',
      );
    }
    this.cutHead(snapshotDiskName(name), opts, this.size);
  }

  /** Snapshots in the directory, removed ones included (they hold a layer until purged). */
  snapshotCount(): number {
    let n = 0;
    for (const name of this.disks.keys()) if (snapshotNameOfDisk(name) !== null) n++;
    return n;
  }

  /**
   * Longhorn's revertDisk (reference §1.5): a new empty head on top of snapshot `name`; the old head's
   * data is dropped, snapshots newer than `name` stay as a side branch. The caller guarantees no I/O.
   */
  revert(name: string, created: string): void {
    this.checkOpen('revert');
    this.checkNoChainJob('revert');
    const target = this.snapshotDisk(name);
    if (target.removed) throw new ReplicaChainError(`snapshot ${name} is removed; it cannot be reverted to`, 'invalid');
    const oldHead = this.head;
    const newHead = this.nextHeadName();
    createSparseFile(join(this.dir, newHead), this.size);
    const headMeta: DiskMeta = {
      name: newHead,
      parent: target.name,
      removed: false,
      userCreated: false,
      created,
      labels: {},
    };
    try {
      writeDiskMeta(this.dir, headMeta);
      this.meta = { ...this.meta, head: newHead, parent: target.name, dirty: true };
      this.writeMeta();
    } catch (err) {
      removeQuietly(join(this.dir, newHead), join(this.dir, newHead + DISK_META_SUFFIX));
      throw err;
    }
    this.unsyncedLayers.delete(oldHead);
    removeQuietly(join(this.dir, oldHead.name), join(this.dir, oldHead.name + DISK_META_SUFFIX));
    fsyncDirectory(this.dir);
    this.reload();
  }

  /** Marks a snapshot removed (phase 1 of delete): it keeps serving reads until purge() folds it away. */
  markRemoved(name: string): void {
    this.checkOpen('remove snapshot');
    const disk = this.snapshotDisk(name);
    if (disk.removed) return;
    this.updateDiskMeta({ ...disk, removed: true });
  }

  /**
   * Phase 2 of delete (reference §1.6): system snapshots are marked removed, then every removed
   * snapshot is removed, coalesced into its only child or pruned under the head, one action at a time.
   * The volume reads the same before and after; I/O keeps flowing while data is folded.
   */
  async purge(onProgress?: (p: PurgeProgress) => void, signal?: AbortSignal): Promise<PurgeAction[]> {
    this.checkOpen('purge');
    this.checkNoChainJob('purge');
    if (this.meta.rebuilding) throw new ReplicaChainError('the replica is rebuilding; purge after the rebuild', 'busy');
    this.chainJob = 'purge';
    const done: PurgeAction[] = [];
    try {
      for (const disk of [...this.disks.values()]) {
        if (!disk.userCreated && !disk.removed && disk.name !== this.meta.head) {
          this.updateDiskMeta({ ...disk, removed: true });
        }
      }
      const pruned = new Set<string>();
      for (;;) {
        signal?.throwIfAborted();
        this.checkOpen('purge');
        const action = nextPurgeAction(this.disks, this.meta.head, pruned);
        if (action === null) break;
        if (action.kind === 'remove') this.removeDiskFiles(action.disk);
        else if (action.kind === 'coalesce') await this.coalesce(action.parent, action.child, signal);
        else {
          await this.prune(action.disk);
          pruned.add(action.disk);
        }
        done.push(action);
        onProgress?.({ done: done.length, action });
      }
      return done;
    } finally {
      this.chainJob = null;
    }
  }

  /**
   * Grows the volume (reference §2.5): an expansion snapshot `expand-<size>` (system, labelled
   * replica-expansion) and a new head of the new size. Layers below keep their smaller size; reads
   * past a layer's end are zeros.
   */
  expand(newSize: number): void {
    this.checkOpen('expand');
    checkVolumeSize(newSize, 'expand');
    if (newSize < this.size) {
      throw new ReplicaChainError(`cannot shrink the volume from ${this.size} to ${newSize} bytes`, 'invalid');
    }
    if (newSize === this.size) return;
    this.cutHead(
      snapshotDiskName(`expand-${newSize}`),
      { userCreated: false, created: goTimestamp(), labels: { 'replica-expansion': String(newSize) } },
      newSize,
    );
    this.index.grow(newSize / BLOCK_SIZE);
    this.size = newSize;
  }

  /**
   * CRC64 of a snapshot file, recorded beside it (reference §2.8). Runs while the volume serves; purge
   * and hashing exclude each other (a purge rewrites files a hash would be reading).
   */
  async hashSnapshot(
    name: string,
    rehash: boolean,
    signal?: AbortSignal,
  ): Promise<{ checksum: SnapshotChecksum; rehashed: boolean }> {
    this.checkOpen('hash snapshot');
    const disk = this.snapshotDisk(name);
    // Hashing only reads, so it may run beside a backup (which only reads too).
    this.checkNoChainJob('hash', { readersAllowed: true });
    this.chainJob = 'hash';
    try {
      return await hashSnapshot(this.dir, disk.name, { rehash, signal });
    } finally {
      this.chainJob = null;
    }
  }

  // ---- snapshot views (backups) --------------------------------------------------------------------

  /**
   * Holds snapshot `name` for a reader such as a backup (`holder` names it in refusals, e.g. "backup
   * backup-1"): until the returned release runs, purge, revert and reload are refused, and trims leave
   * the snapshot and the layers under it alone, so readSnapshot keeps seeing the same bytes. Refused
   * while a purge runs, while rebuilding, and for a snapshot off the current chain.
   */
  holdSnapshot(holder: string, name: string): () => void {
    this.checkOpen('hold snapshot');
    if (this.chainJob === 'purge') {
      throw new ReplicaChainError(`${holder}: a purge is in progress; try again when it is done`, 'busy');
    }
    if (this.meta.rebuilding) {
      throw new ReplicaChainError(`${holder}: the replica is rebuilding; it does not hold every layer yet`, 'busy');
    }
    const at = this.chainIndexOf(name);
    const token = this.nextHold++;
    this.snapshotHolds.set(token, { holder, disk: this.layers[at]!.name });
    return () => {
      this.snapshotHolds.delete(token);
    };
  }

  /** Snapshots held by readers right now: who holds which (snapshot name). */
  snapshotHolders(): { holder: string; snapshot: string }[] {
    return [...this.snapshotHolds.values()].map(({ holder, disk }) => ({
      holder,
      snapshot: snapshotNameOfDisk(disk) ?? disk,
    }));
  }

  /** Size of the volume when snapshot `name` was taken (its layer file's apparent size). */
  snapshotSize(name: string): number {
    this.checkOpen('snapshot size');
    return this.layers[this.chainIndexOf(name)]!.apparentSize();
  }

  /** Whether `since` is a snapshot of the current chain strictly below `name` (an incremental base). */
  isSnapshotBelow(since: string, name: string): boolean {
    this.checkOpen('compare snapshots');
    const top = this.chainIndexOf(name);
    const diskName = snapshotDiskName(since);
    const at = this.layers.findIndex((layer) => layer?.name === diskName);
    return at >= 1 && at < top;
  }

  /**
   * The volume as it was at snapshot `name`: the chain up to and including that snapshot, holes (and
   * the range past the snapshot's size, if the volume grew since) as zeros. The snapshot should be held
   * (holdSnapshot) by a reader that reads it over time.
   */
  readSnapshot(name: string, offset: number, length: number): Buffer {
    this.checkIo('read snapshot', offset, length);
    const top = this.chainIndexOf(name);
    const buf = Buffer.allocUnsafe(length);
    if (length === 0) return buf;
    const first = Math.floor(offset / BLOCK_SIZE);
    const end = Math.ceil((offset + length) / BLOCK_SIZE);
    const view = this.beneath(first, end, top + 1);
    const stop = offset + length;
    let pos = offset;
    while (pos < stop) {
      const block = Math.floor(pos / BLOCK_SIZE);
      const runEnd = Math.min((first + view.runEnd(block - first, end - first)) * BLOCK_SIZE, stop);
      const layer = view.layerAt(block - first);
      if (layer === NO_LAYER) buf.fill(0, pos - offset, runEnd - offset);
      else this.pread(this.layers[layer]!, buf, pos - offset, runEnd - pos, pos);
      pos = runEnd;
    }
    return buf;
  }

  /**
   * Byte offsets, ascending, of the `blockSize` blocks of snapshot `name` (over its size) holding a
   * 4 KiB block whose topmost layer at that snapshot lies above snapshot `since` — data written after
   * `since` up to and including `name`. With `since` undefined: every block holding any data. Longhorn's
   * CompareSnapshot (reference §5.5). `since` must be below `name` in the chain.
   */
  changedBlocks(name: string, since: string | undefined, blockSize: number): number[] {
    this.checkOpen('changed blocks');
    if (!Number.isSafeInteger(blockSize) || blockSize <= 0 || blockSize % BLOCK_SIZE !== 0) {
      throw new RangeError(`backup block size must be a positive multiple of ${BLOCK_SIZE}, got ${blockSize}`);
    }
    const top = this.chainIndexOf(name);
    let bottom = 1;
    if (since !== undefined) {
      if (!this.isSnapshotBelow(since, name)) {
        throw new ReplicaChainError(`snapshot ${since} is not below snapshot ${name} in the chain`, 'invalid');
      }
      bottom = this.chainIndexOf(since) + 1;
    }
    const size = this.layers[top]!.apparentSize();
    const perBlock = blockSize / BLOCK_SIZE;
    const windowBlocks = Math.max(1, Math.floor(RESOLVE_WINDOW_BLOCKS / perBlock)) * perBlock;
    const totalBlocks = Math.ceil(size / BLOCK_SIZE);
    const changed: number[] = [];
    for (let w = 0; w < totalBlocks; w += windowBlocks) {
      const end = Math.min(w + windowBlocks, totalBlocks);
      const window = this.beneath(w, end, top + 1, bottom);
      for (let b = w; b < end; ) {
        const runEnd = w + window.presenceRunEnd(b - w, end - w);
        if (window.layerAt(b - w) !== NO_LAYER) {
          // Every backup block this run of data touches.
          const firstOffset = Math.floor((b * BLOCK_SIZE) / blockSize) * blockSize;
          for (let o = firstOffset; o < runEnd * BLOCK_SIZE; o += blockSize) {
            if (changed.at(-1) !== o) changed.push(o);
          }
        }
        b = runEnd;
      }
    }
    return changed;
  }

  /** Re-reads the chain from the files (after a rebuild replaced them) and rebuilds the block index. */
  reload(): void {
    this.checkOpen('reload');
    this.checkNoSnapshotHold('reload');
    // The in-memory Rebuilding flag is the live one: on disk it can still be on (copied layers syncing).
    const meta = { ...(readVolumeMeta(this.dir) ?? this.meta), rebuilding: this.meta.rebuilding };
    const disks = readAllDiskMetas(this.dir);
    const chain = walkChain(meta.head, disks);
    const layers: (Layer | null)[] = [null];
    try {
      for (let i = chain.length - 1; i >= 0; i--) layers.push(Layer.open(this.dir, disks.get(chain[i]!)!, i === 0));
      const index = new BlockIndex(meta.size / BLOCK_SIZE);
      for (let i = 1; i < layers.length; i++) markExtents(index, layers[i]!, i, 0, meta.size);
      for (const layer of this.layers) if (layer !== null) this.closeLayer(layer);
      this.meta = { ...meta, parent: disks.get(meta.head)!.parent };
      this.disks = disks;
      this.layers = layers;
      this.index = index;
      this.size = meta.size;
      this.headChangesSynced = this.headChanges;
    } catch (err) {
      for (const layer of layers) layer?.close();
      throw new Error(`reload replica ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Marks the replica as a rebuild target (or not) in volume.meta, as Longhorn's RebuildingSet. Turning
   * it off while copied layers are still being synced takes effect at once here, on disk once they are.
   */
  setRebuilding(rebuilding: boolean): void {
    this.checkOpen('set rebuilding');
    if (this.meta.rebuilding === rebuilding) return;
    this.meta = { ...this.meta, rebuilding };
    this.writeMeta();
    // Only now: while it runs, every fsync on this filesystem waits for it (copied-layers-sync.ts).
    if (!rebuilding) this.copiedLayers?.start();
  }

  /**
   * A rebuild copied its layers in and hands over their sync, which starts when the engine turns the
   * replica RW (setRebuilding(false)): until it is done, volume.meta says Rebuilding whatever
   * setRebuilding says, so only a replica whose copy is on disk can come back from a crash as complete.
   * A failed sync fails every later flush (the engine then drops this replica).
   */
  keepRebuildingOnDiskUntil(copied: CopiedLayersSync): void {
    this.checkOpen('hand over copied layers');
    this.copiedLayers?.discard(new Error('superseded by another rebuild'));
    this.copiedLayers = copied;
    if (!this.meta.rebuilding) copied.start();
    copied.done.then(
      () => {
        if (this.copiedLayers !== copied) return;
        this.copiedLayers = null;
        if (this.closing === null && !this.meta.rebuilding) this.writeMeta();
      },
      (err: unknown) => {
        if (this.copiedLayers !== copied) return;
        this.syncFailure ??= new Error(
          `the layers the rebuild copied in did not reach the disk: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      },
    );
  }

  /** Rebuilding=true on disk while copied layers are still unsynced (keepRebuildingOnDiskUntil). */
  private writeMeta(): void {
    writeVolumeMeta(this.dir, this.copiedLayers === null ? this.meta : { ...this.meta, rebuilding: true });
  }

  /** Takes over another replica's counter at the end of a rebuild; persisted by the next flush. */
  setRevisionCounter(counter: number): void {
    this.checkOpen('set revision counter');
    if (!Number.isSafeInteger(counter) || counter < 0) throw new RangeError(`invalid revision counter ${counter}`);
    this.revisionCounter = counter;
  }

  /** File name of the current head. */
  get headName(): string {
    return this.meta.head;
  }

  /** Layer metas of the directory (chain and side branches). */
  diskMetas(): DiskMeta[] {
    return [...this.disks.values()].map((d) => ({ ...d, labels: { ...d.labels } }));
  }

  /** The open layer files of the chain, oldest first (for rebuild sources and hashing). */
  chainDiskNames(): string[] {
    return this.layers.flatMap((layer) => (layer === null ? [] : [layer.name]));
  }

  private snapshotDisk(name: string): DiskMeta {
    const diskName = snapshotNameOfDisk(name) !== null ? name : snapshotDiskName(name);
    const disk = this.disks.get(diskName);
    if (disk === undefined) throw new ReplicaChainError(`snapshot ${name} does not exist`, 'not-found');
    return disk;
  }

  private updateDiskMeta(disk: DiskMeta): void {
    writeDiskMeta(this.dir, disk);
    this.disks.set(disk.name, disk);
    for (const layer of this.layers) if (layer?.name === disk.name) layer.meta = disk;
  }

  private nextHeadName(): string {
    let generation = headGeneration(this.meta.head) + 1;
    while (existsSync(join(this.dir, headDiskName(generation)))) generation++;
    return headDiskName(generation);
  }

  /**
   * The head becomes snapshot layer `snapDisk`, a new empty head of `newHeadSize` goes on top. Until
   * volume.meta names the new head a crash leaves the old chain intact (the extra files are cleaned
   * up at the next open); after it, only the old head's names are left to drop.
   */
  private cutHead(snapDisk: string, opts: SnapshotOptions, newHeadSize: number): void {
    if (this.disks.has(snapDisk)) {
      throw new ReplicaChainError(`snapshot ${snapshotNameOfDisk(snapDisk)} already exists`, 'exists');
    }
    if (this.layers.length >= MAX_LAYERS) {
      throw new ReplicaChainError(
        `the chain already has ${this.layers.length - 1} layers; purge snapshots first`,
        'limit',
      );
    }
    const dir = this.dir;
    const oldHead = this.head;
    const oldHeadMeta = this.disks.get(oldHead.name)!;
    const newHead = this.nextHeadName();
    const headMeta: DiskMeta = {
      name: newHead,
      parent: snapDisk,
      removed: false,
      userCreated: false,
      created: opts.created,
      labels: {},
    };
    const snapMeta: DiskMeta = {
      name: snapDisk,
      parent: oldHeadMeta.parent,
      removed: false,
      userCreated: opts.userCreated,
      created: opts.created,
      labels: { ...opts.labels },
    };
    let newLayer: Layer | null = null;
    try {
      // One directory sync for the four new names, before volume.meta may point at any of them.
      createSparseFile(join(dir, newHead), newHeadSize);
      writeDiskMeta(dir, headMeta, { syncDirectory: false });
      linkSync(join(dir, oldHead.name), join(dir, snapDisk));
      writeDiskMeta(dir, snapMeta, { syncDirectory: false });
      fsyncDirectory(dir);
      newLayer = Layer.open(dir, headMeta, true);
      this.meta = { ...this.meta, head: newHead, parent: snapDisk, dirty: true, size: newHeadSize };
      this.writeMeta();
    } catch (err) {
      newLayer?.close();
      this.meta = { ...this.meta, head: oldHead.name, parent: oldHeadMeta.parent, size: this.size };
      removeQuietly(
        join(dir, newHead),
        join(dir, newHead + DISK_META_SUFFIX),
        join(dir, snapDisk),
        join(dir, snapDisk + DISK_META_SUFFIX),
      );
      throw new Error(`snapshot ${snapDisk} of replica ${dir}: ${(err as Error).message}`, { cause: err });
    }
    // Not synced: if a crash brings the old head's names back, open() removes them as leftovers.
    removeQuietly(join(dir, oldHead.name), join(dir, oldHead.name + DISK_META_SUFFIX));
    if (this.headChangesSynced < this.headChanges) this.unsyncedLayers.add(oldHead);
    this.headChangesSynced = this.headChanges;
    oldHead.meta = snapMeta;
    this.disks.delete(oldHeadMeta.name);
    this.disks.set(snapDisk, snapMeta);
    this.disks.set(newHead, headMeta);
    this.layers.push(newLayer);
  }

  /**
   * Folds `child`'s data into `parent`'s file, which then replaces the child (reference §1.6). Every
   * step leaves a chain that reads the same: the fold only writes parent blocks the child hides; the
   * folded file is linked over the child's name (child and parent now the same inode); the child's meta
   * then skips the parent; the parent's names go last.
   */
  private async coalesce(parent: string, child: string, signal?: AbortSignal): Promise<void> {
    const dir = this.dir;
    // Its own fold syncs the parent's data; a child still waiting for a sync is read by the fold.
    await foldFile(join(dir, child), join(dir, parent), signal);
    this.checkOpen('purge');
    const parentMeta = this.disks.get(parent);
    const childMeta = this.disks.get(child);
    if (parentMeta === undefined || childMeta === undefined || childMeta.parent !== parent) {
      throw new Error(`coalesce ${parent} into ${child}: the chain changed meanwhile`);
    }
    const staging = join(dir, `${child}.coalesce`);
    removeQuietly(staging);
    linkSync(join(dir, parent), staging);
    renameSync(staging, join(dir, child));
    fsyncDirectory(dir);
    removeSnapshotChecksum(dir, child);
    removeSnapshotChecksum(dir, parent);
    const merged: DiskMeta = { ...childMeta, parent: parentMeta.parent };
    writeDiskMeta(dir, merged);
    const at = this.layers.findIndex((layer) => layer?.name === parent);
    if (at > 0) {
      const folded = Layer.open(dir, merged, false);
      this.closeLayer(this.layers[at]!);
      this.closeLayer(this.layers[at + 1]!);
      this.layers.splice(at, 2, folded);
      this.index.mergeWithLayerAbove(at);
    }
    this.disks.delete(parent);
    this.disks.set(child, merged);
    removeQuietly(join(dir, parent), join(dir, parent + DISK_META_SUFFIX));
    fsyncDirectory(dir);
  }

  /** Punches holes in snapshot `disk` (right under the head) wherever the head has data. */
  private async prune(disk: string): Promise<void> {
    const layerOf = (): Layer | undefined => {
      const at = this.layers.findIndex((layer) => layer?.name === disk);
      return at === this.headIndex - 1 ? this.layers[at]! : undefined;
    };
    const layer = layerOf();
    if (layer === undefined) return;
    // No await between this and the punching below (see Layer.readersIdle).
    await layer.readersIdle();
    if (layerOf() !== layer) return;
    const fd = openSync(join(this.dir, disk), 'r+');
    try {
      const head = this.head;
      for (let w = 0; w < this.size; w += PRUNE_WINDOW_BYTES) {
        pruneWindow(fd, head.fd, w, Math.min(w + PRUNE_WINDOW_BYTES, this.size));
      }
      // On the thread pool: right after a rebuild this layer may be a copy not yet on disk, and a
      // synchronous sync would hold the volume's I/O for as long as writing it takes (seconds per GiB).
      await new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
    } finally {
      closeSync(fd);
    }
    removeSnapshotChecksum(this.dir, disk);
  }

  /** Deletes a layer that is not part of the chain (a childless removed snapshot). */
  private removeDiskFiles(disk: string): void {
    if (this.layers.some((layer) => layer?.name === disk)) throw new Error(`remove ${disk}: it is part of the chain`);
    removeSnapshotChecksum(this.dir, disk);
    removeQuietly(join(this.dir, disk), join(this.dir, disk + DISK_META_SUFFIX));
    fsyncDirectory(this.dir);
    this.disks.delete(disk);
  }

  private closeLayer(layer: Layer): void {
    // A layer with writes not yet synced is synced before its fd goes: after close no flush can reach it.
    if (this.unsyncedLayers.delete(layer)) layer.fdatasyncSync();
    layer.close();
  }

  private checkOpen(op: string): void {
    if (this.closing !== null) throw new Error(`${op}: replica ${this.dir} is closed`);
  }

  private checkNoChainJob(op: string, opts: { readersAllowed?: boolean } = {}): void {
    if (this.chainJob !== null) throw new ReplicaChainError(`${op}: a ${this.chainJob} is in progress`, 'busy');
    if (!opts.readersAllowed) this.checkNoSnapshotHold(op);
  }

  private checkNoSnapshotHold(op: string): void {
    const hold = this.snapshotHolds.values().next();
    if (hold.done) return;
    const { holder, disk } = hold.value;
    const more = this.snapshotHolds.size > 1 ? ` (and ${this.snapshotHolds.size - 1} more)` : '';
    throw new ReplicaChainError(
      `${op} refused: ${holder} in progress (reading snapshot ${snapshotNameOfDisk(disk) ?? disk})${more}; try again when it is done`,
      'busy',
    );
  }

  /** Chain index of the highest held snapshot, 0 when none is held. */
  private highestHeldLayer(): number {
    let highest = NO_LAYER;
    for (const { disk } of this.snapshotHolds.values()) {
      highest = Math.max(
        highest,
        this.layers.findIndex((layer) => layer?.name === disk),
      );
    }
    return highest;
  }

  /** Chain index (1 = oldest) of snapshot `name`; refused when it exists only off the chain. */
  private chainIndexOf(name: string): number {
    const disk = this.snapshotDisk(name);
    const at = this.layers.findIndex((layer) => layer?.name === disk.name);
    if (at < 1 || at >= this.headIndex) {
      throw new ReplicaChainError(
        `snapshot ${name} is not in the current chain (a revert left it on a side branch); only snapshots the volume descends from can be read`,
        'invalid',
      );
    }
    return at;
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

  /** Where the run of blocks from byte `pos` that one layer holds (or none does) ends, capped at `end`. */
  private runEndFrom(pos: number, end: number): number {
    return Math.min(this.index.runEnd(Math.floor(pos / BLOCK_SIZE), Math.ceil(end / BLOCK_SIZE)) * BLOCK_SIZE, end);
  }

  /** Fills buf[at, at+length) with volume bytes [offset, offset+length): one pread per run of blocks. */
  private readInto(buf: Buffer, at: number, offset: number, length: number): void {
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const runEnd = this.runEndFrom(pos, end);
      const layer = this.index.layerAt(Math.floor(pos / BLOCK_SIZE));
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

  /** Reads what the page cache holds of the run, from its start; returns the bytes filled (zeros past EOF count). */
  private preadCached(layer: Layer, buf: Buffer, at: number, length: number, position: number): number {
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = sparse.preadNoWait(layer.fd, buf, at + done, length - done, position + done);
      } catch (cause) {
        throw new Error(`read ${layer.name} at ${position + done}`, { cause });
      }
      if (n < 0) return done;
      if (n === 0) {
        buf.fill(0, at + done, at + length);
        return length;
      }
      done += n;
    }
    return done;
  }

  /** The rest of a readToCached() from volume offset `from`, a run at a time, each run resolved when it is read. */
  private async readRestOnThreadPool(buf: Buffer, offset: number, from: number): Promise<void> {
    const end = offset + buf.length;
    let pos = from;
    while (pos < end) {
      if (this.closing !== null) throw new Error(`read: replica ${this.dir} is closed`);
      const runEnd = this.runEndFrom(pos, end);
      const layer = this.index.layerAt(Math.floor(pos / BLOCK_SIZE));
      if (layer === NO_LAYER) {
        buf.fill(0, pos - offset, runEnd - offset);
      } else {
        const n = await this.layers[layer]!.readOnThreadPool(buf, pos - offset, runEnd - pos, pos);
        // Past the layer's apparent size (a layer older than an expansion): zeros.
        if (n < runEnd - pos) buf.fill(0, pos - offset + n, runEnd - offset);
      }
      pos = runEnd;
    }
  }

  private pwrite(data: Buffer, at: number, length: number, position: number): void {
    const head = this.head;
    let done = 0;
    while (done < length) {
      const pos = position + done;
      const piece = Math.min(length - done, HEAD_WRITE_PIECE - (pos % HEAD_WRITE_PIECE));
      try {
        done += writeSync(head.fd, data, at + done, piece, pos);
      } catch (cause) {
        throw new Error(`write ${head.name} at ${pos}`, { cause });
      }
    }
  }

  /**
   * Writes `data` at `offset` to the head in whole blocks: a block in the head hides that block of
   * every lower layer, so unaligned edges are completed by reading the rest of the block through the
   * chain first (NBD clients may send 512-byte aligned I/O). One pwrite either way (in HEAD_WRITE_PIECE pieces).
   */
  private writeBlocks(offset: number, data: Buffer): void {
    const end = offset + data.length;
    const start = alignDown(offset);
    const stop = alignUp(end);
    let out = data;
    if (start !== offset || stop !== end) {
      if (this.meta.rebuilding) {
        // Completing the edge blocks would read layers that are still being copied in (the engine
        // widens writes to whole blocks while a replica rebuilds, so this is a broken peer).
        throw new Error(`unaligned write of ${data.length} bytes at ${offset} while rebuilding`);
      }
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
    if (this.meta.rebuilding) {
      // The layers below are still being copied in: only explicit zeros in the head are sure to hide them.
      this.index.setRange(first, end, this.headIndex);
      this.writeZeroBytes(first * BLOCK_SIZE, (end - first) * BLOCK_SIZE);
      return;
    }
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
    return this.beneath(first, end, this.headIndex);
  }

  /**
   * Like beneathHead, for the layers below index `top` (top = headIndex + 1: the whole chain), from
   * index `bottom` up (1 = the oldest layer; a higher one leaves out what older layers hold).
   */
  private beneath(first: number, end: number, top: number, bottom = 1): BlockIndex {
    const result = new BlockIndex(end - first);
    for (let i = bottom; i < top; i++) {
      markExtents(result, this.layers[i]!, i, first * BLOCK_SIZE, end * BLOCK_SIZE);
    }
    return result;
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
    // Captured now: a snapshot during the awaits below moves these writes into a former head.
    const formerHeads = [...this.unsyncedLayers];
    const head = this.head;
    const headDirty = this.headChangesSynced < headChanges;
    if (this.syncFailure !== null) throw this.syncFailure;
    try {
      for (const layer of formerHeads) {
        if (!this.unsyncedLayers.has(layer)) continue;
        await layer.fdatasync();
        this.unsyncedLayers.delete(layer);
      }
      if (headDirty) {
        await head.fdatasync();
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
        if (this.copiedLayers !== null) {
          // Synced here even if the engine never turned it RW: a rebuild that stopped there is resumed
          // by comparing checksums, and a copy on disk makes that cheap.
          this.copiedLayers.finishNow();
          this.copiedLayers = null;
        }
        this.meta = { ...this.meta, dirty: false };
        this.writeMeta();
      } catch (err) {
        failure = err;
      }
    }
    this.copiedLayers?.discard(new Error('replica closed'));
    for (const layer of this.layers) layer?.close();
    this.counterFile.close();
    openDirs.delete(resolve(this.dir));
    if (failure !== undefined) {
      throw new Error(`close replica ${this.dir}: ${(failure as Error).message}`, { cause: failure });
    }
  }
}

export function checkSnapshotName(name: string): void {
  if (!SNAPSHOT_NAME.test(name)) {
    throw new ReplicaChainError(
      `invalid snapshot name ${JSON.stringify(name)}: use 1-200 letters, digits, '_', '.' or '-', starting with a letter or digit`,
      'invalid',
    );
  }
}

/** Unlinks files that may or may not exist (cleanup after a failed step, or names already gone). */
function removeQuietly(...paths: string[]): void {
  for (const path of paths) rmSync(path, { force: true });
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
 * Cleans up after a snapshot, revert or coalesce that a crash interrupted: heads other than the one
 * volume.meta names (a cut that completed left the old head's names, one that did not left the new
 * head), a snapshot that is still the same file as the head (its cut never completed), and a
 * coalesce's staging link, a rebuild's half-copied file. None of them holds data the chain needs.
 */
function removeInterruptedLeftovers(dir: string, head: string, disks: Map<string, DiskMeta>): void {
  const headInode = statSync(join(dir, head)).ino;
  for (const file of readdirSync(dir)) {
    if (file.endsWith('.coalesce') || file.endsWith('.rebuild')) removeQuietly(join(dir, file));
  }
  for (const name of [...disks.keys()]) {
    if (name === head) continue;
    const isOrphanHead = isHeadDiskName(name);
    const isUnfinishedSnapshot =
      !isOrphanHead && ![...disks.values()].some((d) => d.parent === name) && inodeOf(join(dir, name)) === headInode;
    if (isOrphanHead || isUnfinishedSnapshot) {
      removeQuietly(join(dir, name), join(dir, name + DISK_META_SUFFIX));
      disks.delete(name);
    }
  }
}

function inodeOf(path: string): number {
  try {
    return statSync(path).ino;
  } catch {
    return -1;
  }
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
  const children = childrenByParent(disks.values());
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
