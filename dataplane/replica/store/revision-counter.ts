// revision.counter: how many writes a replica has taken, so the engine can tell after a crash which
// replicas are current (reference §1.8). Longhorn's format: one 4096-byte block holding the decimal
// ASCII int64, padded with NUL bytes. Longhorn rewrites it on every write; we persist it at flush and
// close, after the data it counts is durable, so the file never claims writes the layers lack.
import { closeSync, existsSync, fdatasync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';

export const REVISION_COUNTER_FILE = 'revision.counter';
export const REVISION_COUNTER_BLOCK_SIZE = 4096;

export function encodeRevisionCounter(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`revision counter must be a non-negative integer, got ${value}`);
  }
  const block = Buffer.alloc(REVISION_COUNTER_BLOCK_SIZE);
  block.write(String(value), 0, 'latin1');
  return block;
}

/** Parses like Longhorn: strip NULs at both ends, then a base-10 integer (a short file is accepted). */
export function decodeRevisionCounter(bytes: Uint8Array, source: string): number {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString('latin1')
    .replace(/^\0+|\0+$/g, '');
  const value = /^[+-]?\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${source}: invalid revision counter ${JSON.stringify(text.slice(0, 40))}`);
  }
  return value;
}

/** The counter of a replica that is not open, or null when the file does not exist. */
export function readRevisionCounter(dir: string): number | null {
  const path = join(dir, REVISION_COUNTER_FILE);
  if (!existsSync(path)) return null;
  return decodeRevisionCounter(readFileSync(path), path);
}

/** Lays down a counter file in one piece (replica creation). */
export function writeRevisionCounterFile(dir: string, value: number): void {
  writeFileAtomic(join(dir, REVISION_COUNTER_FILE), encodeRevisionCounter(value), 0o600);
}

/** The counter file of an open replica, kept open so a flush costs one pwrite and one fdatasync. */
export class RevisionCounterFile {
  private constructor(
    private readonly fd: number,
    readonly path: string,
    /** The value found at open. */
    readonly initialValue: number,
  ) {}

  /** A missing file is created holding 0, as Longhorn's initRevisionCounter does. */
  static openOrCreate(dir: string): RevisionCounterFile {
    const path = join(dir, REVISION_COUNTER_FILE);
    if (!existsSync(path)) writeRevisionCounterFile(dir, 0);
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch (cause) {
      throw new Error(`open ${path}`, { cause });
    }
    try {
      const block = Buffer.alloc(REVISION_COUNTER_BLOCK_SIZE);
      const n = readSync(fd, block, 0, block.length, 0);
      return new RevisionCounterFile(fd, path, decodeRevisionCounter(block.subarray(0, n), path));
    } catch (cause) {
      closeSync(fd);
      throw cause;
    }
  }

  /** Into the page cache only; sync() makes it durable. */
  write(value: number): void {
    const block = encodeRevisionCounter(value);
    try {
      writeSync(this.fd, block, 0, block.length, 0);
    } catch (cause) {
      throw new Error(`write ${this.path}`, { cause });
    }
  }

  sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      fdatasync(this.fd, (err) => (err ? reject(new Error(`fdatasync ${this.path}`, { cause: err })) : resolve()));
    });
  }

  close(): void {
    closeSync(this.fd);
  }
}
