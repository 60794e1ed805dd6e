// Backup mutations: the backup target (admin: it carries credentials), backups, restores and standby
// activation. Each goes through BackupApi and returns its resource at once; the controllers do the work
// and report it in status (Backup state/progress/url, Volume restoreProgress, BackupTarget available).
import { BackupRef } from '../backup.js';
import { BackupTargetRef } from '../backup-target.js';
import { BackupVolumeRef } from '../backup-volume.js';
import { builder } from '../builder.js';
import { API_ERRORS } from '../errors.js';
import { VolumeRef } from '../volume.js';

const SetBackupTargetInput = builder.inputType('SetBackupTargetInput', {
  fields: (t) => ({
    url: t.string({
      required: true,
      description: 'file:///<absolute dir> or s3://<bucket>[@<region>]/<path>; "" removes the target',
    }),
    credentialSecret: t.string({
      required: false,
      description: 'An existing Secret with the credential keys; "" for none; left out keeps the current one',
    }),
    credential: t.field({
      type: 'JSON',
      required: false,
      description:
        'Credential keys and values (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINTS, …), stored in the Secret <target>-credential; never shown again',
    }),
    pollInterval: t.int({ required: false, description: 'Seconds between syncs (0: only when asked)' }),
  }),
});

const opt = <T>(v: T | null | undefined): T | undefined => v ?? undefined;

builder.mutationFields((t) => ({
  setBackupTarget: t.field({
    type: BackupTargetRef,
    description: 'Point a backup target at a URL and credential; it is synced at once, status says if it is available',
    authScopes: { admin: true },
    errors: { types: API_ERRORS, directResult: true },
    args: {
      name: t.arg.string({ required: false, defaultValue: 'default' }),
      input: t.arg({ type: SetBackupTargetInput, required: true }),
    },
    resolve: (_root, { name, input }, ctx) =>
      ctx.backups.setBackupTarget(
        {
          url: input.url,
          credentialSecret: opt(input.credentialSecret),
          credential: opt(input.credential) as Record<string, string> | undefined, // checked by the API
          pollInterval: opt(input.pollInterval),
        },
        name ?? 'default',
      ),
  }),
  syncBackupTarget: t.field({
    type: BackupTargetRef,
    description: 'List the target again now: new backups (made elsewhere too) show up, removed ones go',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: false, defaultValue: 'default' }) },
    resolve: (_root, { name }, ctx) => ctx.backups.syncBackupTarget(name ?? 'default'),
  }),
  createBackup: t.field({
    type: BackupRef,
    description:
      'Back up a snapshot of an attached volume (none given: a new snapshot is taken first); state and progress follow in status',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: {
      volume: t.arg.string({ required: true }),
      snapshot: t.arg.string({ required: false }),
      labels: t.arg({ type: 'JSON', required: false, description: 'An object of string values' }),
      mode: t.arg.string({ required: false, description: 'incremental (default) or full' }),
    },
    resolve: (_root, { volume, snapshot, labels, mode }, ctx) =>
      ctx.backups.createBackup({
        volume,
        snapshot: opt(snapshot),
        labels: opt(labels) as Record<string, string> | undefined, // checked by the API
        mode: opt(mode) as never, // checked by the API
      }),
  }),
  deleteBackup: t.field({
    type: BackupRef,
    description: 'Delete a backup from the target (its blocks no other backup uses go too)',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.backups.deleteBackup(name),
  }),
  deleteBackupVolume: t.field({
    type: BackupVolumeRef,
    description:
      'Delete a backup volume from the target: every backup of it and all its blocks (refused while one of its backups is being made)',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.backups.deleteBackupVolume(name),
  }),
  restoreBackup: t.field({
    type: VolumeRef,
    description:
      'Create a volume from a backup (restored before first use; restoreProgress follows); standby: a DR volume that keeps following its backup volume until activated',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: {
      backupURL: t.arg.string({ required: true, description: 'The backup URL (backup ls, Backup.url)' }),
      name: t.arg.string({ required: true, description: 'The new volume' }),
      standby: t.arg.boolean({ required: false, defaultValue: false }),
      numberOfReplicas: t.arg.int({ required: false }),
    },
    resolve: (_root, { backupURL, name, standby, numberOfReplicas }, ctx) =>
      ctx.backups.restoreBackup({
        backupURL,
        name,
        standby: standby ?? false,
        numberOfReplicas: opt(numberOfReplicas),
      }),
  }),
  activateVolume: t.field({
    type: VolumeRef,
    description: 'Turn a standby (DR) volume into a normal one: its last restore finishes, then it can be attached',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.backups.activateVolume(name),
  }),
}));
