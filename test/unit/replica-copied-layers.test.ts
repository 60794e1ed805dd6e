// After a rebuild the replica turns RW before the copied layers are on disk; its volume.meta must say
// Rebuilding until they are, so a crash in between brings it back as a replica to rebuild.
import { fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CopiedLayersSync } from '../../dataplane/replica/store/copied-layers-sync.js';
import { Replica } from '../../dataplane/replica/store/replica.js';
import { readVolumeMeta } from '../../dataplane/replica/store/volume-meta.js';

const MiB = 1024 * 1024;
let root: string;
let n = 0;
const opened: Replica[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'shorthorn-copied-layers-'));
});
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((r) => r.close()));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** An open replica marked as a rebuild target, and a file standing for a layer it copied in (dirty). */
function rebuildingReplica(): { dir: string; replica: Replica; copiedFd: number } {
  const dir = join(root, `r${n++}`);
  Replica.create(dir, 4 * MiB);
  const replica = Replica.open(dir);
  opened.push(replica);
  replica.setRebuilding(true);
  const copied = join(dir, 'copied.bin');
  writeFileSync(copied, Buffer.alloc(MiB, 7));
  return { dir, replica, copiedFd: openSync(copied, 'r+') };
}

const onDisk = (dir: string) => readVolumeMeta(dir)?.rebuilding;
const isOpen = (fd: number) => {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};

describe('copied layers synced after the switch to RW', () => {
  it('keeps Rebuilding=true on disk until the copied files are synced, then clears it', async () => {
    const { dir, replica, copiedFd } = rebuildingReplica();
    const copied = new CopiedLayersSync([copiedFd]);
    replica.keepRebuildingOnDiskUntil(copied);
    replica.setRebuilding(false);
    expect(replica.info().rebuilding).toBe(false);
    expect(onDisk(dir)).toBe(true);
    await copied.done;
    await new Promise((resolve) => setImmediate(resolve));
    expect(onDisk(dir)).toBe(false);
    expect(isOpen(copiedFd)).toBe(false);
  });

  it('does not start syncing before the replica is RW; a clean close syncs and keeps the flag', async () => {
    const { dir, replica, copiedFd } = rebuildingReplica();
    const copied = new CopiedLayersSync([copiedFd]);
    replica.keepRebuildingOnDiskUntil(copied);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(isOpen(copiedFd)).toBe(true);
    await replica.close();
    await copied.done;
    expect(isOpen(copiedFd)).toBe(false);
    expect(onDisk(dir)).toBe(true);
  });

  it('a clean close while the sync runs finishes it and clears the flag', async () => {
    const { dir, replica, copiedFd } = rebuildingReplica();
    const copied = new CopiedLayersSync([copiedFd]);
    replica.keepRebuildingOnDiskUntil(copied);
    replica.setRebuilding(false);
    await replica.close();
    expect(onDisk(dir)).toBe(false);
    expect(isOpen(copiedFd)).toBe(false);
  });

  it('a failed sync (EINVAL: /dev/null cannot be synced) fails every later flush and keeps the flag', async () => {
    const { dir, replica, copiedFd } = rebuildingReplica();
    const unsyncable = openSync('/dev/null', 'r');
    const copied = new CopiedLayersSync([copiedFd, unsyncable]);
    replica.keepRebuildingOnDiskUntil(copied);
    replica.setRebuilding(false);
    await expect(copied.done).rejects.toThrow(/EINVAL/);
    await new Promise((resolve) => setImmediate(resolve));
    await expect(replica.flush()).rejects.toThrow(/did not reach the disk.*EINVAL/);
    expect(onDisk(dir)).toBe(true);
    expect(isOpen(unsyncable)).toBe(false);
  });
});
