// BackupVolume: one volume's folder in the backup target (Longhorn BackupVolume), mirrored by the
// backup-target controller; its backups a page at a time. Queries backupVolumes and backupVolume(name).
import { resolveArrayConnection } from '@pothos/plugin-relay';
import type { BackupVolume as BackupVolumeModel } from '../model/backup-volume.js';
import { backupsOfVolume, newestBackupsFirst } from '../resolvers/graph-reads.js';
import { BackupRef } from './backup.js';
import { builder } from './builder.js';
import { VolumeRef } from './volume.js';

export const BackupVolumeRef = builder.objectRef<BackupVolumeModel>('BackupVolume');

BackupVolumeRef.implement({
  description: "A volume's backups in the backup target (Longhorn BackupVolume), named after the volume",
  fields: (t) => ({
    name: t.string({ resolve: (bv) => bv.metadata.name }),
    volumeName: t.string({ description: "The volume's name in the backup store", resolve: (bv) => bv.spec.volumeName }),
    backupTargetName: t.string({ resolve: (bv) => bv.spec.backupTargetName }),
    size: t.field({
      type: 'Bytes',
      description: "The volume's size at its last backup",
      resolve: (bv) => bv.status.size,
    }),
    labels: t.field({ type: 'JSON', resolve: (bv) => bv.status.labels }),
    createdAt: t.string({ resolve: (bv) => bv.status.createdAt }),
    lastBackupName: t.string({ resolve: (bv) => bv.status.lastBackupName }),
    lastBackupAt: t.string({ resolve: (bv) => bv.status.lastBackupAt }),
    dataStored: t.field({
      type: 'Bytes',
      description: 'Blocks kept in the target for this volume (deduplicated across its backups)',
      resolve: (bv) => bv.status.dataStored,
    }),
    compressionMethod: t.string({ resolve: (bv) => bv.status.compressionMethod }),
    messages: t.field({ type: 'JSON', resolve: (bv) => bv.status.messages }),
    lastSyncedAt: t.string({ resolve: (bv) => bv.status.lastSyncedAt }),
    deleting: t.boolean({ resolve: (bv) => bv.metadata.deletionTimestamp !== undefined }),
    lastBackup: t.field({
      type: BackupRef,
      nullable: true,
      resolve: async (bv, _args, ctx) =>
        bv.status.lastBackupName ? ((await ctx.reads.get('Backup', bv.status.lastBackupName)) ?? null) : null,
    }),
    volume: t.field({
      type: VolumeRef,
      nullable: true,
      description: 'The volume of that name in this cluster, if there is one',
      resolve: async (bv, _args, ctx) => (await ctx.reads.get('Volume', bv.spec.volumeName)) ?? null,
    }),
    backups: t.connection(
      {
        type: BackupRef,
        description: 'Its backups, newest first, a page at a time',
        resolve: async (bv, args, ctx) =>
          resolveArrayConnection({ args }, newestBackupsFirst(await backupsOfVolume(ctx.reads, bv.spec.volumeName))),
      },
      { name: 'BackupConnection' },
      { name: 'BackupEdge' },
    ),
  }),
});

builder.queryFields((t) => ({
  backupVolumes: t.field({
    type: [BackupVolumeRef],
    description: 'Volumes with backups in the target, by name; filtered by name substring',
    authScopes: { viewer: true },
    args: { name: t.arg.string({ required: false }) },
    resolve: async (_root, args, ctx) =>
      (await ctx.reads.list('BackupVolume'))
        .filter((bv) => !args.name || bv.metadata.name.includes(args.name))
        .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
  }),
  backupVolume: t.field({
    type: BackupVolumeRef,
    nullable: true,
    authScopes: { viewer: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: async (_root, { name }, ctx) => (await ctx.reads.get('BackupVolume', name)) ?? null,
  }),
}));
