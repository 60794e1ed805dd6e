// Purge's data movement (reference §1.6): folding a child snapshot's data into its parent file, and
// pruning a snapshot where the head hides it. Both work on files through fds of their own, so the
// replica keeps serving I/O through its layers meanwhile.
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { sparse } from '../../native/sparse.js';

/** Bytes copied per read/write pair; also how much work runs between two yields to the event loop. */
const COPY_CHUNK = 1024 * 1024;
/** Extents are asked for per window so a fragmented file never yields one huge array. */
const EXTENT_WINDOW = 256 * 1024 * 1024;

/**
 * Copies every data extent of `childPath` into `parentPath` at the same offsets (holes in the child
 * leave the parent's data alone), growing the parent first if the child is larger (an expansion
 * happened between them), then fdatasyncs the parent. Afterwards the parent file holds what reading
 * child-over-parent shows. Yields to the event loop between chunks so volume I/O is not starved.
 */
export async function foldFile(childPath: string, parentPath: string, signal?: AbortSignal): Promise<number> {
  const child = openSync(childPath, 'r');
  let parent: number | null = null;
  let copied = 0;
  try {
    parent = openSync(parentPath, 'r+');
    const childSize = fstatSync(child).size;
    if (fstatSync(parent).size < childSize) ftruncateSync(parent, childSize);
    const buf = Buffer.allocUnsafe(COPY_CHUNK);
    for (let window = 0; window < childSize; window += EXTENT_WINDOW) {
      const extents = sparse.dataExtents(child, window, Math.min(window + EXTENT_WINDOW, childSize));
      for (let i = 0; i < extents.length; i += 2) {
        const end = extents[i]! + extents[i + 1]!;
        for (let pos = extents[i]!; pos < end; ) {
          signal?.throwIfAborted();
          const n = readFully(child, buf, Math.min(COPY_CHUNK, end - pos), pos);
          if (n === 0) break;
          writeFully(parent, buf, n, pos);
          pos += n;
          copied += n;
          await yieldToEventLoop();
        }
      }
    }
    fdatasyncSync(parent);
    return copied;
  } catch (cause) {
    throw new Error(`fold ${childPath} into ${parentPath}`, { cause });
  } finally {
    closeSync(child);
    if (parent !== null) closeSync(parent);
  }
}

/**
 * Punches holes in `snapshotPath` wherever `headFd` has data within [start, end): those blocks of the
 * snapshot can never be read again while the head covers them. Synchronous, so the head cannot change
 * between finding its extents and punching (the caller keeps windows small enough not to stall I/O).
 */
export function pruneWindow(snapshotFd: number, headFd: number, start: number, end: number): void {
  const snapshotSize = fstatSync(snapshotFd).size;
  const extents = sparse.dataExtents(headFd, start, Math.min(end, snapshotSize));
  for (let i = 0; i < extents.length; i += 2) {
    sparse.punchHole(snapshotFd, extents[i]!, extents[i + 1]!);
  }
}

function readFully(fd: number, buf: Buffer, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function writeFully(fd: number, buf: Buffer, length: number, position: number): void {
  for (let done = 0; done < length; ) done += writeSync(fd, buf, done, length - done, position + done);
}
