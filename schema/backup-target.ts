// BackupTarget: where backups go (Longhorn BackupTarget); `default` always exists. Its credential is a
// Secret: the API shows the secret's name and its keys, never a value. Queries backupTargets and
// backupTarget(name).

import type { BackupTarget as BackupTargetModel } from '../model/backup-target.js';
import { DEFAULT_BACKUP_TARGET } from '../model/backup-target.js';
import { backupVolumesOfTarget } from '../resolvers/graph-reads.js';
import { BackupVolumeRef } from './backup-volume.js';
import { builder } from './builder.js';
import { ConditionRef } from './condition.js';

export const BackupTargetRef = builder.objectRef<BackupTargetModel>('BackupTarget');

BackupTargetRef.implement({
  description: 'A backup target: a directory (file://) or an S3 bucket (s3://) that backups go to',
  fields: (t) => ({
    name: t.string({ resolve: (bt) => bt.metadata.name }),
    url: t.string({
      description: 'file:///<dir> or s3://<bucket>@<region>/<path>; empty when none is set',
      resolve: (bt) => bt.spec.backupTargetURL,
    }),
    credentialSecret: t.string({
      description: "The Secret holding the target's credential; empty for none",
      resolve: (bt) => bt.spec.credentialSecret,
    }),
    credentialKeys: t.stringList({
      description: "The credential's keys (AWS_ACCESS_KEY_ID, …), never their values; empty when the secret is missing",
      resolve: async (bt, _args, ctx) => {
        if (!bt.spec.credentialSecret) return [];
        const secret = await ctx.reads.get('Secret', bt.spec.credentialSecret);
        return Object.keys(secret?.spec.data ?? {}).sort();
      },
    }),
    credentialSecretMissing: t.boolean({
      description: 'It names a Secret that does not exist',
      resolve: async (bt, _args, ctx) =>
        !!bt.spec.credentialSecret && !(await ctx.reads.get('Secret', bt.spec.credentialSecret)),
    }),
    pollInterval: t.int({
      description: 'Seconds between syncs from the target (0: only when asked)',
      resolve: (bt) => bt.spec.pollInterval,
    }),
    available: t.boolean({
      description: 'The target could be listed at the last sync (condition Available says why not)',
      resolve: (bt) => bt.status.available,
    }),
    conditions: t.field({ type: [ConditionRef], resolve: (bt) => bt.status.conditions }),
    lastSyncedAt: t.string({ resolve: (bt) => bt.status.lastSyncedAt }),
    syncRequestedAt: t.string({ resolve: (bt) => bt.spec.syncRequestedAt }),
    backupVolumes: t.field({
      type: [BackupVolumeRef],
      description: 'Volumes with backups in this target, by name',
      resolve: async (bt, _args, ctx) =>
        [...(await backupVolumesOfTarget(ctx.reads, bt.metadata.name))].sort((a, b) =>
          a.metadata.name.localeCompare(b.metadata.name),
        ),
    }),
  }),
});

builder.queryFields((t) => ({
  backupTargets: t.field({
    type: [BackupTargetRef],
    authScopes: { viewer: true },
    resolve: async (_root, _args, ctx) =>
      [...(await ctx.reads.list('BackupTarget'))].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
  }),
  backupTarget: t.field({
    type: BackupTargetRef,
    nullable: true,
    authScopes: { viewer: true },
    args: { name: t.arg.string({ required: false, defaultValue: DEFAULT_BACKUP_TARGET }) },
    resolve: async (_root, { name }, ctx) =>
      (await ctx.reads.get('BackupTarget', name ?? DEFAULT_BACKUP_TARGET)) ?? null,
  }),
}));
