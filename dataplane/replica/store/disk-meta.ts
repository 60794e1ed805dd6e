// <layer>.img.meta: one layer's description, Longhorn's `disk` struct serialised by Go's encoding/json
// (reference §1.1). Children are not stored: they follow from the Parent fields of all layers.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { DISK_META_SUFFIX, diskNameOfMetaFile } from './disk-names.js';
import { GoJsonObject, sortedRecord, stringifyLikeGo } from './go-json.js';

export interface DiskMeta {
  /** The layer's file name (`volume-head-002.img`, `volume-snap-s1.img`). */
  name: string;
  /** The parent layer's file name, "" for the root of the chain. */
  parent: string;
  /** Marked for deletion; still serves reads until purged. */
  removed: boolean;
  /** False for system snapshots (rebuild, expansion), which purge removes on its own. */
  userCreated: boolean;
  /** RFC 3339, UTC, whole seconds (Go's time.RFC3339). */
  created: string;
  labels: Record<string, string>;
}

export function parseDiskMeta(text: string, source: string): DiskMeta {
  const o = GoJsonObject.parse(text, source);
  return {
    name: o.string('Name'),
    parent: o.string('Parent'),
    removed: o.bool('Removed'),
    userCreated: o.bool('UserCreated'),
    created: o.string('Created'),
    labels: o.stringMap('Labels'),
  };
}

export function serializeDiskMeta(meta: DiskMeta): string {
  // Longhorn leaves Labels nil unless a snapshot was given some, and Go writes a nil map as null.
  const labels = Object.keys(meta.labels).length === 0 ? null : sortedRecord(meta.labels);
  return stringifyLikeGo({
    Name: meta.name,
    Parent: meta.parent,
    Removed: meta.removed,
    UserCreated: meta.userCreated,
    Created: meta.created,
    Labels: labels,
  });
}

/**
 * Reads `<diskName>.meta`. The Name inside is not trusted (a snapshot's meta can still carry the name
 * of the head it was linked from); like Longhorn's readDiskData, the file name decides.
 */
export function readDiskMeta(dir: string, diskName: string): DiskMeta {
  const path = join(dir, diskName + DISK_META_SUFFIX);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new Error(`read ${path}`, { cause });
  }
  return { ...parseDiskMeta(text, path), name: diskName };
}

/** `syncDirectory: false`: see writeFileAtomic (the caller syncs the directory itself). */
export function writeDiskMeta(dir: string, meta: DiskMeta, opts: { syncDirectory?: boolean } = {}): void {
  writeFileAtomic(join(dir, meta.name + DISK_META_SUFFIX), serializeDiskMeta(meta), 0o644, opts);
}

/** Every layer described in `dir` (chain members and side branches alike), by file name. */
export function readAllDiskMetas(dir: string): Map<string, DiskMeta> {
  const metas = new Map<string, DiskMeta>();
  for (const file of readdirSync(dir).sort()) {
    const name = diskNameOfMetaFile(file);
    if (name !== null) metas.set(name, readDiskMeta(dir, name));
  }
  return metas;
}

/** Children are not stored (reference §1.1): each layer's children, by parent file name. */
export function childrenByParent(disks: Iterable<DiskMeta>): Map<string, string[]> {
  const children = new Map<string, string[]>();
  for (const disk of disks) {
    if (disk.parent === '') continue;
    const siblings = children.get(disk.parent);
    if (siblings === undefined) children.set(disk.parent, [disk.name]);
    else siblings.push(disk.name);
  }
  return children;
}

/** `time.Now().UTC().Format(time.RFC3339)`: no fractional seconds, `Z` suffix. */
export function goTimestamp(date: Date = new Date()): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}
