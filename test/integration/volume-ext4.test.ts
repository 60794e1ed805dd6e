// A real ext4 filesystem on a Shorthorn volume, without the kernel nbd module: nbdfuse exposes the
// export as a file, a loop device turns it into a block device. Files written, fsck clean, and after
// tearing down loop + nbdfuse and attaching them afresh the files read back with their checksums.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startVolume, type TestVolume } from '../helpers/cluster.js';
import { requireTool, run, runOk, startTool } from '../helpers/tools.js';
import { deadProcesses, expectedModes, MiB, replicaModes, volumeLogs, waitFor } from '../helpers/volume-tools.js';

const NBDFUSE = '/usr/bin/nbdfuse';
const LOSETUP = '/usr/sbin/losetup';
const MKFS = '/usr/sbin/mkfs.ext4';
const FSCK = '/usr/sbin/fsck.ext4';
const MOUNT = '/usr/bin/mount';
const UMOUNT = '/usr/bin/umount';
const SYNC = '/usr/bin/sync';

const SIZE = 128 * MiB;

/** nbdfuse + loop device + (optionally) an ext4 mount, torn down in reverse even after failures. */
class Attachment {
  fuse: ReturnType<typeof startTool> | undefined;
  loop = '';
  mounted = '';

  constructor(
    readonly fuseDir: string,
    readonly uri: string,
  ) {}

  get diskFile() {
    return join(this.fuseDir, 'disk');
  }

  async attach(expectedSize: number): Promise<string> {
    mkdirSync(this.fuseDir, { recursive: true });
    this.fuse = startTool(NBDFUSE, [this.diskFile, this.uri]);
    const fuse = this.fuse;
    const appeared = await waitFor(() => fuse.child.exitCode === null && existsSync(this.diskFile), 15_000, 100);
    if (!appeared) throw new Error(`nbdfuse did not expose ${this.diskFile}: ${JSON.stringify(fuse.output())}`);
    expect(statSync(this.diskFile).size).toBe(expectedSize);
    this.loop = (await runOk(LOSETUP, ['-f', '--show', this.diskFile], { timeoutMs: 30_000 })).stdout.trim();
    expect(this.loop).toMatch(/^\/dev\/loop\d+$/);
    return this.loop;
  }

  async mount(dir: string) {
    mkdirSync(dir, { recursive: true });
    await runOk(MOUNT, ['-t', 'ext4', this.loop, dir], { timeoutMs: 60_000 });
    this.mounted = dir;
  }

  async umount() {
    await runOk(UMOUNT, [this.mounted], { timeoutMs: 60_000 });
    this.mounted = '';
  }

  /** The orderly path: every step must succeed. */
  async detach() {
    if (this.mounted) await this.umount();
    await runOk(LOSETUP, ['-d', this.loop], { timeoutMs: 30_000 });
    this.loop = '';
    await runOk(UMOUNT, [this.fuseDir], { timeoutMs: 30_000 });
    const fuse = this.fuse!;
    const exited = await Promise.race([fuse.exited.then(() => true), new Promise((r) => setTimeout(r, 10_000, false))]);
    if (!exited) await fuse.kill();
    this.fuse = undefined;
  }

  /** Best effort after a failure: never throws, never hangs for long (killing nbdfuse aborts FUSE I/O). */
  async forceDetach() {
    if (!this.fuse && !this.loop && !this.mounted) return;
    const quiet = (cmd: string, args: string[]) => run(cmd, args, { timeoutMs: 15_000 }).catch(() => undefined);
    if (this.mounted) {
      const r = await quiet(UMOUNT, [this.mounted]);
      if (r?.code !== 0) {
        await this.fuse?.kill();
        await quiet(UMOUNT, ['-l', this.mounted]);
      }
      this.mounted = '';
    }
    if (this.loop) {
      const r = await quiet(LOSETUP, ['-d', this.loop]);
      if (r?.code !== 0) {
        await this.fuse?.kill();
        await quiet(LOSETUP, ['-d', this.loop]);
      }
      this.loop = '';
    }
    const r = await quiet(UMOUNT, [this.fuseDir]);
    if (r?.code !== 0) await quiet(UMOUNT, ['-l', this.fuseDir]);
    await this.fuse?.kill();
    this.fuse = undefined;
  }
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('ext4 on nbdfuse + loop over a 3-replica volume', () => {
  let vol: TestVolume | undefined;
  let dir = '';
  // every attachment made, so afterAll can tear down whatever a failed test left behind
  const attachments: Attachment[] = [];
  const attach = (name: string) => {
    const a = new Attachment(join(dir, name), vol!.uri);
    attachments.push(a);
    return a;
  };
  const files: Record<string, string> = {};

  beforeAll(async () => {
    for (const t of [NBDFUSE, LOSETUP, MKFS, FSCK, MOUNT, UMOUNT, SYNC]) requireTool(t);
    dir = mkdtempSync(join(tmpdir(), 'shorthorn-ext4-'));
    vol = await startVolume({ size: SIZE, replicas: 3 });
  });

  afterAll(async () => {
    try {
      for (const a of attachments.reverse()) await a.forceDetach();
    } finally {
      await vol?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  test('mkfs.ext4, mount, write files, sync, umount, fsck clean', async () => {
    const att = attach('fuse');
    const loop = await att.attach(SIZE);
    await runOk(MKFS, ['-q', '-F', loop], { timeoutMs: 60_000 });
    const mnt = join(dir, 'mnt');
    await att.mount(mnt);
    const sizes = { 'a.bin': 5 * MiB, 'b.bin': 12 * MiB + 123, 'c.bin': 1, 'd.bin': 300_000 };
    for (const [name, n] of Object.entries(sizes)) {
      const data = randomBytes(n);
      writeFileSync(join(mnt, name), data);
      files[name] = sha256(data);
    }
    mkdirSync(join(mnt, 'sub/dir'), { recursive: true });
    const text = Buffer.from('hello from shorthorn\n'.repeat(1000));
    writeFileSync(join(mnt, 'sub/dir/hello.txt'), text);
    files['sub/dir/hello.txt'] = sha256(text);
    await runOk(SYNC, [], { timeoutMs: 60_000 });
    await att.umount();
    const fsck = await run(FSCK, ['-n', '-f', loop], { timeoutMs: 60_000 });
    expect(fsck.code, `${fsck.stdout}${fsck.stderr}`).toBe(0);
    await att.detach();
  });

  test('a fresh nbdfuse + loop sees the same files with the same checksums, fsck still clean', async () => {
    expect(Object.keys(files)).toHaveLength(5);
    // never mount the filesystem twice: tear down whatever a failed first test left attached
    for (const a of attachments) await a.forceDetach();
    const att = attach('fuse2');
    const loop = await att.attach(SIZE);
    const fsck = await run(FSCK, ['-n', '-f', loop], { timeoutMs: 60_000 });
    expect(fsck.code, `${fsck.stdout}${fsck.stderr}`).toBe(0);
    const mnt = join(dir, 'mnt2');
    await att.mount(mnt);
    const seen: Record<string, string> = {};
    for (const name of Object.keys(files)) seen[name] = sha256(readFileSync(join(mnt, name)));
    expect(seen).toEqual(files);
    await att.detach();
  });

  test('the volume processes all run and all replicas stayed RW', async () => {
    const v = vol!;
    expect(deadProcesses(v), volumeLogs(v)).toEqual([]);
    expect(await replicaModes(v)).toEqual(expectedModes(v, ['RW', 'RW', 'RW']));
  });
});
