// Backup-volume controller: a BackupVolume deleted through the API (it then carries our finalizer)
// takes its data in the target with it — every backup and block of that volume — and then its Backup
// resources. A target that is down leaves the resource Deleting with the reason, retried.
import { deleteBackupVolume } from '../../dataplane/backupstore/delete.js';
import { BACKUP_VOLUME_LABEL } from '../../model/backup.js';
import type { ControllerContext } from '../context.js';
import { FINALIZER } from '../labels.js';
import { Controller, type ReconcileResult } from '../runtime/controller.js';
import { patchSpec, patchStatus, removeFinalizer } from '../write.js';
import { driverFor, targetAccess } from './target-access.js';

const RETRY_MS = 10_000;

export function backupVolumeController(ctx: ControllerContext): Controller {
  const log = ctx.log.child({ controller: 'backup-volume' });
  return new Controller({
    name: 'backup-volume',
    logger: log,
    reconcile: async (name): Promise<ReconcileResult | undefined> => {
      const bv = ctx.informers.BackupVolume.get(name);
      if (!bv?.metadata.deletionTimestamp || !bv.metadata.finalizers.includes(FINALIZER)) return;
      const access = targetAccess(ctx, bv.spec.backupTargetName);
      try {
        if ('error' in access) throw new Error(access.error);
        await deleteBackupVolume(driverFor(access), bv.spec.volumeName);
      } catch (err) {
        await patchStatus(ctx.store, 'BackupVolume', bv, (s) => {
          s.messages = { ...s.messages, Deleting: `deleting from the target: ${(err as Error).message}` };
        });
        return { requeueAfterMs: RETRY_MS };
      }
      // The data is gone: its Backup resources go without asking the target again.
      for (const b of ctx.informers.Backup.list()) {
        if (b.metadata.labels[BACKUP_VOLUME_LABEL] !== bv.spec.volumeName) continue;
        await patchSpec(ctx.store, 'Backup', b, (_s, o) => {
          o.metadata.finalizers = o.metadata.finalizers.filter((f) => f !== FINALIZER);
        });
        await ctx.store.delete('Backup', b.metadata.name).catch(() => {});
      }
      await removeFinalizer(ctx.store, 'BackupVolume', bv, FINALIZER);
      ctx.events.normal(
        bv,
        'Deleted',
        `backup volume ${bv.spec.volumeName} and all its backups deleted from the target`,
      );
      return;
    },
  });
}
