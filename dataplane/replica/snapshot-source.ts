// A backup's view of one snapshot of this replica (the BackupSource seam of dataplane/backupstore):
// the chain up to the snapshot, read through the open Replica. The snapshot is held for as long as the
// source lives, so purge, revert and rebuild reloads are refused meanwhile and the bytes stay put.
import { BACKUP_BLOCK_SIZE, type BackupSource } from '../backupstore/types.js';
import type { Replica } from './store/replica.js';

export class ReplicaSnapshotSource implements BackupSource {
  readonly size: number;
  private readonly release: () => void;
  private released = false;

  /** Holds `snapshot` at once; call close() when the backup ends, however it ends. */
  constructor(
    private readonly replica: Replica,
    readonly snapshot: string,
    /** Who reads, as refusals name it, e.g. "backup backup-1a2b". */
    holder: string,
    private readonly blockSize = BACKUP_BLOCK_SIZE,
  ) {
    this.release = replica.holdSnapshot(holder, snapshot);
    try {
      this.size = replica.snapshotSize(snapshot);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  async changedBlocks(sinceSnapshot: string | undefined): Promise<number[]> {
    return this.replica.changedBlocks(this.snapshot, sinceSnapshot, this.blockSize);
  }

  hasSnapshot(name: string): boolean {
    try {
      return this.replica.isSnapshotBelow(name, this.snapshot);
    } catch {
      return false;
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    return this.replica.readSnapshot(this.snapshot, offset, length);
  }

  close(): void {
    if (this.released) return;
    this.released = true;
    this.release();
  }
}
