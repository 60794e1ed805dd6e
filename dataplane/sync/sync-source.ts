// SyncService (dataplane/proto/sync.proto) on a healthy replica: sizes and block checksums of its
// immutable layer files, for a rebuilding replica to decide what to fetch (the bytes themselves come
// over the data port, dataplane/sync/sync-stream.ts).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { type Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { handleUnary, statusError } from '../grpc/status-error.js';
import { checkVolumeName } from '../grpc/volume-identity.js';
import { sparse } from '../native/sparse.js';
import type { FileChecksumsReply, FileChecksumsRequest, FileStatReply, SyncServiceServer } from '../proto/gen/sync.js';
import { checkLayerName } from './sync-stream.js';

/** At most this many blocks per checksum request (64 MiB of 4 KiB blocks, a 128 KiB answer). */
const MAX_CHECKSUM_BLOCKS = 16 * 1024;

export interface SyncSourceOptions {
  dir: string;
  /** The file the replica currently writes to: never served, it changes under the reader. */
  headName: () => string | null;
  /** This replica's volume, if known: a rebuilding replica of another volume is refused. */
  volume?: string;
}

export function createSyncService(opts: SyncSourceOptions): SyncServiceServer {
  const open = (name: string): number => {
    try {
      checkLayerName(name, opts.headName());
    } catch (err) {
      throw statusError(status.INVALID_ARGUMENT, (err as Error).message);
    }
    try {
      return openSync(join(opts.dir, name), 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? status.NOT_FOUND : status.INTERNAL;
      throw statusError(code, `cannot open ${name} in ${opts.dir}: ${(err as Error).message}`);
    }
  };
  return {
    fileStat: handleUnaryWithMetadata(opts.volume, (req): FileStatReply => {
      const fd = open(req.name);
      try {
        // st_blocks, not a walk of the extents: a cold walk of a fragmented file's extent tree took
        // 0.25 s (2 GiB, 4 KiB data / 4 KiB hole) before the copy could start; the copy walks it anyway.
        const st = fstatSync(fd);
        return { name: req.name, size: st.size, allocated: st.blocks * 512 };
      } finally {
        closeSync(fd);
      }
    }),
    fileChecksums: handleUnaryWithMetadata(opts.volume, (req: FileChecksumsRequest): FileChecksumsReply => {
      const fd = open(req.name);
      try {
        return blockChecksums(fd, req.offset, req.length, req.blockSize);
      } finally {
        closeSync(fd);
      }
    }),
  };
}

/** handleUnary that first refuses a caller of another volume. */
function handleUnaryWithMetadata<Req, Res>(volume: string | undefined, fn: (req: Req) => Res) {
  const inner = handleUnary(fn);
  return (call: { request: Req; metadata: Metadata }, callback: (err: ServiceError | null, res?: Res) => void) => {
    try {
      checkVolumeName(call.metadata, volume);
    } catch (err) {
      callback(err as ServiceError);
      return;
    }
    inner(call, callback);
  };
}

/** Per block: whether the file has data there, and the CRC64 of that block (zero for a hole). */
export function blockChecksums(fd: number, offset: number, length: number, blockSize: number): FileChecksumsReply {
  if (!Number.isInteger(blockSize) || blockSize <= 0 || blockSize % 512 !== 0) {
    throw statusError(status.INVALID_ARGUMENT, `block size ${blockSize} is not a positive multiple of 512`);
  }
  if (offset < 0 || length < 0 || offset % blockSize !== 0 || length % blockSize !== 0) {
    throw statusError(status.INVALID_ARGUMENT, `range ${offset}+${length} is not aligned to ${blockSize}`);
  }
  const blocks = length / blockSize;
  if (blocks > MAX_CHECKSUM_BLOCKS) {
    throw statusError(status.INVALID_ARGUMENT, `at most ${MAX_CHECKSUM_BLOCKS} blocks per request, asked ${blocks}`);
  }
  const present = Buffer.alloc(blocks);
  const sums = Buffer.alloc(blocks * 8);
  const size = fstatSync(fd).size;
  const end = Math.min(offset + length, size);
  if (end <= offset) return { present, sums };
  const buf = Buffer.alloc(Math.ceil((end - offset) / blockSize) * blockSize);
  const extents = sparse.dataExtents(fd, offset, end);
  for (let i = 0; i < extents.length; i += 2) {
    const first = Math.floor((extents[i]! - offset) / blockSize);
    const last = Math.ceil((extents[i]! + extents[i + 1]! - offset) / blockSize);
    present.fill(1, first, last);
    readFully(
      fd,
      buf,
      first * blockSize,
      Math.min(last * blockSize, end - offset) - first * blockSize,
      offset + first * blockSize,
    );
  }
  const all = sparse.crc64Blocks(buf, blockSize);
  for (let b = 0; b < blocks && b * 8 < all.length; b++) {
    if (present[b] === 1) all.copy(sums, b * 8, b * 8, b * 8 + 8);
  }
  return { present, sums };
}

function readFully(fd: number, buf: Buffer, at: number, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, at + done, length - done, position + done);
    if (n === 0) {
      buf.fill(0, at + done, at + length);
      return;
    }
    done += n;
  }
}
