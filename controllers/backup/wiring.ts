// Which resource changes wake which backup controllers: a target's spec or its secret → that target;
// a backup → itself; a new backup or backup volume → the standby volumes that follow it.
import { decodeBackupUrl } from '../../dataplane/backupstore/target-url.js';
import { BACKUP_VOLUME_LABEL } from '../../model/backup.js';
import type { Volume } from '../../model/volume.js';
import type { Informers } from '../context.js';
import { type Controller, watchInto } from '../runtime/controller.js';

export function wireBackups(
  informers: Informers,
  c: { backupTarget: Controller; backup: Controller; backupVolume: Controller; volume: Controller },
): void {
  watchInto(informers.BackupTarget, c.backupTarget);
  watchInto(informers.Secret, c.backupTarget, (secret) =>
    informers.BackupTarget.list()
      .filter((t) => t.spec.credentialSecret === secret.metadata.name)
      .map((t) => t.metadata.name),
  );
  watchInto(informers.Backup, c.backup);
  watchInto(informers.BackupVolume, c.backupVolume);
  const followers = (backupVolume: string) =>
    informers.Volume.list()
      .filter((v) => sourceOf(v) === backupVolume)
      .map((v) => v.metadata.name);
  watchInto(informers.BackupVolume, c.volume, (bv) => followers(bv.spec.volumeName));
  watchInto(informers.Backup, c.volume, (b) => followers(b.metadata.labels[BACKUP_VOLUME_LABEL] ?? ''));
}

function sourceOf(v: Volume): string {
  if (!v.spec.fromBackup) return '';
  try {
    return decodeBackupUrl(v.spec.fromBackup).volumeName;
  } catch {
    return '';
  }
}
