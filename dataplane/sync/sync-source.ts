// SyncService (dataplane/proto/sync.proto) on a healthy replica: hands its immutable layer files to a
// rebuilding replica. Only data leaves: each window of the file is read with one large sequential
// pread (holes included, they cost no disk I/O) and only its allocated extents are packed into the
// message, so a file fragmented into 4 KiB runs streams nearly as fast as a contiguous one instead of
// turning into one small read and one request per extent (Longhorn's weak spot, reference §4.3).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { type ServerWritableStream, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { handleUnary, statusError } from '../grpc/status-error.js';
import { sparse } from '../native/sparse.js';
import type {
  FileChecksumsReply,
  FileChecksumsRequest,
  FileChunk,
  FileReadRequest,
  FileStatReply,
  SyncServiceServer,
} from '../proto/gen/sync.js';

/** Bytes of the file covered by one message (at most this much data per message). */
export const SYNC_WINDOW = 8 * 1024 * 1024;
/** At most this many blocks per checksum request (64 MiB of 4 KiB blocks, a 128 KiB answer). */
const MAX_CHECKSUM_BLOCKS = 16 * 1024;

export interface SyncSourceOptions {
  dir: string;
  /** The file the replica currently writes to: never served, it changes under the reader. */
  headName: () => string | null;
  logger: Logger;
}

export function createSyncService(opts: SyncSourceOptions): SyncServiceServer {
  const open = (name: string): number => {
    checkLayerName(name, opts.headName());
    try {
      return openSync(join(opts.dir, name), 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? status.NOT_FOUND : status.INTERNAL;
      throw statusError(code, `cannot open ${name} in ${opts.dir}: ${(err as Error).message}`);
    }
  };
  return {
    fileStat: handleUnary((req): FileStatReply => {
      const fd = open(req.name);
      try {
        const size = fstatSync(fd).size;
        const extents = sparse.dataExtents(fd, 0, size);
        let allocated = 0;
        for (let i = 1; i < extents.length; i += 2) allocated += extents[i]!;
        return { name: req.name, size, allocated };
      } finally {
        closeSync(fd);
      }
    }),
    fileChecksums: handleUnary((req: FileChecksumsRequest): FileChecksumsReply => {
      const fd = open(req.name);
      try {
        return blockChecksums(fd, req.offset, req.length, req.blockSize);
      } finally {
        closeSync(fd);
      }
    }),
    fileRead: (call: ServerWritableStream<FileReadRequest, FileChunk>) => {
      let fd: number;
      try {
        fd = open(call.request.name);
      } catch (err) {
        call.destroy(err as Error);
        return;
      }
      streamFile(fd, call)
        .then(() => call.end())
        .catch((err: unknown) => {
          opts.logger.warn({ err, file: call.request.name }, 'sync file read failed');
          call.destroy(statusError(status.INTERNAL, `read ${call.request.name}: ${(err as Error).message}`));
        })
        .finally(() => closeSync(fd));
    },
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

async function streamFile(fd: number, call: ServerWritableStream<FileReadRequest, FileChunk>): Promise<void> {
  const size = fstatSync(fd).size;
  const ranges = call.request.ranges.length > 0 ? call.request.ranges : [{ offset: 0, length: size }];
  const window = Buffer.allocUnsafe(SYNC_WINDOW);
  for (const range of ranges) {
    const rangeEnd = Math.min(range.offset + range.length, size);
    for (let pos = range.offset; pos < rangeEnd; pos += SYNC_WINDOW) {
      if (call.cancelled) return;
      const chunk = readWindow(fd, window, pos, Math.min(pos + SYNC_WINDOW, rangeEnd));
      if (chunk === null) continue;
      // Respect flow control: a slow receiver must not make this process buffer the whole file.
      if (!call.write(chunk)) await new Promise<void>((resolve) => call.once('drain', resolve));
    }
  }
}

/** The data extents of [start, end) as one message, read with a single pread; null if all hole. */
function readWindow(fd: number, window: Buffer, start: number, end: number): FileChunk | null {
  const extents = sparse.dataExtents(fd, start, end);
  if (extents.length === 0) return null;
  const first = extents[0]!;
  const last = extents[extents.length - 2]! + extents[extents.length - 1]!;
  readFully(fd, window, 0, last - first, first);
  let bytes = 0;
  for (let i = 1; i < extents.length; i += 2) bytes += extents[i]!;
  if (extents.length === 2) return { extents, data: Buffer.from(window.subarray(0, bytes)) };
  const data = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (let i = 0; i < extents.length; i += 2) {
    const from = extents[i]! - first;
    at += window.copy(data, at, from, from + extents[i + 1]!);
  }
  return { extents, data };
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

/** Only layer files of this replica, never the head, never a path that leaves the directory. */
function checkLayerName(name: string, head: string | null): void {
  if (!/^volume-(snap-[A-Za-z0-9][A-Za-z0-9_.-]*|head-\d+)\.img$/.test(name) || name.includes('/')) {
    throw statusError(status.INVALID_ARGUMENT, `${JSON.stringify(name)} is not a layer file name`);
  }
  if (name === head) {
    throw statusError(status.FAILED_PRECONDITION, `${name} is the head: it changes with every write and is not synced`);
  }
}
