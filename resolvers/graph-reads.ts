// How the graph's edges are read: each relation is one grouped index over its kind's one list per request
// (StoreReads.by), so following an edge from 1,000 parents costs the same store reads as from one.
// Every index name lives here, beside its key, so two fields can never share a name with different keys.
import { BACKUP_VOLUME_LABEL, type Backup } from '../model/backup.js';
import type { BackupVolume } from '../model/backup-volume.js';
import type { Engine } from '../model/engine.js';
import type { Event } from '../model/event.js';
import type { InstanceManager } from '../model/instance-manager.js';
import type { Condition } from '../model/meta.js';
import type { Node } from '../model/node.js';
import {
  RECURRING_JOB_GROUP_LABEL_PREFIX,
  RECURRING_JOB_LABEL_PREFIX,
  type RecurringJob,
} from '../model/recurring-job.js';
import type { Replica } from '../model/replica.js';
import type { Snapshot } from '../model/snapshot.js';
import type { Volume } from '../model/volume.js';
import type { VolumeAttachment } from '../model/volume-attachment.js';
import type { StoreReads } from './store-reads.js';

export const VOLUME_HEAD = 'volume-head';

export function replicasOfVolume(reads: StoreReads, volume: string): Promise<Replica[]> {
  return reads.by('Replica', 'volume', (r) => r.spec.volumeName, volume);
}

export function replicasOfNode(reads: StoreReads, node: string): Promise<Replica[]> {
  return reads.by('Replica', 'node', (r) => r.spec.nodeID, node);
}

/** Replicas placed on one disk, which replicas name by its UUID. */
export function replicasOfDisk(reads: StoreReads, node: string, diskUUID: string): Promise<Replica[]> {
  return reads.by('Replica', 'disk', (r) => `${r.spec.nodeID}/${r.spec.diskID}`, `${node}/${diskUUID}`);
}

/** The engine serving a volume (one per volume; while one is being replaced, the newest). */
export async function engineOfVolume(reads: StoreReads, volume: string): Promise<Engine | undefined> {
  const engines = await reads.by('Engine', 'volume', (e) => e.spec.volumeName, volume);
  return engines.length <= 1 ? engines[0] : newest(engines);
}

export function enginesOnNode(reads: StoreReads, node: string): Promise<Engine[]> {
  return reads.by('Engine', 'node', (e) => e.spec.nodeID, node);
}

export async function attachmentOfVolume(reads: StoreReads, volume: string): Promise<VolumeAttachment | undefined> {
  return (await reads.by('VolumeAttachment', 'volume', (a) => a.spec.volume, volume))[0];
}

/** The volume's Snapshot resources (never volume-head, which is no snapshot). */
export async function snapshotsOfVolume(reads: StoreReads, volume: string): Promise<Snapshot[]> {
  const all = await reads.by('Snapshot', 'volume', (s) => s.spec.volume, volume);
  return all.filter((s) => s.metadata.name !== VOLUME_HEAD);
}

/** `names` resolved among the same volume's snapshots, in the given order; unknown names are left out. */
export async function snapshotsNamed(reads: StoreReads, volume: string, names: readonly string[]): Promise<Snapshot[]> {
  const mine = new Map((await snapshotsOfVolume(reads, volume)).map((s) => [s.metadata.name, s]));
  return names.flatMap((n) => mine.get(n) ?? []);
}

export async function instanceManagerOfNode(reads: StoreReads, node: string): Promise<InstanceManager | undefined> {
  return (await reads.by('InstanceManager', 'node', (im) => im.spec.nodeID, node))[0];
}

/** Events about one object, newest first. */
export async function eventsAbout(reads: StoreReads, kind: string, name: string): Promise<Event[]> {
  return reads.by(
    'Event',
    'object',
    (e) => `${e.spec.involvedObject.kind}/${e.spec.involvedObject.name}`,
    `${kind}/${name}`,
  );
}

export function newestEventsFirst(events: readonly Event[]): Event[] {
  return [...events].sort(
    (a, b) =>
      b.spec.lastTimestamp.localeCompare(a.spec.lastTimestamp) ||
      b.spec.firstTimestamp.localeCompare(a.spec.firstTimestamp) ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
}

/** The volume a backup belongs to: its `backup-volume` label, else what the backup store said. */
export function backupVolumeName(b: Backup): string {
  return b.metadata.labels[BACKUP_VOLUME_LABEL] || b.status.volumeName;
}

/** Backups of one volume (by its name in the backup store), in no particular order. */
export function backupsOfVolume(reads: StoreReads, volume: string): Promise<Backup[]> {
  return reads.by('Backup', 'volume', backupVolumeName, volume);
}

export function backupVolumesOfTarget(reads: StoreReads, target: string): Promise<BackupVolume[]> {
  return reads.by('BackupVolume', 'target', (bv) => bv.spec.backupTargetName, target);
}

/** Newest first: when the backup was made (or, until it is, when it was asked for), then by name. */
export function newestBackupsFirst(backups: readonly Backup[]): Backup[] {
  const at = (b: Backup) => b.status.backupCreatedAt || b.metadata.creationTimestamp;
  return [...backups].sort((a, b) => at(b).localeCompare(at(a)) || a.metadata.name.localeCompare(b.metadata.name));
}

/**
 * Volumes a recurring job runs on: those labelled with the job, or with one of its groups; a job in
 * group `default` also takes every volume with no job or group label at all (Longhorn's rule).
 */
export async function volumesOfRecurringJob(reads: StoreReads, job: RecurringJob): Promise<Volume[]> {
  const jobKey = `${RECURRING_JOB_LABEL_PREFIX}${job.metadata.name}`;
  const groupKeys = job.spec.groups.map((g) => `${RECURRING_JOB_GROUP_LABEL_PREFIX}${g}`);
  const inDefault = job.spec.groups.includes('default');
  return (await reads.list('Volume')).filter((v) => {
    const l = v.metadata.labels;
    if (l[jobKey] === 'enabled' || groupKeys.some((k) => l[k] === 'enabled')) return true;
    return (
      inDefault &&
      !Object.keys(l).some(
        (k) => k.startsWith(RECURRING_JOB_LABEL_PREFIX) || k.startsWith(RECURRING_JOB_GROUP_LABEL_PREFIX),
      )
    );
  });
}

/** A volume's recurring jobs and groups, as its labels say, by name. */
export function volumeRecurringJobs(v: Volume): { jobs: string[]; groups: string[] } {
  const pick = (prefix: string) =>
    Object.entries(v.metadata.labels)
      .filter(([k, val]) => k.startsWith(prefix) && val === 'enabled')
      .map(([k]) => k.slice(prefix.length))
      .sort();
  return { jobs: pick(RECURRING_JOB_LABEL_PREFIX), groups: pick(RECURRING_JOB_GROUP_LABEL_PREFIX) };
}

function newest<T extends { metadata: { creationTimestamp: string } }>(items: T[]): T | undefined {
  return [...items].sort((a, b) => b.metadata.creationTimestamp.localeCompare(a.metadata.creationTimestamp))[0];
}

/** The status of a condition, `Unknown` when it was never set (as Longhorn's getCondition). */
export function conditionStatus(conditions: readonly Condition[], type: string): Condition['status'] {
  return conditions.find((c) => c.type === type)?.status ?? 'Unknown';
}

export function nodeReady(n: Node): boolean {
  return conditionStatus(n.status.conditions, 'Ready') === 'True';
}

/** The engine's address of a replica as it reaches it: `tcp://ip:port`, empty while not running. */
export function replicaAddress(r: Replica): string {
  return r.status.ip && r.status.port ? `tcp://${r.status.ip}:${r.status.port}` : '';
}

/**
 * A label selector as kubectl takes it: `a=b,c!=d,e` (equal, not equal, present). Undefined or empty
 * matches everything.
 */
export function labelMatcher(selector: string | null | undefined): (labels: Record<string, string>) => boolean {
  if (!selector) return () => true;
  const terms = selector
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean)
    .map((t) => {
      const ne = /^([^!=]+)!=(.*)$/.exec(t);
      if (ne) return (l: Record<string, string>) => l[ne[1]!.trim()] !== ne[2]!.trim();
      const eq = /^([^=]+)==?(.*)$/.exec(t);
      if (eq) return (l: Record<string, string>) => l[eq[1]!.trim()] === eq[2]!.trim();
      return (l: Record<string, string>) => Object.hasOwn(l, t);
    });
  return (labels) => terms.every((m) => m(labels));
}
