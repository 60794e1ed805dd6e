import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sparse } from '../../dataplane/native/sparse.js';
import {
  checksumFilePath,
  formatGoTime,
  hashSnapshot,
  readSnapshotChecksum,
  removeSnapshotChecksum,
  type SnapshotChecksum,
  serializeSnapshotChecksum,
} from '../../dataplane/replica/store/snapshot-checksum.js';
import { referenceCrc64 } from '../fixtures/crc64-reference.js';

const DISK = 'volume-snap-s1.img';
const LONGHORN_KEYS = ['method', 'checksum', 'change_time', 'last_hashed_at', 'silently_corrupted'];
const RFC3339_SECONDS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'shorthorn-snapshot-checksum-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A sparse file: ftruncate to `size`, then a few data runs; the rest stays holes. */
function makeSparseFile(size: number, writes: [offset: number, bytes: Uint8Array][]): string {
  const path = join(dir, DISK);
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const [offset, bytes] of writes) writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
  return path;
}

function pattern(length: number, seed: number): Uint8Array {
  return new Uint8Array(length).map((_, i) => (i * 131 + seed * 17 + (i >> 8)) & 0xff);
}

/** Overwrite one byte in place, the way a stray writer or a flipped bit would change the file. */
function patchByte(path: string, offset: number, value: number): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, Uint8Array.of(value), 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

const hex = (crc: bigint) => crc.toString(16).padStart(16, '0');

describe('hashSnapshot', () => {
  // 64 KiB + 5: holes, data runs and a tail that is not a multiple of 16 bytes.
  const SIZE = 64 * 1024 + 5;
  const WRITES: [number, Uint8Array][] = [
    [4096, pattern(4096, 1)],
    [5 * 4096 + 100, pattern(300, 2)],
    [SIZE - 3, pattern(3, 3)],
  ];

  it('writes a Longhorn-shaped .checksum holding the CRC-64/ISO of the whole file, holes included', async () => {
    const path = makeSparseFile(SIZE, WRITES);
    const expected = hex(referenceCrc64(readFileSync(path)));

    const { checksum, rehashed } = await hashSnapshot(dir, DISK);

    expect(rehashed).toBe(true);
    expect(checksum).toEqual({
      method: 'crc64',
      checksum: expected,
      changeTime: formatGoTime(statSync(path, { bigint: true }).ctimeNs),
      lastHashedAt: expect.stringMatching(RFC3339_SECONDS),
      silentlyCorrupted: false,
    });
    const text = readFileSync(checksumFilePath(dir, DISK), 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.indexOf('\n')).toBe(text.length - 1);
    const raw = JSON.parse(text) as Record<string, unknown>;
    expect(Object.keys(raw)).toEqual(LONGHORN_KEYS);
    expect(raw).toEqual({
      method: 'crc64',
      checksum: expected,
      change_time: checksum.changeTime,
      last_hashed_at: checksum.lastHashedAt,
      silently_corrupted: false,
    });
    expect(readSnapshotChecksum(dir, DISK)).toEqual(checksum);
    expect(existsSync(`${checksumFilePath(dir, DISK)}.tmp`)).toBe(false);
  });

  it('CRCs a file larger than one read chunk the same as one native call over all of it', async () => {
    const size = 9 * 1024 * 1024 + 7;
    const chunk = 4 * 1024 * 1024;
    const path = makeSparseFile(size, [
      [chunk - 2, pattern(4, 4)], // straddles the first chunk boundary
      [2 * chunk + 4096, pattern(8192, 5)],
      [size - 1, Uint8Array.of(0xa5)],
    ]);
    const { checksum } = await hashSnapshot(dir, DISK);
    expect(checksum.checksum).toBe(hex(sparse.crc64(readFileSync(path), 0n)));
  });

  it('hashes an empty file to 0', async () => {
    makeSparseFile(0, []);
    expect((await hashSnapshot(dir, DISK)).checksum.checksum).toBe('0000000000000000');
  });

  it('returns the record without reading when the ctime is unchanged', async () => {
    makeSparseFile(SIZE, WRITES);
    const first = await hashSnapshot(dir, DISK);
    const second = await hashSnapshot(dir, DISK);
    expect(second).toEqual({ checksum: first.checksum, rehashed: false });
  });

  it('hashes again when the recorded ctime differs from the file’s', async () => {
    makeSparseFile(SIZE, WRITES);
    const first = await hashSnapshot(dir, DISK);
    const stale = { ...first.checksum, changeTime: '2001-01-01 00:00:00 +0000 UTC' };
    writeFileSync(checksumFilePath(dir, DISK), serializeSnapshotChecksum(stale));

    const again = await hashSnapshot(dir, DISK);

    expect(again.rehashed).toBe(true);
    expect(again.checksum).toMatchObject({ checksum: first.checksum.checksum, silentlyCorrupted: false });
    expect(again.checksum.changeTime).toBe(first.checksum.changeTime);
  });

  it('rehash of an unchanged file keeps silently_corrupted=false', async () => {
    makeSparseFile(SIZE, WRITES);
    const first = await hashSnapshot(dir, DISK);
    const again = await hashSnapshot(dir, DISK, { rehash: true });
    expect(again.rehashed).toBe(true);
    expect(again.checksum).toMatchObject({ checksum: first.checksum.checksum, silentlyCorrupted: false });
  });

  it('a file changed behind its record is flagged, keeping the last good checksum, and stays flagged', async () => {
    const path = makeSparseFile(SIZE, WRITES);
    const good = (await hashSnapshot(dir, DISK)).checksum.checksum;
    const original = readFileSync(path)[4096]!;
    patchByte(path, 4096, original ^ 0x01);
    const tamperedCrc = hex(referenceCrc64(readFileSync(path)));
    expect(tamperedCrc).not.toBe(good);

    // rehash: a flipped bit on disk need not move the ctime; this is the periodic scrub's call.
    const flagged = await hashSnapshot(dir, DISK, { rehash: true });

    expect(flagged.rehashed).toBe(true);
    expect(flagged.checksum).toMatchObject({ checksum: good, silentlyCorrupted: true });
    expect(flagged.checksum.changeTime).toBe(formatGoTime(statSync(path, { bigint: true }).ctimeNs));
    expect(readSnapshotChecksum(dir, DISK)).toEqual(flagged.checksum);

    // Putting the byte back does not clear the flag: the record cannot tell repair from luck.
    patchByte(path, 4096, original);
    const still = await hashSnapshot(dir, DISK, { rehash: true });
    expect(still.checksum).toMatchObject({ checksum: good, silentlyCorrupted: true });
  });

  it('after removeSnapshotChecksum a modified file gets a fresh, unflagged record', async () => {
    const path = makeSparseFile(SIZE, WRITES);
    const before = (await hashSnapshot(dir, DISK)).checksum.checksum;
    removeSnapshotChecksum(dir, DISK);
    expect(readSnapshotChecksum(dir, DISK)).toBeNull();
    patchByte(path, 10, 0x42);

    const after = await hashSnapshot(dir, DISK);

    expect(after.checksum.checksum).toBe(hex(referenceCrc64(readFileSync(path))));
    expect(after.checksum.checksum).not.toBe(before);
    expect(after.checksum.silentlyCorrupted).toBe(false);
    removeSnapshotChecksum(dir, DISK);
    removeSnapshotChecksum(dir, DISK); // absent is fine
  });

  it('rejects on abort and writes nothing', async () => {
    makeSparseFile(SIZE, WRITES);
    const pre = new AbortController();
    pre.abort();
    await expect(hashSnapshot(dir, DISK, { signal: pre.signal })).rejects.toThrow(/abort/i);
    expect(existsSync(checksumFilePath(dir, DISK))).toBe(false);

    // Aborted once the hash is under way: the existing record is left byte for byte.
    await hashSnapshot(dir, DISK);
    const recorded = readFileSync(checksumFilePath(dir, DISK), 'utf8');
    const mid = new AbortController();
    const pending = hashSnapshot(dir, DISK, { rehash: true, signal: mid.signal });
    mid.abort();
    await expect(pending).rejects.toThrow(/abort/i);
    expect(readFileSync(checksumFilePath(dir, DISK), 'utf8')).toBe(recorded);
  });

  it('names the missing snapshot file', async () => {
    await expect(hashSnapshot(dir, 'volume-snap-nope.img')).rejects.toThrow(/volume-snap-nope\.img/);
  });
});

describe('readSnapshotChecksum', () => {
  it('is null when there is no record', () => {
    expect(readSnapshotChecksum(dir, DISK)).toBeNull();
  });

  it('reads what Longhorn writes', () => {
    const golden =
      '{"method":"crc64","checksum":"b90956c775a41001","change_time":"2024-05-01 10:00:00.12345 +0000 UTC",' +
      '"last_hashed_at":"2024-05-02T03:04:05Z","silently_corrupted":false}\n';
    writeFileSync(checksumFilePath(dir, DISK), golden);
    const record: SnapshotChecksum = {
      method: 'crc64',
      checksum: 'b90956c775a41001',
      changeTime: '2024-05-01 10:00:00.12345 +0000 UTC',
      lastHashedAt: '2024-05-02T03:04:05Z',
      silentlyCorrupted: false,
    };
    expect(readSnapshotChecksum(dir, DISK)).toEqual(record);
    expect(serializeSnapshotChecksum(record)).toBe(golden);
  });

  it.each([
    ['not JSON', '{"method":'],
    ['a bad checksum', '{"method":"crc64","checksum":"B90956C775A41001"}'],
    ['a short checksum', '{"method":"crc64","checksum":"abc"}'],
    ['another method', '{"method":"sha512","checksum":"b90956c775a41001"}'],
    ['a mistyped flag', '{"method":"crc64","checksum":"b90956c775a41001","silently_corrupted":"no"}'],
  ])('names the file when it holds %s', (_, text) => {
    writeFileSync(checksumFilePath(dir, DISK), text);
    expect(() => readSnapshotChecksum(dir, DISK)).toThrow(`${DISK}.checksum`);
  });
});

describe('formatGoTime', () => {
  it.each([
    [0n, '1970-01-01 00:00:00 +0000 UTC'],
    [1714557600_000000000n, '2024-05-01 10:00:00 +0000 UTC'],
    [1714557600_123456789n, '2024-05-01 10:00:00.123456789 +0000 UTC'],
    [1714557600_120000000n, '2024-05-01 10:00:00.12 +0000 UTC'],
    [1714557600_100000000n, '2024-05-01 10:00:00.1 +0000 UTC'],
    [1714557600_000000001n, '2024-05-01 10:00:00.000000001 +0000 UTC'],
    [1714557600_000050000n, '2024-05-01 10:00:00.00005 +0000 UTC'],
    [951782400_000000000n, '2000-02-29 00:00:00 +0000 UTC'],
    [-1n, '1969-12-31 23:59:59.999999999 +0000 UTC'],
  ])('%s ns -> %s', (ns, expected) => {
    expect(formatGoTime(ns)).toBe(expected);
  });
});
