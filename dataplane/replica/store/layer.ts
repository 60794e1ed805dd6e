// One open layer file of a replica's chain: a sparse file whose apparent size is the volume size it
// was created for. Opened with ordinary buffered I/O (not O_DIRECT like Longhorn): reads hit the page
// cache and durability comes from an explicit fdatasync at flush.
import { closeSync, fdatasync, fdatasyncSync, fstatSync, openSync, read } from 'node:fs';
import { join } from 'node:path';
import { sparse } from '../../native/sparse.js';
import type { DiskMeta } from './disk-meta.js';

export class Layer {
  private closed = false;
  /** Reads running on the thread pool; the fd is closed only once they are done (never reused under them). */
  private readers = 0;
  private idleWaiters: (() => void)[] = [];

  private constructor(
    readonly fd: number,
    readonly dir: string,
    /** Replaced when the layer changes role (the head becomes a snapshot) or is marked removed. */
    public meta: DiskMeta,
    readonly writable: boolean,
  ) {}

  /**
   * Snapshot layers are opened read-only: purge writes to them through fds of its own, and a stray
   * write through the read path would corrupt every volume state that shares the snapshot.
   */
  static open(dir: string, meta: DiskMeta, writable: boolean): Layer {
    const path = join(dir, meta.name);
    try {
      return new Layer(openSync(path, writable ? 'r+' : 'r'), dir, meta, writable);
    } catch (cause) {
      throw new Error(`open layer ${path}`, { cause });
    }
  }

  get name(): string {
    return this.meta.name;
  }

  get path(): string {
    return join(this.dir, this.meta.name);
  }

  apparentSize(): number {
    return fstatSync(this.fd).size;
  }

  /** Bytes the file occupies on disk (`du`), which is what Longhorn reports as a disk's size. */
  allocatedBytes(): number {
    return sparse.allocatedBytes(this.fd);
  }

  /** Allocated ranges within [start, end) as [offset0, length0, offset1, length1, …]. */
  dataExtents(start: number, end: number): Float64Array {
    try {
      return sparse.dataExtents(this.fd, start, end);
    } catch (cause) {
      throw new Error(`find data extents of ${this.name} in [${start}, ${end})`, { cause });
    }
  }

  punchHole(offset: number, length: number): void {
    try {
      sparse.punchHole(this.fd, offset, length);
    } catch (cause) {
      throw new Error(`punch hole in ${this.name} at ${offset} length ${length}`, { cause });
    }
  }

  /**
   * A layer closed meanwhile (a purge replaced it, a revert dropped it) was synced before closing or
   * its data was discarded on purpose, so a sync that finds it closed has nothing left to do.
   */
  fdatasync(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      fdatasync(this.fd, (err) =>
        err && !this.closed ? reject(new Error(`fdatasync ${this.name}`, { cause: err })) : resolve(),
      );
    });
  }

  fdatasyncSync(): void {
    try {
      fdatasyncSync(this.fd);
    } catch (cause) {
      throw new Error(`fdatasync ${this.name}`, { cause });
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.readers === 0) closeSync(this.fd);
  }

  /**
   * Resolves when no thread-pool read of this layer is running. Code that punches holes in a snapshot
   * layer awaits it and then punches without yielding: a read that chose this layer before a write
   * covered the block must not find the block punched (zeros) instead of the old or the new data.
   */
  readersIdle(): Promise<void> {
    if (this.readers === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private becameIdle(): void {
    if (this.closed) closeSync(this.fd);
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * Reads [position, position+length) into buf[at...] on the libuv thread pool (a read that would wait
   * for the disk). Resolves with the bytes read, fewer only at the end of the file. A close() meanwhile
   * takes effect when the read is done.
   */
  readOnThreadPool(buf: Buffer, at: number, length: number, position: number): Promise<number> {
    this.readers++;
    return new Promise<number>((resolve, reject) => {
      let done = 0;
      const next = (): void => {
        read(this.fd, buf, at + done, length - done, position + done, (err, n) => {
          if (err === null && n > 0 && done + n < length) {
            done += n;
            next();
            return;
          }
          if (--this.readers === 0) this.becameIdle();
          if (err !== null) reject(new Error(`read ${this.name} at ${position + done}`, { cause: err }));
          else resolve(done + n);
        });
      };
      next();
    });
  }
}
