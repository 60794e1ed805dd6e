// <snapshot>.img.checksum: Longhorn's snapshot data-integrity record (reference §2.8, pkg/replica/hash.go).
// The manager compares these checksums across replicas to find a diverged or bit-rotted copy, so both
// the CRC (Go's CRC-64/ISO) and the file's JSON must match what a Longhorn replica writes.
//
// Shorthorn deletes the record whenever it legitimately rewrites a snapshot file (purge), so a record
// that no longer matches the data means the bytes changed behind our back. That is stricter than
// Longhorn, which blames bit rot only when the ctime is unchanged too; a ctime check cannot catch a
// stray writer (anything that writes also bumps the ctime), the record's existence can.
import { readFileSync, unlinkSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { sparse } from '../../native/sparse.js';
import { fsyncDirectory, writeFileAtomic } from './atomic-file.js';
import { goTimestamp } from './disk-meta.js';
import { GoJsonObject, stringifyLikeGo } from './go-json.js';

export interface SnapshotChecksum {
  /** Longhorn knows no other method. */
  method: 'crc64';
  /** 16 lowercase hex digits: the big-endian CRC, as Go's hex.EncodeToString(h.Sum(nil)) writes it. */
  checksum: string;
  /** The file's ctime when it was hashed, as Go's time.Time.String() (see formatGoTime). */
  changeTime: string;
  /** RFC 3339, UTC, whole seconds. */
  lastHashedAt: string;
  /** Once set it stays set: the recorded checksum is the last known-good one, the data is suspect. */
  silentlyCorrupted: boolean;
}

export interface HashSnapshotOptions {
  /** Hash even when the ctime says the file is unchanged: the periodic scrub that finds bit rot. */
  rehash?: boolean;
  signal?: AbortSignal;
}

export const CHECKSUM_SUFFIX = '.checksum';

/** Big enough that per-read overhead vanishes, small enough that one native CRC call stays ~3 ms. */
const READ_CHUNK = 4 * 1024 * 1024;
const CHECKSUM_HEX = /^[0-9a-f]{16}$/;
const NS_PER_SECOND = 1_000_000_000n;

export function checksumFilePath(dir: string, diskName: string): string {
  return join(dir, diskName + CHECKSUM_SUFFIX);
}

export function parseSnapshotChecksum(text: string, source: string): SnapshotChecksum {
  const o = GoJsonObject.parse(text, source);
  const method = o.string('method');
  if (method !== 'crc64') throw new Error(`${source}: unsupported hash method ${JSON.stringify(method)}`);
  const checksum = o.string('checksum');
  if (!CHECKSUM_HEX.test(checksum)) {
    throw new Error(`${source}: checksum must be 16 lowercase hex digits, got ${JSON.stringify(checksum)}`);
  }
  return {
    method,
    checksum,
    changeTime: o.string('change_time'),
    lastHashedAt: o.string('last_hashed_at'),
    silentlyCorrupted: o.bool('silently_corrupted'),
  };
}

export function serializeSnapshotChecksum(record: SnapshotChecksum): string {
  // Key order is the field order of Longhorn's SnapshotHashInfo struct.
  return stringifyLikeGo({
    method: record.method,
    checksum: record.checksum,
    change_time: record.changeTime,
    last_hashed_at: record.lastHashedAt,
    silently_corrupted: record.silentlyCorrupted,
  });
}

/** The record beside `diskName`, or null when the snapshot has never been hashed (or was modified since). */
export function readSnapshotChecksum(dir: string, diskName: string): SnapshotChecksum | null {
  const path = checksumFilePath(dir, diskName);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    if (isNotFound(cause)) return null;
    throw new Error(`read ${path}`, { cause });
  }
  return parseSnapshotChecksum(text, path);
}

/**
 * Forget the record before rewriting the snapshot file: a crash between the two must leave no record
 * rather than a stale one, which the next hash would report as silent corruption.
 */
export function removeSnapshotChecksum(dir: string, diskName: string): void {
  const path = checksumFilePath(dir, diskName);
  try {
    unlinkSync(path);
  } catch (cause) {
    if (isNotFound(cause)) return;
    throw new Error(`remove ${path}`, { cause });
  }
  fsyncDirectory(dir);
}

/**
 * Go's time.Time.String() for a UTC instant given in ns since the epoch, which Longhorn stores as
 * change_time: "2006-01-02 15:04:05.999999999 +0000 UTC" (trailing fraction zeros trimmed, no dot
 * for a whole second). Longhorn formats in the process's local zone; its containers run in UTC.
 */
export function formatGoTime(ns: bigint): string {
  let seconds = ns / NS_PER_SECOND;
  let fraction = ns % NS_PER_SECOND;
  if (fraction < 0n) {
    // BigInt division truncates toward zero; a time before 1970 still has a positive fraction.
    fraction += NS_PER_SECOND;
    seconds -= 1n;
  }
  const d = new Date(Number(seconds) * 1000);
  const year = d.getUTCFullYear();
  const date = `${year < 0 ? '-' : ''}${pad(Math.abs(year), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}`;
  const time = `${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}`;
  const digits = fraction.toString().padStart(9, '0').replace(/0+$/, '');
  return `${date} ${time}${digits === '' ? '' : `.${digits}`} +0000 UTC`;
}

/**
 * Longhorn's SnapshotHash for one snapshot file. Skips the read when the recorded ctime still matches
 * (unless `rehash`); otherwise CRCs the whole file, holes included, and writes the record. A checksum
 * that differs from an existing record keeps the recorded (last good) value and sets
 * silentlyCorrupted. An aborted hash rejects with the signal's reason and leaves the record as it was.
 */
export async function hashSnapshot(
  dir: string,
  diskName: string,
  opts: HashSnapshotOptions = {},
): Promise<{ checksum: SnapshotChecksum; rehashed: boolean }> {
  const { rehash = false, signal } = opts;
  signal?.throwIfAborted();
  const path = join(dir, diskName);
  const previous = readSnapshotChecksum(dir, diskName);
  const file = await open(path, 'r');
  let crc: bigint;
  let changeTime: string;
  try {
    // ctime of the open fd, taken before reading: if the name is relinked meanwhile we still describe
    // the inode we hash, and a write during the read leaves a ctime that forces the next rehash.
    changeTime = formatGoTime((await file.stat({ bigint: true })).ctimeNs);
    if (previous !== null && !rehash && previous.changeTime === changeTime) {
      return { checksum: previous, rehashed: false };
    }
    crc = await crc64OfFile(file, signal);
  } catch (cause) {
    if (signal?.aborted && cause === signal.reason) throw cause;
    throw new Error(`hash ${path}`, { cause });
  } finally {
    await file.close();
  }
  signal?.throwIfAborted();

  const fresh = crc.toString(16).padStart(16, '0');
  const corrupted = previous !== null && (previous.silentlyCorrupted || previous.checksum !== fresh);
  const record: SnapshotChecksum = {
    method: 'crc64',
    checksum: corrupted ? previous.checksum : fresh,
    changeTime,
    lastHashedAt: goTimestamp(),
    silentlyCorrupted: corrupted,
  };
  writeFileAtomic(checksumFilePath(dir, diskName), serializeSnapshotChecksum(record));
  return { checksum: record, rehashed: true };
}

// Sequential reads into one buffer, each followed by a native CRC of just that chunk: the replica
// serves I/O on this thread, so neither the read nor the hash may hold it for long. Reads until EOF
// rather than to a size taken up front, so the CRC always covers exactly the bytes that were there.
async function crc64OfFile(file: FileHandle, signal: AbortSignal | undefined): Promise<bigint> {
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  let crc = 0n;
  let position = 0;
  for (;;) {
    signal?.throwIfAborted();
    const { bytesRead } = await file.read(buf, 0, buf.length, position);
    if (bytesRead === 0) return crc;
    crc = sparse.crc64(buf.subarray(0, bytesRead), crc);
    position += bytesRead;
  }
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}
