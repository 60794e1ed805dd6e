// Backup-target controller: lists the target every pollInterval (or when a sync is asked) and mirrors
// what it holds into BackupVolume and Backup resources, so the API can show and restore backups made
// by another cluster. A target that cannot be listed gets Available=False with the reason and is
// retried with backoff; nothing is deleted on the strength of a failed listing.
import type { BackupConfig, VolumeConfig } from '../../dataplane/backupstore/config.js';
import { listBackups, listBackupVolumes, readVolumeConfig } from '../../dataplane/backupstore/inspect.js';
import { encodeBackupUrl } from '../../dataplane/backupstore/target-url.js';
import { BACKUP_BLOCK_SIZE } from '../../dataplane/backupstore/types.js';
import { BACKUP_VOLUME_LABEL, type Backup } from '../../model/backup.js';
import { BackupTargetConditionType } from '../../model/backup-target.js';
import { setCondition } from '../../model/conditions.js';
import { nowIso, resourceName } from '../../model/meta.js';
import type { ControllerContext } from '../context.js';
import { Controller, type ReconcileResult } from '../runtime/controller.js';
import { patchSpec, patchStatus } from '../write.js';
import { driverFor, targetAccess } from './target-access.js';

const MIN_RETRY_MS = 2000;
const MAX_RETRY_MS = 60_000;

export function backupTargetController(ctx: ControllerContext): Controller {
  const log = ctx.log.child({ controller: 'backup-target' });
  const failures = new Map<string, number>();
  return new Controller({
    name: 'backup-target',
    logger: log,
    reconcile: async (name): Promise<ReconcileResult | undefined> => {
      const t = ctx.informers.BackupTarget.get(name);
      if (!t || t.metadata.deletionTimestamp) return;
      const pollMs = t.spec.pollInterval > 0 ? t.spec.pollInterval * 1000 : undefined;
      const access = targetAccess(ctx, name);
      if ('error' in access) {
        await markAvailable(ctx, name, false, 'NotConfigured', access.error);
        return;
      }
      try {
        await syncTarget(ctx, name, access.url, driverFor(access));
        failures.delete(name);
        await markAvailable(ctx, name, true, '', '');
        return pollMs ? { requeueAfterMs: pollMs } : undefined;
      } catch (err) {
        const n = (failures.get(name) ?? 0) + 1;
        failures.set(name, n);
        const message = err instanceof Error ? err.message : String(err);
        await markAvailable(ctx, name, false, 'Unavailable', message);
        const retry = Math.min(MAX_RETRY_MS, MIN_RETRY_MS * 2 ** (n - 1));
        return { requeueAfterMs: pollMs ? Math.min(pollMs, retry) : retry };
      }
    },
  });
}

async function markAvailable(ctx: ControllerContext, name: string, ok: boolean, reason: string, message: string) {
  const t = ctx.informers.BackupTarget.get(name);
  if (!t) return;
  if (t.status.available && !ok) ctx.events.warning(t, 'Unavailable', `backup target ${name}: ${message}`);
  if (!t.status.available && ok && t.status.lastSyncedAt)
    ctx.events.normal(t, 'Available', `backup target ${name} is reachable again`);
  await patchStatus(ctx.store, 'BackupTarget', t, (s) => {
    s.ownerID = ctx.managerID;
    s.available = ok;
    s.conditions = setCondition(
      s.conditions,
      BackupTargetConditionType.Available,
      ok ? 'True' : 'False',
      reason,
      message,
    );
    if (ok) s.lastSyncedAt = nowIso();
  });
}

/** One listing of the target into resources. Throws (touching nothing more) if the target fails. */
export async function syncTarget(
  ctx: ControllerContext,
  targetName: string,
  targetUrl: string,
  driver: Parameters<typeof listBackupVolumes>[0],
): Promise<void> {
  const remote = new Map<string, { cfg: VolumeConfig; backups: BackupConfig[] }>();
  for (const volumeName of await listBackupVolumes(driver)) {
    const cfg = await readVolumeConfig(driver, volumeName);
    remote.set(volumeName, { cfg, backups: await listBackups(driver, volumeName) });
  }
  // Listing done: from here on only resource writes.
  for (const [volumeName, { cfg, backups }] of remote) {
    if (!resourceName.safeParse(volumeName).success) continue; // not nameable as a resource: API shows it not
    await syncBackupVolume(ctx, targetName, volumeName, cfg);
    for (const b of backups) {
      if (b.createdTime === '') continue; // still being written (or abandoned): never shown as a backup
      await syncBackup(ctx, targetName, targetUrl, volumeName, b, cfg.size);
    }
  }
  for (const bv of ctx.informers.BackupVolume.list()) {
    if (bv.spec.backupTargetName !== targetName || remote.has(bv.spec.volumeName)) continue;
    // Gone from the target: nothing left for a finalizer to delete there.
    await patchSpec(ctx.store, 'BackupVolume', bv, (_s, o) => {
      o.metadata.finalizers = [];
    });
    await ctx.store.delete('BackupVolume', bv.metadata.name).catch(() => {});
  }
  for (const b of ctx.informers.Backup.list()) {
    const volumeName = b.metadata.labels[BACKUP_VOLUME_LABEL] ?? '';
    const gone = !remote.get(volumeName)?.backups.some((x) => x.name === b.metadata.name && x.createdTime !== '');
    // Only backups that were complete go when the target no longer has them; one being made stays.
    if (gone && b.status.state === 'Completed' && !b.metadata.deletionTimestamp) {
      await patchSpec(ctx.store, 'Backup', b, (_s, o) => {
        o.metadata.finalizers = [];
      });
      await ctx.store.delete('Backup', b.metadata.name).catch(() => {});
    }
  }
}

async function syncBackupVolume(ctx: ControllerContext, targetName: string, volumeName: string, cfg: VolumeConfig) {
  let bv = ctx.informers.BackupVolume.get(volumeName);
  if (!bv) {
    bv = await ctx.store
      .create('BackupVolume', {
        metadata: { name: volumeName },
        spec: { backupTargetName: targetName, volumeName, syncRequestedAt: '' },
      })
      .catch(() => ctx.informers.BackupVolume.get(volumeName));
    if (!bv) return;
  }
  await patchStatus(ctx.store, 'BackupVolume', bv, (s) => {
    s.ownerID = ctx.managerID;
    s.size = cfg.size;
    s.labels = cfg.labels ?? {};
    s.createdAt = cfg.createdTime;
    s.lastBackupName = cfg.lastBackupName;
    s.lastBackupAt = cfg.lastBackupAt;
    s.dataStored = cfg.blockCount * BACKUP_BLOCK_SIZE;
    s.compressionMethod = cfg.compressionMethod;
    // lastSyncedAt lives on the target: stamping every resource on every poll would be a write each.
  });
}

/** The fields of a Backup's status that the backup store's cfg tells. */
export function statusFromConfig(
  targetName: string,
  targetUrl: string,
  b: BackupConfig,
  volumeSize: number,
): Partial<Backup['status']> {
  return {
    state: 'Completed',
    progress: 100,
    url: encodeBackupUrl(targetUrl, b.name, b.volumeName),
    snapshotName: b.snapshotName,
    snapshotCreatedAt: b.snapshotCreatedAt,
    backupCreatedAt: b.createdTime,
    size: b.size,
    labels: b.labels ?? {},
    volumeName: b.volumeName,
    volumeSize,
    compressionMethod: b.compressionMethod,
    isIncremental: b.isIncremental,
    newlyUploadDataSize: b.newlyUploadedDataSize,
    reUploadedDataSize: b.reUploadedDataSize,
    backupTargetName: targetName,
    error: '',
  };
}

async function syncBackup(
  ctx: ControllerContext,
  targetName: string,
  targetUrl: string,
  volumeName: string,
  cfg: BackupConfig,
  volumeSize: number,
) {
  let b = ctx.informers.Backup.get(cfg.name);
  if (b?.metadata.deletionTimestamp) return;
  if (b && b.status.state !== 'Completed' && b.status.state !== '' && b.spec.snapshotName) return; // ours, running
  if (!b) {
    if (!resourceName.safeParse(cfg.name).success) return;
    b = await ctx.store
      .create('Backup', {
        metadata: { name: cfg.name, labels: { [BACKUP_VOLUME_LABEL]: volumeName } },
        spec: { snapshotName: '', labels: cfg.labels ?? {}, backupMode: 'incremental', syncRequestedAt: '' },
      })
      .catch(() => ctx.informers.Backup.get(cfg.name));
    if (!b) return;
  }
  await patchStatus(ctx.store, 'Backup', b, (s) => {
    Object.assign(s, statusFromConfig(targetName, targetUrl, cfg, volumeSize));
    s.ownerID = ctx.managerID;
  });
}
