// Longhorn's layer file names (pkg/util/disk/constant.go): the writable layer is
// volume-head-NNN.img, where NNN grows with every snapshot or revert, and snapshots are
// volume-snap-<name>.img. Each layer has a JSON sidecar <file>.meta.

export const DISK_META_SUFFIX = '.meta';

const HEAD_NAME = /^volume-head-(\d+)\.img$/;

export function headDiskName(generation: number): string {
  return `volume-head-${String(generation).padStart(3, '0')}.img`;
}

export function isHeadDiskName(name: string): boolean {
  return HEAD_NAME.test(name);
}

/** NNN of volume-head-NNN.img, or -1 for any other name. */
export function headGeneration(name: string): number {
  const m = HEAD_NAME.exec(name);
  return m === null ? -1 : Number(m[1]);
}

const SNAPSHOT_PREFIX = 'volume-snap-';
const IMG_SUFFIX = '.img';

export function snapshotDiskName(snapshot: string): string {
  return `${SNAPSHOT_PREFIX}${snapshot}${IMG_SUFFIX}`;
}

/** `s1` for `volume-snap-s1.img`; null for a head or any other file. */
export function snapshotNameOfDisk(disk: string): string | null {
  if (!disk.startsWith(SNAPSHOT_PREFIX) || !disk.endsWith(IMG_SUFFIX)) return null;
  return disk.slice(SNAPSHOT_PREFIX.length, -IMG_SUFFIX.length);
}

/** The layer a `<file>.img.meta` sidecar describes, or null for any other file. */
export function diskNameOfMetaFile(file: string): string | null {
  return file.endsWith(`.img${DISK_META_SUFFIX}`) ? file.slice(0, -DISK_META_SUFFIX.length) : null;
}
