// Volume: the type, its place in the graph (replicas, engine, snapshots, events), and its queries.
import type { Volume as VolumeModel } from '../model/volume.js';
import { volumeRecurringJobs } from '../resolvers/graph-reads.js';
import { watchOne } from '../resolvers/watch.js';
import { builder } from './builder.js';
import { ConditionRef } from './condition.js';

export const VolumeRef = builder.objectRef<VolumeModel>('Volume');

VolumeRef.implement({
  description: 'A replicated block volume (Longhorn Volume)',
  fields: (t) => ({
    name: t.string({ resolve: (v) => v.metadata.name }),
    labels: t.field({ type: 'JSON', resolve: (v) => v.metadata.labels }),
    createdAt: t.string({ resolve: (v) => v.metadata.creationTimestamp }),
    deleting: t.boolean({ resolve: (v) => v.metadata.deletionTimestamp !== undefined }),
    size: t.field({ type: 'Bytes', resolve: (v) => v.spec.size }),
    numberOfReplicas: t.int({ resolve: (v) => v.spec.numberOfReplicas }),
    frontend: t.string({ resolve: (v) => v.spec.frontend }),
    dataLocality: t.string({ resolve: (v) => v.spec.dataLocality }),
    staleReplicaTimeout: t.int({ resolve: (v) => v.spec.staleReplicaTimeout }),
    nodeSelector: t.stringList({ resolve: (v) => v.spec.nodeSelector }),
    diskSelector: t.stringList({ resolve: (v) => v.spec.diskSelector }),
    state: t.string({ resolve: (v) => v.status.state }),
    robustness: t.string({ resolve: (v) => v.status.robustness }),
    currentNodeID: t.string({ resolve: (v) => v.status.currentNodeID }),
    endpoint: t.string({ description: 'NBD URI while attached, else empty', resolve: (v) => v.status.endpoint }),
    currentSize: t.field({ type: 'Bytes', resolve: (v) => v.status.currentSize }),
    actualSize: t.field({ type: 'Bytes', resolve: (v) => v.status.actualSize }),
    lastDegradedAt: t.string({ resolve: (v) => v.status.lastDegradedAt }),
    conditions: t.field({ type: [ConditionRef], resolve: (v) => v.status.conditions }),
    fromBackup: t.string({
      description: 'The backup URL it was created from (restored before first use); empty for none',
      resolve: (v) => v.spec.fromBackup,
    }),
    standby: t.boolean({
      description: 'Asked to be a standby (DR) volume: follows its backup volume until activated',
      resolve: (v) => v.spec.standby,
    }),
    isStandby: t.boolean({ description: 'Is a standby volume now', resolve: (v) => v.status.isStandby }),
    restoreRequired: t.boolean({
      description: 'A restore (from fromBackup, or a newer backup for a standby) is still to be done',
      resolve: (v) => v.status.restoreRequired,
    }),
    restoreInitiated: t.boolean({ resolve: (v) => v.status.restoreInitiated }),
    restoreProgress: t.int({
      description: 'Percent of the restore under way, 0–100',
      resolve: (v) => v.status.restoreProgress,
    }),
    lastRestoredBackup: t.string({ resolve: (v) => v.status.lastRestoredBackup }),
    lastBackup: t.string({ description: 'Its newest completed backup', resolve: (v) => v.status.lastBackup }),
    lastBackupAt: t.string({ resolve: (v) => v.status.lastBackupAt }),
    recurringJobs: t.stringList({
      description: 'Recurring jobs it takes part in by name (labels recurring-job.shorthorn.io/<job>)',
      resolve: (v) => volumeRecurringJobs(v).jobs,
    }),
    recurringJobGroups: t.stringList({
      description: 'Recurring job groups it takes part in (labels recurring-job-group.shorthorn.io/<group>)',
      resolve: (v) => volumeRecurringJobs(v).groups,
    }),
  }),
});

builder.queryFields((t) => ({
  volumes: t.field({
    type: [VolumeRef],
    description: 'Volumes, filtered by name substring, label (key=value), state or node',
    authScopes: { viewer: true },
    args: {
      name: t.arg.string({ required: false }),
      label: t.arg.string({ required: false }),
      state: t.arg.string({ required: false }),
      node: t.arg.string({ required: false }),
    },
    resolve: async (_root, args, ctx) => {
      const [lk, lv] = args.label ? args.label.split('=') : [];
      return (await ctx.reads.list('Volume')).filter(
        (v) =>
          (!args.name || v.metadata.name.includes(args.name)) &&
          (!lk || v.metadata.labels[lk] === lv) &&
          (!args.state || v.status.state === args.state) &&
          (!args.node || v.status.currentNodeID === args.node),
      );
    },
  }),
  volume: t.field({
    type: VolumeRef,
    nullable: true,
    authScopes: { viewer: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => ctx.reads.get('Volume', args.name),
  }),
}));

builder.subscriptionFields((t) => ({
  volumeChanged: t.field({
    type: VolumeRef,
    description: 'The volume now, then again at every change (from the store, whoever made it)',
    authScopes: { viewer: true },
    args: { name: t.arg.string({ required: true }) },
    subscribe: (_root, { name }, ctx) => watchOne(ctx.store, 'Volume', name),
    resolve: (v) => v,
  }),
}));
