// Backups and restores on real processes: a 3-replica volume written by fio over NBD, a snapshot backed
// up to a file:// target through the engine's gRPC API (and the CLI), restored into a second volume
// whose content is then read back with nbdcopy and compared; an incremental backup uploads only the
// changed blocks and an incremental restore brings the second volume to the new snapshot. Refusals:
// purge while a backup reads, a missing snapshot, a target that cannot be written, restore under a live
// frontend.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { volumeNameInterceptor } from '../../dataplane/grpc/volume-identity.js';
import type { ControllerServiceClient, EngineBackupJob, RestoreStatus } from '../../dataplane/proto/gen/engine.js';
import { ReplicaServiceClient } from '../../dataplane/proto/gen/replica.js';
import { readLonghornReplicaDir } from '../fixtures/longhorn-replica-dir.js';
import { startVolume, type TestVolume } from '../helpers/cluster.js';
import { engineClient, shorthorn, shorthornJson, unary } from '../helpers/engine-api.js';
import { MOTO_ANY_CREDENTIAL, startMoto } from '../helpers/moto.js';
import { requireTool, runOk } from '../helpers/tools.js';
import { FIO, fio, fioProblems, MiB, PYTHON, python, volumeLogs } from '../helpers/volume-tools.js';

const NBDCOPY = '/usr/bin/nbdcopy';
const SIZE = 64 * MiB;
const BLOCK = 2 * MiB;

/** Counts the .blk objects under the target. */
function blockFiles(dir: string): number {
  let n = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.blk')) n++;
    }
  };
  walk(dir);
  return n;
}

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

async function poll<T extends { state: string }>(get: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await get();
    if (s.state !== 'in_progress') return s;
    if (Date.now() > deadline) throw new Error(`still in progress after ${timeoutMs} ms: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function grpcCode(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

describe('backup and restore through the engine', () => {
  let a: TestVolume;
  let b: TestVolume;
  let ca: ControllerServiceClient;
  let cb: ControllerServiceClient;
  let targetDir: string;
  let scratch: string;
  let target: string;
  let sumSnap1 = '';
  let sumSnap2 = '';
  let firstUrl = '';
  let firstBlocks = 0;

  /** sha256 of the whole export, copied out by nbdcopy (a real NBD client in its own process). */
  async function exportSha256(uri: string): Promise<string> {
    const out = join(scratch, `export-${Date.now()}.img`);
    await runOk(NBDCOPY, [uri, out], { timeoutMs: 60_000 });
    const sum = sha256(readFileSync(out));
    rmSync(out, { force: true });
    return sum;
  }

  const createBackup = (snapshot: string, backupName: string, extra: Partial<Record<string, unknown>> = {}) =>
    unary(ca.backupCreate, ca, {
      backupName,
      snapshotName: snapshot,
      volumeName: '',
      volumeSize: 0,
      targetUrl: target,
      credential: {},
      labels: { purpose: 'test' },
      mode: '',
      compression: '',
      concurrency: 0,
      blockSize: 0,
      volumeLabels: {},
      ...extra,
    });
  const backupDone = (job: EngineBackupJob) =>
    poll(() => unary(ca.backupStatus, ca, { backupName: job.backupName, replicaAddress: job.replicaAddress }));
  const restoreDone = (c: ControllerServiceClient) => poll<RestoreStatus>(() => unary(c.backupRestoreStatus, c, {}));

  beforeAll(async () => {
    for (const t of [FIO, NBDCOPY, PYTHON]) requireTool(t);
    targetDir = mkdtempSync(join(tmpdir(), 'shorthorn-backup-target-'));
    scratch = mkdtempSync(join(tmpdir(), 'shorthorn-backup-scratch-'));
    target = `file://${targetDir}`;
    a = await startVolume({ name: 'vol', size: SIZE, replicas: 3 });
    b = await startVolume({ name: 'restored', size: SIZE, replicas: 3 });
    ca = engineClient(a);
    cb = engineClient(b);
  });
  afterAll(async () => {
    ca?.close();
    cb?.close();
    await Promise.allSettled([a?.destroy(), b?.destroy()]);
    for (const d of [targetDir, scratch]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('backs up a snapshot of data fio wrote, and restores it byte for byte into a new volume', async () => {
    // Random data over about half the volume, in 128 KiB pieces: the rest stays holes.
    const r = await fio([
      '--ioengine=nbd',
      `--uri=${a.uri}`,
      '--name=fill',
      '--rw=randwrite',
      '--bs=128k',
      `--size=${SIZE}`,
      `--io_size=${SIZE / 2}`,
      '--iodepth=8',
      '--refill_buffers',
      '--randrepeat=0',
      '--verify=crc32c',
      '--verify_fatal=1',
    ]);
    expect(fioProblems(r, { expectJobs: 1 }), volumeLogs(a)).toEqual([]);
    await unary(ca.snapshotCreate, ca, { name: 'snap1', labels: {} });
    sumSnap1 = await exportSha256(a.uri);

    const started = await createBackup('snap1', 'backup-one');
    expect(started.state).toBe('in_progress');
    expect(a.replicas.map((x) => x.address)).toContain(started.replicaAddress);
    const job = await backupDone(started);
    expect(job, volumeLogs(a)).toMatchObject({ state: 'complete', error: '', progress: 100, isIncremental: false });
    expect(job.url).toBe(`${target}?backup=backup-one&volume=vol`);
    expect(job.blocksUploaded).toBeGreaterThan(0);
    expect(blockFiles(targetDir)).toBe(job.blocksUploaded);
    firstUrl = job.url;
    firstBlocks = job.blocksUploaded;
    // Progress went to the replica's log as well.
    const runner = a.replicas.find((x) => x.address === started.replicaAddress)!;
    expect(runner.proc.logs()).toMatch(/backup complete/);

    // The new volume restores with its frontend down; then serves the snapshot's bytes.
    await unary(cb.volumeFrontendShutdown, cb, {});
    const restoring = await unary(cb.backupRestore, cb, {
      backupUrl: firstUrl,
      credential: {},
      lastRestoredBackupName: '',
      concurrency: 0,
    });
    expect(restoring.state).toBe('in_progress');
    // One restore at a time, and the frontend stays down until it ends.
    const second = await unary(cb.backupRestore, cb, {
      backupUrl: firstUrl,
      credential: {},
      lastRestoredBackupName: '',
      concurrency: 0,
    }).catch((err: unknown) => err);
    expect(grpcCode(second)).toBe(status.FAILED_PRECONDITION);
    expect(String((second as Error).message)).toMatch(/already restoring backup backup-one/);
    const early = await unary(cb.volumeFrontendStart, cb, {}).catch((err: unknown) => err);
    expect(grpcCode(early)).toBe(status.FAILED_PRECONDITION);

    const restored = await restoreDone(cb);
    expect(restored, volumeLogs(b)).toMatchObject({
      state: 'complete',
      progress: 100,
      backupName: 'backup-one',
      lastRestoredBackupName: 'backup-one',
      snapshotName: 'restore-backup-one',
    });
    expect(restored.blocksWritten).toBe(job.blockCount);
    const snaps = await unary(cb.snapshotList, cb, {});
    expect(snaps.snapshots.find((s) => s.name === 'restore-backup-one')?.labels).toEqual({
      'shorthorn.io/restored-from': 'backup-one',
    });
    await unary(cb.volumeFrontendStart, cb, {});
    expect(await exportSha256(b.uri)).toBe(sumSnap1);
    // Every replica got the same writes: each directory alone reads as the snapshot.
    for (const r of b.replicas) expect(sha256(readLonghornReplicaDir(r.dir))).toBe(sumSnap1);
  });

  it('refuses a restore while the frontend serves', async () => {
    const err = await unary(cb.backupRestore, cb, {
      backupUrl: firstUrl,
      credential: {},
      lastRestoredBackupName: '',
      concurrency: 0,
    }).catch((e: unknown) => e);
    expect(grpcCode(err)).toBe(status.FAILED_PRECONDITION);
    expect(String((err as Error).message)).toMatch(/serving its frontend.*frontend stop/);
  });

  it('an incremental backup (CLI, --wait) uploads only the changed blocks; an incremental restore catches up', async () => {
    // About 5%: three 1 MiB writes in three 2 MiB blocks and 2 MiB of write-zeroes over old data.
    const w = await python(
      `import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
for off in (5 << 20, 30 << 20, 60 << 20):
    h.pwrite(os.urandom(1 << 20), off)
h.zero(2 << 20, 40 << 20)
h.flush()
h.shutdown()`,
      [a.uri],
    );
    expect(w.code, w.stderr).toBe(0);
    await unary(ca.snapshotCreate, ca, { name: 'snap2', labels: {} });
    sumSnap2 = await exportSha256(a.uri);
    expect(sumSnap2).not.toBe(sumSnap1);

    const before = blockFiles(targetDir);
    const job = await shorthornJson<EngineBackupJob>([
      'engine-ctl',
      '--engine',
      `127.0.0.1:${a.enginePort}`,
      '-o',
      'json',
      'backup',
      'create',
      'snap2',
      '--target',
      target,
      '--backup-name',
      'backup-two',
      '--wait',
    ]);
    expect(job).toMatchObject({ state: 'complete', isIncremental: true, backupName: 'backup-two' });
    // Exactly the four 2 MiB blocks that changed were processed; only new content was stored.
    expect(job.blocksUploaded + job.blocksReused).toBe(4);
    expect(blockFiles(targetDir) - before).toBe(job.blocksUploaded);
    expect(job.blocksUploaded).toBeGreaterThanOrEqual(3);
    expect(job.bytesUploaded).toBeLessThanOrEqual(4 * BLOCK + 4096);
    expect(job.blocksUploaded).toBeLessThan(firstBlocks);

    const status2 = await shorthorn([
      'engine-ctl',
      '--engine',
      `127.0.0.1:${a.enginePort}`,
      'backup',
      'status',
      'backup-two',
      '--replica',
      job.replicaAddress,
    ]);
    expect(status2.code, status2.stderr).toBe(0);
    expect(status2.stdout).toMatch(/backup-two\s+snap2\s+complete\s+100%\s+yes/);

    const ctlB = ['engine-ctl', '--engine', `127.0.0.1:${b.enginePort}`];
    await shorthornJson([...ctlB, '-o', 'json', 'frontend', 'stop']);
    const restored = await shorthornJson<RestoreStatus>([
      ...ctlB,
      '-o',
      'json',
      'restore',
      job.url,
      '--last-restored',
      'backup-one',
      '--wait',
    ]);
    expect(restored).toMatchObject({
      state: 'complete',
      isIncremental: true,
      lastRestoredBackupName: 'backup-two',
      snapshotName: 'restore-backup-two',
    });
    expect(restored.blocksWritten).toBe(4);
    await shorthornJson([...ctlB, '-o', 'json', 'frontend', 'start']);
    expect(await exportSha256(b.uri)).toBe(sumSnap2);
  });

  it('purge is refused while a backup reads a snapshot, and works once it is done', async () => {
    await unary(ca.snapshotRemove, ca, { name: 'snap1' });
    // The backup goes to a real S3 server that is paused (SIGSTOP): its first request hangs, so the
    // backup is surely running while the purges below are tried; SIGCONT lets it finish.
    const moto = await startMoto({ bucket: 'held' });
    let paused = false;
    try {
      process.kill(moto.pid!, 'SIGSTOP');
      paused = true;
      const started = await createBackup('snap2', 'backup-three', {
        mode: 'full',
        targetUrl: 's3://held@us-east-1/',
        credential: { ...MOTO_ANY_CREDENTIAL, AWS_ENDPOINTS: moto.endpoint },
      });
      const refused = await unary(ca.snapshotPurge, ca, {}).catch((e: unknown) => e);
      expect(grpcCode(refused)).toBe(status.FAILED_PRECONDITION);
      expect(String((refused as Error).message)).toMatch(/purge refused: backup backup-three in progress/);
      const cli = await shorthorn(['snapshot', '--engine', `127.0.0.1:${a.enginePort}`, 'purge']);
      expect(cli.code).not.toBe(0);
      expect(cli.stderr).toMatch(/backup backup-three in progress/);
      // The replica running it refuses on its own too (a purge sent straight to it, or racing the backup).
      const runner = a.replicas.find((x) => x.address === started.replicaAddress)!;
      const rc = new ReplicaServiceClient(`127.0.0.1:${runner.port}`, credentials.createInsecure(), {
        interceptors: [volumeNameInterceptor('vol')],
      });
      try {
        const info = await unary(rc.replicaGet, rc, {});
        expect(info.backupsInProgress).toEqual(['backup-three']);
        const direct = await unary(rc.snapshotPurge, rc, {}).catch((e: unknown) => e);
        expect(grpcCode(direct)).toBe(status.FAILED_PRECONDITION);
        expect(String((direct as Error).message)).toMatch(/purge refused: backup backup-three in progress/);
      } finally {
        rc.close();
      }

      process.kill(moto.pid!, 'SIGCONT');
      paused = false;
      const job = await backupDone(started);
      expect(job).toMatchObject({ state: 'complete', isIncremental: false });
      expect(job.blocksReused + job.blocksUploaded).toBe(job.blockCount);
    } finally {
      if (paused) process.kill(moto.pid!, 'SIGCONT');
      await moto.stop();
    }
    const replicas = await unary(ca.replicaList, ca, {});
    expect(replicas.replicas.map((r) => r.error)).toEqual(['', '', '']);

    const purged = await unary(ca.snapshotPurge, ca, {});
    expect(purged.replicas.map((r) => r.error)).toEqual(['', '', '']);
    expect(await exportSha256(a.uri)).toBe(sumSnap2);
  });

  it('a missing snapshot is refused up front; a target that cannot be written fails the job with its reason', async () => {
    const missing = await createBackup('no-such-snapshot', 'backup-x').catch((e: unknown) => e);
    expect(grpcCode(missing)).toBe(status.NOT_FOUND);
    expect(String((missing as Error).message)).toMatch(/snapshot no-such-snapshot does not exist/);

    const blocker = join(scratch, 'a-file');
    writeFileSync(blocker, 'not a directory');
    const started = await createBackup('snap2', 'backup-down', { targetUrl: `file://${blocker}/target` });
    const job = await backupDone(started);
    expect(job.state).toBe('error');
    expect(job.error).toMatch(/ENOTDIR|not a directory/i);
    expect(statSync(blocker).isFile()).toBe(true);

    const cli = await shorthorn([
      'engine-ctl',
      '--engine',
      `127.0.0.1:${a.enginePort}`,
      'backup',
      'create',
      'snap2',
      '--target',
      `file://${blocker}/target`,
      '--wait',
    ]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/failed: .*(ENOTDIR|not a directory)/i);
  });
});
