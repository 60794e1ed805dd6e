// InstanceManager: the per-node process that runs engines and replicas; query instanceManagers(node, state).
import type { InstanceManager as InstanceManagerModel } from '../model/instance-manager.js';
import { builder } from './builder.js';
import { ConditionRef } from './condition.js';
import { NodeRef } from './node.js';

export const InstanceManagerRef = builder.objectRef<InstanceManagerModel>('InstanceManager');

type ProcessView = InstanceManagerModel['status']['instances'][string] & { name: string };

const InstanceProcessRef = builder.objectRef<ProcessView>('InstanceProcess').implement({
  description: 'An engine or replica process an instance manager runs',
  fields: (t) => ({
    name: t.exposeString('name'),
    type: t.exposeString('type'),
    state: t.exposeString('state'),
    port: t.exposeInt('port'),
    pid: t.exposeInt('pid'),
    errorMsg: t.exposeString('errorMsg'),
    startedAt: t.field({ type: 'DateTime', nullable: true, resolve: (p) => p.startedAt || null }),
  }),
});

InstanceManagerRef.implement({
  description: "A node's instance manager: the process that starts and watches engines and replicas",
  fields: (t) => ({
    name: t.string({ resolve: (im) => im.metadata.name }),
    nodeID: t.string({ resolve: (im) => im.spec.nodeID }),
    address: t.string({ description: 'gRPC address of its InstanceService', resolve: (im) => im.spec.address }),
    currentState: t.string({ resolve: (im) => im.status.currentState }),
    instances: t.field({
      type: [InstanceProcessRef],
      resolve: (im) =>
        Object.entries(im.status.instances)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([name, p]) => ({ ...p, name })),
    }),
    conditions: t.field({ type: [ConditionRef], resolve: (im) => im.status.conditions }),
    lastHeartbeatAt: t.field({
      type: 'DateTime',
      nullable: true,
      resolve: (im) => im.status.lastHeartbeatAt || null,
    }),
    node: t.field({
      type: NodeRef,
      nullable: true,
      resolve: async (im, _args, ctx) => (await ctx.reads.get('Node', im.spec.nodeID)) ?? null,
    }),
  }),
});

builder.queryFields((t) => ({
  instanceManagers: t.field({
    type: [InstanceManagerRef],
    description: 'Instance managers, filtered by node or current state',
    authScopes: { viewer: true },
    args: { node: t.arg.string({ required: false }), state: t.arg.string({ required: false }) },
    resolve: async (_root, args, ctx) =>
      (await ctx.reads.list('InstanceManager')).filter(
        (im) => (!args.node || im.spec.nodeID === args.node) && (!args.state || im.status.currentState === args.state),
      ),
  }),
}));
