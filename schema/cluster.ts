// cluster: one summary for a dashboard's header: capacity, volumes by state and robustness, nodes by
// condition, replicas by state. Each part reads only the kinds it needs.
import { instanceState } from '../model/instance.js';
import { volumeRobustness, volumeState } from '../model/volume.js';
import { conditionStatus } from '../resolvers/graph-reads.js';
import { builder } from './builder.js';

interface CountView {
  value: string;
  count: number;
}

/** Counts per value: every known value first (zero included, in their order), then any other seen. */
function countBy<T>(items: readonly T[], keyOf: (o: T) => string, known: readonly string[]): CountView[] {
  const m = new Map<string, number>(known.map((k) => [k, 0]));
  for (const o of items) {
    const v = keyOf(o);
    m.set(v, (m.get(v) ?? 0) + 1);
  }
  return [...m].map(([value, count]) => ({ value, count }));
}

const CountRef = builder.objectRef<CountView>('CountByValue').implement({
  fields: (t) => ({ value: t.exposeString('value'), count: t.exposeInt('count') }),
});

interface ConditionCountView {
  type: string;
  status: string;
  count: number;
}

const ConditionCountRef = builder.objectRef<ConditionCountView>('ConditionCount').implement({
  description: 'How many nodes have this condition in this status',
  fields: (t) => ({ type: t.exposeString('type'), status: t.exposeString('status'), count: t.exposeInt('count') }),
});

interface CapacityView {
  disks: number;
  storageMaximum: number;
  storageAvailable: number;
  storageScheduled: number;
  storageReserved: number;
}

const CapacityRef = builder.objectRef<CapacityView>('ClusterCapacity').implement({
  description: 'Sums over every disk of every node',
  fields: (t) => ({
    disks: t.exposeInt('disks'),
    storageMaximum: t.field({ type: 'Bytes', resolve: (c) => c.storageMaximum }),
    storageAvailable: t.field({ type: 'Bytes', resolve: (c) => c.storageAvailable }),
    storageScheduled: t.field({
      type: 'Bytes',
      description: 'Sizes of the replicas scheduled on the disks',
      resolve: (c) => c.storageScheduled,
    }),
    storageReserved: t.field({ type: 'Bytes', resolve: (c) => c.storageReserved }),
    storageUsed: t.field({
      type: 'Bytes',
      description: 'Maximum − available: what the filesystems hold (replicas and anything else)',
      resolve: (c) => c.storageMaximum - c.storageAvailable,
    }),
  }),
});

interface VolumeCountsView {
  total: number;
  byState: CountView[];
  byRobustness: CountView[];
  size: number;
  actualSize: number;
}

const VolumeCountsRef = builder.objectRef<VolumeCountsView>('ClusterVolumes').implement({
  fields: (t) => ({
    total: t.exposeInt('total'),
    byState: t.field({ type: [CountRef], resolve: (v) => v.byState }),
    byRobustness: t.field({ type: [CountRef], resolve: (v) => v.byRobustness }),
    size: t.field({ type: 'Bytes', description: 'Sum of the volumes’ sizes', resolve: (v) => v.size }),
    actualSize: t.field({
      type: 'Bytes',
      description: 'Sum of the data the volumes hold (one copy each)',
      resolve: (v) => v.actualSize,
    }),
  }),
});

interface NodeCountsView {
  total: number;
  ready: number;
  notReady: number;
  unknown: number;
  byCondition: ConditionCountView[];
}

const NodeCountsRef = builder.objectRef<NodeCountsView>('ClusterNodes').implement({
  fields: (t) => ({
    total: t.exposeInt('total'),
    ready: t.int({ description: 'Ready condition True', resolve: (n) => n.ready }),
    notReady: t.int({ description: 'Ready condition False', resolve: (n) => n.notReady }),
    unknown: t.int({ description: 'Ready condition Unknown or missing', resolve: (n) => n.unknown }),
    byCondition: t.field({ type: [ConditionCountRef], resolve: (n) => n.byCondition }),
  }),
});

interface ReplicaCountsView {
  total: number;
  failed: number;
  byState: CountView[];
}

const ReplicaCountsRef = builder.objectRef<ReplicaCountsView>('ClusterReplicas').implement({
  fields: (t) => ({
    total: t.exposeInt('total'),
    failed: t.int({ description: 'With failedAt set (failed, not yet rebuilt)', resolve: (r) => r.failed }),
    byState: t.field({ type: [CountRef], description: 'By current state', resolve: (r) => r.byState }),
  }),
});

const ClusterRef = builder.objectRef<Record<string, never>>('Cluster').implement({
  description: 'The cluster at a glance',
  fields: (t) => ({
    capacity: t.field({
      type: CapacityRef,
      resolve: async (_c, _args, ctx) => {
        const sum: CapacityView = {
          disks: 0,
          storageMaximum: 0,
          storageAvailable: 0,
          storageScheduled: 0,
          storageReserved: 0,
        };
        for (const n of await ctx.reads.list('Node')) {
          for (const [name, spec] of Object.entries(n.spec.disks)) {
            const st = n.status.diskStatus[name];
            sum.disks += 1;
            sum.storageReserved += spec.storageReserved;
            sum.storageMaximum += st?.storageMaximum ?? 0;
            sum.storageAvailable += st?.storageAvailable ?? 0;
            sum.storageScheduled += st?.storageScheduled ?? 0;
          }
        }
        return sum;
      },
    }),
    volumes: t.field({
      type: VolumeCountsRef,
      resolve: async (_c, _args, ctx) => {
        const vols = await ctx.reads.list('Volume');
        return {
          total: vols.length,
          byState: countBy(vols, (v) => v.status.state, volumeState.options),
          byRobustness: countBy(vols, (v) => v.status.robustness, volumeRobustness.options),
          size: vols.reduce((s, v) => s + v.spec.size, 0),
          actualSize: vols.reduce((s, v) => s + v.status.actualSize, 0),
        };
      },
    }),
    nodes: t.field({
      type: NodeCountsRef,
      resolve: async (_c, _args, ctx) => {
        const nodes = await ctx.reads.list('Node');
        const ready = (s: string) => nodes.filter((n) => conditionStatus(n.status.conditions, 'Ready') === s).length;
        const byCondition = new Map<string, ConditionCountView>();
        for (const n of nodes) {
          for (const c of n.status.conditions) {
            const key = `${c.type}/${c.status}`;
            const e = byCondition.get(key) ?? { type: c.type, status: c.status, count: 0 };
            e.count += 1;
            byCondition.set(key, e);
          }
        }
        return {
          total: nodes.length,
          ready: ready('True'),
          notReady: ready('False'),
          unknown: ready('Unknown'),
          byCondition: [...byCondition.values()].sort(
            (a, b) => a.type.localeCompare(b.type) || a.status.localeCompare(b.status),
          ),
        };
      },
    }),
    replicas: t.field({
      type: ReplicaCountsRef,
      resolve: async (_c, _args, ctx) => {
        const replicas = await ctx.reads.list('Replica');
        return {
          total: replicas.length,
          failed: replicas.filter((r) => r.spec.failedAt !== '').length,
          byState: countBy(replicas, (r) => r.status.currentState, instanceState.options),
        };
      },
    }),
  }),
});

builder.queryField('cluster', (t) => t.field({ type: ClusterRef, authScopes: { viewer: true }, resolve: () => ({}) }));
