import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Placement,
  type SchedulingInput,
  type SchedulingSettings,
  scheduleReplica,
  scheduleReplicas,
  schedulingSettingsFrom,
  volumeSchedulingProblem,
} from '../../controllers/scheduler/replica-scheduler.js';
import { isConditionTrue } from '../../model/conditions.js';
import type { Condition } from '../../model/meta.js';
import { type Node, nodeSchema } from '../../model/node.js';
import { type Replica, replicaSchema } from '../../model/replica.js';
import { type Volume, type VolumeSpec, volumeSchema } from '../../model/volume.js';

const GiB = 1024 ** 3;
const DEFAULTS = schedulingSettingsFrom({});

// ---- fixture builders -------------------------------------------------------------------------------

function cond(type: string, ok: boolean, reason = ''): Condition {
  return { type, status: ok ? 'True' : 'False', reason, message: '', lastProbeTime: '', lastTransitionTime: '' };
}

interface DiskOpts {
  name?: string;
  /** GiB, like the other sizes here. */
  max?: number;
  available?: number;
  scheduled?: number;
  reserved?: number;
  tags?: readonly string[];
  ready?: boolean;
  schedulable?: boolean;
  allowScheduling?: boolean;
  evictionRequested?: boolean;
  /** false = the node controller has not reported this disk yet. */
  reported?: boolean;
}

interface NodeOpts {
  zone?: string;
  tags?: readonly string[];
  ready?: boolean;
  schedulable?: boolean;
  allowScheduling?: boolean;
  evictionRequested?: boolean;
  deleting?: boolean;
  disks?: DiskOpts[];
}

const uuid = (node: string, disk = 'disk-0') => `${node}-${disk}-uuid`;

function node(name: string, o: NodeOpts = {}): Node {
  const disks = o.disks ?? [{}];
  const spec: Record<string, unknown> = {};
  const status: Record<string, unknown> = {};
  disks.forEach((d, i) => {
    const dn = d.name ?? `disk-${i}`;
    spec[dn] = {
      path: `/data/${dn}`,
      allowScheduling: d.allowScheduling ?? true,
      evictionRequested: d.evictionRequested ?? false,
      storageReserved: (d.reserved ?? 0) * GiB,
      tags: d.tags ?? [],
    };
    if (d.reported === false) return;
    const max = d.max ?? 100;
    status[dn] = {
      conditions: [
        cond('Ready', d.ready ?? true, 'DiskNotReady'),
        cond('Schedulable', d.schedulable ?? true, 'DiskPressure'),
      ],
      storageMaximum: max * GiB,
      storageAvailable: (d.available ?? max) * GiB,
      storageScheduled: (d.scheduled ?? 0) * GiB,
      diskUUID: uuid(name, dn),
      diskName: dn,
      diskPath: `/data/${dn}`,
    };
  });
  return nodeSchema.parse({
    metadata: { name, ...(o.deleting ? { deletionTimestamp: '2024-01-01T00:00:00Z' } : {}) },
    spec: {
      disks: spec,
      allowScheduling: o.allowScheduling ?? true,
      evictionRequested: o.evictionRequested ?? false,
      tags: o.tags ?? [],
    },
    status: {
      conditions: [
        cond('Ready', o.ready ?? true, 'KubernetesNodeNotReady'),
        cond('Schedulable', o.schedulable ?? true, 'KubernetesNodeCordoned'),
      ],
      diskStatus: status,
      zone: o.zone ?? '',
    },
  });
}

function volume(o: Partial<VolumeSpec> & { sizeGiB?: number; actualGiB?: number } = {}): Volume {
  const { sizeGiB = 10, actualGiB = 0, ...spec } = o;
  return volumeSchema.parse({
    metadata: { name: 'vol' },
    spec: { size: sizeGiB * GiB, numberOfReplicas: 3, ...spec },
    status: { actualSize: actualGiB * GiB },
  });
}

interface ReplicaOpts {
  node?: string;
  disk?: string;
  failed?: boolean;
  /** Defaults to true for a replica on a node: it was healthy once. */
  wasHealthy?: boolean;
  evicting?: boolean;
  deleting?: boolean;
  hardNodeAffinity?: string;
}

let replicaSeq = 0;
function replica(o: ReplicaOpts = {}): Replica {
  const placed = o.node !== undefined;
  return replicaSchema.parse({
    metadata: {
      name: `vol-r-${replicaSeq++}`,
      ...(o.deleting ? { deletionTimestamp: '2024-01-01T00:00:00Z' } : {}),
    },
    spec: {
      volumeName: 'vol',
      nodeID: o.node ?? '',
      diskID: placed ? uuid(o.node ?? '', o.disk) : '',
      healthyAt: (o.wasHealthy ?? placed) ? '2024-01-01T00:00:00Z' : '',
      failedAt: o.failed ? '2024-01-02T00:00:00Z' : '',
      evictionRequested: o.evicting ?? false,
      hardNodeAffinity: o.hardNodeAffinity ?? '',
    },
  });
}

function input(
  nodes: Node[],
  o: { replicas?: Replica[]; volume?: Volume; settings?: Partial<SchedulingSettings> } = {},
) {
  return {
    nodes,
    replicas: o.replicas ?? [],
    volume: o.volume ?? volume(),
    settings: { ...DEFAULTS, ...o.settings },
  } satisfies SchedulingInput;
}

const where = (p: Placement) => `${p.nodeID}/${p.diskName}`;
const three = (o: NodeOpts = {}) => [node('node-1', o), node('node-2', o), node('node-3', o)];

// ---- scheduleReplica: one case per rule ---------------------------------------------------------------

interface Case {
  name: string;
  nodes: Node[];
  replicas?: Replica[];
  volume?: Volume;
  settings?: Partial<SchedulingSettings>;
  replica?: Replica;
  pending?: Placement[];
  /** "node/disk" for a placement, or a pattern the failure reason must match. */
  want: string | RegExp;
}

const soft = { replicaSoftAntiAffinity: true };
const pendingOn = (n: string, d = 'disk-0'): Placement => ({
  nodeID: n,
  diskName: d,
  diskID: uuid(n, d),
  diskPath: `/data/${d}`,
});

const cases: Case[] = [
  // balance
  {
    name: 'balance: the node with the most usable storage',
    nodes: [node('node-1', { disks: [{ available: 50 }] }), node('node-2', { disks: [{ available: 80 }] })],
    want: 'node-2/disk-0',
  },
  { name: 'balance: ties go by name', nodes: [node('node-b'), node('node-a')], want: 'node-a/disk-0' },
  {
    name: 'balance: usable subtracts reserved and scheduled',
    nodes: [node('node-1', { disks: [{ reserved: 30 }] }), node('node-2', { disks: [{ scheduled: 20 }] })],
    want: 'node-2/disk-0',
  },
  {
    name: 'balance: within the node, the disk with the most usable storage',
    nodes: [node('node-1', { disks: [{ available: 40 }, { available: 90 }] })],
    want: 'node-1/disk-1',
  },
  // node anti-affinity
  {
    name: 'node hard: skips the node holding a replica even with more room',
    nodes: [node('node-1', { disks: [{ max: 500 }] }), node('node-2')],
    replicas: [replica({ node: 'node-1' })],
    want: 'node-2/disk-0',
  },
  {
    name: 'node hard: every node used fails, naming the nodes',
    nodes: [node('node-1'), node('node-2')],
    replicas: [replica({ node: 'node-1' }), replica({ node: 'node-2' })],
    want: /hard node anti-affinity: every node with room already holds a replica of this volume \(node-1, node-2\)/,
  },
  {
    name: 'node soft: a used node when nothing else is left',
    nodes: [node('node-1'), node('node-2', { disks: [{ max: 200 }] })],
    replicas: [replica({ node: 'node-1' }), replica({ node: 'node-2' })],
    settings: soft,
    want: 'node-2/disk-0',
  },
  {
    name: 'node soft: an unused node still beats more room on a used one',
    nodes: [node('node-1', { disks: [{ max: 500 }] }), node('node-2')],
    replicas: [replica({ node: 'node-1' })],
    settings: soft,
    want: 'node-2/disk-0',
  },
  {
    name: 'node: per-volume "enabled" overrides a hard setting',
    nodes: [node('node-1')],
    replicas: [replica({ node: 'node-1', disk: 'other' })],
    volume: volume({ replicaSoftAntiAffinity: 'enabled' }),
    want: 'node-1/disk-0',
  },
  {
    name: 'node: per-volume "disabled" overrides a soft setting',
    nodes: [node('node-1')],
    replicas: [replica({ node: 'node-1', disk: 'other' })],
    volume: volume({ replicaSoftAntiAffinity: 'disabled' }),
    settings: soft,
    want: /hard node anti-affinity/,
  },
  // zone anti-affinity
  {
    name: 'zone soft: an unused zone first, even with less room',
    nodes: [
      node('node-1', { zone: 'a' }),
      node('node-2', { zone: 'a', disks: [{ max: 500 }] }),
      node('node-3', { zone: 'b', disks: [{ max: 50 }] }),
    ],
    replicas: [replica({ node: 'node-1' })],
    want: 'node-3/disk-0',
  },
  {
    name: 'zone soft: an unused node in a used zone when zones run out',
    nodes: [node('node-1', { zone: 'a' }), node('node-2', { zone: 'a' }), node('node-3', { zone: 'b' })],
    replicas: [replica({ node: 'node-1' }), replica({ node: 'node-3' })],
    want: 'node-2/disk-0',
  },
  {
    name: 'zone hard: no unused zone fails, listing zones',
    nodes: [node('node-1', { zone: 'a' }), node('node-2', { zone: 'a' })],
    replicas: [replica({ node: 'node-1' })],
    settings: { replicaZoneSoftAntiAffinity: false },
    want: /hard zone anti-affinity: .*zone a: node-1, node-2/,
  },
  {
    name: 'zone hard: nodes without a zone label are one zone',
    nodes: three(),
    replicas: [replica({ node: 'node-1' })],
    settings: { replicaZoneSoftAntiAffinity: false },
    want: /hard zone anti-affinity: .*no zone: node-1, node-2, node-3.*without a zone label count as one zone/,
  },
  {
    name: 'zone soft without any labels is harmless: next unused node',
    nodes: three(),
    replicas: [replica({ node: 'node-1' })],
    want: 'node-2/disk-0',
  },
  {
    name: 'zone hard: a zone whose replicas are all being evicted counts as unused',
    nodes: [node('node-1', { zone: 'a' }), node('node-2', { zone: 'b' })],
    replicas: [replica({ node: 'node-1' }), replica({ node: 'node-2', evicting: true })],
    settings: { replicaZoneSoftAntiAffinity: false },
    want: 'node-2/disk-0',
  },
  {
    name: 'zone: per-volume "disabled" makes zone anti-affinity hard',
    nodes: [node('node-1', { zone: 'a' }), node('node-2', { zone: 'a' })],
    replicas: [replica({ node: 'node-1' })],
    volume: volume({ replicaZoneSoftAntiAffinity: 'disabled' }),
    want: /hard zone anti-affinity/,
  },
  // disk anti-affinity
  {
    name: 'disk soft: an unused disk first, even with less room',
    nodes: [node('node-1', { disks: [{ max: 500 }, { max: 50 }] })],
    replicas: [replica({ node: 'node-1', disk: 'disk-0' })],
    settings: soft,
    want: 'node-1/disk-1',
  },
  {
    name: 'disk soft: a used disk when nothing else is left',
    nodes: [node('node-1')],
    replicas: [replica({ node: 'node-1', disk: 'disk-0' })],
    settings: soft,
    want: 'node-1/disk-0',
  },
  {
    name: 'disk hard: every disk used fails',
    nodes: [node('node-1')],
    replicas: [replica({ node: 'node-1', disk: 'disk-0' })],
    settings: { ...soft, replicaDiskSoftAntiAffinity: false },
    want: /hard disk anti-affinity: every disk with room already holds a replica of this volume \(node-1\/disk-0\)/,
  },
  // which replicas hold a place
  {
    name: 'a failed replica that was healthy keeps its node (it may be reused)',
    nodes: [node('node-1', { disks: [{ max: 500 }] }), node('node-2')],
    replicas: [replica({ node: 'node-1', failed: true })],
    want: 'node-2/disk-0',
  },
  {
    name: 'a replica that failed before ever being healthy holds nothing',
    nodes: [node('node-1', { disks: [{ max: 500 }] }), node('node-2')],
    replicas: [replica({ node: 'node-1', failed: true, wasHealthy: false })],
    want: 'node-1/disk-0',
  },
  {
    name: 'a replica being deleted holds nothing',
    nodes: [node('node-1', { disks: [{ max: 500 }] }), node('node-2')],
    replicas: [replica({ node: 'node-1', deleting: true })],
    want: 'node-1/disk-0',
  },
  {
    name: 'node hard: a node with only evicting replicas is allowed',
    nodes: [node('node-1'), node('node-2')],
    replicas: [replica({ node: 'node-1' }), replica({ node: 'node-2', evicting: true })],
    want: 'node-2/disk-0',
  },
  {
    name: 'an unused node beats a node with only evicting replicas',
    nodes: [node('node-1'), node('node-2', { disks: [{ max: 500 }] }), node('node-3')],
    replicas: [replica({ node: 'node-1' }), replica({ node: 'node-2', evicting: true })],
    want: 'node-3/disk-0',
  },
  // capacity
  {
    name: 'over-provisioning 100%: scheduled + size must fit in maximum',
    nodes: [node('node-1', { disks: [{ scheduled: 95 }] })],
    want: /insufficient storage: volume needs 10 GiB, the best disk \(node-1\/disk-0\) can take 5 GiB/,
  },
  {
    name: 'over-provisioning 200%: the same disk takes it',
    nodes: [node('node-1', { disks: [{ scheduled: 95 }] })],
    settings: { storageOverProvisioningPercentage: 200 },
    want: 'node-1/disk-0',
  },
  {
    name: 'over-provisioning: exactly at the limit fits',
    nodes: [node('node-1', { disks: [{ scheduled: 90 }] })],
    want: 'node-1/disk-0',
  },
  {
    name: 'reserved space lowers the provisioning limit',
    nodes: [node('node-1', { disks: [{ reserved: 95 }] })],
    want: /insufficient storage: volume needs 10 GiB, .*can take 5 GiB/,
  },
  {
    name: 'reserved space: exactly at the limit fits',
    nodes: [node('node-1', { disks: [{ reserved: 90 }] })],
    want: 'node-1/disk-0',
  },
  {
    name: 'minimal available: actual data must leave more than 25% free',
    nodes: [node('node-1', { disks: [{ available: 30 }] })],
    volume: volume({ actualGiB: 6 }),
    want: /insufficient storage: .*node-1\/disk-0.*30 GiB of 100 GiB available.*storage-minimal-available-percentage 25%/,
  },
  {
    name: 'minimal available: just above the floor fits',
    nodes: [node('node-1', { disks: [{ available: 30 }] })],
    volume: volume({ actualGiB: 4 }),
    want: 'node-1/disk-0',
  },
  {
    name: 'minimal available 0%: any free byte is enough',
    nodes: [node('node-1', { disks: [{ available: 7 }] })],
    volume: volume({ actualGiB: 6 }),
    settings: { storageMinimalAvailablePercentage: 0 },
    want: 'node-1/disk-0',
  },
  {
    name: 'a disk below the minimal-available floor is skipped for a smaller one',
    nodes: [node('node-1', { disks: [{ max: 500, available: 120 }, { max: 20 }] })],
    want: 'node-1/disk-1',
  },
  // node tags
  {
    name: 'node selector: only nodes carrying every tag',
    nodes: [node('node-1', { tags: ['hdd'], disks: [{ max: 500 }] }), node('node-2', { tags: ['ssd', 'fast'] })],
    volume: volume({ nodeSelector: ['ssd'] }),
    want: 'node-2/disk-0',
  },
  {
    name: 'node selector: no node carries the tags',
    nodes: [node('node-1', { tags: ['hdd'] }), node('node-2', { tags: ['ssd'] })],
    volume: volume({ nodeSelector: ['ssd', 'fast'] }),
    want: /tags not fulfilled: no schedulable node carries the tags \[ssd, fast\] \(node-1: lacks tags \[ssd, fast\]; node-2: lacks tags \[fast\]\)/,
  },
  {
    name: 'empty node selector, allow-empty off: only untagged nodes',
    nodes: [node('node-1', { tags: ['ssd'], disks: [{ max: 500 }] }), node('node-2')],
    settings: { allowEmptyNodeSelectorVolume: false },
    want: 'node-2/disk-0',
  },
  {
    name: 'empty node selector, allow-empty off, all nodes tagged',
    nodes: [node('node-1', { tags: ['ssd'] })],
    settings: { allowEmptyNodeSelectorVolume: false },
    want: /tags not fulfilled: .*allow-empty-node-selector-volume is false/,
  },
  {
    name: 'empty node selector, allow-empty on: tagged nodes too',
    nodes: [node('node-1', { tags: ['ssd'], disks: [{ max: 500 }] }), node('node-2')],
    want: 'node-1/disk-0',
  },
  // disk tags
  {
    name: 'disk selector: only disks carrying every tag',
    nodes: [node('node-1', { disks: [{ max: 500 }, { tags: ['nvme'] }] })],
    volume: volume({ diskSelector: ['nvme'] }),
    want: 'node-1/disk-1',
  },
  {
    name: 'disk selector: no disk carries the tags',
    nodes: [node('node-1', { disks: [{ tags: ['hdd'] }] })],
    volume: volume({ diskSelector: ['nvme'] }),
    want: /tags not fulfilled: no schedulable disk carries the tags \[nvme\].*disk-0 lacks tags \[nvme\]/,
  },
  {
    name: 'empty disk selector, allow-empty off: only untagged disks',
    nodes: [node('node-1', { disks: [{ tags: ['nvme'], max: 500 }, {}] })],
    settings: { allowEmptyDiskSelectorVolume: false },
    want: 'node-1/disk-1',
  },
  {
    name: 'empty disk selector, allow-empty off, all disks tagged',
    nodes: [node('node-1', { disks: [{ tags: ['nvme'] }] })],
    settings: { allowEmptyDiskSelectorVolume: false },
    want: /tags not fulfilled: .*allow-empty-disk-selector-volume is false/,
  },
  // node state
  {
    name: 'node not Ready is skipped',
    nodes: [node('node-1', { ready: false, disks: [{ max: 500 }] }), node('node-2')],
    want: 'node-2/disk-0',
  },
  {
    name: 'no Ready node: nodes are unavailable, with the reason',
    nodes: [node('node-1', { ready: false }), node('node-2', { schedulable: false })],
    want: /nodes are unavailable: node-1: not Ready \(KubernetesNodeNotReady\); node-2: not Schedulable \(KubernetesNodeCordoned\)/,
  },
  {
    name: 'node allowScheduling false is skipped',
    nodes: [node('node-1', { allowScheduling: false, disks: [{ max: 500 }] }), node('node-2')],
    want: 'node-2/disk-0',
  },
  {
    name: 'node eviction requested is skipped',
    nodes: [node('node-1', { evictionRequested: true, disks: [{ max: 500 }] }), node('node-2')],
    want: 'node-2/disk-0',
  },
  {
    name: 'node being deleted is skipped',
    nodes: [node('node-1', { deleting: true, disks: [{ max: 500 }] }), node('node-2')],
    want: 'node-2/disk-0',
  },
  {
    name: 'the cluster has no nodes',
    nodes: [],
    want: /nodes are unavailable: the cluster has no nodes/,
  },
  // disk state
  {
    name: 'disk Ready False is skipped',
    nodes: [node('node-1', { disks: [{ ready: false, max: 500 }, {}] })],
    want: 'node-1/disk-1',
  },
  {
    name: 'disk Schedulable False: disks are unavailable',
    nodes: [node('node-1', { disks: [{ schedulable: false }] })],
    want: /disks are unavailable: node-1: disks disk-0 not Schedulable \(DiskPressure\)/,
  },
  {
    name: 'disk allowScheduling false is skipped',
    nodes: [node('node-1', { disks: [{ allowScheduling: false, max: 500 }, {}] })],
    want: 'node-1/disk-1',
  },
  {
    name: 'disk eviction requested is skipped',
    nodes: [node('node-1', { disks: [{ evictionRequested: true, max: 500 }, {}] })],
    want: 'node-1/disk-1',
  },
  {
    name: 'a disk not yet reported is not Ready',
    nodes: [node('node-1', { disks: [{ reported: false }] })],
    want: /disks are unavailable: node-1: disks disk-0 not Ready/,
  },
  // required node
  {
    name: 'hardNodeAffinity: that node, even with less room',
    nodes: [node('node-1', { disks: [{ max: 500 }] }), node('node-2')],
    replica: replica({ hardNodeAffinity: 'node-2' }),
    want: 'node-2/disk-0',
  },
  {
    name: 'hardNodeAffinity to a node that is not Ready',
    nodes: [node('node-1'), node('node-2', { ready: false })],
    replica: replica({ hardNodeAffinity: 'node-2' }),
    want: /hard affinity cannot be satisfied: node-2 is not schedulable \(not Ready/,
  },
  {
    name: 'hardNodeAffinity to a missing node',
    nodes: [node('node-1')],
    replica: replica({ hardNodeAffinity: 'node-9' }),
    want: /hard affinity cannot be satisfied: node node-9 not found/,
  },
  {
    name: 'hardNodeAffinity to a full node keeps the storage words',
    nodes: [node('node-1'), node('node-2', { disks: [{ scheduled: 100 }] })],
    replica: replica({ hardNodeAffinity: 'node-2' }),
    want: /hard affinity cannot be satisfied: insufficient storage/,
  },
  {
    name: 'hardNodeAffinity still honours hard node anti-affinity',
    nodes: [node('node-1'), node('node-2')],
    replicas: [replica({ node: 'node-2' })],
    replica: replica({ hardNodeAffinity: 'node-2' }),
    want: /hard affinity cannot be satisfied: hard node anti-affinity/,
  },
  {
    name: 'strict-local: only the volume node',
    nodes: [node('node-1', { disks: [{ max: 500 }] }), node('node-2')],
    volume: volume({ dataLocality: 'strict-local', nodeID: 'node-2', numberOfReplicas: 1 }),
    want: 'node-2/disk-0',
  },
  {
    name: 'strict-local: volume node not schedulable',
    nodes: [node('node-1'), node('node-2', { allowScheduling: false })],
    volume: volume({ dataLocality: 'strict-local', nodeID: 'node-2', numberOfReplicas: 1 }),
    want: /strict-local data locality keeps replicas on node-2: node-2 is not schedulable \(scheduling disabled\)/,
  },
  {
    name: 'best-effort: the volume node first while it has no replica',
    nodes: [node('node-1', { disks: [{ max: 500 }] }), node('node-2')],
    volume: volume({ dataLocality: 'best-effort', nodeID: 'node-2' }),
    want: 'node-2/disk-0',
  },
  {
    name: 'best-effort: balance again once the volume node has a replica',
    nodes: [node('node-1', { disks: [{ max: 500 }] }), node('node-2'), node('node-3')],
    replicas: [replica({ node: 'node-2' })],
    volume: volume({ dataLocality: 'best-effort', nodeID: 'node-2' }),
    want: 'node-1/disk-0',
  },
  // pending placements of this cycle
  {
    name: 'pending: a node decided this cycle is used',
    nodes: [node('node-1', { disks: [{ max: 500 }] }), node('node-2')],
    pending: [pendingOn('node-1')],
    want: 'node-2/disk-0',
  },
  {
    name: 'pending: sizes add to scheduled storage',
    nodes: [node('node-1', { disks: [{ scheduled: 50 }] })],
    volume: volume({ sizeGiB: 30 }),
    pending: [pendingOn('node-1')],
    settings: soft,
    want: /insufficient storage: volume needs 30 GiB, the best disk \(node-1\/disk-0\) can take 20 GiB/,
  },
  {
    name: 'pending: sizes count on their own disk only',
    nodes: [node('node-1', { disks: [{ scheduled: 60 }, { scheduled: 75 }] })],
    volume: volume({ sizeGiB: 30 }),
    pending: [pendingOn('node-1', 'disk-0')],
    settings: soft,
    want: /insufficient storage: volume needs 30 GiB, the best disk \(node-1\/disk-1\) can take 25 GiB/,
  },
  // the replica itself
  {
    name: 'an already scheduled replica is refused',
    nodes: [node('node-1')],
    replica: replica({ node: 'node-1' }),
    want: /already scheduled to node node-1/,
  },
  {
    name: 'a replica that failed before ever being healthy is not scheduled',
    nodes: [node('node-1')],
    replica: replica({ failed: true, wasHealthy: false }),
    want: /failed before it was ever healthy/,
  },
];

describe('scheduleReplica', () => {
  it.each(cases)('$name', (c) => {
    const r = c.replica ?? replica();
    const inp = input(c.nodes, c);
    const result = scheduleReplica(r, { ...inp, replicas: [...inp.replicas, r] }, c.pending);
    if (typeof c.want === 'string') {
      expect(result.ok ? where(result.placement) : result.reason).toBe(c.want);
    } else {
      expect(result.ok ? `placed on ${where(result.placement)}` : result.reason).toMatch(c.want);
    }
  });

  it('fills diskID with the disk UUID and diskPath from the disk status', () => {
    const result = scheduleReplica(replica(), input([node('node-1')]));
    expect(result).toEqual({
      ok: true,
      placement: { nodeID: 'node-1', diskName: 'disk-0', diskID: uuid('node-1'), diskPath: '/data/disk-0' },
    });
  });

  it('accepts the replica being placed among input.replicas (the volume controller passes them all)', () => {
    const r = replica();
    expect(scheduleReplica(r, input([node('node-1')], { replicas: [r] })).ok).toBe(true);
  });
});

// ---- scheduleReplicas: several in one cycle --------------------------------------------------------

describe('scheduleReplicas', () => {
  it('spreads three replicas over three nodes', () => {
    const { placements, reason } = scheduleReplicas(3, input(three()));
    expect(reason).toBeUndefined();
    expect(placements.map((p) => p.nodeID).sort()).toEqual(['node-1', 'node-2', 'node-3']);
  });

  it('stops with a reason when hard node anti-affinity runs out of nodes', () => {
    const { placements, reason } = scheduleReplicas(3, input([node('node-1'), node('node-2')]));
    expect(placements).toHaveLength(2);
    expect(reason).toMatch(/hard node anti-affinity/);
  });

  it('with soft node anti-affinity, puts the third on a used node and an unused disk', () => {
    const nodes = [node('node-1', { disks: [{}, {}] }), node('node-2')];
    const { placements } = scheduleReplicas(3, input(nodes, { settings: soft }));
    expect(placements.map(where).sort()).toEqual(['node-1/disk-0', 'node-1/disk-1', 'node-2/disk-0']);
  });

  it('adds each placement to the disk it lands on', () => {
    const { placements, reason } = scheduleReplicas(
      3,
      input([node('node-1')], { volume: volume({ sizeGiB: 40 }), settings: soft }),
    );
    expect(placements).toHaveLength(2);
    expect(reason).toMatch(/insufficient storage: volume needs 40 GiB, .*can take 20 GiB/);
  });

  it('uses every zone before doubling up in one', () => {
    const nodes = [
      node('node-1', { zone: 'a', disks: [{ max: 500 }] }),
      node('node-2', { zone: 'a', disks: [{ max: 400 }] }),
      node('node-3', { zone: 'b' }),
    ];
    const { placements } = scheduleReplicas(2, input(nodes));
    expect(placements.map((p) => p.nodeID)).toEqual(['node-1', 'node-3']);
  });

  it('keeps strict-local volumes on their node', () => {
    const nodes = [node('node-1', { disks: [{ max: 500 }] }), node('node-2')];
    const vol = volume({ dataLocality: 'strict-local', nodeID: 'node-2', numberOfReplicas: 1 });
    expect(scheduleReplicas(1, input(nodes, { volume: vol })).placements.map((p) => p.nodeID)).toEqual(['node-2']);
  });
});

// ---- volumeSchedulingProblem: messages a person can act on ----------------------------------------

describe('volumeSchedulingProblem', () => {
  const problemCases: {
    name: string;
    nodes: Node[];
    replicas?: Replica[];
    volume?: Volume;
    settings?: Partial<SchedulingSettings>;
    want: RegExp[] | undefined;
  }[] = [
    { name: 'all replicas fit', nodes: three(), want: undefined },
    {
      name: 'hard node anti-affinity, too few schedulable nodes',
      nodes: [node('node-1'), node('node-2'), node('node-3', { ready: false })],
      want: [
        /^3 replicas need 3 nodes with hard node anti-affinity; 2 are schedulable/,
        /node-3: not Ready \(KubernetesNodeNotReady\)/,
      ],
    },
    {
      name: 'soft node anti-affinity fits on fewer nodes',
      nodes: [node('node-1'), node('node-2')],
      settings: soft,
      want: undefined,
    },
    {
      name: 'hard zone anti-affinity, too few zones',
      nodes: [node('node-1', { zone: 'a' }), node('node-2', { zone: 'b' }), node('node-3', { zone: 'b' })],
      settings: { replicaZoneSoftAntiAffinity: false },
      want: [/^3 replicas need 3 zones with hard zone anti-affinity; schedulable nodes are in 2 \(zone a, zone b/],
    },
    {
      name: 'insufficient storage names the size and the best disk',
      nodes: three(),
      volume: volume({ sizeGiB: 200 }),
      want: [
        /^replica 1 of 3 cannot be placed: insufficient storage: volume needs 200 GiB, the best disk \(node-1\/disk-0\) can take 100 GiB/,
      ],
    },
    {
      name: 'node tags nobody carries',
      nodes: three({ tags: ['hdd'] }),
      settings: soft,
      volume: volume({ nodeSelector: ['ssd'] }),
      want: [/tags not fulfilled: no schedulable node carries the tags \[ssd\]/],
    },
    {
      name: 'existing replicas count toward numberOfReplicas',
      nodes: three(),
      replicas: [replica({ node: 'node-1' }), replica({ node: 'node-2' })],
      want: undefined,
    },
    {
      name: 'evicting replicas do not count toward numberOfReplicas',
      nodes: [node('node-1'), node('node-2'), node('node-3', { evictionRequested: true })],
      replicas: [replica({ node: 'node-1' }), replica({ node: 'node-2' }), replica({ node: 'node-3', evicting: true })],
      want: [/3 replicas need 3 nodes .*2 are schedulable.*node-3: eviction requested/],
    },
    {
      name: 'the third replica cannot fit after the first two take the room',
      nodes: [node('node-1', { disks: [{}, {}] })],
      volume: volume({ sizeGiB: 60 }),
      settings: soft,
      want: [/^replica 3 of 3 cannot be placed: insufficient storage: volume needs 60 GiB/],
    },
  ];

  it.each(problemCases)('$name', (c) => {
    const problem = volumeSchedulingProblem(input(c.nodes, c));
    if (c.want === undefined) {
      expect(problem).toBeUndefined();
    } else {
      for (const re of c.want) expect(problem).toMatch(re);
    }
  });
});

// ---- settings -------------------------------------------------------------------------------------

describe('schedulingSettingsFrom', () => {
  it('takes defaults from the setting definitions', () => {
    expect(schedulingSettingsFrom({})).toEqual({
      replicaSoftAntiAffinity: false,
      replicaZoneSoftAntiAffinity: true,
      replicaDiskSoftAntiAffinity: true,
      storageOverProvisioningPercentage: 100,
      storageMinimalAvailablePercentage: 25,
      allowEmptyNodeSelectorVolume: true,
      allowEmptyDiskSelectorVolume: true,
    });
  });

  it('reads values by Longhorn name and ignores invalid ones', () => {
    const s = schedulingSettingsFrom({
      'replica-soft-anti-affinity': 'true',
      'storage-over-provisioning-percentage': '250',
      'storage-minimal-available-percentage': 'lots',
      'allow-empty-disk-selector-volume': 'false',
    });
    expect(s).toMatchObject({
      replicaSoftAntiAffinity: true,
      storageOverProvisioningPercentage: 250,
      storageMinimalAvailablePercentage: 25,
      allowEmptyDiskSelectorVolume: false,
    });
  });
});

// ---- property: every placement obeys the hard rules ---------------------------------------------

/**
 * An independent statement of the hard rules (not the scheduler's helpers), checking placement i
 * against the existing replicas and placements 0..i-1. Returns what is wrong, or undefined.
 */
function hardRuleViolation(inp: SchedulingInput, before: readonly Placement[], p: Placement): string | undefined {
  const { volume: vol, settings: s } = inp;
  const soft = (o: string, d: boolean) => (o === 'ignored' ? d : o === 'enabled');
  const n = inp.nodes.find((x) => x.metadata.name === p.nodeID);
  if (!n) return 'unknown node';
  if (n.metadata.deletionTimestamp || !n.spec.allowScheduling || n.spec.evictionRequested) return 'node flags';
  if (!isConditionTrue(n.status.conditions, 'Ready') || !isConditionTrue(n.status.conditions, 'Schedulable')) {
    return 'node conditions';
  }
  const tagsOk = (tags: string[], sel: string[], allowEmpty: boolean) =>
    sel.length === 0 ? allowEmpty || tags.length === 0 : sel.every((t) => tags.includes(t));
  if (!tagsOk(n.spec.tags, vol.spec.nodeSelector, s.allowEmptyNodeSelectorVolume)) return 'node tags';
  const ds = n.spec.disks[p.diskName];
  const st = n.status.diskStatus[p.diskName];
  if (!ds || !st || st.diskUUID !== p.diskID) return 'unknown disk';
  if (!ds.allowScheduling || ds.evictionRequested) return 'disk flags';
  if (!isConditionTrue(st.conditions, 'Ready') || !isConditionTrue(st.conditions, 'Schedulable')) {
    return 'disk conditions';
  }
  if (!tagsOk(ds.tags, vol.spec.diskSelector, s.allowEmptyDiskSelectorVolume)) return 'disk tags';
  if (
    !(st.storageAvailable - vol.status.actualSize > (st.storageMaximum * s.storageMinimalAvailablePercentage) / 100)
  ) {
    return 'minimal available';
  }
  const sameDisk = before.filter((b) => b.diskID === p.diskID).length;
  const limit = ((st.storageMaximum - ds.storageReserved) * s.storageOverProvisioningPercentage) / 100;
  if (vol.spec.size * (1 + sameDisk) + st.storageScheduled > limit) return 'over-provisioning';

  const holders = [
    ...inp.replicas
      .filter((r) => r.spec.nodeID !== '' && !r.metadata.deletionTimestamp && !r.spec.evictionRequested)
      .filter((r) => !(r.spec.failedAt !== '' && r.spec.healthyAt === ''))
      .map((r) => ({ nodeID: r.spec.nodeID, diskID: r.spec.diskID })),
    ...before,
  ];
  const zoneOf = (id: string) => inp.nodes.find((x) => x.metadata.name === id)?.status.zone;
  if (
    !soft(vol.spec.replicaSoftAntiAffinity, s.replicaSoftAntiAffinity) &&
    holders.some((h) => h.nodeID === p.nodeID)
  ) {
    return 'hard node anti-affinity';
  }
  if (
    !soft(vol.spec.replicaZoneSoftAntiAffinity, s.replicaZoneSoftAntiAffinity) &&
    holders.some((h) => zoneOf(h.nodeID) === n.status.zone)
  ) {
    return 'hard zone anti-affinity';
  }
  if (
    !soft(vol.spec.replicaDiskSoftAntiAffinity, s.replicaDiskSoftAntiAffinity) &&
    holders.some((h) => h.diskID === p.diskID)
  ) {
    return 'hard disk anti-affinity';
  }
  return undefined;
}

// Mostly healthy clusters with a sprinkling of every way a node or disk can be unusable, so that
// runs both place replicas and run out of candidates.
const diskArb = fc.record({
  max: fc.constantFrom(20, 50, 100, 200),
  availablePercent: fc.integer({ min: 20, max: 100 }),
  scheduledPercent: fc.constantFrom(0, 0, 10, 30, 60, 90, 120),
  reserved: fc.integer({ min: 0, max: 20 }),
  tags: fc.constantFrom([], [], [], ['nvme'], ['hdd']),
  state: fc.constantFrom(...Array(12).fill('ok'), 'not-ready', 'pressure', 'disabled', 'evicting'),
});

const nodeArb = fc.record({
  zone: fc.constantFrom('', 'a', 'b', 'c'),
  tags: fc.constantFrom([], [], ['ssd'], ['ssd', 'fast']),
  state: fc.constantFrom(...Array(12).fill('ok'), 'not-ready', 'cordoned', 'disabled', 'evicting', 'deleting'),
  disks: fc.array(diskArb, { minLength: 1, maxLength: 3 }),
});

const overrideArb = fc.constantFrom('ignored', 'ignored', 'enabled', 'disabled') as fc.Arbitrary<
  'ignored' | 'enabled' | 'disabled'
>;

const clusterArb = fc.record({
  nodes: fc.array(nodeArb, { minLength: 2, maxLength: 6 }),
  sizeGiB: fc.integer({ min: 1, max: 40 }),
  actualGiB: fc.integer({ min: 0, max: 20 }),
  nodeSelector: fc.constantFrom([], [], [], ['ssd']),
  diskSelector: fc.constantFrom([], [], [], ['nvme']),
  overrides: fc.tuple(overrideArb, overrideArb, overrideArb),
  settings: fc.record({
    replicaSoftAntiAffinity: fc.boolean(),
    replicaZoneSoftAntiAffinity: fc.boolean(),
    replicaDiskSoftAntiAffinity: fc.boolean(),
    storageOverProvisioningPercentage: fc.constantFrom(0, 50, 100, 100, 200, 500),
    storageMinimalAvailablePercentage: fc.constantFrom(0, 10, 25, 25, 50),
    allowEmptyNodeSelectorVolume: fc.constantFrom(true, true, false),
    allowEmptyDiskSelectorVolume: fc.constantFrom(true, true, false),
  }),
  replicas: fc.array(
    fc.record({
      nodeIndex: fc.nat(),
      diskIndex: fc.nat(),
      failed: fc.boolean(),
      wasHealthy: fc.boolean(),
      evicting: fc.constantFrom(false, false, true),
      deleting: fc.constantFrom(false, false, false, true),
    }),
    { maxLength: 3 },
  ),
  count: fc.integer({ min: 1, max: 5 }),
});

function buildCluster(c: typeof clusterArb extends fc.Arbitrary<infer T> ? T : never): SchedulingInput {
  const nodes = c.nodes.map((n, i) =>
    node(`node-${i}`, {
      zone: n.zone,
      tags: n.tags,
      ready: n.state !== 'not-ready',
      schedulable: n.state !== 'cordoned',
      allowScheduling: n.state !== 'disabled',
      evictionRequested: n.state === 'evicting',
      deleting: n.state === 'deleting',
      disks: n.disks.map((d) => ({
        max: d.max,
        available: Math.floor((d.max * d.availablePercent) / 100),
        scheduled: Math.floor((d.max * d.scheduledPercent) / 100),
        reserved: d.reserved,
        tags: d.tags,
        ready: d.state !== 'not-ready',
        schedulable: d.state !== 'pressure',
        allowScheduling: d.state !== 'disabled',
        evictionRequested: d.state === 'evicting',
      })),
    }),
  );
  const replicas = c.replicas.map((r) => {
    const n = c.nodes[r.nodeIndex % c.nodes.length]!;
    const disk = `disk-${r.diskIndex % n.disks.length}`;
    return replica({ ...r, node: `node-${r.nodeIndex % c.nodes.length}`, disk });
  });
  const [nodeO, zoneO, diskO] = c.overrides;
  const vol = volume({
    sizeGiB: c.sizeGiB,
    actualGiB: Math.min(c.actualGiB, c.sizeGiB),
    nodeSelector: [...c.nodeSelector],
    diskSelector: [...c.diskSelector],
    replicaSoftAntiAffinity: nodeO,
    replicaZoneSoftAntiAffinity: zoneO,
    replicaDiskSoftAntiAffinity: diskO,
  });
  return { nodes, replicas, volume: vol, settings: c.settings };
}

describe('scheduleReplicas property', () => {
  it('every placement obeys capacity, tags and hard anti-affinity; it stops only when nothing else would', () => {
    let runsThatPlaced = 0;
    fc.assert(
      fc.property(clusterArb, (c) => {
        const inp = buildCluster(c);
        const { placements, reason } = scheduleReplicas(c.count, inp);
        if (placements.length > 0) runsThatPlaced++;
        placements.forEach((p, i) => {
          expect(hardRuleViolation(inp, placements.slice(0, i), p), `placement ${i} ${where(p)}`).toBeUndefined();
        });
        if (placements.length < c.count) {
          expect(reason).toBeTruthy();
          // Completeness: no disk anywhere would have been a legal next placement.
          for (const n of inp.nodes) {
            for (const [diskName, st] of Object.entries(n.status.diskStatus)) {
              const p = { nodeID: n.metadata.name, diskName, diskID: st.diskUUID, diskPath: st.diskPath };
              expect(hardRuleViolation(inp, placements, p), `${where(p)} was legal: ${reason}`).toBeDefined();
            }
          }
        } else {
          expect(reason).toBeUndefined();
        }
      }),
      { numRuns: 500 },
    );
    // A generator that never yields a schedulable cluster would make the property pass vacuously.
    expect(runsThatPlaced).toBeGreaterThan(100);
  });

  it('the rule checker itself catches a broken placement', () => {
    const inp = input([node('node-1'), node('node-2', { disks: [{ scheduled: 95 }] })], {
      replicas: [replica({ node: 'node-1' })],
    });
    expect(hardRuleViolation(inp, [], pendingOn('node-1'))).toBe('hard node anti-affinity');
    expect(hardRuleViolation(inp, [], pendingOn('node-2'))).toBe('over-provisioning');
    expect(
      hardRuleViolation(
        input([node('node-1', { tags: ['x'] })], { volume: volume({ nodeSelector: ['y'] }) }),
        [],
        pendingOn('node-1'),
      ),
    ).toBe('node tags');
  });
});
