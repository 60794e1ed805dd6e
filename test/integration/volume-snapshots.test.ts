// Snapshots, revert, purge, expansion, trim and integrity on a real 3-replica volume, driven through
// the engine's gRPC API and the `shorthorn snapshot` CLI, checked with real NBD clients (fio verify,
// libnbd) and by reading the replica directories with the independent Longhorn-layout reader.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readdirSync, readSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLonghornReplicaDir } from '../fixtures/longhorn-replica-dir.js';
import { startVolume, type TestVolume } from '../helpers/cluster.js';
import { engineClient, shorthorn, shorthornJson, unary } from '../helpers/engine-api.js';
import { requireTool, runOk, startTool } from '../helpers/tools.js';
import { FIO, MiB, PYTHON, parseFioJson, python, sleep, volumeLogs, volumeSha256 } from '../helpers/volume-tools.js';

const NBDINFO = '/usr/bin/nbdinfo';
const SIZE = 64 * MiB;

/** Layer files and their allocated bytes across the replica directories. */
function layerUsage(vol: TestVolume): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const r of vol.replicas) {
    for (const f of readdirSync(r.dir)) {
      if (!f.endsWith('.img')) continue;
      files++;
      bytes += statSync(join(r.dir, f)).blocks * 512;
    }
  }
  return { files, bytes };
}

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Writes `count` blocks of `size` bytes filled with `fill`, every `stride` bytes from `offset`, then flushes. */
async function writePattern(uri: string, fill: number, offset: number, size: number, count: number, stride = size) {
  const r = await python(
    `import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
fill, off, size, count, stride = (int(x) for x in sys.argv[2:7])
for i in range(count):
    h.pwrite(bytes([fill]) * size, off + i * stride)
h.flush()
h.shutdown()`,
    [uri, String(fill), String(offset), String(size), String(count), String(stride)],
  );
  expect(r.code, r.stderr).toBe(0);
}

describe('snapshots on a live volume', () => {
  let vol: TestVolume;
  const ctl = () => ['--engine', `127.0.0.1:${vol.enginePort}`];

  beforeAll(async () => {
    for (const t of [FIO, NBDINFO, PYTHON]) requireTool(t);
    vol = await startVolume({ size: SIZE, replicas: 3 });
  });
  afterAll(async () => {
    await vol?.destroy();
  });

  it('fio verify keeps running clean while 20 snapshots are taken; purging them all keeps the data and frees space', async () => {
    const f = startTool(FIO, [
      '--output-format=json',
      '--verify_state_save=0',
      '--ioengine=nbd',
      `--uri=${vol.uri}`,
      '--name=snapload',
      '--rw=randwrite',
      '--bs=4k',
      '--size=48M',
      '--iodepth=16',
      '--time_based',
      '--runtime=8',
      '--verify=crc32c',
      '--verify_backlog=256',
      '--verify_fatal=1',
      '--randrepeat=0',
    ]);
    const c = engineClient(vol);
    const pauses: number[] = [];
    try {
      await sleep(500);
      for (let i = 0; i < 20; i++) {
        const r = await unary(c.snapshotCreate, c, { name: `load-${i}`, labels: { round: String(i) } });
        pauses.push(r.pauseUs);
        await sleep(100);
      }
      expect(f.child.exitCode, 'fio ended before the 20 snapshots were taken').toBe(null);
    } finally {
      c.close();
    }
    const code = await f.exited;
    const { stdout, stderr } = f.output();
    expect(code, `${stderr}\n${volumeLogs(vol)}`).toBe(0);
    const job = parseFioJson(stdout).jobs[0]!;
    expect(job.error).toBe(0);
    expect(job.read.io_bytes).toBeGreaterThan(0);
    expect(`${stdout}${stderr}`).not.toMatch(/verify: |bad magic/i);
    expect(pauses).toHaveLength(20);

    const snaps = await shorthornJson<{ name: string; userCreated: boolean; labels: Record<string, string> }[]>([
      'snapshot',
      ...ctl(),
      '-o',
      'json',
      'ls',
    ]);
    const load = snaps.filter((s) => s.name.startsWith('load-'));
    expect(load).toHaveLength(20);
    expect(load.find((s) => s.name === 'load-7')?.labels).toEqual({ round: '7' });

    const before = await volumeSha256(vol.uri);
    const usage = layerUsage(vol);
    await shorthornJson(['snapshot', ...ctl(), '-o', 'json', 'rm', ...load.map((s) => s.name)]);
    const purged = await shorthornJson<{ address: string; actions: number; error: string }[]>([
      'snapshot',
      ...ctl(),
      '-o',
      'json',
      'purge',
    ]);
    expect(purged.map((p) => p.error)).toEqual(['', '', '']);
    expect(purged.every((p) => p.actions >= 20)).toBe(true);
    expect(await volumeSha256(vol.uri)).toBe(before);
    const after = layerUsage(vol);
    expect(after.files).toBeLessThan(usage.files);
    expect(after.bytes).toBeLessThan(usage.bytes);
    // What purge left behind is still a Longhorn replica directory showing the same volume.
    for (const r of vol.replicas) expect(sha256(readLonghornReplicaDir(r.dir))).toBe(before);
  });

  it('revert needs the frontend stopped and brings back the content of the snapshot', async () => {
    await writePattern(vol.uri, 0x11, 0, MiB, 8, 4 * MiB);
    const atSnapshot = await volumeSha256(vol.uri);
    await shorthornJson(['snapshot', ...ctl(), '-o', 'json', 'create', 'before-upgrade', '--label', 'why=upgrade']);
    await writePattern(vol.uri, 0x22, 0, MiB, 16, 2 * MiB);
    expect(await volumeSha256(vol.uri)).not.toBe(atSnapshot);

    const refused = await shorthorn(['snapshot', ...ctl(), 'revert', 'before-upgrade']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/frontend/);
    const unknown = await shorthorn(['snapshot', ...ctl(), 'revert', 'no-such-snapshot', '--stop-frontend']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/does not exist/);

    await shorthornJson(['snapshot', ...ctl(), '-o', 'json', 'revert', 'before-upgrade', '--stop-frontend']);
    expect(await volumeSha256(vol.uri)).toBe(atSnapshot);
  });

  it('a bit flipped in one replica’s snapshot file is detected and that replica named', async () => {
    await writePattern(vol.uri, 0x33, 8 * MiB, MiB, 4);
    await shorthornJson(['snapshot', ...ctl(), '-o', 'json', 'create', 'scrub']);
    type HashReply = {
      consistent: boolean;
      replicas: { address: string; checksum: string; silentlyCorrupted: boolean; oddOneOut: boolean }[];
    };
    const clean = await shorthornJson<HashReply>(['snapshot', ...ctl(), '-o', 'json', 'hash', 'scrub']);
    expect(clean.consistent).toBe(true);
    expect(new Set(clean.replicas.map((r) => r.checksum)).size).toBe(1);
    for (const r of vol.replicas) expect(readdirSync(r.dir)).toContain('volume-snap-scrub.img.checksum');

    // Flip one bit inside the data of replica 1's snapshot file, behind Shorthorn's back.
    const victim = vol.replicas[1]!;
    const file = join(victim.dir, 'volume-snap-scrub.img');
    const fd = openSync(file, 'r+');
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, 8 * MiB + 12345);
    byte[0] = byte[0]! ^ 0x04;
    writeSync(fd, byte, 0, 1, 8 * MiB + 12345);
    closeSync(fd);

    const r = await shorthorn(['snapshot', ...ctl(), '-o', 'json', 'hash', 'scrub']);
    expect(r.code).not.toBe(0);
    const dirty = JSON.parse(r.stdout) as HashReply;
    expect(dirty.consistent).toBe(false);
    const flagged = dirty.replicas.filter((x) => x.oddOneOut).map((x) => x.address);
    expect(flagged).toEqual([victim.address]);
    expect(dirty.replicas.find((x) => x.address === victim.address)?.silentlyCorrupted).toBe(true);
    const table = await shorthorn(['snapshot', ...ctl(), 'hash', 'scrub']);
    expect(table.stdout).toMatch(/DIFFER/);
  });

  it('trim punches holes: the replicas’ allocated bytes drop', async () => {
    await writePattern(vol.uri, 0x44, 32 * MiB, MiB, 16);
    const before = layerUsage(vol).bytes;
    const r = await python(
      `import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.trim(16 << 20, 32 << 20)
h.flush()
h.shutdown()`,
      [vol.uri],
    );
    expect(r.code, r.stderr).toBe(0);
    const after = layerUsage(vol).bytes;
    // 16 MiB on each of 3 replicas was in the heads.
    expect(before - after).toBeGreaterThanOrEqual(3 * 16 * MiB);
  });

  it('expands during I/O: the running client keeps working, a new connection sees the new size, shrink is refused', async () => {
    const f = startTool(FIO, [
      '--output-format=json',
      '--verify_state_save=0',
      '--ioengine=nbd',
      `--uri=${vol.uri}`,
      '--name=expand',
      '--rw=randwrite',
      '--bs=4k',
      '--size=32M',
      '--iodepth=8',
      '--time_based',
      '--runtime=4',
      '--verify=crc32c',
      '--verify_backlog=128',
      '--verify_fatal=1',
      '--randrepeat=0',
    ]);
    await sleep(1000);
    const grown = await shorthornJson<{ size: number }>(['engine-ctl', ...ctl(), '-o', 'json', 'expand', '128Mi']);
    expect(grown.size).toBe(128 * MiB);
    expect(f.child.exitCode, 'fio ended before the expansion').toBe(null);
    expect(await f.exited, f.output().stderr).toBe(0);
    expect(f.output().stdout).not.toMatch(/verify: |bad magic/i);

    const info = await runOk(NBDINFO, ['--size', vol.uri]);
    expect(Number(info.stdout.trim())).toBe(128 * MiB);
    await writePattern(vol.uri, 0x55, 128 * MiB - MiB, MiB, 1);
    const tail = await python(
      `import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.pread(1 << 20, (128 << 20) - (1 << 20)) == bytes([0x55]) * (1 << 20)
assert h.pread(1 << 20, 64 << 20) == bytes(1 << 20)
h.shutdown()`,
      [vol.uri],
    );
    expect(tail.code, tail.stderr).toBe(0);

    const shrink = await shorthorn(['engine-ctl', ...ctl(), 'expand', '64Mi']);
    expect(shrink.code).not.toBe(0);
    expect(shrink.stderr).toMatch(/shrink/);
    // Every replica carries Longhorn's expansion snapshot.
    for (const r of vol.replicas) expect(readdirSync(r.dir)).toContain(`volume-snap-expand-${128 * MiB}.img`);
  });

  it('refuses bad snapshot requests with clear errors and fails no replica', async () => {
    const dup = await shorthorn(['snapshot', ...ctl(), 'create', 'scrub']);
    expect(dup.stderr).toMatch(/already exists/);
    const bad = await shorthorn(['snapshot', ...ctl(), 'create', '../etc']);
    expect(bad.stderr).toMatch(/invalid snapshot name/);
    const missing = await shorthorn(['snapshot', ...ctl(), 'rm', 'nope']);
    expect(missing.stderr).toMatch(/does not exist/);
    const modes = await shorthornJson<{ mode: string }[]>(['engine-ctl', ...ctl(), '-o', 'json', 'replicas']);
    expect(modes.map((m) => m.mode)).toEqual(['RW', 'RW', 'RW']);
    const table = await shorthorn(['snapshot', ...ctl(), 'ls']);
    expect(table.stdout).toMatch(/before-upgrade\s+user/);
  });
});

describe('trim that frees snapshot space (--unmap-mark-snap-chain-removed)', () => {
  let vol: TestVolume;
  beforeAll(async () => {
    vol = await startVolume({ size: 16 * MiB, replicas: 2, engineArgs: ['--unmap-mark-snap-chain-removed'] });
  });
  afterAll(async () => {
    await vol?.destroy();
  });

  it('marks the snapshot under the head removed and punches it too', async () => {
    await writePattern(vol.uri, 0x66, 0, MiB, 8);
    const ctl = ['snapshot', '--engine', `127.0.0.1:${vol.enginePort}`, '-o', 'json'];
    await shorthornJson([...ctl, 'create', 'old']);
    const snapBytes = () => vol.replicas.map((r) => statSync(join(r.dir, 'volume-snap-old.img')).blocks * 512);
    expect(snapBytes().every((b) => b >= 8 * MiB)).toBe(true);
    const r = await python(
      `import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.trim(8 << 20, 0)
h.flush()
h.shutdown()`,
      [vol.uri],
    );
    expect(r.code, r.stderr).toBe(0);
    expect(snapBytes().every((b) => b < MiB)).toBe(true);
    const snaps = await shorthornJson<{ name: string; removed: boolean }[]>([...ctl, 'ls']);
    expect(snaps.find((s) => s.name === 'old')?.removed).toBe(true);
  });
});
