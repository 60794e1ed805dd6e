// Node: a machine replicas are scheduled on, its disks, and what runs there; queries nodes and node(name).
import type { Node as NodeModel } from '../model/node.js';
import {
  conditionStatus,
  enginesOnNode,
  instanceManagerOfNode,
  labelMatcher,
  nodeReady,
  replicasOfNode,
} from '../resolvers/graph-reads.js';
import { builder } from './builder.js';
import { ConditionRef } from './condition.js';
import { DiskRef, disksOf } from './disk.js';
import { EngineRef } from './engine.js';
import { InstanceManagerRef } from './instance-manager.js';
import { ReplicaRef } from './replica.js';

export const NodeRef = builder.objectRef<NodeModel>('Node');

NodeRef.implement({
  description: 'A node of the cluster (Longhorn Node): scheduling flags, disks, conditions',
  fields: (t) => ({
    name: t.string({ resolve: (n) => n.metadata.name }),
    labels: t.field({ type: 'JSON', resolve: (n) => n.metadata.labels }),
    tags: t.stringList({ resolve: (n) => n.spec.tags }),
    allowScheduling: t.boolean({ resolve: (n) => n.spec.allowScheduling }),
    evictionRequested: t.boolean({ resolve: (n) => n.spec.evictionRequested }),
    ready: t.boolean({ description: 'The Ready condition is True', resolve: (n) => nodeReady(n) }),
    schedulable: t.boolean({
      description: 'The Schedulable condition is True',
      resolve: (n) => conditionStatus(n.status.conditions, 'Schedulable') === 'True',
    }),
    conditions: t.field({ type: [ConditionRef], resolve: (n) => n.status.conditions }),
    region: t.string({ resolve: (n) => n.status.region }),
    zone: t.string({ resolve: (n) => n.status.zone }),
    instanceManagerAddress: t.string({ resolve: (n) => n.status.instanceManagerAddress }),
    lastHeartbeatAt: t.field({ type: 'DateTime', nullable: true, resolve: (n) => n.status.lastHeartbeatAt || null }),
    disks: t.field({ type: [DiskRef], resolve: (n) => disksOf(n) }),
    replicas: t.field({
      type: [ReplicaRef],
      description: 'Replicas scheduled on this node',
      resolve: (n, _args, ctx) => replicasOfNode(ctx.reads, n.metadata.name),
    }),
    engines: t.field({
      type: [EngineRef],
      description: 'Engines that run (or are to run) on this node',
      resolve: (n, _args, ctx) => enginesOnNode(ctx.reads, n.metadata.name),
    }),
    instanceManager: t.field({
      type: InstanceManagerRef,
      nullable: true,
      resolve: async (n, _args, ctx) => (await instanceManagerOfNode(ctx.reads, n.metadata.name)) ?? null,
    }),
  }),
});

builder.queryFields((t) => ({
  nodes: t.field({
    type: [NodeRef],
    description: 'Nodes, filtered by name substring, label selector (a=b,c), tag, or readiness',
    authScopes: { viewer: true },
    args: {
      name: t.arg.string({ required: false }),
      label: t.arg.string({ required: false }),
      tag: t.arg.string({ required: false }),
      ready: t.arg.boolean({ required: false }),
    },
    resolve: async (_root, args, ctx) => {
      const labels = labelMatcher(args.label);
      return (await ctx.reads.list('Node')).filter(
        (n) =>
          (!args.name || n.metadata.name.includes(args.name)) &&
          labels(n.metadata.labels) &&
          (!args.tag || n.spec.tags.includes(args.tag)) &&
          (args.ready == null || nodeReady(n) === args.ready),
      );
    },
  }),
  node: t.field({
    type: NodeRef,
    nullable: true,
    authScopes: { viewer: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => (await ctx.reads.get('Node', args.name)) ?? null,
  }),
}));
