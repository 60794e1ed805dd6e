// volume.meta: the replica's own description, Longhorn's `replica.Info` struct serialised by Go's
// encoding/json (reference §1.1). Field names and order are Longhorn's so either side opens the other's
// replica directories.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { GoJsonObject, stringifyLikeGo } from './go-json.js';

export const VOLUME_META_FILE = 'volume.meta';
/** What a replica reports as its sector size; the engine uses it as the frontend's logical block size. */
export const REPLICA_SECTOR_SIZE = 512;

export interface VolumeMeta {
  /** Volume size in bytes. */
  size: number;
  /** File name of the writable layer, `volume-head-NNN.img`. */
  head: string;
  /** True while open: a replica found dirty was not closed cleanly. */
  dirty: boolean;
  rebuilding: boolean;
  error: string;
  /** File name of the head's parent layer, "" when the head is the whole chain. */
  parent: string;
  sectorSize: number;
  backingFilePath: string;
  encrypted: boolean;
}

export function parseVolumeMeta(text: string, source: string): VolumeMeta {
  const o = GoJsonObject.parse(text, source);
  return {
    size: o.integer('Size'),
    head: o.string('Head'),
    dirty: o.bool('Dirty'),
    rebuilding: o.bool('Rebuilding'),
    error: o.string('Error'),
    parent: o.string('Parent'),
    // Longhorn decodes into an Info that already holds its sector size, so a file without the field
    // (written by an old version) keeps 512; do the same rather than report 0.
    sectorSize: o.integer('SectorSize', REPLICA_SECTOR_SIZE),
    backingFilePath: o.string('BackingFilePath'),
    encrypted: o.bool('Encrypted'),
  };
}

export function serializeVolumeMeta(meta: VolumeMeta): string {
  // Declaration order of Longhorn's Info struct; `BackingFile` is json:"-" and never written.
  return stringifyLikeGo({
    Size: meta.size,
    Head: meta.head,
    Dirty: meta.dirty,
    Rebuilding: meta.rebuilding,
    Error: meta.error,
    Parent: meta.parent,
    SectorSize: meta.sectorSize,
    BackingFilePath: meta.backingFilePath,
    Encrypted: meta.encrypted,
  });
}

/**
 * The directory's volume.meta, or null when it is missing or empty: the two cases Longhorn treats as
 * recoverable from the head file (tryRecoverVolumeMetaFile). Invalid content throws, naming the file.
 */
export function readVolumeMeta(dir: string): VolumeMeta | null {
  const path = join(dir, VOLUME_META_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`read ${path}`, { cause });
  }
  if (text.trim() === '') return null;
  return parseVolumeMeta(text, path);
}

export function writeVolumeMeta(dir: string, meta: VolumeMeta): void {
  writeFileAtomic(join(dir, VOLUME_META_FILE), serializeVolumeMeta(meta));
}
