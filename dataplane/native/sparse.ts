// Typed access to the N-API addon in ./src/ (sparse.c, crc64.c; built by `npm ci` through node-gyp).
import { createRequire } from 'node:module';

export interface SparseNative {
  /** Next offset >= `offset` holding data, or -1 when only a hole follows. */
  seekData(fd: number, offset: number): number;
  /** Next offset >= `offset` starting a hole (the file's end counts as one), or -1 past the end. */
  seekHole(fd: number, offset: number): number;
  /** Deallocate [offset, offset+length) keeping the file size (FALLOC_FL_PUNCH_HOLE|KEEP_SIZE). */
  punchHole(fd: number, offset: number, length: number): void;
  /** Allocated ranges inside [start, end), flattened: [off0, len0, off1, len1, ...], adjacent ones merged. */
  dataExtents(fd: number, start: number, end: number): Float64Array;
  /** st_blocks * 512: the bytes `du` counts. */
  allocatedBytes(fd: number): number;
  /**
   * CRC-64/GO-ISO of `buf` continued from `prev`, equal to Go's `crc64.Update(prev, crc64.MakeTable(crc64.ISO), buf)`:
   * pass 0n to start, and `crc64(b, crc64(a, 0n))` equals the CRC of a followed by b. Longhorn's
   * snapshot `.checksum` is this value as 16 hex digits. Synchronous: keep chunks to a few MiB
   * (~1.5 GB/s, so 4 MiB holds the event loop ~3 ms). Throws TypeError for a non-Uint8Array, and
   * RangeError when `prev` is outside [0, 2^64).
   */
  crc64(buf: Uint8Array, prev: bigint): bigint;
  /**
   * The crc64 (from 0n) of each consecutive `blockSize` slice of `buf`, as little-endian u64s: entry i
   * is `result.readBigUInt64LE(8 * i)`. For rebuild's block-by-block comparison without a BigInt per
   * block. Throws TypeError unless blockSize is a positive integer dividing `buf.length`.
   */
  crc64Blocks(buf: Uint8Array, blockSize: number): Buffer;
  /**
   * Bytes to skip from the start of `buf` to reach a memory address that is a multiple of `alignment`
   * (a power of two): O_DIRECT reads need aligned memory, and JS cannot see addresses.
   */
  alignPadding(buf: Uint8Array, alignment: number): number;
  /**
   * Copies each extent ([offset, length] pairs of file offsets, as dataExtents returns) out of `span`,
   * which holds the file from offset `spanStart`, into `frame` back to back from index `at`; returns the
   * index after the last byte. RangeError if an extent is outside the span or does not fit the frame.
   */
  gatherExtents(span: Uint8Array, spanStart: number, extents: Float64Array, frame: Uint8Array, at: number): number;
  /**
   * preadv2(RWF_NOWAIT): up to `length` bytes at file offset `position` into buf[at...], only from the
   * page cache. Returns the count (0 at end of file; short where the cached part ends) or -1 when the
   * read would have to wait for the device (or the file system cannot tell). Other errors throw.
   */
  preadNoWait(fd: number, buf: Uint8Array, at: number, length: number, position: number): number;
  /** sched_setscheduler(tid, SCHED_BATCH) with priority 0 (nice unchanged); 0 = the calling thread. Throws on failure. */
  setBatchScheduling(tid: number): void;
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
