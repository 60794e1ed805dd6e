import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Replica } from '../../dataplane/replica/store/replica.js';
import {
  buildLonghornReplicaDir,
  diskMetaJson,
  expectedVolume,
  type FixtureLayer,
  type FixtureReplica,
  patternBytes,
  volumeMetaJson,
} from '../fixtures/longhorn-replica-dir.js';

const B = 4096;
const HOLE_ZERO = 3;

let root: string;
let dirs = 0;
const opened: Replica[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'shorthorn-replica-store-'));
});
afterEach(async () => {
  // Close whatever a failed test left open, so the next one starts clean (close is idempotent).
  await Promise.allSettled(opened.splice(0).map((r) => r.close()));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function freshDir(): string {
  return join(root, `r${dirs++}`);
}

function open(dir: string): Replica {
  const r = Replica.open(dir);
  opened.push(r);
  return r;
}

/** Per-block flags from a blockStatus answer covering whole blocks. */
function flagsPerBlock(extents: { length: number; flags: number }[]): number[] {
  const out: number[] = [];
  for (const e of extents) {
    expect(e.length % B).toBe(0);
    for (let i = 0; i < e.length / B; i++) out.push(e.flags);
  }
  return out;
}

function expectMerged(extents: { length: number; flags: number }[]): void {
  for (let i = 1; i < extents.length; i++) expect(extents[i]!.flags).not.toBe(extents[i - 1]!.flags);
  for (const e of extents) expect(e.length).toBeGreaterThan(0);
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

function counterFileText(dir: string): { digits: string; rest: Buffer; length: number } {
  const bytes = readFileSync(join(dir, 'revision.counter'));
  const end = bytes.indexOf(0);
  return { digits: bytes.subarray(0, end).toString('latin1'), rest: bytes.subarray(end), length: bytes.length };
}

// A Longhorn chain: volume-head-002.img → volume-snap-s1.img → volume-snap-s0.img (root), with holes in
// every layer and overlapping data. s0 is smaller than the volume (a layer from before an expansion),
// is marked removed (still serves reads), and s1's meta carries a stale Name, as Longhorn can leave it.
const SIZE = 256 * B;
const S0: FixtureLayer = {
  file: 'volume-snap-s0.img',
  parent: '',
  apparentSize: 128 * B,
  removed: true,
  writes: [
    { offset: 0, data: patternBytes(10 * B, 1) },
    { offset: 20 * B + 10, data: patternBytes(100, 2) },
    { offset: 100 * B, data: patternBytes(10 * B, 3) },
    { offset: 127 * B, data: patternBytes(B, 4) },
  ],
};
const S1: FixtureLayer = {
  file: 'volume-snap-s1.img',
  parent: 'volume-snap-s0.img',
  nameInMeta: 'volume-head-001.img',
  labelsJson: '{"k":"v"}',
  writes: [
    { offset: 5 * B, data: patternBytes(10 * B, 11) },
    { offset: 20 * B, data: patternBytes(B, 12) },
    { offset: 105 * B + 3000, data: patternBytes(700, 13) },
    { offset: 150 * B, data: patternBytes(11 * B, 14) },
  ],
};
const HEAD: FixtureLayer = {
  file: 'volume-head-002.img',
  parent: 'volume-snap-s1.img',
  userCreated: false,
  writes: [
    { offset: 8 * B, data: patternBytes(4 * B, 21) },
    { offset: 155 * B, data: patternBytes(B, 22) },
    { offset: 200 * B, data: patternBytes(4 * B, 23) },
    { offset: SIZE - 1, data: patternBytes(1, 24) },
  ],
};
const LONGHORN_CHAIN: FixtureReplica = { size: SIZE, layers: [S0, S1, HEAD], revisionCounter: 17 };

describe('a replica directory laid out by Longhorn', () => {
  const { image, present } = expectedVolume(LONGHORN_CHAIN);

  it('reads back block for block through the chain, and block status agrees', () => {
    // The expectation itself must exercise the interesting cases, or the test proves little.
    expect(image.subarray(8 * B, 12 * B)).toEqual(patternBytes(4 * B, 21)); // head over s1 over s0
    expect(image.subarray(5 * B, 8 * B)).toEqual(patternBytes(10 * B, 11).subarray(0, 3 * B)); // s1 over s0
    // s1 wrote 700 bytes into block 105, which s0 holds in full: s1's whole block wins, zeros included.
    expect(image.subarray(105 * B, 105 * B + 3000).every((b) => b === 0)).toBe(true);
    expect(image.subarray(20 * B, 20 * B + 10).equals(patternBytes(B, 12).subarray(0, 10))).toBe(true);
    expect(present.filter(Boolean).length).toBeGreaterThan(40);
    expect(present.filter((p) => !p).length).toBeGreaterThan(100);

    const dir = freshDir();
    buildLonghornReplicaDir(dir, LONGHORN_CHAIN);
    const r = open(dir);
    expect(r.size).toBe(SIZE);
    for (let b = 0; b < SIZE / B; b++) {
      expect(r.read(b * B, B).equals(image.subarray(b * B, (b + 1) * B)), `block ${b}`).toBe(true);
    }
    expect(r.read(0, SIZE).equals(image)).toBe(true);
    for (const [offset, length] of [
      [1, 7],
      [4095, 2],
      [3 * B + 17, 9 * B + 100],
      [104 * B + 512, 3 * B],
      [SIZE - 513, 513],
      [126 * B, 4 * B],
    ] as const) {
      expect(r.read(offset, length).equals(image.subarray(offset, offset + length)), `${offset}+${length}`).toBe(true);
    }

    const status = r.blockStatus(0, SIZE);
    expectMerged(status);
    expect(flagsPerBlock(status)).toEqual(present.map((p) => (p ? 0 : HOLE_ZERO)));
    const partial = r.blockStatus(14 * B + 100, 8 * B);
    expect(partial.reduce((n, e) => n + e.length, 0)).toBe(8 * B);
    expect(partial[0]).toEqual({ length: B - 100, flags: 0 }); // block 14 (s1), then 15..19 holes
    expect(partial[1]).toEqual({ length: 5 * B, flags: HOLE_ZERO });
  });

  it('reports the chain and disks as Longhorn would, names taken from the file names', async () => {
    const dir = freshDir();
    buildLonghornReplicaDir(dir, LONGHORN_CHAIN);
    const r = open(dir);
    const info = r.info();
    expect(info).toMatchObject({
      state: 'open',
      dirty: true,
      head: 'volume-head-002.img',
      parent: 'volume-snap-s1.img',
      size: SIZE,
      sectorSize: 512,
      chain: ['volume-head-002.img', 'volume-snap-s1.img', 'volume-snap-s0.img'],
      revisionCounter: 17,
      error: '',
    });
    expect(Object.keys(info.disks).sort()).toEqual(['volume-head-002.img', 'volume-snap-s0.img', 'volume-snap-s1.img']);
    expect(info.disks['volume-snap-s1.img']).toMatchObject({
      name: 'volume-snap-s1.img',
      parent: 'volume-snap-s0.img',
      children: ['volume-head-002.img'],
      removed: false,
      userCreated: true,
      created: '2024-05-01T10:00:00Z',
      labels: { k: 'v' },
    });
    expect(info.disks['volume-snap-s0.img']).toMatchObject({ removed: true, children: ['volume-snap-s1.img'] });
    expect(info.disks['volume-snap-s1.img']!.size).toBe(statSync(join(dir, 'volume-snap-s1.img')).blocks * 512);
    expect(info.headFileSize).toBe(statSync(join(dir, 'volume-head-002.img')).blocks * 512);
    expect(info.headFileSize).toBeGreaterThanOrEqual(10 * B);
    expect(revisionFileDigits(dir)).toBe('17');

    await r.close();
    // What Longhorn reads back: its own volume.meta with Dirty=false, snapshot metas untouched.
    expect(readFileSync(join(dir, 'volume.meta'), 'utf8')).toBe(
      volumeMetaJson(SIZE, 'volume-head-002.img', 'volume-snap-s1.img', false),
    );
    for (const layer of [S0, S1, HEAD]) {
      expect(readFileSync(join(dir, `${layer.file}.meta`), 'utf8')).toBe(diskMetaJson(layer));
    }
    expect(Replica.describe(dir)).toMatchObject({ state: 'closed', dirty: false, revisionCounter: 17 });
  });

  it('writeZeroes over data in lower layers reads zeros, also after close and reopen', async () => {
    const dir = freshDir();
    buildLonghornReplicaDir(dir, LONGHORN_CHAIN);
    const model = Buffer.from(image);
    let r = open(dir);
    const headBefore = r.info().headFileSize;
    // Blocks 3..15 with unaligned edges: s0, s1 and head data all below; then head-only data (200..203).
    r.writeZeroes(3 * B + 512, 12 * B);
    model.fill(0, 3 * B + 512, 15 * B + 512);
    r.writeZeroes(200 * B, 4 * B);
    model.fill(0, 200 * B, 204 * B);
    expect(r.read(0, SIZE).equals(model)).toBe(true);
    const flags = flagsPerBlock(r.blockStatus(0, SIZE));
    expect(flags.slice(200, 204)).toEqual([HOLE_ZERO, HOLE_ZERO, HOLE_ZERO, HOLE_ZERO]); // head punched, nothing below
    expect(flags.slice(3, 16)).toEqual(new Array(13).fill(0)); // explicit zeros hide the lower data
    expect(r.info().headFileSize).toBeGreaterThan(headBefore); // zeros over 3..15 cost more than 200..203 freed
    await r.close();

    r = open(dir);
    expect(r.read(0, SIZE).equals(model)).toBe(true);
    expect(flagsPerBlock(r.blockStatus(0, SIZE))).toEqual(flags);
    expect(r.revisionCounter).toBe(19);
  });

  it('unmap punches only the head, so the snapshot data beneath shows again (now and after reopen)', async () => {
    const dir = freshDir();
    buildLonghornReplicaDir(dir, LONGHORN_CHAIN);
    // Independent expectation: the same chain without the head's data in blocks 8..11 and 200..203.
    const { image: after, present: presentAfter } = expectedVolume({
      ...LONGHORN_CHAIN,
      layers: [S0, S1, { ...HEAD, writes: HEAD.writes.filter((w) => w.offset !== 8 * B && w.offset !== 200 * B) }],
    });
    let r = open(dir);
    const freed = r.unmap(8 * B - 100, 4 * B + 200) + r.unmap(200 * B, 4 * B);
    expect(freed).toBeGreaterThanOrEqual(8 * B); // (the filesystem may free extent-tree blocks too)
    expect(r.read(0, SIZE).equals(after)).toBe(true);
    expect(flagsPerBlock(r.blockStatus(0, SIZE))).toEqual(presentAfter.map((p) => (p ? 0 : HOLE_ZERO)));
    await r.close();
    r = open(dir);
    expect(r.read(0, SIZE).equals(after)).toBe(true);
  });
});

function revisionFileDigits(dir: string): string {
  return counterFileText(dir).digits;
}

describe('a replica created here', () => {
  it('lays down files Longhorn can open', () => {
    const dir = freshDir();
    expect(Replica.describe(dir).state).toBe('initial');
    Replica.create(dir, 64 * B);
    const volumeMeta = readJson(join(dir, 'volume.meta'));
    expect(Object.keys(volumeMeta)).toEqual([
      'Size',
      'Head',
      'Dirty',
      'Rebuilding',
      'Error',
      'Parent',
      'SectorSize',
      'BackingFilePath',
      'Encrypted',
    ]);
    expect(volumeMeta).toEqual({
      Size: 64 * B,
      Head: 'volume-head-000.img',
      Dirty: false,
      Rebuilding: false,
      Error: '',
      Parent: '',
      SectorSize: 512,
      BackingFilePath: '',
      Encrypted: false,
    });
    const headMeta = readJson(join(dir, 'volume-head-000.img.meta'));
    expect(Object.keys(headMeta)).toEqual(['Name', 'Parent', 'Removed', 'UserCreated', 'Created', 'Labels']);
    expect(headMeta).toMatchObject({ Name: 'volume-head-000.img', Parent: '', Removed: false, UserCreated: false });
    expect(headMeta['Labels']).toBeNull();
    expect(headMeta['Created']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const head = statSync(join(dir, 'volume-head-000.img'));
    expect(head.size).toBe(64 * B);
    expect(head.blocks).toBe(0);
    expect(counterFileText(dir)).toMatchObject({ digits: '0', length: 4096 });
    expect(counterFileText(dir).rest.every((b) => b === 0)).toBe(true);
    expect(existsSync(join(dir, 'volume.meta.tmp'))).toBe(false);
    expect(Replica.describe(dir)).toMatchObject({ state: 'closed', head: 'volume-head-000.img', size: 64 * B });
  });

  it('refuses bad sizes and existing replicas', () => {
    const dir = freshDir();
    expect(() => Replica.create(dir, 0)).toThrow(RangeError);
    expect(() => Replica.create(dir, 1000)).toThrow(RangeError);
    expect(() => Replica.create(dir, 4096 + 512)).toThrow(RangeError);
    Replica.create(dir, B);
    expect(() => Replica.create(dir, B)).toThrow(/volume.meta already exists/);
    unlinkSync(join(dir, 'volume.meta'));
    expect(() => Replica.create(dir, B)).toThrow(/volume-head-000.img already exists/);
  });

  it('reads back aligned, 512-byte unaligned and block-spanning writes', async () => {
    const dir = freshDir();
    const size = 64 * B;
    Replica.create(dir, size);
    const model = Buffer.alloc(size);
    let r = open(dir);
    expect(r.read(0, size).equals(model)).toBe(true);
    const writes: [number, Buffer][] = [
      [0, patternBytes(B, 1)],
      [4 * B, patternBytes(3 * B, 2)],
      [512, patternBytes(512, 3)],
      [10 * B + 1536, patternBytes(4 * B, 4)],
      [5 * B - 512, patternBytes(1024, 5)],
      [20 * B + 7, patternBytes(1, 6)],
      [size - 512, patternBytes(512, 7)],
    ];
    for (const [offset, data] of writes) {
      r.write(offset, data);
      data.copy(model, offset);
      expect(r.read(0, size).equals(model), `after write at ${offset}`).toBe(true);
    }
    expect(r.read(10 * B + 1000, 5 * B).equals(model.subarray(10 * B + 1000, 15 * B + 1000))).toBe(true);
    const status = r.blockStatus(0, size);
    expectMerged(status);
    expect(status.slice(0, 3)).toEqual([
      { length: B, flags: 0 },
      { length: 3 * B, flags: HOLE_ZERO },
      { length: 3 * B, flags: 0 },
    ]);
    await r.close();
    r = open(dir);
    expect(r.read(0, size).equals(model)).toBe(true);
  });

  it('unmap aligns inward and lowers the allocated bytes', () => {
    const dir = freshDir();
    Replica.create(dir, 64 * B);
    const r = open(dir);
    const data = patternBytes(16 * B, 9);
    r.write(0, data);
    const before = r.info().headFileSize;
    expect(before).toBeGreaterThanOrEqual(16 * B);
    expect(r.unmap(100, 4000)).toBe(0); // less than one whole block
    const freedOne = r.unmap(100, 2 * B); // only block 1 lies wholly inside
    expect(freedOne).toBeGreaterThanOrEqual(B);
    expect(r.info().headFileSize).toBe(before - freedOne);
    const back = r.read(0, 3 * B);
    expect(back.subarray(0, B).equals(data.subarray(0, B))).toBe(true);
    expect(back.subarray(B, 2 * B).every((b) => b === 0)).toBe(true);
    expect(back.subarray(2 * B).equals(data.subarray(2 * B, 3 * B))).toBe(true);
    const freed = r.unmap(4 * B, 8 * B);
    expect(freed).toBeGreaterThanOrEqual(8 * B);
    expect(r.info().headFileSize).toBe(before - freedOne - freed);
    expect(r.blockStatus(0, 16 * B)).toEqual([
      { length: B, flags: 0 },
      { length: B, flags: HOLE_ZERO },
      { length: 2 * B, flags: 0 },
      { length: 8 * B, flags: HOLE_ZERO },
      { length: 4 * B, flags: 0 },
    ]);
  });

  it('persists the revision counter at flush and close, and Dirty while open', async () => {
    const dir = freshDir();
    Replica.create(dir, 64 * B);
    const r = open(dir);
    expect(readJson(join(dir, 'volume.meta'))['Dirty']).toBe(true);
    expect(Replica.describe(dir).dirty).toBe(true);
    r.write(0, Buffer.alloc(B, 1));
    r.writeZeroes(B, B);
    r.unmap(0, B);
    expect(r.revisionCounter).toBe(3);
    expect(revisionFileDigits(dir)).toBe('0'); // not on every write: at flush
    await r.flush();
    expect(counterFileText(dir)).toMatchObject({ digits: '3', length: 4096 });
    expect(counterFileText(dir).rest.every((b) => b === 0)).toBe(true);

    // Concurrent flushes with writes in between: the file ends at the newest value.
    r.write(0, Buffer.alloc(B, 2));
    const first = r.flush();
    r.write(B, Buffer.alloc(B, 3));
    r.write(2 * B, Buffer.alloc(B, 4));
    const second = r.flush();
    await Promise.all([first, second]);
    expect(revisionFileDigits(dir)).toBe('6');

    r.write(0, Buffer.alloc(10, 5));
    r.revisionCounter = 1234; // the engine may set it (rebuild)
    const closing = r.close();
    expect(r.close()).toBe(closing);
    await closing;
    await r.close();
    expect(counterFileText(dir)).toMatchObject({ digits: '1234', length: 4096 });
    expect(readJson(join(dir, 'volume.meta'))['Dirty']).toBe(false);
    expect(r.info()).toMatchObject({ state: 'closed', dirty: false, revisionCounter: 1234 });
    expect(() => r.read(0, 1)).toThrow(/closed/);
    expect(() => r.write(0, Buffer.alloc(1))).toThrow(/closed/);
    await expect(r.flush()).rejects.toThrow(/closed/);
    expect(open(dir).revisionCounter).toBe(1234);
  });

  it('recovers a lost volume.meta from the head file, as Longhorn does', async () => {
    const dir = freshDir();
    Replica.create(dir, 32 * B);
    let r = open(dir);
    r.write(3 * B, patternBytes(B, 3));
    await r.close();
    writeFileSync(join(dir, 'volume.meta'), '');
    expect(Replica.describe(dir).state).toBe('initial');
    r = open(dir);
    expect(r.size).toBe(32 * B);
    expect(r.read(3 * B, B).equals(patternBytes(B, 3))).toBe(true);
    expect(readJson(join(dir, 'volume.meta'))).toMatchObject({
      Size: 32 * B,
      Head: 'volume-head-000.img',
      Dirty: true,
    });
    await r.close();
    unlinkSync(join(dir, 'volume.meta'));
    expect(
      open(dir)
        .read(3 * B, B)
        .equals(patternBytes(B, 3)),
    ).toBe(true);
  });

  it('fails to open with errors that say why', () => {
    const empty = freshDir();
    mkdirSync(empty);
    expect(() => Replica.open(empty)).toThrow(/no volume-head-NNN.img/);
    expect(() => Replica.open(join(root, 'does-not-exist'))).toThrow(/open replica/);
    const bad = freshDir();
    Replica.create(bad, B);
    writeFileSync(join(bad, 'volume.meta'), '{"Size": 4096, ');
    expect(() => Replica.open(bad)).toThrow(/volume.meta: invalid JSON/);
    expect(Replica.describe(bad).state).toBe('initial');
    const broken = freshDir();
    buildLonghornReplicaDir(broken, LONGHORN_CHAIN);
    unlinkSync(join(broken, 'volume-snap-s0.img.meta'));
    expect(() => Replica.open(broken)).toThrow(/volume-snap-s1.img names parent volume-snap-s0.img/);
    expect(Replica.describe(broken).state).toBe('error');
    const backed = freshDir();
    Replica.create(backed, B);
    const meta = readJson(join(backed, 'volume.meta'));
    writeFileSync(join(backed, 'volume.meta'), JSON.stringify({ ...meta, BackingFilePath: '/images/base.qcow2' }));
    expect(() => Replica.open(backed)).toThrow(/backing files are not supported/);
    expect(Replica.describe(join(root, 'does-not-exist')).state).toBe('initial');
  });

  it('refuses to open a directory twice in one process', async () => {
    const dir = freshDir();
    Replica.create(dir, B);
    const r = open(dir);
    expect(() => Replica.open(dir)).toThrow(/already open/);
    r.write(0, Buffer.alloc(B, 1)); // the refused open must not have disturbed the open replica
    await r.close();
    expect(open(dir).read(0, B).equals(Buffer.alloc(B, 1))).toBe(true);
  });

  it('rejects I/O outside the volume with RangeError', () => {
    const dir = freshDir();
    Replica.create(dir, 8 * B);
    const r = open(dir);
    const size = 8 * B;
    for (const [offset, length] of [
      [-1, 1],
      [size, 1],
      [size - 100, 101],
      [0, size + 1],
      [1.5, 10],
      [0, -1],
      [Number.MAX_SAFE_INTEGER, 1],
    ] as const) {
      expect(() => r.read(offset, length), `read ${offset}+${length}`).toThrow(RangeError);
      expect(() => r.writeZeroes(offset, length)).toThrow(RangeError);
      expect(() => r.unmap(offset, length)).toThrow(RangeError);
      expect(() => r.blockStatus(offset, length)).toThrow(RangeError);
      if (length >= 0) expect(() => r.write(offset, Buffer.alloc(length))).toThrow(RangeError);
    }
    expect(r.revisionCounter).toBe(0);
    expect(r.read(size, 0).length).toBe(0);
  });
});

// Random writes, writeZeroes and unmaps against an in-memory model of the volume and of its allocation,
// on a fresh replica and on a Longhorn chain with data below the head; then close, reopen, compare again.
describe('random I/O against a model', () => {
  const size = 48 * B;
  interface Op {
    kind: 'write' | 'writeZeroes' | 'unmap';
    offset: number;
    length: number;
    seed: number;
  }
  const op: fc.Arbitrary<Op> = fc.record({
    kind: fc.constantFrom('write' as const, 'write' as const, 'writeZeroes' as const, 'unmap' as const),
    offset: fc.oneof(
      fc.integer({ min: 0, max: size / 512 - 1 }).map((n) => n * 512),
      fc.integer({ min: 0, max: size - 1 }),
    ),
    length: fc.integer({ min: 1, max: 5 * B }),
    seed: fc.nat(),
  });
  const lowerWrite = fc.record({
    block: fc.integer({ min: 0, max: size / B - 1 }),
    at: fc.integer({ min: 0, max: B - 1 }),
    length: fc.integer({ min: 1, max: 3 * B }),
    seed: fc.nat(),
  });

  async function check(base: FixtureReplica | null, ops: Op[]): Promise<void> {
    const dir = freshDir();
    let lower: { image: Buffer; present: boolean[] } = {
      image: Buffer.alloc(size),
      present: new Array<boolean>(size / B).fill(false),
    };
    if (base === null) Replica.create(dir, size);
    else {
      buildLonghornReplicaDir(dir, base);
      lower = expectedVolume(base);
    }
    const model = Buffer.from(lower.image);
    const alloc = [...lower.present];
    let r = open(dir);
    try {
      for (const o of ops) {
        const length = Math.min(o.length, size - o.offset);
        const end = o.offset + length;
        const inner = [Math.ceil(o.offset / B), Math.floor(end / B)] as const;
        const touched = [Math.floor(o.offset / B), Math.ceil(end / B)] as const;
        if (o.kind === 'write') {
          const data = patternBytes(length, o.seed);
          r.write(o.offset, data);
          data.copy(model, o.offset);
          alloc.fill(true, touched[0], touched[1]);
        } else if (o.kind === 'writeZeroes') {
          r.writeZeroes(o.offset, length);
          model.fill(0, o.offset, end);
          alloc.fill(true, touched[0], touched[1]); // edges: read-modify-write
          for (let b = inner[0]; b < inner[1]; b++) alloc[b] = lower.present[b]!; // hole, or zeros over lower data
        } else {
          r.unmap(o.offset, length);
          for (let b = inner[0]; b < inner[1]; b++) {
            lower.image.copy(model, b * B, b * B, (b + 1) * B);
            alloc[b] = lower.present[b]!;
          }
        }
      }
      const flags = alloc.map((a) => (a ? 0 : HOLE_ZERO));
      expect(r.read(0, size).equals(model)).toBe(true);
      expect(flagsPerBlock(r.blockStatus(0, size))).toEqual(flags);
      await r.close();
      r = open(dir);
      expect(r.revisionCounter).toBe(ops.length + (base?.revisionCounter ?? 0));
      expect(r.read(0, size).equals(model)).toBe(true);
      expect(flagsPerBlock(r.blockStatus(0, size))).toEqual(flags);
    } finally {
      await r.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('on a fresh single-layer replica (unmapped ranges read as zeros)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 25 }), (ops) => check(null, ops)),
      { numRuns: 40 },
    );
  });

  it('on a head over a snapshot (unmapped ranges show the snapshot)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(lowerWrite, { maxLength: 12 }), fc.array(op, { maxLength: 25 }), (writes, ops) => {
        const snapshot: FixtureLayer = {
          file: 'volume-snap-base.img',
          parent: '',
          writes: writes.map((w) => {
            const offset = w.block * B + w.at;
            return { offset, data: patternBytes(Math.min(w.length, size - offset), w.seed) };
          }),
        };
        const head: FixtureLayer = { file: 'volume-head-001.img', parent: snapshot.file, writes: [] };
        return check({ size, layers: [snapshot, head], revisionCounter: 5 }, ops);
      }),
      { numRuns: 40 },
    );
  });
});
