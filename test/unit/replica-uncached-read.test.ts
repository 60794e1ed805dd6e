// Replica.readToCached against the real page cache: layer files are evicted with
// `dd iflag=nocache count=0` (posix_fadvise DONTNEED on the whole file), so the reads below really
// miss the cache and really go to the libuv thread pool.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sparse } from '../../dataplane/native/sparse.js';
import { Replica } from '../../dataplane/replica/store/replica.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let root: string;
let dirs = 0;
const opened: Replica[] = [];

beforeAll(() => {
  // Under the system temp dir, which is a disk file system here (tmpfs would keep everything cached).
  root = mkdtempSync(join(tmpdir(), 'shorthorn-uncached-read-'));
});
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((r) => r.close()));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function freshReplica(size: number): { dir: string; r: Replica } {
  const dir = join(root, `r${dirs++}`);
  Replica.create(dir, size);
  const r = Replica.open(dir);
  opened.push(r);
  return { dir, r };
}

function pattern(length: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed * 7 + (i >> 12)) & 0xff;
  return b;
}

const layerFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.img'));

/** Drops every layer file of `dir` from the page cache and checks that it is gone (the test's premise). */
function evict(dir: string): void {
  for (const file of layerFiles(dir)) {
    const path = join(dir, file);
    execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
    const fd = openSync(path, 'r');
    try {
      // Probe at the first data block: a hole reads as zeros without any I/O.
      const at = sparse.seekData(fd, 0);
      if (at >= 0)
        expect(sparse.preadNoWait(fd, Buffer.alloc(4 * KiB), 0, 4 * KiB, at), `${file} still cached`).toBe(-1);
    } finally {
      closeSync(fd);
    }
  }
}

/** Open fds of this process on files under `dir`. */
function fdsUnder(dir: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir)) n++;
    } catch {
      // closed between the listing and the readlink
    }
  }
  return n;
}

describe('Replica.readToCached', () => {
  it('reads what the page cache lost on the thread pool: same bytes as readTo, across layers and holes', async () => {
    const { dir, r } = freshReplica(8 * MiB);
    const base = pattern(4 * MiB, 1);
    r.write(0, base);
    r.snapshot('s1', { userCreated: true, created: '2026-11-30T00:00:00Z', labels: {} });
    const top = pattern(MiB, 2);
    r.write(MiB, top);
    await r.flush();
    const expected = Buffer.concat([base.subarray(0, MiB), top, base.subarray(2 * MiB), Buffer.alloc(MiB)]);

    evict(dir);
    const buf = Buffer.alloc(5 * MiB, 0xee);
    const pending = r.readToCached(buf, 0);
    expect(pending).toBeInstanceOf(Promise);
    await pending;
    expect(buf.equals(expected)).toBe(true);

    // Now cached: served on the spot, same bytes.
    const again = Buffer.alloc(5 * MiB, 0xee);
    expect(r.readToCached(again, 0)).toBeUndefined();
    expect(again.equals(expected)).toBe(true);

    // A read that starts in cached blocks and runs into evicted ones (partly on the spot, rest on the pool).
    evict(dir);
    const warm = Buffer.alloc(64 * KiB);
    r.readTo(warm, 2 * MiB);
    const mixed = Buffer.alloc(256 * KiB, 0xee);
    const rest = r.readToCached(mixed, 2 * MiB);
    expect(rest).toBeInstanceOf(Promise);
    await rest;
    expect(mixed.equals(expected.subarray(2 * MiB, 2 * MiB + 256 * KiB))).toBe(true);
  });

  it('a read on the thread pool outlives the close of its layer: right bytes, and the fd closed after it', async () => {
    const { dir, r } = freshReplica(4 * MiB);
    const data = pattern(4 * MiB, 3);
    r.write(0, data);
    await r.flush();
    evict(dir);
    const buf = Buffer.alloc(MiB);
    const pending = r.readToCached(buf, MiB);
    expect(pending).toBeInstanceOf(Promise);
    const closed = r.close();
    await Promise.all([pending, closed]);
    expect(buf.equals(data.subarray(MiB, 2 * MiB))).toBe(true);
    expect(fdsUnder(dir)).toBe(0);
    // Later reads are refused, as for any closed replica.
    expect(() => r.readToCached(Buffer.alloc(4 * KiB), 0)).toThrow(/closed/);
  });

  it('a read that chose a snapshot before a write covered its block gets the old bytes though a purge prunes the snapshot', async () => {
    const { dir, r } = freshReplica(4 * MiB);
    const old = pattern(MiB, 5);
    r.write(0, old);
    r.snapshot('s1', { userCreated: true, created: '2026-11-30T00:00:00Z', labels: {} });
    await r.flush();
    evict(dir);
    const buf = Buffer.alloc(MiB, 0xee);
    const pending = r.readToCached(buf, 0);
    expect(pending).toBeInstanceOf(Promise);
    // While the read waits for the disk: the head covers the same blocks, and the removed snapshot
    // under it is pruned (holes punched wherever the head has data).
    const fresh = pattern(MiB, 6);
    r.write(0, fresh);
    r.markRemoved('s1');
    const actions = await r.purge();
    expect(actions.map((a) => a.kind)).toEqual(['prune']);
    await pending;
    expect(buf.equals(old)).toBe(true);
    expect(r.read(0, MiB).equals(fresh)).toBe(true);
  });

  it('reads past an older layer’s end as zeros on the thread pool too (a snapshot from before an expansion)', async () => {
    const { dir, r } = freshReplica(MiB);
    const low = pattern(MiB, 4);
    r.write(0, low);
    r.snapshot('small', { userCreated: true, created: '2026-11-30T00:00:00Z', labels: {} });
    r.expand(2 * MiB);
    await r.flush();
    evict(dir);
    const buf = Buffer.alloc(2 * MiB, 0xee);
    await r.readToCached(buf, 0);
    expect(buf.equals(Buffer.concat([low, Buffer.alloc(MiB)]))).toBe(true);
  });
});
