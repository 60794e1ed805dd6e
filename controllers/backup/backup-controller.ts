// Backup controller: runs a Backup resource that names a snapshot through the volume's engine (which
// hands it to a replica holding the snapshot), mirrors the job's progress into status, and on
// deletion removes the backup from the target (its blocks no other backup uses go with it).
// A backup that fails is Error with the reason and never Completed; its half-written files in the
// target are collected when it is deleted (by a person or failed-backup-ttl).
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { deleteBackup } from '../../dataplane/backupstore/delete.js';
import { readBackupConfig, readVolumeConfig } from '../../dataplane/backupstore/inspect.js';
import { unary } from '../../dataplane/grpc/unary.js';
import type { EngineBackupJob } from '../../dataplane/proto/gen/engine.js';
import { BACKUP_VOLUME_LABEL, type Backup } from '../../model/backup.js';
import { nowIso } from '../../model/meta.js';
import type { ControllerContext } from '../context.js';
import { engineNameOf, FINALIZER } from '../labels.js';
import { Controller, type ReconcileResult } from '../runtime/controller.js';
import { addFinalizer, patchStatus, removeFinalizer } from '../write.js';
import { statusFromConfig } from './backup-target-controller.js';
import { driverFor, targetAccess } from './target-access.js';

const CALL_MS = 15_000;
const POLL_MS = 1000;
/** A snapshot asked for together with its backup has this long to appear in the engine's chain. */
const SNAPSHOT_WAIT_MS = 60_000;

export function backupController(ctx: ControllerContext): Controller {
  const log = ctx.log.child({ controller: 'backup' });
  return new Controller({
    name: 'backup',
    logger: log,
    reconcile: (name) => reconcileBackup(ctx, name),
  });
}

export async function reconcileBackup(ctx: ControllerContext, name: string): Promise<ReconcileResult | undefined> {
  let b = ctx.informers.Backup.get(name);
  if (!b) return;
  if (b.metadata.deletionTimestamp) return removeFromTarget(ctx, b);
  b = await addFinalizer(ctx.store, 'Backup', b, FINALIZER);
  if (!b.spec.snapshotName) return; // found in the target by a sync: nothing to run
  switch (b.status.state) {
    case '':
    case 'Pending':
      return start(ctx, b);
    case 'InProgress':
      return poll(ctx, b);
    case 'Error':
      return expireFailed(ctx, b);
    default:
      return;
  }
}

function volumeOf(b: Backup): string {
  return b.metadata.labels[BACKUP_VOLUME_LABEL] ?? b.status.volumeName;
}

function engineClientOf(ctx: ControllerContext, volume: string) {
  const e = ctx.informers.Engine.get(engineNameOf(volume));
  if (e?.status.currentState !== 'running' || !e.status.port) return undefined;
  return { engine: e, client: ctx.clients.engine(`${e.status.ip}:${e.status.port}`) };
}

async function fail(ctx: ControllerContext, b: Backup, message: string): Promise<undefined> {
  ctx.events.warning(b, 'BackupFailed', `backup ${b.metadata.name} of ${volumeOf(b)}: ${message}`);
  await patchStatus(ctx.store, 'Backup', b, (s) => {
    s.state = 'Error';
    s.error = message;
    s.ownerID = ctx.managerID;
  });
  return undefined;
}

async function start(ctx: ControllerContext, b: Backup): Promise<ReconcileResult | undefined> {
  const volume = volumeOf(b);
  const vol = ctx.informers.Volume.get(volume);
  if (!vol) return fail(ctx, b, `volume ${volume} does not exist`);
  const access = targetAccess(ctx);
  if ('error' in access) return fail(ctx, b, access.error);
  const running = engineClientOf(ctx, volume);
  if (!running) return fail(ctx, b, `volume ${volume} is not attached: a backup reads from its running replicas`);
  const snap = running.engine.status.snapshots[b.spec.snapshotName];
  if (!snap) {
    // The API may have asked for the snapshot a moment ago: wait for the engine to report it.
    const age = Date.now() - Date.parse(b.metadata.creationTimestamp || nowIso());
    const requested = ctx.informers.Snapshot.get(b.spec.snapshotName);
    if (requested && !requested.status.error && age < SNAPSHOT_WAIT_MS) {
      await patchStatus(ctx.store, 'Backup', b, (s) => {
        s.state = 'Pending';
        s.volumeName = volume;
        s.snapshotName = b.spec.snapshotName;
      });
      return { requeueAfterMs: POLL_MS };
    }
    return fail(ctx, b, `snapshot ${b.spec.snapshotName} of volume ${volume} does not exist`);
  }
  if (snap.removed) return fail(ctx, b, `snapshot ${b.spec.snapshotName} is marked removed`);
  try {
    const job = await unary(
      running.client.backupCreate,
      running.client,
      {
        backupName: b.metadata.name,
        snapshotName: b.spec.snapshotName,
        volumeName: volume,
        volumeSize: running.engine.status.currentSize || vol.spec.size,
        targetUrl: access.url,
        credential: access.credential,
        labels: b.spec.labels,
        mode: b.spec.backupMode,
        compression: ctx.settings.raw('backup-compression-method'),
        concurrency: ctx.settings.int('backup-concurrent-limit'),
        blockSize: 0,
        volumeLabels: vol.metadata.labels,
      },
      CALL_MS,
    );
    await patchStatus(ctx.store, 'Backup', b, (s) => {
      s.ownerID = ctx.managerID;
      s.state = 'InProgress';
      s.error = '';
      s.replicaAddress = job.replicaAddress;
      s.progress = job.progress;
      s.volumeName = volume;
      s.volumeSize = vol.spec.size;
      s.snapshotName = b.spec.snapshotName;
      s.snapshotCreatedAt = snap.created;
      s.labels = b.spec.labels;
      s.backupTargetName = access.name;
    });
    ctx.events.normal(b, 'Started', `backup ${b.metadata.name} of ${volume} snapshot ${b.spec.snapshotName} started`);
    return { requeueAfterMs: POLL_MS };
  } catch (err) {
    return fail(ctx, b, (err as Error).message);
  }
}

async function poll(ctx: ControllerContext, b: Backup): Promise<ReconcileResult | undefined> {
  const volume = volumeOf(b);
  const running = engineClientOf(ctx, volume);
  if (!running) return fail(ctx, b, `volume ${volume} was detached while the backup ran`);
  let job: EngineBackupJob;
  try {
    job = await unary(
      running.client.backupStatus,
      running.client,
      { backupName: b.metadata.name, replicaAddress: b.status.replicaAddress },
      CALL_MS,
    );
  } catch (err) {
    const code = (err as ServiceError).code;
    if (code === grpcStatus.NOT_FOUND)
      return fail(ctx, b, `the backup job is gone from replica ${b.status.replicaAddress} (it restarted)`);
    return { requeueAfterMs: POLL_MS * 2 };
  }
  if (job.state === 'error') return fail(ctx, b, job.error || 'the backup job failed');
  if (job.state !== 'complete') {
    await patchStatus(ctx.store, 'Backup', b, (s) => {
      s.progress = Math.min(99, job.progress);
    });
    return { requeueAfterMs: POLL_MS };
  }
  // Complete: what the target now holds is the truth (size, times, incremental or not).
  const access = targetAccess(ctx);
  let fromTarget: Partial<Backup['status']> = { state: 'Completed', progress: 100, url: job.url };
  if (!('error' in access)) {
    try {
      const driver = driverFor(access);
      const cfg = await readBackupConfig(driver, volume, b.metadata.name);
      fromTarget = statusFromConfig(access.name, access.url, cfg, (await readVolumeConfig(driver, volume)).size);
    } catch (err) {
      ctx.log.warn({ err, backup: b.metadata.name }, 'backup complete but its config could not be read back');
    }
  }
  const done = await patchStatus(ctx.store, 'Backup', b, (s) => {
    Object.assign(s, fromTarget);
    s.state = 'Completed';
    s.progress = 100;
    s.error = '';
  });
  ctx.events.normal(done, 'Completed', `backup ${b.metadata.name} of ${volume} completed: ${done.status.url}`);
  const vol = ctx.informers.Volume.get(volume);
  if (vol && (!vol.status.lastBackupAt || vol.status.lastBackupAt <= done.status.snapshotCreatedAt)) {
    await patchStatus(ctx.store, 'Volume', vol, (s) => {
      s.lastBackup = b.metadata.name;
      s.lastBackupAt = done.status.snapshotCreatedAt;
    });
  }
  // Let the backup volume show the new backup now rather than at the next poll.
  const t = ctx.informers.BackupTarget.get(done.status.backupTargetName || 'default');
  if (t)
    await ctx.store.update('BackupTarget', { ...t, spec: { ...t.spec, syncRequestedAt: nowIso() } }).catch(() => {});
  return;
}

/** failed-backup-ttl: a failed backup is deleted (and its leftovers collected) after that many minutes. */
async function expireFailed(ctx: ControllerContext, b: Backup): Promise<ReconcileResult | undefined> {
  const ttlMin = ctx.settings.int('failed-backup-ttl');
  if (ttlMin <= 0) return;
  const since = Date.parse(b.metadata.creationTimestamp || nowIso());
  const left = since + ttlMin * 60_000 - Date.now();
  if (left > 0) return { requeueAfterMs: Math.min(left, 3_600_000) };
  await ctx.store.delete('Backup', b.metadata.name).catch(() => {});
  return;
}

async function removeFromTarget(ctx: ControllerContext, b: Backup): Promise<ReconcileResult | undefined> {
  if (!b.metadata.finalizers.includes(FINALIZER)) return;
  if (b.status.state === 'InProgress' && engineClientOf(ctx, volumeOf(b))) return { requeueAfterMs: POLL_MS * 2 }; // never delete under a running backup: let it end first
  const access = targetAccess(ctx, b.status.backupTargetName || undefined);
  if (!('error' in access)) {
    try {
      await deleteBackup(driverFor(access), volumeOf(b), b.metadata.name);
    } catch (err) {
      const message = (err as Error).message;
      await patchStatus(ctx.store, 'Backup', b, (s) => {
        s.state = 'Deleting';
        s.error = `deleting from the target: ${message}`;
      });
      return { requeueAfterMs: 10_000 };
    }
  }
  await removeFinalizer(ctx.store, 'Backup', b, FINALIZER);
  ctx.events.normal(b, 'Deleted', `backup ${b.metadata.name} of ${volumeOf(b)} deleted`);
  return;
}
