// Where this volume already has replicas, for anti-affinity (reference/longhorn-manager.md §3 step 5).
import type { Node } from '../../model/node.js';
import type { Replica } from '../../model/replica.js';

export interface PendingPlacement {
  nodeID: string;
  diskID: string;
}

export interface Occupancy {
  usedNodes: Set<string>;
  usedZones: Set<string>;
  /** diskUUIDs. */
  usedDisks: Set<string>;
  /** Nodes/zones whose only replicas of this volume are being evicted: they will be free soon. */
  evictingNodes: Set<string>;
  evictingZones: Set<string>;
}

/**
 * What a replica means for anti-affinity. One that failed before ever becoming healthy is never reused
 * (it will be cleaned up), so it holds nothing; one that failed after being healthy may come back and
 * keeps its place; one being evicted is leaving, so its place is only "soon free".
 */
export function replicaSlot(r: Replica): 'occupies' | 'evicting' | 'none' {
  if (r.spec.nodeID === '' || r.metadata.deletionTimestamp) return 'none';
  if (r.spec.failedAt !== '' && r.spec.healthyAt === '') return 'none';
  return r.spec.evictionRequested ? 'evicting' : 'occupies';
}

export function occupancyOf(
  replicas: readonly Replica[],
  pending: readonly PendingPlacement[],
  nodes: readonly Node[],
  exclude?: string,
): Occupancy {
  const zoneOf = new Map(nodes.map((n) => [n.metadata.name, n.status.zone]));
  const occ: Occupancy = {
    usedNodes: new Set(),
    usedZones: new Set(),
    usedDisks: new Set(),
    evictingNodes: new Set(),
    evictingZones: new Set(),
  };
  const use = (nodeID: string, diskID: string) => {
    occ.usedNodes.add(nodeID);
    if (diskID !== '') occ.usedDisks.add(diskID);
    // A replica on a node that no longer exists has no known zone; it still holds its node name.
    const zone = zoneOf.get(nodeID);
    if (zone !== undefined) occ.usedZones.add(zone);
  };
  for (const r of replicas) {
    if (r.metadata.name === exclude) continue;
    const slot = replicaSlot(r);
    if (slot === 'occupies') use(r.spec.nodeID, r.spec.diskID);
    if (slot === 'evicting') {
      occ.evictingNodes.add(r.spec.nodeID);
      const zone = zoneOf.get(r.spec.nodeID);
      if (zone !== undefined) occ.evictingZones.add(zone);
    }
  }
  for (const p of pending) use(p.nodeID, p.diskID);
  return occ;
}

/**
 * Longhorn's preference order as a rank (lower is better):
 * 0 unused node in a zone without replicas; 1 unused node in a zone whose replicas are all being evicted;
 * 2 unused node in a used zone; 3 node whose replicas are all being evicted, in a used zone; 4 used node.
 */
export function nodeRank(node: Node, occ: Occupancy): number {
  const name = node.metadata.name;
  if (occ.usedNodes.has(name)) return 4;
  if (occ.usedZones.has(node.status.zone)) return occ.evictingNodes.has(name) ? 3 : 2;
  return occ.evictingZones.has(node.status.zone) ? 1 : 0;
}

/** Worst rank hard anti-affinity allows: hard zone keeps to unused zones, hard node to unused nodes. */
export function maxAllowedRank(zoneSoft: boolean, nodeSoft: boolean): number {
  if (!zoneSoft) return 1;
  return nodeSoft ? 4 : 3;
}
