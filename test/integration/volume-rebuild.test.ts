// Rebuild while the volume serves, with real processes: a new replica rebuilt under a fio write load
// then left alone to serve (fio verifies every block), a returning replica that only fetches what
// changed, a replica killed during its own rebuild, and salvage after everything crashed.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readVolumeMeta } from '../../dataplane/replica/store/volume-meta.js';
import { type ReplicaProcess, startReplica, startVolume, type TestVolume } from '../helpers/cluster.js';
import { engineClient, shorthorn, shorthornJson, unary } from '../helpers/engine-api.js';
import { requireTool, startTool } from '../helpers/tools.js';
import {
  engineReplicas,
  FIO,
  fio,
  fioProblems,
  MiB,
  PYTHON,
  python,
  sleep,
  volumeLogs,
  volumeSha256,
  waitFor,
} from '../helpers/volume-tools.js';

type Progress = {
  state: string;
  mode: string;
  bytesDone: number;
  bytesTotal: number;
  bytesTransferred: number;
  error: string;
};

/** fio arguments of a write pass with verify headers, replayable by a --verify_only pass with the same seed. */
function fioWriteArgs(uri: string, extra: string[] = []): string[] {
  return [
    '--ioengine=nbd',
    `--uri=${uri}`,
    '--name=rebuild',
    '--rw=randwrite',
    '--bs=4k',
    '--size=48M',
    '--iodepth=8',
    '--verify=crc32c',
    '--randseed=4242',
    ...extra,
  ];
}

async function fill(uri: string, seed: number, bytes: number) {
  const r = await python(
    `import nbd, sys, random
h = nbd.NBD()
h.connect_uri(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
size = int(sys.argv[3])
for off in range(0, size, 1 << 20):
    h.pwrite(rng.randbytes(1 << 20), off)
h.flush()
h.shutdown()`,
    [uri, String(seed), String(bytes)],
    120_000,
  );
  expect(r.code, r.stderr).toBe(0);
}

describe('rebuild while online', () => {
  const volumes: TestVolume[] = [];
  const extras: ReplicaProcess[] = [];

  beforeAll(() => {
    for (const t of [FIO, PYTHON]) requireTool(t);
  });
  afterEach(async () => {
    await Promise.all(extras.splice(0).map((r) => r.proc.stop(5000).catch(() => r.proc.kill9())));
    await Promise.all(volumes.splice(0).map((v) => v.destroy()));
  });
  afterAll(async () => {
    await Promise.all(volumes.map((v) => v.destroy()));
  });

  async function volume(replicas: number, size = 64 * MiB) {
    const v = await startVolume({ size, replicas });
    volumes.push(v);
    return v;
  }
  const ctl = (v: TestVolume) => ['engine-ctl', '--engine', `127.0.0.1:${v.enginePort}`, '-o', 'json'];

  it('rebuilds a new replica under a fio write load; with the originals SIGKILLed it alone serves every block fio wrote', async () => {
    const v = await volume(2);
    await fill(v.uri, 1, 64 * MiB);
    // Paced so that it is still writing while the replica is added and rebuilt.
    const load = startTool(FIO, [
      '--output-format=json',
      '--verify_state_save=0',
      ...fioWriteArgs(v.uri, ['--do_verify=0', '--rate_iops=1000']),
    ]);
    await sleep(1500);
    const fresh = await startReplica(join(v.root, 'new'), 64 * MiB);
    extras.push(fresh);
    const done = await shorthornJson<Progress>([...ctl(v), 'add', fresh.address, '--wait']);
    expect(done, volumeLogs(v)).toMatchObject({ state: 'complete', mode: 'RW' });
    expect(load.child.exitCode, 'fio finished before the rebuild did').toBe(null);
    expect(await load.exited, load.output().stderr).toBe(0);
    // RW before its copy is synced; on disk it says Rebuilding until the copy is, then no more.
    console.error('META-AT-RW', JSON.stringify(readVolumeMeta(join(v.root, 'new'))));
    const onDisk = await waitFor(async () => readVolumeMeta(join(v.root, 'new'))?.rebuilding === false, 15_000);
    expect(onDisk, `volume.meta still says Rebuilding: ${JSON.stringify(readVolumeMeta(join(v.root, 'new')))}`).toBe(
      true,
    );

    // System snapshots of the rebuild are purged on their own: marked removed, and folded away unless the
    // head sits right on one (then it is pruned and stays, removed, as in Longhorn).
    let snaps: unknown[] = [];
    const purged = await waitFor(async () => {
      const list = await shorthornJson<{ userCreated: boolean; name: string; removed: boolean }[]>([
        'snapshot',
        '--engine',
        `127.0.0.1:${v.enginePort}`,
        '-o',
        'json',
        'ls',
      ]);
      snaps = list;
      return list.every((s) => s.userCreated || s.name === 'volume-head' || s.removed);
    }, 15_000);
    expect(purged, `the rebuild left a system snapshot behind: ${JSON.stringify(snaps)}`).toBe(true);

    for (const r of v.replicas) r.proc.kill9();
    const verify = await fio(fioWriteArgs(v.uri, ['--verify_only', '--verify_fatal=1']), 120_000);
    expect(verify.code, `${verify.stderr}\n${volumeLogs(v)}`).toBe(0);
    expect(verify.jobs[0]?.read.io_bytes).toBeGreaterThan(0);
    expect(verify.jobs[0]?.error).toBe(0);
    const modes = Object.fromEntries((await engineReplicas(v)).map((r) => [r.address, r.mode]));
    expect(modes[fresh.address]).toBe('RW');
    expect(v.replicas.map((r) => modes[r.address])).toEqual(['ERR', 'ERR']);
  });

  it('a replica coming back after 5% of the volume changed fetches only what differs (< 15% of a full copy)', async () => {
    const v = await volume(3);
    await fill(v.uri, 2, 64 * MiB);
    const away = v.replicas[2]!;
    await shorthornJson([...ctl(v), 'rm', away.address]);
    // 5% of the 4 KiB blocks, scattered.
    const changed = await python(
      `import nbd, sys, random
h = nbd.NBD()
h.connect_uri(sys.argv[1])
rng = random.Random(7)
blocks = rng.sample(range(16384), 819)
for b in blocks:
    h.pwrite(rng.randbytes(4096), b * 4096)
h.flush()
h.shutdown()`,
      [v.uri],
    );
    expect(changed.code, changed.stderr).toBe(0);
    const expected = await volumeSha256(v.uri);

    const done = await shorthornJson<Progress>([...ctl(v), 'add', away.address, '--wait']);
    expect(done, volumeLogs(v)).toMatchObject({ state: 'complete', mode: 'RW' });
    expect(done.bytesTotal).toBeGreaterThanOrEqual(64 * MiB);
    expect(done.bytesTransferred).toBeGreaterThan(0);
    expect(done.bytesTransferred / done.bytesTotal).toBeLessThan(0.15);

    // The returning replica now holds the volume alone.
    v.replicas[0]!.proc.kill9();
    v.replicas[1]!.proc.kill9();
    expect(await volumeSha256(v.uri)).toBe(expected);
  });

  it('a replica killed during its own rebuild is ERR and the volume stays healthy on the others', async () => {
    const v = await volume(2, 256 * MiB);
    await fill(v.uri, 3, 256 * MiB);
    const expected = await volumeSha256(v.uri);
    const doomed = await startReplica(join(v.root, 'doomed'), 256 * MiB);
    extras.push(doomed);
    const added = await shorthornJson<{ mode: string }>([...ctl(v), 'add', doomed.address]);
    expect(added.mode).toBe('WO');
    // Polled over gRPC from here (not by spawning the CLI, ~0.5 s a call on a busy machine): the copy of
    // 256 MiB can finish in well under a second.
    const client = engineClient(v);
    let progress: { state: string; bytesDone: number } | undefined;
    const started = await waitFor(
      async () => {
        progress = await unary(client.replicaRebuildStatus, client, { address: doomed.address });
        return progress.state !== 'in_progress' || progress.bytesDone > 0;
      },
      30_000,
      5,
    );
    client.close();
    expect(started && progress?.state, JSON.stringify(progress)).toBe('in_progress');
    doomed.proc.kill9();
    expect(
      await waitFor(
        async () => (await shorthornJson<Progress>([...ctl(v), 'rebuild-status', doomed.address])).state === 'error',
        30_000,
      ),
    ).toBe(true);
    const modes = Object.fromEntries((await engineReplicas(v)).map((r) => [r.address, r.mode]));
    expect(modes).toEqual({ [v.replicas[0]!.address]: 'RW', [v.replicas[1]!.address]: 'RW', [doomed.address]: 'ERR' });
    expect(await volumeSha256(v.uri)).toBe(expected);
    const w = await fio([
      '--ioengine=nbd',
      `--uri=${v.uri}`,
      '--name=after',
      '--rw=randwrite',
      '--bs=4k',
      '--size=8M',
      '--verify=crc32c',
    ]);
    expect(fioProblems(w, { expectJobs: 1 })).toEqual([]);
  });

  it('salvage: after the engine and every replica crashed dirty, the best replica serves and the rest are marked for rebuild', async () => {
    const v = await volume(3, 32 * MiB);
    await fill(v.uri, 4, 32 * MiB);
    const expected = await volumeSha256(v.uri);
    v.engine.kill9();
    for (const r of v.replicas) r.proc.kill9();
    await Promise.all([v.engine.exited, ...v.replicas.map((r) => r.proc.exited)]);
    for (let i = 0; i < 3; i++) await v.startReplica(i);
    await v.startEngine();
    const list = await engineReplicas(v);
    expect(list.filter((r) => r.mode === 'RW')).toHaveLength(1);
    const rest = list.filter((r) => r.mode === 'ERR');
    expect(rest).toHaveLength(2);
    for (const r of rest) expect(r.error).toMatch(/salvage/);
    expect(await volumeSha256(v.uri)).toBe(expected);
    // The others come back by rebuild (remove, add again).
    for (const r of rest) {
      await shorthornJson([...ctl(v), 'rm', r.address]);
      const done = await shorthornJson<Progress>([...ctl(v), 'add', r.address, '--wait']);
      expect(done.state).toBe('complete');
    }
    expect((await engineReplicas(v)).map((r) => r.mode)).toEqual(['RW', 'RW', 'RW']);
    const stray = await shorthorn([...ctl(v), 'add', 'tcp://127.0.0.1:1']);
    expect(stray.code).not.toBe(0);
  });

  it('salvages in place: every replica crashed and came back while the engine stayed up', async () => {
    const v = await volume(2, 32 * MiB);
    await fill(v.uri, 5, 32 * MiB);
    const expected = await volumeSha256(v.uri);
    for (const r of v.replicas) r.proc.kill9();
    await Promise.all(v.replicas.map((r) => r.proc.exited));
    // Pings find both dead within a few seconds.
    expect(await waitFor(async () => (await engineReplicas(v)).every((r) => r.mode === 'ERR'), 20_000)).toBe(true);
    for (let i = 0; i < 2; i++) await v.startReplica(i);
    const list = await shorthornJson<{ address: string; mode: string; error: string }[]>([...ctl(v), 'salvage']);
    expect(list.filter((r) => r.mode === 'RW')).toHaveLength(1);
    const rest = list.filter((r) => r.mode === 'ERR');
    expect(rest).toHaveLength(1);
    expect(rest[0]!.error).toMatch(/salvage/);
    expect(await volumeSha256(v.uri)).toBe(expected);
    const again = await shorthorn([...ctl(v), 'salvage']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/still has an RW replica/);
    await shorthornJson([...ctl(v), 'rm', rest[0]!.address]);
    const done = await shorthornJson<Progress>([...ctl(v), 'add', rest[0]!.address, '--wait']);
    expect(done.state).toBe('complete');
  });
});
