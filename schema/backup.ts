// Backup: one backup of one snapshot in the backup target (Longhorn Backup), asked for through the API
// or found there by a sync; queries backups(volume) and backup(name). backupChanged lives with the
// other subscriptions.
import type { Backup as BackupModel } from '../model/backup.js';
import { backupsOfVolume, backupVolumeName, labelMatcher, newestBackupsFirst } from '../resolvers/graph-reads.js';
import { builder } from './builder.js';
import { SnapshotRef } from './snapshot.js';
import { VolumeRef } from './volume.js';

export const BackupRef = builder.objectRef<BackupModel>('Backup');

export const BackupStateEnum = builder.enumType('BackupState', {
  description: "A backup's progress as the backup controller reports it (New: not picked up yet)",
  values: {
    New: { value: '' },
    Pending: { value: 'Pending' },
    InProgress: { value: 'InProgress' },
    Completed: { value: 'Completed' },
    Error: { value: 'Error' },
    Unknown: { value: 'Unknown' },
    Deleting: { value: 'Deleting' },
  } as const,
});

BackupRef.implement({
  description: 'A backup of a snapshot in the backup target (Longhorn Backup)',
  fields: (t) => ({
    name: t.string({ resolve: (b) => b.metadata.name }),
    volumeName: t.string({ description: "The volume's name in the backup store", resolve: backupVolumeName }),
    snapshotName: t.string({ resolve: (b) => b.spec.snapshotName || b.status.snapshotName }),
    requested: t.boolean({
      description: 'Asked for through the API (true) or found in the target by a sync (false)',
      resolve: (b) => b.spec.snapshotName !== '',
    }),
    backupMode: t.string({ description: 'incremental or full', resolve: (b) => b.spec.backupMode }),
    state: t.field({ type: BackupStateEnum, resolve: (b) => b.status.state }),
    progress: t.int({ description: 'Percent, 0–100', resolve: (b) => b.status.progress }),
    error: t.string({ resolve: (b) => b.status.error }),
    url: t.string({
      description: "Longhorn's backup URL (<target>?backup=<name>&volume=<volume>) to restore from; empty until known",
      resolve: (b) => b.status.url,
    }),
    size: t.field({ type: 'Bytes', resolve: (b) => b.status.size }),
    volumeSize: t.field({ type: 'Bytes', resolve: (b) => b.status.volumeSize }),
    newlyUploadedDataSize: t.field({ type: 'Bytes', resolve: (b) => b.status.newlyUploadDataSize }),
    reUploadedDataSize: t.field({ type: 'Bytes', resolve: (b) => b.status.reUploadedDataSize }),
    isIncremental: t.boolean({ resolve: (b) => b.status.isIncremental }),
    compressionMethod: t.string({ resolve: (b) => b.status.compressionMethod }),
    labels: t.field({ type: 'JSON', resolve: (b) => ({ ...b.spec.labels, ...b.status.labels }) }),
    snapshotCreatedAt: t.string({ resolve: (b) => b.status.snapshotCreatedAt }),
    backupCreatedAt: t.string({ resolve: (b) => b.status.backupCreatedAt }),
    createdAt: t.string({ description: 'When the resource was made', resolve: (b) => b.metadata.creationTimestamp }),
    backupTargetName: t.string({ resolve: (b) => b.status.backupTargetName }),
    lastSyncedAt: t.string({ resolve: (b) => b.status.lastSyncedAt }),
    deleting: t.boolean({
      description: 'Being removed from the target',
      resolve: (b) => b.metadata.deletionTimestamp !== undefined,
    }),
    volume: t.field({
      type: VolumeRef,
      nullable: true,
      description: 'The volume of that name in this cluster, if there is one',
      resolve: async (b, _args, ctx) => (await ctx.reads.get('Volume', backupVolumeName(b))) ?? null,
    }),
    snapshot: t.field({
      type: SnapshotRef,
      nullable: true,
      description: 'The snapshot backed up, while it exists in this cluster',
      resolve: async (b, _args, ctx) => {
        const name = b.spec.snapshotName || b.status.snapshotName;
        const s = name ? await ctx.reads.get('Snapshot', name) : undefined;
        return s && s.spec.volume === backupVolumeName(b) ? s : null;
      },
    }),
  }),
});

builder.queryFields((t) => ({
  backups: t.field({
    type: [BackupRef],
    description: "Backups (of one volume, or all), newest first; filtered by state or label (kubectl's a=b,c!=d)",
    authScopes: { viewer: true },
    args: {
      volume: t.arg.string({ required: false }),
      state: t.arg({ type: BackupStateEnum, required: false }),
      label: t.arg.string({ required: false }),
    },
    resolve: async (_root, args, ctx) => {
      const labels = labelMatcher(args.label);
      const all = args.volume ? await backupsOfVolume(ctx.reads, args.volume) : await ctx.reads.list('Backup');
      return newestBackupsFirst(
        all.filter(
          (b) =>
            (args.state == null || b.status.state === args.state) && labels({ ...b.spec.labels, ...b.status.labels }),
        ),
      );
    },
  }),
  backup: t.field({
    type: BackupRef,
    nullable: true,
    authScopes: { viewer: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: async (_root, { name }, ctx) => (await ctx.reads.get('Backup', name)) ?? null,
  }),
}));
