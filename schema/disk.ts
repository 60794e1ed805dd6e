// Disk: one filesystem of a node that holds replicas, with what it can take (spec) and what it has (status).
import { type DiskSpec, type DiskStatus, diskStatus, type Node } from '../model/node.js';
import { replicasOfDisk } from '../resolvers/graph-reads.js';
import { builder } from './builder.js';
import { ConditionRef } from './condition.js';
import { NodeRef } from './node.js';
import { ReplicaRef } from './replica.js';

export interface DiskView {
  node: Node;
  name: string;
  spec: DiskSpec;
  /** As the node controller measured it; all zero until it has. */
  status: DiskStatus;
}

const UNMEASURED: DiskStatus = diskStatus.parse({});

/** The node's disks in name order. */
export function disksOf(node: Node): DiskView[] {
  return Object.entries(node.spec.disks)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, spec]) => ({ node, name, spec, status: node.status.diskStatus[name] ?? UNMEASURED }));
}

export const DiskRef = builder.objectRef<DiskView>('Disk');

DiskRef.implement({
  description: 'A disk (filesystem path) of a node that replicas are scheduled on',
  fields: (t) => ({
    name: t.string({ resolve: (d) => d.name }),
    path: t.string({ resolve: (d) => d.spec.path }),
    diskType: t.string({ resolve: (d) => d.spec.diskType }),
    allowScheduling: t.boolean({ resolve: (d) => d.spec.allowScheduling }),
    evictionRequested: t.boolean({ resolve: (d) => d.spec.evictionRequested }),
    storageReserved: t.field({ type: 'Bytes', resolve: (d) => d.spec.storageReserved }),
    tags: t.stringList({ resolve: (d) => d.spec.tags }),
    storageMaximum: t.field({ type: 'Bytes', resolve: (d) => d.status.storageMaximum }),
    storageAvailable: t.field({ type: 'Bytes', resolve: (d) => d.status.storageAvailable }),
    storageScheduled: t.field({
      type: 'Bytes',
      description: 'Sum of the sizes of the replicas scheduled here',
      resolve: (d) => d.status.storageScheduled,
    }),
    diskUUID: t.string({ resolve: (d) => d.status.diskUUID }),
    filesystemType: t.string({ resolve: (d) => d.status.filesystemType }),
    conditions: t.field({ type: [ConditionRef], resolve: (d) => d.status.conditions }),
    node: t.field({ type: NodeRef, resolve: (d) => d.node }),
    replicas: t.field({
      type: [ReplicaRef],
      description: 'Replicas placed on this disk',
      resolve: (d, _args, ctx) =>
        d.status.diskUUID ? replicasOfDisk(ctx.reads, d.node.metadata.name, d.status.diskUUID) : [],
    }),
  }),
});
