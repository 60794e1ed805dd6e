// The backup store's seams: what a target driver does, what a backup reads from and what a restore
// writes to. The layout and formats are Longhorn's (reference/longhorn-engine.md §5); the data plane
// (replica: backup source, engine: restore sink) and the control plane meet the store only here.

/** Longhorn's compression methods; recorded in volume.cfg at the first backup and fixed after. */
export type CompressionMethod = 'none' | 'gzip' | 'lz4';

/** Longhorn's DEFAULT_BLOCK_SIZE: backups are cut in 2 MiB blocks named by their checksum. */
export const BACKUP_BLOCK_SIZE = 2 * 1024 * 1024;

/**
 * One backup target (file:// or s3://). Paths are relative to the target's root and use '/', e.g.
 * `backupstore/volumes/ab/cd/vol1/volume.cfg`. Every method rejects with a BackupTargetError when the
 * target cannot be reached or refuses the credentials, so callers can tell "down" from "not found".
 */
export interface BackupStoreDriver {
  readonly kind: 'file' | 's3';
  /** The target URL it was made from, credentials never included. */
  readonly url: string;
  exists(path: string): Promise<boolean>;
  /** Rejects with a NotFoundError (code 'ENOENT') when the object is missing. */
  read(path: string): Promise<Buffer>;
  /** Whole-object write; after it resolves a read sees the new content (temp + rename on files). */
  write(path: string, data: Buffer): Promise<void>;
  /** Removes an object, or everything under a prefix ending in '/'. Missing is not an error. */
  remove(path: string): Promise<void>;
  /** Names of the immediate children under a directory prefix (no trailing '/'), sorted; [] if none. */
  list(dir: string): Promise<string[]>;
  /** Modification time as the target sees it (the lock expiry clock), or undefined when missing. */
  mtime(path: string): Promise<Date | undefined>;
  /**
   * True when a write is seen by every later read and list, from any client: a local filesystem (only
   * this machine's processes reach it) and S3 (strong read-after-write and list consistency). False on
   * network filesystems (NFS, SMB, FUSE…), whose clients cache attributes and listings: there the lock
   * keeps Longhorn's settle wait between announcing and looking.
   */
  consistentListing(): Promise<boolean>;
  /** Counters for tests and benchmarks: objects written and read, bytes moved. */
  readonly stats: DriverStats;
  close(): Promise<void>;
}

export interface DriverStats {
  puts: number;
  gets: number;
  bytesWritten: number;
  bytesRead: number;
}

/** Longhorn's AWS_* credential keys, as a Kubernetes secret would hold them. */
export type TargetCredential = Record<string, string>;

/**
 * Where a backup reads a snapshot from: the replica that holds it. Offsets are bytes, aligned to
 * BACKUP_BLOCK_SIZE for `read`; the last block of a volume may be short.
 */
export interface BackupSource {
  /** Volume size in bytes. */
  readonly size: number;
  /**
   * Offsets (multiples of BACKUP_BLOCK_SIZE, ascending) of the backup blocks that hold data written
   * after `sinceSnapshot` up to and including the backed-up snapshot; all blocks with any data when
   * `sinceSnapshot` is undefined. Holes are never listed.
   */
  changedBlocks(sinceSnapshot: string | undefined): Promise<number[]>;
  /** True while the replica still has this snapshot (incremental needs the last backup's one). */
  hasSnapshot(name: string): boolean;
  /** The snapshot's view of [offset, offset+length): the chain up to the snapshot, holes as zeros. */
  read(offset: number, length: number): Promise<Buffer>;
}

/** Where a restore writes: the engine (every replica). */
export interface RestoreSink {
  write(offset: number, data: Buffer): Promise<void>;
  /** Zero a range that held data in the previously restored backup and is a hole now. */
  zero(offset: number, length: number): Promise<void>;
}

export interface Progress {
  /** 0–100. */
  progress: number;
  bytesDone: number;
  bytesTotal: number;
}

export class BackupTargetError extends Error {
  readonly code = 'TARGET_UNAVAILABLE';
}
export class BackupNotFoundError extends Error {
  readonly code = 'ENOENT';
}
/** Another operation holds a conflicting lock (a deletion while backing up, or the reverse). */
export class BackupLockedError extends Error {
  readonly code = 'LOCKED';
}

/** A parsed target URL. `prefix` has no leading or trailing '/' ('' = the root). */
export type BackupTargetLocation =
  | { kind: 'file'; url: string; dir: string }
  | { kind: 's3'; url: string; bucket: string; region: string; prefix: string };
