// Which nodes and disks may take a replica of a volume, and, when one may not, why, in words a person
// can act on (reference/longhorn-manager.md §3 steps 1–4). Pure: everything comes in as arguments.
import { getCondition } from '../../model/conditions.js';
import type { Condition } from '../../model/meta.js';
import { type DiskSpec, type DiskStatus, diskStatus, type Node } from '../../model/node.js';
import type { Volume } from '../../model/volume.js';
import { formatBytes, listSome } from './format.js';

/** The knobs these checks need (a subset of SchedulingSettings, so tests and callers can pass either). */
export interface EligibilityRules {
  storageOverProvisioningPercentage: number;
  storageMinimalAvailablePercentage: number;
  allowEmptyNodeSelectorVolume: boolean;
  allowEmptyDiskSelectorVolume: boolean;
}

export interface EligibilityContext {
  volume: Volume;
  rules: EligibilityRules;
  /** Bytes already promised to a disk (by diskUUID) in this scheduling cycle. */
  pendingBytes: (diskUUID: string) => number;
}

/** A disk that passed every check and can take the replica. */
export interface DiskCandidate {
  node: Node;
  diskName: string;
  diskUUID: string;
  diskPath: string;
  /** available − reserved − scheduled − pending: what balancing compares. */
  usable: number;
}

/** How far down the pipeline a node got before it was ruled out; later stages make better messages. */
export type NodeStage = 'node' | 'node-tags' | 'disk' | 'disk-tags' | 'storage';
export const STAGE_ORDER: readonly NodeStage[] = ['node', 'node-tags', 'disk', 'disk-tags', 'storage'];

/** Room a disk has for this volume, for the "insufficient storage" message. */
export interface DiskRoom {
  nodeName: string;
  diskName: string;
  /** Volume bytes the over-provisioning limit still allows (may be negative). */
  provisioning: number;
  /** Bytes that stay free above the minimal-available floor once the volume's data is written. */
  overMinimal: number;
  storageAvailable: number;
  storageMaximum: number;
}

export type NodeEvaluation =
  | { ok: true; node: Node; disks: DiskCandidate[] }
  | { ok: false; node: Node; stage: NodeStage; problem: string; rooms: DiskRoom[] };

function conditionProblem(conditions: readonly Condition[], type: string): string | undefined {
  const c = getCondition(conditions, type);
  if (c.status === 'True') return undefined;
  const why = [c.reason, c.message].filter((s) => s !== '').join(': ');
  return `not ${type} (${why || `condition ${c.status}`})`;
}

/** Step 1: the node itself (conditions, flags, deletion), before looking at tags or disks. */
export function nodeUnavailable(node: Node): string | undefined {
  if (node.metadata.deletionTimestamp) return 'being deleted';
  return (
    conditionProblem(node.status.conditions, 'Ready') ??
    conditionProblem(node.status.conditions, 'Schedulable') ??
    (node.spec.allowScheduling ? undefined : 'scheduling disabled') ??
    (node.spec.evictionRequested ? 'eviction requested' : undefined)
  );
}

/**
 * Longhorn's selector rule: every selector tag must be present. An empty selector matches anything when
 * the allow-empty setting is on, else only untagged nodes/disks (so tagged ones stay reserved for volumes
 * that ask for them).
 */
export function tagsProblem(
  tags: readonly string[],
  selector: readonly string[],
  allowEmpty: boolean,
): string | undefined {
  if (selector.length === 0) {
    return allowEmpty || tags.length === 0 ? undefined : `tagged [${tags.join(', ')}] while the volume has no selector`;
  }
  const missing = selector.filter((t) => !tags.includes(t));
  return missing.length === 0 ? undefined : `lacks tags [${missing.join(', ')}]`;
}

interface DiskRef {
  name: string;
  spec: DiskSpec;
  status: DiskStatus;
}

const NO_STATUS: DiskStatus = diskStatus.parse({});

/** Disks as the user configured them; a disk the node controller has not reported yet is simply not Ready. */
function disksOf(node: Node): DiskRef[] {
  return Object.entries(node.spec.disks)
    .map(([name, spec]) => ({ name, spec, status: node.status.diskStatus[name] ?? NO_STATUS }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function diskUnavailable(d: DiskRef): string | undefined {
  return (
    conditionProblem(d.status.conditions, 'Ready') ??
    conditionProblem(d.status.conditions, 'Schedulable') ??
    (d.spec.allowScheduling ? undefined : 'scheduling disabled') ??
    (d.spec.evictionRequested ? 'eviction requested' : undefined) ??
    (d.status.diskUUID === '' ? 'no disk UUID reported yet' : undefined)
  );
}

/** Step 4's capacity rule (Longhorn's IsSchedulableToDisk), with this cycle's pending bytes added. */
export function diskRoom(nodeName: string, d: DiskRef, ctx: EligibilityContext): DiskRoom {
  const s = d.status;
  const limit = ((s.storageMaximum - d.spec.storageReserved) * ctx.rules.storageOverProvisioningPercentage) / 100;
  const floor = (s.storageMaximum * ctx.rules.storageMinimalAvailablePercentage) / 100;
  return {
    nodeName,
    diskName: d.name,
    provisioning: limit - s.storageScheduled - ctx.pendingBytes(s.diskUUID),
    overMinimal: s.storageAvailable - ctx.volume.status.actualSize - floor,
    storageAvailable: s.storageAvailable,
    storageMaximum: s.storageMaximum,
  };
}

export function roomFits(room: DiskRoom, size: number): boolean {
  return size <= room.provisioning && room.overMinimal > 0;
}

function listDisks(problems: readonly [string, string][]): string {
  return problems.map(([disk, why]) => `${disk} ${why}`).join(', ');
}

/** Steps 1–4 for one node: its own state, its tags, then each disk's state, tags and room. */
export function evaluateNode(node: Node, ctx: EligibilityContext): NodeEvaluation {
  const fail = (stage: NodeStage, problem: string, rooms: DiskRoom[] = []): NodeEvaluation => ({
    ok: false,
    node,
    stage,
    problem,
    rooms,
  });
  const unavailable = nodeUnavailable(node);
  if (unavailable) return fail('node', unavailable);
  const { nodeSelector, diskSelector, size } = ctx.volume.spec;
  const nodeTags = tagsProblem(node.spec.tags, nodeSelector, ctx.rules.allowEmptyNodeSelectorVolume);
  if (nodeTags) return fail('node-tags', nodeTags);

  const disks = disksOf(node);
  if (disks.length === 0) return fail('disk', 'has no disks');
  const down: [string, string][] = [];
  const untagged: [string, string][] = [];
  const rooms: DiskRoom[] = [];
  const candidates: DiskCandidate[] = [];
  for (const d of disks) {
    const why = diskUnavailable(d);
    if (why) {
      down.push([d.name, why]);
      continue;
    }
    const tags = tagsProblem(d.spec.tags, diskSelector, ctx.rules.allowEmptyDiskSelectorVolume);
    if (tags) {
      untagged.push([d.name, tags]);
      continue;
    }
    const room = diskRoom(node.metadata.name, d, ctx);
    rooms.push(room);
    if (!roomFits(room, size)) continue;
    const s = d.status;
    candidates.push({
      node,
      diskName: d.name,
      diskUUID: s.diskUUID,
      diskPath: s.diskPath || d.spec.path,
      usable: s.storageAvailable - d.spec.storageReserved - s.storageScheduled - ctx.pendingBytes(s.diskUUID),
    });
  }
  if (candidates.length > 0) return { ok: true, node, disks: candidates };
  if (rooms.length > 0) {
    const best = bestRoom(rooms);
    return fail('storage', `no disk has room for ${formatBytes(size)} (${describeRoom(best, ctx)})`, rooms);
  }
  if (untagged.length > 0) return fail('disk-tags', `disks ${listDisks(untagged)}`);
  return fail('disk', `disks ${listDisks(down)}`);
}

/** The disk closest to fitting: one above the minimal-available floor with the most provisioning room, else the least short of the floor. */
export function bestRoom(rooms: readonly DiskRoom[]): DiskRoom {
  const aboveFloor = rooms.filter((r) => r.overMinimal > 0);
  const pool = aboveFloor.length > 0 ? aboveFloor : rooms;
  const key = (r: DiskRoom) => (aboveFloor.length > 0 ? r.provisioning : r.overMinimal);
  return pool.reduce((a, b) => (key(b) > key(a) ? b : a));
}

export function describeRoom(r: DiskRoom, ctx: EligibilityContext): string {
  const where = `${r.nodeName}/${r.diskName}`;
  if (r.overMinimal > 0) return `the best disk (${where}) can take ${formatBytes(Math.max(0, r.provisioning))}`;
  return (
    `the best disk (${where}) has ${formatBytes(r.storageAvailable)} of ${formatBytes(r.storageMaximum)} available, ` +
    `and after the volume's ${formatBytes(ctx.volume.status.actualSize)} of data it would not stay above ` +
    `storage-minimal-available-percentage ${ctx.rules.storageMinimalAvailablePercentage}%`
  );
}

export const zoneLabel = (zone: string) => (zone === '' ? 'no zone' : `zone ${zone}`);

/** Why no node could take the replica: the furthest stage any node reached leads, every node's problem follows. */
export function explainNoCandidates(evals: readonly NodeEvaluation[], ctx: EligibilityContext): string {
  if (evals.length === 0) return 'nodes are unavailable: the cluster has no nodes';
  const failed = evals.flatMap((e) => (e.ok ? [] : [e]));
  const furthest = Math.max(...failed.map((e) => STAGE_ORDER.indexOf(e.stage)));
  const details = listSome(failed.map((e) => `${e.node.metadata.name}: ${e.problem}`));
  const { spec } = ctx.volume;
  switch (STAGE_ORDER[furthest]) {
    case 'node':
      return `nodes are unavailable: ${details}`;
    case 'node-tags':
      return spec.nodeSelector.length > 0
        ? `tags not fulfilled: no schedulable node carries the tags [${spec.nodeSelector.join(', ')}] (${details})`
        : `tags not fulfilled: the volume has no node selector and allow-empty-node-selector-volume is false, but every schedulable node is tagged (${details})`;
    case 'disk-tags':
      return spec.diskSelector.length > 0
        ? `tags not fulfilled: no schedulable disk carries the tags [${spec.diskSelector.join(', ')}] (${details})`
        : `tags not fulfilled: the volume has no disk selector and allow-empty-disk-selector-volume is false, but every schedulable disk is tagged (${details})`;
    case 'disk':
      return `disks are unavailable: ${details}`;
    default: {
      const best = bestRoom(failed.flatMap((e) => e.rooms));
      const others = failed.filter((e) => e.stage !== 'storage').map((e) => `${e.node.metadata.name}: ${e.problem}`);
      const rest = others.length > 0 ? `; ${listSome(others)}` : '';
      return `insufficient storage: volume needs ${formatBytes(spec.size)}, ${describeRoom(best, ctx)}${rest}`;
    }
  }
}
