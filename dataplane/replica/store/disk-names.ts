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

export function snapshotDiskName(snapshot: string): string {
  return `volume-snap-${snapshot}.img`;
}

/** The layer a `<file>.img.meta` sidecar describes, or null for any other file. */
export function diskNameOfMetaFile(file: string): string | null {
  return file.endsWith(`.img${DISK_META_SUFFIX}`) ? file.slice(0, -DISK_META_SUFFIX.length) : null;
}
