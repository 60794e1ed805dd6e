// Restore of a volume from a backup, on the volume controller's passes (Longhorn's restore flow):
// a volume with spec.fromBackup is attached with its frontend off by its own ticket, its engine is asked
// to restore the backup (written through the engine to every replica), and once the engine reports it
// restored the ticket goes and the volume detaches, ready for use. A standby volume keeps the ticket
// and follows its backup volume: each newer backup is restored incrementally on top of the last.
// Activation (spec.standby=false) restores the newest backup still missing, then lets it go.
import { decodeBackupUrl, encodeBackupUrl } from '../../dataplane/backupstore/target-url.js';
import { setCondition } from '../../model/conditions.js';
import type { Engine } from '../../model/engine.js';
import type { Replica } from '../../model/replica.js';
import { type Volume, VolumeConditionType } from '../../model/volume.js';
import type { ControllerContext } from '../context.js';
import { syncInternalTicket } from '../internal-tickets.js';
import { patchSpec, patchStatus } from '../write.js';

export const RESTORE_TICKET_ID = 'volume-restore-controller';

export interface RestoreGoal {
  /** The backup the volume should hold next. */
  backupName: string;
  backupUrl: string;
  /** The volume's name in the backup store. */
  sourceVolume: string;
}

/** What the volume should restore now, or undefined when it holds what it should. */
export function restoreGoal(ctx: ControllerContext, vol: Volume): RestoreGoal | undefined {
  if (!vol.spec.fromBackup) return;
  let parsed: ReturnType<typeof decodeBackupUrl>;
  try {
    parsed = decodeBackupUrl(vol.spec.fromBackup);
  } catch {
    return;
  }
  const following = vol.spec.standby || vol.status.isStandby;
  let backupName = parsed.backupName;
  if (following) {
    const latest = ctx.informers.BackupVolume.get(parsed.volumeName)?.status.lastBackupName;
    const latestDone = latest && ctx.informers.Backup.get(latest)?.status.state === 'Completed' ? latest : '';
    // Newer than the one restored last (backup names are random: compare the snapshot times).
    const at = (name: string) => ctx.informers.Backup.get(name)?.status.snapshotCreatedAt ?? '';
    if (latestDone && (!vol.status.lastRestoredBackup || at(latestDone) > at(vol.status.lastRestoredBackup)))
      backupName = latestDone;
    else if (vol.status.lastRestoredBackup) backupName = vol.status.lastRestoredBackup;
  } else if (vol.status.lastRestoredBackup) {
    return;
  }
  if (backupName === vol.status.lastRestoredBackup) return;
  return {
    backupName,
    backupUrl: encodeBackupUrl(parsed.targetUrl, backupName, parsed.volumeName),
    sourceVolume: parsed.volumeName,
  };
}

/**
 * One pass: keep the restore ticket while restoring or standing by, hand the goal to the engine, and
 * record in the volume what the engine restored. Returns a requeue delay while work is under way.
 */
export async function syncRestore(
  ctx: ControllerContext,
  vol: Volume,
  engine: Engine,
  replicas: Replica[],
): Promise<number | undefined> {
  if (!vol.spec.fromBackup) return;
  const restored = engine.status.lastRestoredBackup;
  if (restored && restored !== vol.status.lastRestoredBackup) {
    vol = await patchStatus(ctx.store, 'Volume', vol, (s) => {
      s.lastRestoredBackup = restored;
    });
    ctx.events.normal(vol, 'Restored', `volume ${vol.metadata.name} restored backup ${restored}`);
  }
  const goal = restoreGoal(ctx, vol);
  const standing = vol.spec.standby;
  const wantTicket = !!goal || standing;
  await syncInternalTicket(
    ctx,
    vol,
    replicas,
    { id: RESTORE_TICKET_ID, type: 'volume-restore-controller', needsData: false },
    wantTicket,
  );
  const rs = engine.status.restoreStatus;
  vol = await patchStatus(ctx.store, 'Volume', vol, (s) => {
    s.restoreRequired = !!goal;
    s.restoreInitiated = s.restoreInitiated || rs.state === 'in_progress' || !!restored;
    s.isStandby = standing || (s.isStandby && !!goal);
    s.restoreProgress = goal ? (rs.backupName === goal.backupName ? rs.progress : 0) : 100;
    if (goal && rs.state === 'error' && rs.backupName === goal.backupName)
      s.conditions = setCondition(s.conditions, VolumeConditionType.Restore, 'False', 'RestoreFailure', rs.error);
    else if (goal)
      s.conditions = setCondition(
        s.conditions,
        VolumeConditionType.Restore,
        'False',
        'RestoreInProgress',
        `restoring backup ${goal.backupName}`,
      );
    else
      s.conditions = setCondition(
        s.conditions,
        VolumeConditionType.Restore,
        'True',
        standing ? 'Standby' : 'Restored',
        `backup ${s.lastRestoredBackup} restored`,
      );
  });
  if (!goal) {
    if (engine.spec.requestedBackupRestore)
      await patchSpec(ctx.store, 'Engine', engine, (s) => {
        s.requestedBackupRestore = '';
        s.requestedBackupRestoreURL = '';
      });
    return standing ? 5000 : undefined;
  }
  if (vol.status.state === 'attached' && engine.spec.requestedBackupRestore !== goal.backupName) {
    await patchSpec(ctx.store, 'Engine', engine, (s) => {
      s.requestedBackupRestore = goal.backupName;
      s.requestedBackupRestoreURL = goal.backupUrl;
    });
  }
  return 1000;
}
