// Typed access to the N-API addon in ./src/sparse.c (built by `npm ci` through node-gyp).
import { createRequire } from 'node:module';

export interface SparseNative {
  /** Next offset >= `offset` holding data, or -1 when only a hole follows. */
  seekData(fd: number, offset: number): number;
  /** Next offset >= `offset` starting a hole (the file's end counts as one), or -1 past the end. */
  seekHole(fd: number, offset: number): number;
  /** Deallocate [offset, offset+length) keeping the file size (FALLOC_FL_PUNCH_HOLE|KEEP_SIZE). */
  punchHole(fd: number, offset: number, length: number): void;
  /** Allocated ranges inside [start, end), flattened: [off0, len0, off1, len1, ...]. */
  dataExtents(fd: number, start: number, end: number): number[];
  /** st_blocks * 512: the bytes `du` counts. */
  allocatedBytes(fd: number): number;
}

const require = createRequire(import.meta.url);

function load(): SparseNative {
  try {
    return require('./build/Release/shorthorn_native.node') as SparseNative;
  } catch (cause) {
    throw new Error('the native addon dataplane/native is not built; run `npm ci` (it needs g++ and make)', { cause });
  }
}

export const sparse: SparseNative = load();
