// Engine: the process that serves a volume, the replicas it writes to (with their modes), rebuild
// progress; query engines(volume, node, state).
import type { Engine as EngineModel, RebuildStatus } from '../model/engine.js';
import { labelMatcher, replicasOfVolume } from '../resolvers/graph-reads.js';
import { builder } from './builder.js';
import { ConditionRef } from './condition.js';
import { InstanceManagerRef } from './instance-manager.js';
import { NodeRef } from './node.js';
import { ReplicaRef } from './replica.js';
import { VolumeRef } from './volume.js';

export const EngineRef = builder.objectRef<EngineModel>('Engine');

interface EngineReplicaView {
  engine: EngineModel;
  name: string;
  address: string;
  mode: string | undefined;
  wanted: boolean;
}

const EngineReplicaRef = builder.objectRef<EngineReplicaView>('EngineReplica').implement({
  description: 'A replica as the engine sees it: its address and mode',
  fields: (t) => ({
    name: t.string({ resolve: (r) => r.name }),
    address: t.string({ resolve: (r) => r.address }),
    mode: t.string({
      nullable: true,
      description: 'RW, WO (rebuilding) or ERR; null while the engine does not have it yet',
      resolve: (r) => r.mode ?? null,
    }),
    wanted: t.boolean({
      description: "In the engine's spec (replicaAddressMap): the control plane wants it there",
      resolve: (r) => r.wanted,
    }),
    replica: t.field({
      type: ReplicaRef,
      nullable: true,
      resolve: async (r, _args, ctx) =>
        (await replicasOfVolume(ctx.reads, r.engine.spec.volumeName)).find((x) => x.metadata.name === r.name) ?? null,
    }),
  }),
});

const RebuildStatusRef = builder.objectRef<RebuildStatus & { replicaName: string }>('RebuildStatus').implement({
  description: 'Progress of a replica being rebuilt by its engine',
  fields: (t) => ({
    replicaName: t.exposeString('replicaName'),
    isRebuilding: t.exposeBoolean('isRebuilding'),
    progress: t.int({ description: 'Percent done, 0–100', resolve: (s) => s.progress }),
    bytesDone: t.field({ type: 'Bytes', resolve: (s) => s.bytesDone }),
    bytesTotal: t.field({ type: 'Bytes', resolve: (s) => s.bytesTotal }),
    state: t.exposeString('state'),
    error: t.exposeString('error'),
    fromReplicaAddress: t.exposeString('fromReplicaAddress'),
  }),
});

/** The replicas the engine has (current map and modes) and the ones it is asked to have, by name. */
function engineReplicas(e: EngineModel): EngineReplicaView[] {
  const names = new Set([
    ...Object.keys(e.status.currentReplicaAddressMap),
    ...Object.keys(e.status.replicaModeMap),
    ...Object.keys(e.spec.replicaAddressMap),
  ]);
  return [...names].sort().map((name) => ({
    engine: e,
    name,
    address: e.status.currentReplicaAddressMap[name] ?? e.spec.replicaAddressMap[name] ?? '',
    mode: e.status.replicaModeMap[name],
    wanted: Object.hasOwn(e.spec.replicaAddressMap, name),
  }));
}

EngineRef.implement({
  description: 'The engine of a volume (Longhorn Engine): the process serving its block device',
  fields: (t) => ({
    name: t.string({ resolve: (e) => e.metadata.name }),
    volumeName: t.string({ resolve: (e) => e.spec.volumeName }),
    volumeSize: t.field({ type: 'Bytes', resolve: (e) => e.spec.volumeSize }),
    nodeID: t.string({ resolve: (e) => e.spec.nodeID }),
    desireState: t.string({ resolve: (e) => e.spec.desireState }),
    currentState: t.string({ resolve: (e) => e.status.currentState }),
    instanceManagerName: t.string({ resolve: (e) => e.status.instanceManagerName }),
    ip: t.string({ resolve: (e) => e.status.ip }),
    port: t.int({ resolve: (e) => e.status.port }),
    endpoint: t.string({ description: 'NBD URI while it serves, else empty', resolve: (e) => e.status.endpoint }),
    currentSize: t.field({ type: 'Bytes', resolve: (e) => e.status.currentSize }),
    replicaTimeout: t.int({ description: 'Seconds', resolve: (e) => e.spec.replicaTimeout }),
    errorMsg: t.string({ resolve: (e) => e.status.errorMsg }),
    salvageExecuted: t.boolean({ resolve: (e) => e.status.salvageExecuted }),
    conditions: t.field({ type: [ConditionRef], resolve: (e) => e.status.conditions }),
    replicas: t.field({ type: [EngineReplicaRef], resolve: (e) => engineReplicas(e) }),
    rebuildStatus: t.field({
      type: [RebuildStatusRef],
      resolve: (e) =>
        Object.entries(e.status.rebuildStatus)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([replicaName, s]) => ({ ...s, replicaName })),
    }),
    snapshotsError: t.string({
      description: 'Why the snapshot chain could not be read, else empty',
      resolve: (e) => e.status.snapshotsError,
    }),
    volume: t.field({
      type: VolumeRef,
      nullable: true,
      resolve: async (e, _args, ctx) => (await ctx.reads.get('Volume', e.spec.volumeName)) ?? null,
    }),
    node: t.field({
      type: NodeRef,
      nullable: true,
      resolve: async (e, _args, ctx) => (e.spec.nodeID ? ((await ctx.reads.get('Node', e.spec.nodeID)) ?? null) : null),
    }),
    instanceManager: t.field({
      type: InstanceManagerRef,
      nullable: true,
      resolve: async (e, _args, ctx) =>
        e.status.instanceManagerName
          ? ((await ctx.reads.get('InstanceManager', e.status.instanceManagerName)) ?? null)
          : null,
    }),
  }),
});

builder.queryFields((t) => ({
  engines: t.field({
    type: [EngineRef],
    description: 'Engines, filtered by volume, node, current state, name substring or label selector',
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
      return (await ctx.reads.list('Engine')).filter(
        (e) =>
          (!args.volume || e.spec.volumeName === args.volume) &&
          (!args.node || e.spec.nodeID === args.node) &&
          (!args.state || e.status.currentState === args.state) &&
          (!args.name || e.metadata.name.includes(args.name)) &&
          labels(e.metadata.labels),
      );
    },
  }),
}));
