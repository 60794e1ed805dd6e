// Where a volume leads in the graph: its replicas, engine, attachment, snapshots, events and node.
// Every edge is a grouped read (resolvers/graph-reads.ts), so a list of volumes costs what one does.

import { resolveArrayConnection } from '@pothos/plugin-relay';
import {
  attachmentOfVolume,
  backupsOfVolume,
  engineOfVolume,
  eventsAbout,
  labelMatcher,
  newestBackupsFirst,
  newestEventsFirst,
  replicasOfVolume,
  snapshotsOfVolume,
} from '../resolvers/graph-reads.js';
import { BackupRef } from './backup.js';
import { builder } from './builder.js';
import { EngineRef } from './engine.js';
import { EventRef } from './event.js';
import { NodeRef } from './node.js';
import { ReplicaRef } from './replica.js';
import { SnapshotRef } from './snapshot.js';
import { VolumeRef } from './volume.js';
import { VolumeAttachmentRef } from './volume-attachment.js';

builder.objectFields(VolumeRef, (t) => ({
  replicas: t.field({
    type: [ReplicaRef],
    resolve: (v, _args, ctx) => replicasOfVolume(ctx.reads, v.metadata.name),
  }),
  engine: t.field({
    type: EngineRef,
    nullable: true,
    resolve: async (v, _args, ctx) => (await engineOfVolume(ctx.reads, v.metadata.name)) ?? null,
  }),
  attachment: t.field({
    type: VolumeAttachmentRef,
    nullable: true,
    resolve: async (v, _args, ctx) => (await attachmentOfVolume(ctx.reads, v.metadata.name)) ?? null,
  }),
  snapshots: t.field({
    type: [SnapshotRef],
    description: 'Its snapshots (not the live volume-head), oldest first',
    resolve: async (v, _args, ctx) =>
      [...(await snapshotsOfVolume(ctx.reads, v.metadata.name))].sort(
        (a, b) =>
          (a.status.creationTime || '\uffff').localeCompare(b.status.creationTime || '\uffff') ||
          a.metadata.name.localeCompare(b.metadata.name),
      ),
  }),
  backups: t.field({
    type: [BackupRef],
    description: 'Its backups in the backup target (by its name there), newest first',
    resolve: async (v, _args, ctx) => newestBackupsFirst(await backupsOfVolume(ctx.reads, v.metadata.name)),
  }),
  events: t.field({
    type: [EventRef],
    description: 'Events about the volume, its engine and its replicas, newest first',
    args: { type: t.arg.string({ required: false }), limit: t.arg.int({ required: false }) },
    resolve: async (v, args, ctx) => {
      const name = v.metadata.name;
      const [engine, replicas] = await Promise.all([
        engineOfVolume(ctx.reads, name),
        replicasOfVolume(ctx.reads, name),
      ]);
      const about = [
        ['Volume', name],
        ...(engine ? [['Engine', engine.metadata.name]] : []),
        ...replicas.map((r) => ['Replica', r.metadata.name]),
      ] as [string, string][];
      const events = (await Promise.all(about.map(([k, n]) => eventsAbout(ctx.reads, k, n)))).flat();
      const sorted = newestEventsFirst(events.filter((e) => !args.type || e.spec.type === args.type));
      return args.limit != null && args.limit >= 0 ? sorted.slice(0, args.limit) : sorted;
    },
  }),
  node: t.field({
    type: NodeRef,
    nullable: true,
    description: 'The node its engine runs on (null while detached)',
    resolve: async (v, _args, ctx) =>
      v.status.currentNodeID ? ((await ctx.reads.get('Node', v.status.currentNodeID)) ?? null) : null,
  }),
}));

builder.queryFields((t) => ({
  volumesConnection: t.connection(
    {
      type: VolumeRef,
      description: 'Volumes by name, a page at a time; filtered as volumes',
      authScopes: { viewer: true },
      args: {
        name: t.arg.string({ required: false }),
        label: t.arg.string({ required: false }),
        state: t.arg.string({ required: false }),
        robustness: t.arg.string({ required: false }),
        node: t.arg.string({ required: false }),
      },
      resolve: async (_root, args, ctx) => {
        const labels = labelMatcher(args.label);
        const vols = (await ctx.reads.list('Volume'))
          .filter(
            (v) =>
              (!args.name || v.metadata.name.includes(args.name)) &&
              labels(v.metadata.labels) &&
              (!args.state || v.status.state === args.state) &&
              (!args.robustness || v.status.robustness === args.robustness) &&
              (!args.node || v.status.currentNodeID === args.node),
          )
          .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
        return resolveArrayConnection({ args }, vols);
      },
    },
    { name: 'VolumeConnection' },
    { name: 'VolumeEdge' },
  ),
}));
