// Test doubles for the two ends of a backup: a replica with snapshots (the BackupSource side) and an
// engine that takes restored blocks (the RestoreSink side), both in memory. They model what the backup
// store relies on — which 2 MiB blocks hold data, which changed between snapshots, what a snapshot
// reads as — and nothing of the replica's on-disk format.
import { BACKUP_BLOCK_SIZE, type BackupSource, type RestoreSink } from '../../dataplane/backupstore/types.js';

interface FrozenSnapshot {
  data: Buffer;
  allocated: Set<number>;
  /** Blocks written between the previous snapshot and this one. */
  dirty: Set<number>;
}

/** A replica's volume: writes mark blocks allocated and dirty; a snapshot freezes both. */
export class InMemoryReplicaDouble {
  readonly data: Buffer;
  private allocated = new Set<number>();
  private dirty = new Set<number>();
  private readonly snapshots = new Map<string, FrozenSnapshot>();
  private readonly order: string[] = [];
  /** Counts source reads, to check a backup reads only what changed. */
  reads = 0;

  constructor(readonly size: number) {
    this.data = Buffer.alloc(size);
  }

  write(offset: number, bytes: Buffer): void {
    bytes.copy(this.data, offset);
    for (let b = blockStart(offset); b < offset + bytes.length; b += BACKUP_BLOCK_SIZE) {
      this.allocated.add(b);
      this.dirty.add(b);
    }
  }

  /** A trim: the range reads as zeros and whole blocks inside it become holes again. */
  trim(offset: number, length: number): void {
    this.data.fill(0, offset, offset + length);
    for (let b = blockStart(offset); b < offset + length; b += BACKUP_BLOCK_SIZE) {
      if (b >= offset && b + BACKUP_BLOCK_SIZE <= offset + length) {
        this.allocated.delete(b);
        this.dirty.delete(b);
      }
    }
  }

  snapshot(name: string): Buffer {
    this.snapshots.set(name, { data: Buffer.from(this.data), allocated: new Set(this.allocated), dirty: this.dirty });
    this.order.push(name);
    this.dirty = new Set();
    return this.snapshots.get(name)!.data;
  }

  /** Forget a snapshot's data (purged), so an incremental backup cannot diff against it. */
  removeSnapshot(name: string): void {
    this.snapshots.delete(name);
  }

  /** The BackupSource of one snapshot, as the replica would serve it. */
  source(snapshotName: string, opts: { beforeRead?: (offset: number) => Promise<void> } = {}): BackupSource {
    const snap = this.snapshots.get(snapshotName);
    if (snap === undefined) throw new Error(`no snapshot ${snapshotName}`);
    const index = this.order.indexOf(snapshotName);
    return {
      size: this.size,
      changedBlocks: async (since) => {
        if (since === undefined) return [...snap.allocated].sort((a, b) => a - b);
        const from = this.order.indexOf(since);
        if (from < 0 || from >= index) throw new Error(`snapshot ${since} is not older than ${snapshotName}`);
        const changed = new Set<number>();
        for (const name of this.order.slice(from + 1, index + 1)) {
          for (const b of this.snapshots.get(name)?.dirty ?? []) if (snap.allocated.has(b)) changed.add(b);
        }
        return [...changed].sort((a, b) => a - b);
      },
      hasSnapshot: (name) => this.snapshots.has(name),
      read: async (offset, length) => {
        await opts.beforeRead?.(offset);
        this.reads++;
        return Buffer.from(snap.data.subarray(offset, offset + length));
      },
    };
  }
}

function blockStart(offset: number): number {
  return offset - (offset % BACKUP_BLOCK_SIZE);
}

/** An engine taking a restore: a plain byte array, plus counters. */
export class InMemoryRestoreSinkDouble implements RestoreSink {
  readonly data: Buffer;
  writes = 0;
  zeroed = 0;

  constructor(size: number, initial?: Buffer) {
    this.data = initial ? Buffer.from(initial) : Buffer.alloc(size);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    if (offset + data.length > this.data.length) throw new Error(`write past the end: ${offset}+${data.length}`);
    data.copy(this.data, offset);
    this.writes++;
  }

  async zero(offset: number, length: number): Promise<void> {
    this.data.fill(0, offset, offset + length);
    this.zeroed += length;
  }
}
