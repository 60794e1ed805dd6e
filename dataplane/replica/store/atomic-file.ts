// Meta files are replaced, never edited in place: a crash leaves either the old or the new content,
// and once the call returns the new content survives power loss (Longhorn's encodeToFile does the
// same: write <file>.tmp, fsync, rename, fsync the directory).
import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * `syncDirectory: false` leaves the rename's durability to a later fsyncDirectory by the caller, who
 * writes several files in a row and must make them all durable before a dependent step (one directory
 * sync instead of one per file: a snapshot holds the volume's I/O while it runs).
 */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
  opts: { syncDirectory?: boolean } = {},
): void {
  const tmp = `${path}.tmp`;
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    if (opts.syncDirectory !== false) fsyncDirectory(dirname(path));
  } catch (cause) {
    throw new Error(`write ${path} (through ${tmp})`, { cause });
  }
}

/** Makes entries created, renamed or removed in `dir` durable: a file's own fsync does not cover its name. */
export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
