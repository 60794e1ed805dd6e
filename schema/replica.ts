// Replica: one copy of a volume's data on one disk of one node, its health timestamps, and the mode its
// engine reports; query replicas(volume, node, …).
import type { Replica as ReplicaModel } from '../model/replica.js';
import { engineOfVolume, labelMatcher, replicaAddress, replicasOfNode } from '../resolvers/graph-reads.js';
import { builder } from './builder.js';
import { ConditionRef } from './condition.js';
import { DiskRef, disksOf } from './disk.js';
import { EngineRef } from './engine.js';
import { NodeRef } from './node.js';
import { VolumeRef } from './volume.js';

export const ReplicaRef = builder.objectRef<ReplicaModel>('Replica');

const time = (v: string) => v || null;

ReplicaRef.implement({
  description: 'A replica of a volume (Longhorn Replica): where it is, whether it runs, when it was last healthy',
  fields: (t) => ({
    name: t.string({ resolve: (r) => r.metadata.name }),
    labels: t.field({ type: 'JSON', resolve: (r) => r.metadata.labels }),
    deleting: t.boolean({ resolve: (r) => r.metadata.deletionTimestamp !== undefined }),
    volumeName: t.string({ resolve: (r) => r.spec.volumeName }),
    volumeSize: t.field({ type: 'Bytes', resolve: (r) => r.spec.volumeSize }),
    nodeID: t.string({ description: 'Empty while unscheduled', resolve: (r) => r.spec.nodeID }),
    diskID: t.string({ description: "The disk's UUID", resolve: (r) => r.spec.diskID }),
    diskPath: t.string({ resolve: (r) => r.spec.diskPath }),
    dataDirectoryName: t.string({ resolve: (r) => r.spec.dataDirectoryName }),
    hardNodeAffinity: t.string({ resolve: (r) => r.spec.hardNodeAffinity }),
    desireState: t.string({ resolve: (r) => r.spec.desireState }),
    active: t.boolean({ resolve: (r) => r.spec.active }),
    evictionRequested: t.boolean({ resolve: (r) => r.spec.evictionRequested }),
    rebuildRetryCount: t.int({ resolve: (r) => r.spec.rebuildRetryCount }),
    salvageRequested: t.boolean({ resolve: (r) => r.spec.salvageRequested }),
    healthyAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'First time RW after creation or rebuild',
      resolve: (r) => time(r.spec.healthyAt),
    }),
    lastHealthyAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Last time it turned RW',
      resolve: (r) => time(r.spec.lastHealthyAt),
    }),
    failedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When it failed; cleared before a rebuild',
      resolve: (r) => time(r.spec.failedAt),
    }),
    lastFailedAt: t.field({ type: 'DateTime', nullable: true, resolve: (r) => time(r.spec.lastFailedAt) }),
    currentState: t.string({ resolve: (r) => r.status.currentState }),
    instanceManagerName: t.string({ resolve: (r) => r.status.instanceManagerName }),
    address: t.string({
      description: 'tcp://ip:port as the engine reaches it; empty while not running',
      resolve: (r) => replicaAddress(r),
    }),
    errorMsg: t.string({ resolve: (r) => r.status.errorMsg }),
    conditions: t.field({ type: [ConditionRef], resolve: (r) => r.status.conditions }),
    mode: t.string({
      nullable: true,
      description: 'RW, WO (rebuilding) or ERR as the engine reports it; null when the engine does not have it',
      resolve: async (r, _args, ctx) =>
        (await engineOfVolume(ctx.reads, r.spec.volumeName))?.status.replicaModeMap[r.metadata.name] ?? null,
    }),
    node: t.field({
      type: NodeRef,
      nullable: true,
      resolve: async (r, _args, ctx) => (r.spec.nodeID ? ((await ctx.reads.get('Node', r.spec.nodeID)) ?? null) : null),
    }),
    disk: t.field({
      type: DiskRef,
      nullable: true,
      resolve: async (r, _args, ctx) => {
        const node = r.spec.nodeID ? await ctx.reads.get('Node', r.spec.nodeID) : undefined;
        return (node && disksOf(node).find((d) => d.status.diskUUID === r.spec.diskID)) ?? null;
      },
    }),
    volume: t.field({
      type: VolumeRef,
      nullable: true,
      resolve: async (r, _args, ctx) => (await ctx.reads.get('Volume', r.spec.volumeName)) ?? null,
    }),
    engine: t.field({
      type: EngineRef,
      nullable: true,
      resolve: async (r, _args, ctx) => (await engineOfVolume(ctx.reads, r.spec.volumeName)) ?? null,
    }),
  }),
});

builder.queryFields((t) => ({
  replicas: t.field({
    type: [ReplicaRef],
    description: 'Replicas, filtered by volume, node, current state, name substring or label selector',
    authScopes: { viewer: true },
    args: {
      volume: t.arg.string({ required: false }),
      node: t.arg.string({ required: false }),
      state: t.arg.string({ required: false }),
      name: t.arg.string({ required: false }),
      label: t.arg.string({ required: false }),
    },
    resolve: async (_root, args, ctx) => {
      const labels = labelMatcher(args.label);
      const candidates = args.node ? await replicasOfNode(ctx.reads, args.node) : await ctx.reads.list('Replica');
      return candidates.filter(
        (r) =>
          (!args.volume || r.spec.volumeName === args.volume) &&
          (!args.state || r.status.currentState === args.state) &&
          (!args.name || r.metadata.name.includes(args.name)) &&
          labels(r.metadata.labels),
      );
    },
  }),
}));
