// The end of a rebuild: the layer files it copied in are complete in the page cache but not yet on disk.
// The replica turns RW first and syncs them after, in the background; until that finished its
// volume.meta keeps Rebuilding=true, so a crash of the machine before it lands brings the replica back
// as one to rebuild, never as a complete copy (Replica.keepRebuildingOnDiskUntil).
//
// Why not sync before turning RW: on one disk the copy's reads and the sync's writes compete, and on
// ext4 (data=ordered) any fsync waits for the data of blocks allocated in the same journal transaction,
// so the small metadata syncs of the switch to RW would each wait for the whole copy to reach the disk.
// Meanwhile the replica is not the only copy of that data: the replica it was copied from holds every
// byte durably, and every write since the rebuild began reached this replica's head, synced by flushes.
import { closeSync, fdatasync, fdatasyncSync } from 'node:fs';

export class CopiedLayersSync {
  /** Resolves once every file is on disk; rejects with the first failed fdatasync. */
  readonly done: Promise<void>;
  private readonly pending: Set<number>;
  private settle: { resolve: () => void; reject: (err: unknown) => void } = { resolve: () => {}, reject: () => {} };
  private started = false;

  /** Takes ownership of `fds` (open layer files): each is synced, then closed. Nothing runs before start(). */
  constructor(fds: number[]) {
    this.pending = new Set(fds);
    this.done = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // A failure is for whoever awaits `done`; never an unhandled rejection here.
    this.done.catch(() => {});
  }

  /** Starts the background syncs (on the thread pool, one file after the other). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.run().then(this.settle.resolve, this.settle.reject);
  }

  /** Syncs what is left on the calling thread: a clean close cannot leave it to the background. */
  finishNow(): void {
    try {
      for (const fd of [...this.pending]) {
        fdatasyncSync(fd);
        this.pending.delete(fd);
        closeSync(fd);
      }
    } catch (err) {
      this.discard(err);
      throw err;
    }
    this.settle.resolve();
  }

  /** Closes the files without syncing them: the replica gives up on this copy. */
  discard(reason: unknown): void {
    for (const fd of this.pending) {
      try {
        closeSync(fd);
      } catch {
        // Already unusable; nothing is left to release.
      }
    }
    this.pending.clear();
    this.settle.reject(reason);
  }

  private async run(): Promise<void> {
    for (const fd of [...this.pending]) {
      if (!this.pending.has(fd)) continue;
      try {
        await fdatasyncAsync(fd);
      } catch (err) {
        if (!this.pending.has(fd)) continue; // finishNow or discard took over meanwhile
        this.discard(err);
        throw err;
      }
      if (this.pending.delete(fd)) closeSync(fd);
    }
  }
}

function fdatasyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}
