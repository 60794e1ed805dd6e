// Snapshot: one snapshot of a volume, its place in the chain (parent, children among the same volume's
// snapshots); query snapshots(volume).
import type { Snapshot as SnapshotModel } from '../model/snapshot.js';
import { labelMatcher, snapshotsNamed, snapshotsOfVolume, VOLUME_HEAD } from '../resolvers/graph-reads.js';
import { builder } from './builder.js';
import { VolumeRef } from './volume.js';

export const SnapshotRef = builder.objectRef<SnapshotModel>('Snapshot');

SnapshotRef.implement({
  description: 'A snapshot of a volume (Longhorn Snapshot), taken on request or mirrored from the engine',
  fields: (t) => ({
    name: t.string({ resolve: (s) => s.metadata.name }),
    volumeName: t.string({ resolve: (s) => s.spec.volume }),
    deleting: t.boolean({ resolve: (s) => s.metadata.deletionTimestamp !== undefined }),
    requested: t.boolean({
      description: 'Asked for through the API (true) or found in the engine (false)',
      resolve: (s) => s.spec.createSnapshot,
    }),
    parentName: t.string({ description: 'Empty for the first snapshot', resolve: (s) => s.status.parent }),
    parent: t.field({
      type: SnapshotRef,
      nullable: true,
      resolve: async (s, _args, ctx) =>
        s.status.parent ? ((await snapshotsNamed(ctx.reads, s.spec.volume, [s.status.parent]))[0] ?? null) : null,
    }),
    children: t.field({
      type: [SnapshotRef],
      description: 'Snapshots taken on top of this one (the live volume-head is not one)',
      resolve: (s, _args, ctx) =>
        snapshotsNamed(
          ctx.reads,
          s.spec.volume,
          s.status.children.filter((c) => c !== VOLUME_HEAD),
        ),
    }),
    markRemoved: t.boolean({
      description: 'Removed, its data kept until a purge merges it',
      resolve: (s) => s.status.markRemoved,
    }),
    userCreated: t.boolean({ resolve: (s) => s.status.userCreated }),
    creationTime: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Null until the engine has taken it',
      resolve: (s) => s.status.creationTime || null,
    }),
    size: t.field({ type: 'Bytes', resolve: (s) => s.status.size }),
    labels: t.field({ type: 'JSON', resolve: (s) => ({ ...s.spec.labels, ...s.status.labels }) }),
    readyToUse: t.boolean({ resolve: (s) => s.status.readyToUse }),
    error: t.string({ resolve: (s) => s.status.error }),
    volume: t.field({
      type: VolumeRef,
      nullable: true,
      resolve: async (s, _args, ctx) => (await ctx.reads.get('Volume', s.spec.volume)) ?? null,
    }),
  }),
});

builder.queryFields((t) => ({
  snapshots: t.field({
    type: [SnapshotRef],
    description:
      'Snapshots of a volume (or of every volume), oldest first; includeRemoved: false leaves out removed ones',
    authScopes: { viewer: true },
    args: {
      volume: t.arg.string({ required: false }),
      name: t.arg.string({ required: false }),
      label: t.arg.string({ required: false }),
      includeRemoved: t.arg.boolean({ required: false, defaultValue: true }),
    },
    resolve: async (_root, args, ctx) => {
      const labels = labelMatcher(args.label);
      const all = args.volume
        ? await snapshotsOfVolume(ctx.reads, args.volume)
        : (await ctx.reads.list('Snapshot')).filter((s) => s.metadata.name !== VOLUME_HEAD);
      return all
        .filter(
          (s) =>
            (!args.name || s.metadata.name.includes(args.name)) &&
            labels({ ...s.spec.labels, ...s.status.labels }) &&
            (args.includeRemoved !== false || !s.status.markRemoved),
        )
        .sort(
          (a, b) =>
            (a.status.creationTime || '\uffff').localeCompare(b.status.creationTime || '\uffff') ||
            a.metadata.name.localeCompare(b.metadata.name),
        );
    },
  }),
}));
