// Sizes as people type them: `512Mi`, `1Gi`, `10G`, `4096`. Binary suffixes are powers of 1024,
// decimal ones powers of 1000 (Kubernetes quantity style), so `10G` ≠ `10Gi` just as in a PVC.

const UNITS: Record<string, number> = {
  '': 1,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
};

export function parseSize(text: string): number {
  const m = /^\s*(\d+)\s*([KMGTP]i?)?B?\s*$/.exec(text);
  if (!m) throw new Error(`invalid size "${text}": use bytes or a suffix such as 512Mi, 1Gi, 10G`);
  const bytes = Number(m[1]) * UNITS[m[2] ?? '']!;
  if (!Number.isSafeInteger(bytes)) throw new Error(`size "${text}" is too large`);
  return bytes;
}

/**
 * A volume size: positive, rounded up to the 4 KiB block (Longhorn's VolumeSectorSize) so decimal sizes
 * such as `10G` work; Longhorn's manager rounds sizes up the same way (to 2 MiB).
 */
export function parseVolumeSize(text: string): number {
  const bytes = parseSize(text);
  if (bytes <= 0) throw new Error(`volume size ${text} must be positive`);
  return Math.ceil(bytes / 4096) * 4096;
}

export function formatSize(bytes: number): string {
  for (const [suffix, unit] of [
    ['Ti', 2 ** 40],
    ['Gi', 2 ** 30],
    ['Mi', 2 ** 20],
    ['Ki', 2 ** 10],
  ] as const) {
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${suffix}`;
  }
  return `${bytes}`;
}
