// One open layer file of a replica's chain: a sparse file whose apparent size is the volume size it
// was created for. Opened with ordinary buffered I/O (not O_DIRECT like Longhorn): reads hit the page
// cache and durability comes from an explicit fdatasync at flush.
import { closeSync, fdatasync, fstatSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { sparse } from '../../native/sparse.js';
import type { DiskMeta } from './disk-meta.js';

export class Layer {
  private constructor(
    readonly fd: number,
    readonly path: string,
    public meta: DiskMeta,
    readonly writable: boolean,
  ) {}

  /**
   * Snapshot layers are opened read-only: nothing writes to them until purge/coalesce exists, and a
   * stray write there would corrupt every volume state that shares the snapshot.
   */
  static open(dir: string, meta: DiskMeta, writable: boolean): Layer {
    const path = join(dir, meta.name);
    try {
      return new Layer(openSync(path, writable ? 'r+' : 'r'), path, meta, writable);
    } catch (cause) {
      throw new Error(`open layer ${path}`, { cause });
    }
  }

  get name(): string {
    return this.meta.name;
  }

  apparentSize(): number {
    return fstatSync(this.fd).size;
  }

  /** Bytes the file occupies on disk (`du`), which is what Longhorn reports as a disk's size. */
  allocatedBytes(): number {
    return sparse.allocatedBytes(this.fd);
  }

  /** Allocated ranges within [start, end) as [offset0, length0, offset1, length1, …]. */
  dataExtents(start: number, end: number): number[] {
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

  fdatasync(): Promise<void> {
    return new Promise((resolve, reject) => {
      fdatasync(this.fd, (err) => (err ? reject(new Error(`fdatasync ${this.name}`, { cause: err })) : resolve()));
    });
  }

  close(): void {
    closeSync(this.fd);
  }
}
