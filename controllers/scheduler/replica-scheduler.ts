// The replica scheduler: picks a node and disk for a replica from a snapshot of nodes, replicas and
// settings, with Longhorn's rules (reference/longhorn-manager.md §3). Pure: no store, no I/O, so every
// rule is a table-driven test and the volume controller only has to write the result.
//
// Zones: a node without a zone label is in the zone "" like any other (Longhorn does the same). With
// the default soft zone anti-affinity that is harmless: with no labels at all every node is in "",
// which is "used" after the first replica, and the next preference (an unused node) takes over. With
// hard zone anti-affinity and no labels only one replica fits; the messages say so.
import type { Node } from '../../model/node.js';
import type { Replica } from '../../model/replica.js';
import { SETTING_DEFINITIONS, type SettingName, settingValueProblem } from '../../model/setting-definitions.js';
import type { SettingOverride, Volume } from '../../model/volume.js';
import {
  type DiskCandidate,
  type EligibilityContext,
  evaluateNode,
  explainNoCandidates,
  zoneLabel,
} from './eligibility.js';
import { listSome } from './format.js';
import { maxAllowedRank, nodeRank, occupancyOf, replicaSlot } from './occupancy.js';

export interface SchedulingSettings {
  /** Node level; false = hard. */
  replicaSoftAntiAffinity: boolean;
  replicaZoneSoftAntiAffinity: boolean;
  replicaDiskSoftAntiAffinity: boolean;
  storageOverProvisioningPercentage: number;
  storageMinimalAvailablePercentage: number;
  allowEmptyNodeSelectorVolume: boolean;
  allowEmptyDiskSelectorVolume: boolean;
}

const SETTING_NAMES = {
  replicaSoftAntiAffinity: 'replica-soft-anti-affinity',
  replicaZoneSoftAntiAffinity: 'replica-zone-soft-anti-affinity',
  replicaDiskSoftAntiAffinity: 'replica-disk-soft-anti-affinity',
  storageOverProvisioningPercentage: 'storage-over-provisioning-percentage',
  storageMinimalAvailablePercentage: 'storage-minimal-available-percentage',
  allowEmptyNodeSelectorVolume: 'allow-empty-node-selector-volume',
  allowEmptyDiskSelectorVolume: 'allow-empty-disk-selector-volume',
} as const satisfies Record<keyof SchedulingSettings, SettingName>;

/**
 * Settings by Longhorn name → typed values. A missing or invalid value takes the default: the setting
 * controller rejects invalid writes, and scheduling must not stop because of one bad record.
 */
export function schedulingSettingsFrom(values: Record<string, string>): SchedulingSettings {
  const raw = (name: SettingName): string => {
    const v = values[name];
    return v !== undefined && settingValueProblem(name, v) === undefined ? v : SETTING_DEFINITIONS[name].default;
  };
  const bool = (key: keyof SchedulingSettings) => raw(SETTING_NAMES[key]) === 'true';
  const int = (key: keyof SchedulingSettings) => Number(raw(SETTING_NAMES[key]));
  return {
    replicaSoftAntiAffinity: bool('replicaSoftAntiAffinity'),
    replicaZoneSoftAntiAffinity: bool('replicaZoneSoftAntiAffinity'),
    replicaDiskSoftAntiAffinity: bool('replicaDiskSoftAntiAffinity'),
    storageOverProvisioningPercentage: int('storageOverProvisioningPercentage'),
    storageMinimalAvailablePercentage: int('storageMinimalAvailablePercentage'),
    allowEmptyNodeSelectorVolume: bool('allowEmptyNodeSelectorVolume'),
    allowEmptyDiskSelectorVolume: bool('allowEmptyDiskSelectorVolume'),
  };
}

export interface SchedulingInput {
  volume: Volume;
  /** All replicas of this volume: healthy, failed, being placed. */
  replicas: Replica[];
  /** Every node, with status.diskStatus and status.zone. */
  nodes: Node[];
  settings: SchedulingSettings;
}

export interface Placement {
  nodeID: string;
  diskName: string;
  /** The disk's UUID. */
  diskID: string;
  diskPath: string;
}

export type ScheduleResult = { ok: true; placement: Placement } | { ok: false; reason: string };

function soft(override: SettingOverride, setting: boolean): boolean {
  return override === 'ignored' ? setting : override === 'enabled';
}

function antiAffinity(input: SchedulingInput) {
  const { spec } = input.volume;
  const s = input.settings;
  return {
    nodeSoft: soft(spec.replicaSoftAntiAffinity, s.replicaSoftAntiAffinity),
    zoneSoft: soft(spec.replicaZoneSoftAntiAffinity, s.replicaZoneSoftAntiAffinity),
    diskSoft: soft(spec.replicaDiskSoftAntiAffinity, s.replicaDiskSoftAntiAffinity),
  };
}

function contextOf(input: SchedulingInput, pending: readonly Placement[]): EligibilityContext {
  const size = input.volume.spec.size;
  return {
    volume: input.volume,
    rules: input.settings,
    pendingBytes: (uuid) => pending.filter((p) => p.diskID === uuid).length * size,
  };
}

/** The node a replica must go to, if any: its hardNodeAffinity, or the volume's node under strict-local. */
function requiredNode(
  replica: Replica,
  volume: Volume,
): { nodeID: string; why: string } | { conflict: string } | undefined {
  const affinity = replica.spec.hardNodeAffinity;
  const local = volume.spec.dataLocality === 'strict-local' ? volume.spec.nodeID : '';
  if (affinity !== '' && local !== '' && affinity !== local) {
    return {
      conflict: `hard affinity cannot be satisfied: the replica must be on ${affinity} but strict-local data locality keeps volume ${volume.metadata.name} on ${local}`,
    };
  }
  if (affinity !== '') return { nodeID: affinity, why: 'hard affinity cannot be satisfied' };
  if (local !== '') return { nodeID: local, why: `strict-local data locality keeps replicas on ${local}` };
  return undefined;
}

function place(
  input: SchedulingInput,
  pending: readonly Placement[],
  required: { nodeID: string; why: string } | undefined,
  exclude?: string,
): ScheduleResult {
  const ctx = contextOf(input, pending);
  let nodes = input.nodes;
  if (required) {
    const node = nodes.find((n) => n.metadata.name === required.nodeID);
    if (!node) return { ok: false, reason: `${required.why}: node ${required.nodeID} not found` };
    nodes = [node];
  }
  const evals = nodes.map((n) => evaluateNode(n, ctx));
  const candidates = evals.flatMap((e) => (e.ok ? e.disks : []));
  if (candidates.length === 0) {
    const only = evals[0];
    if (!required) return { ok: false, reason: explainNoCandidates(evals, ctx) };
    // The node itself is the problem: say so; a disk problem keeps its usual words (e.g. "insufficient storage").
    if (only && !only.ok && (only.stage === 'node' || only.stage === 'node-tags')) {
      return { ok: false, reason: `${required.why}: ${required.nodeID} is not schedulable (${only.problem})` };
    }
    return { ok: false, reason: `${required.why}: ${explainNoCandidates(evals, ctx)}` };
  }

  const { nodeSoft, zoneSoft, diskSoft } = antiAffinity(input);
  const occ = occupancyOf(input.replicas, pending, input.nodes, exclude);
  const maxRank = maxAllowedRank(zoneSoft, nodeSoft);
  const rank = (c: DiskCandidate) => nodeRank(c.node, occ);
  const allowed = candidates.filter((c) => rank(c) <= maxRank);
  const prefix = required ? `${required.why}: ` : '';
  if (allowed.length === 0) {
    if (!zoneSoft) {
      const byZone = new Map<string, string[]>();
      for (const c of candidates) {
        const names = byZone.get(c.node.status.zone) ?? [];
        if (!names.includes(c.node.metadata.name)) names.push(c.node.metadata.name);
        byZone.set(c.node.status.zone, names);
      }
      const zones = [...byZone].map(([z, ns]) => `${zoneLabel(z)}: ${ns.join(', ')}`);
      return {
        ok: false,
        reason: `${prefix}hard zone anti-affinity: every zone with a node that has room already holds a replica of this volume (${listSome(zones)}); nodes without a zone label count as one zone`,
      };
    }
    const names = [...new Set(candidates.map((c) => c.node.metadata.name))];
    return {
      ok: false,
      reason: `${prefix}hard node anti-affinity: every node with room already holds a replica of this volume (${listSome(names, 6, ', ')})`,
    };
  }
  const diskFree = allowed.filter((c) => !occ.usedDisks.has(c.diskUUID));
  if (!diskSoft && diskFree.length === 0) {
    const disks = allowed.map((c) => `${c.node.metadata.name}/${c.diskName}`);
    return {
      ok: false,
      reason: `${prefix}hard disk anti-affinity: every disk with room already holds a replica of this volume (${listSome(disks, 6, ', ')})`,
    };
  }
  const pool = diskSoft ? allowed : diskFree;

  // Best-effort locality: the attach node first, unless it already holds a replica (step 6).
  const { dataLocality, nodeID: localNode } = input.volume.spec;
  const preferLocal = dataLocality === 'best-effort' && localNode !== '' && !occ.usedNodes.has(localNode);
  const nodeUsable = new Map<string, number>();
  for (const c of pool) nodeUsable.set(c.node.metadata.name, (nodeUsable.get(c.node.metadata.name) ?? 0) + c.usable);
  const key = (c: DiskCandidate): (number | string)[] => [
    preferLocal && c.node.metadata.name === localNode ? 0 : 1,
    rank(c),
    occ.usedDisks.has(c.diskUUID) ? 1 : 0,
    // Balance: the node with the most usable storage, then its disk with the most (step 7).
    -(nodeUsable.get(c.node.metadata.name) ?? 0),
    c.node.metadata.name,
    -c.usable,
    c.diskName,
  ];
  const best = pool.reduce((a, b) => (compareKeys(key(b), key(a)) < 0 ? b : a));
  return {
    ok: true,
    placement: {
      nodeID: best.node.metadata.name,
      diskName: best.diskName,
      diskID: best.diskUUID,
      diskPath: best.diskPath,
    },
  };
}

function compareKeys(a: readonly (number | string)[], b: readonly (number | string)[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x).localeCompare(String(y));
  }
  return 0;
}

/** Places one replica; `pending` = placements already decided in this cycle (they occupy node/zone/disk and add their size to storageScheduled). Honors replica.spec.hardNodeAffinity. */
export function scheduleReplica(replica: Replica, input: SchedulingInput, pending: Placement[] = []): ScheduleResult {
  const name = replica.metadata.name;
  if (replica.spec.nodeID !== '') {
    return { ok: false, reason: `replica ${name} is already scheduled to node ${replica.spec.nodeID}` };
  }
  // Longhorn never re-places a replica that failed before it was ever healthy: it holds no data worth keeping.
  if (replica.spec.failedAt !== '' && replica.spec.healthyAt === '') {
    return { ok: false, reason: `replica ${name} failed before it was ever healthy; it is not scheduled` };
  }
  const required = requiredNode(replica, input.volume);
  if (required && 'conflict' in required) return { ok: false, reason: required.conflict };
  return place(input, pending, required, name);
}

/** Places `count` new replicas one after another; returns the placements made and, if fewer than count, why the next one could not be placed. */
export function scheduleReplicas(count: number, input: SchedulingInput): { placements: Placement[]; reason?: string } {
  const placements: Placement[] = [];
  const { dataLocality, nodeID } = input.volume.spec;
  const required =
    dataLocality === 'strict-local' && nodeID !== ''
      ? { nodeID, why: `strict-local data locality keeps replicas on ${nodeID}` }
      : undefined;
  while (placements.length < count) {
    const result = place(input, placements, required);
    if (!result.ok) return { placements, reason: result.reason };
    placements.push(result.placement);
  }
  return { placements };
}

/** Pre-check for a volume about to be created or updated: undefined when its numberOfReplicas can all be placed, else a reason a person can act on. */
export function volumeSchedulingProblem(input: SchedulingInput): string | undefined {
  const wanted = input.volume.spec.numberOfReplicas;
  const existing = input.replicas.filter((r) => replicaSlot(r) === 'occupies').length;
  const { placements, reason } = scheduleReplicas(Math.max(0, wanted - existing), input);
  if (reason === undefined) return undefined;

  // Explain in numbers when the cluster shape, not momentary room, is the limit.
  const { nodeSoft, zoneSoft } = antiAffinity(input);
  const ctx = contextOf(input, []);
  const evals = input.nodes.map((n) => evaluateNode(n, ctx));
  const good = evals.filter((e) => e.ok).map((e) => e.node);
  const bad = listSome(evals.flatMap((e) => (e.ok ? [] : [`${e.node.metadata.name}: ${e.problem}`])));
  const why = bad === '' ? '' : ` (${bad})`;
  // With no usable node at all the scheduler's own reason ("insufficient storage", ...) says more.
  if (!nodeSoft && good.length > 0 && good.length < wanted) {
    return `${wanted} replicas need ${wanted} nodes with hard node anti-affinity; ${good.length} ${good.length === 1 ? 'is' : 'are'} schedulable${why}`;
  }
  const zones = new Set(good.map((n) => n.status.zone));
  if (!zoneSoft && zones.size > 0 && zones.size < wanted) {
    const names = [...zones].map(zoneLabel).join(', ');
    return `${wanted} replicas need ${wanted} zones with hard zone anti-affinity; schedulable nodes are in ${zones.size} (${names || 'none'}; nodes without a zone label count as one zone)${why}`;
  }
  return `replica ${existing + placements.length + 1} of ${wanted} cannot be placed: ${reason}`;
}
