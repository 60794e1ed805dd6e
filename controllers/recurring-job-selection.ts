// Which volumes a RecurringJob runs on, what it names the snapshots and backups it makes, and which of
// them its retention deletes. Pure functions over resources, so the rules are tested on their own.
import { randomBytes } from 'node:crypto';
import type { Backup, BackupState } from '../model/backup.js';
import {
  RECURRING_JOB_CREATED_BY_LABEL,
  RECURRING_JOB_GROUP_LABEL_PREFIX,
  RECURRING_JOB_LABEL_PREFIX,
  type RecurringJob,
} from '../model/recurring-job.js';
import type { Snapshot } from '../model/snapshot.js';

/** Longhorn's group for volumes that name no job and no group. */
export const DEFAULT_GROUP = 'default';

/**
 * Whether `labels` (a volume's) put it in `job`: `recurring-job.shorthorn.io/<job>=enabled`, or
 * `recurring-job-group.shorthorn.io/<group>=enabled` for one of the job's groups, or — when the job is
 * in group `default` — no recurring-job or recurring-job-group label at all.
 */
export function jobSelectsVolume(
  job: { metadata: { name: string }; spec: { groups: string[] } },
  labels: Record<string, string>,
): boolean {
  if (labels[`${RECURRING_JOB_LABEL_PREFIX}${job.metadata.name}`] === 'enabled') return true;
  for (const g of job.spec.groups) if (labels[`${RECURRING_JOB_GROUP_LABEL_PREFIX}${g}`] === 'enabled') return true;
  if (!job.spec.groups.includes(DEFAULT_GROUP)) return false;
  return !Object.keys(labels).some(
    (k) => k.startsWith(RECURRING_JOB_LABEL_PREFIX) || k.startsWith(RECURRING_JOB_GROUP_LABEL_PREFIX),
  );
}

/**
 * `<job>-<8 hex>`: a valid resource name (at most 63 characters: the job's name is cut to 54) and a
 * valid replica snapshot name (letters, digits, '-', starting with one of the first two).
 */
export function newJobSnapshotName(job: string): string {
  const prefix = job.slice(0, 54).replace(/-+$/, '');
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** `backup-<16 hex>`, as Longhorn names backups (also their name in the backup store). */
export function newJobBackupName(): string {
  return `backup-${randomBytes(8).toString('hex')}`;
}

/** The job's own snapshots of `volume` that are not being deleted already. */
export function jobSnapshotsOf(snapshots: Snapshot[], job: string, volume: string): Snapshot[] {
  return snapshots.filter(
    (s) =>
      s.spec.volume === volume &&
      s.spec.labels[RECURRING_JOB_CREATED_BY_LABEL] === job &&
      !s.metadata.deletionTimestamp,
  );
}

/** The job's own Backup resources of `volume` that are not being deleted already. */
export function jobBackupsOf(backups: Backup[], job: string, volume: string, volumeLabel: string): Backup[] {
  return backups.filter(
    (b) =>
      b.metadata.labels[volumeLabel] === volume &&
      b.metadata.labels[RECURRING_JOB_CREATED_BY_LABEL] === job &&
      !b.metadata.deletionTimestamp,
  );
}

/** Newest first: by creationTimestamp, then by name (resources made in the same millisecond). */
function newestFirst<T extends { metadata: { name: string; creationTimestamp: string } }>(items: T[]): T[] {
  return [...items].sort(
    (a, b) =>
      b.metadata.creationTimestamp.localeCompare(a.metadata.creationTimestamp) ||
      b.metadata.name.localeCompare(a.metadata.name),
  );
}

/** Taken by the engine and not marked removed: what retention counts as kept. */
export function snapshotIsGood(s: Snapshot): boolean {
  return s.status.creationTime !== '' && !s.status.markRemoved;
}

/**
 * Count-based retention of one job's snapshots of one volume: keeps the newest `retain` good ones and
 * whatever is newer than the oldest of those (a snapshot still being taken), and deletes everything
 * older — good, removed or never taken. Until `retain` good ones exist nothing is deleted, so a run
 * whose snapshot failed never costs an older one. `keep` names are never deleted.
 */
export function snapshotsBeyondRetention(
  snapshots: Snapshot[],
  retain: number,
  keep: ReadonlySet<string> = new Set(),
): Snapshot[] {
  const sorted = newestFirst(snapshots);
  let good = 0;
  let cut = -1;
  for (let i = 0; i < sorted.length; i++) {
    if (snapshotIsGood(sorted[i]!) && ++good === retain) {
      cut = i;
      break;
    }
  }
  if (cut < 0) return [];
  return sorted.slice(cut + 1).filter((s) => !keep.has(s.metadata.name));
}

const BACKUP_IN_FLIGHT: ReadonlySet<BackupState> = new Set(['', 'Pending', 'InProgress']);

/** Not started yet or running: its snapshot must stay, and the volume has this job's work under way. */
export function backupInFlight(b: Backup): boolean {
  return BACKUP_IN_FLIGHT.has(b.status.state);
}

/**
 * Count-based retention of one job's backups of one volume: keeps the newest `retain` Completed ones;
 * failed ones (Error, Unknown) are kept only while newer than the newest Completed one, at most `retain`
 * of them. A backup in flight ('' / Pending / InProgress) or being deleted is never deleted here.
 */
export function backupsBeyondRetention(backups: Backup[], retain: number): Backup[] {
  const sorted = newestFirst(backups).filter((b) => !backupInFlight(b) && b.status.state !== 'Deleting');
  const out: Backup[] = [];
  let completed = 0;
  let failedNewer = 0;
  for (const b of sorted) {
    if (b.status.state === 'Completed') {
      if (++completed > retain) out.push(b);
    } else if (completed > 0 || ++failedNewer > retain) {
      out.push(b);
    }
  }
  return out;
}

/**
 * After a recurring backup (Longhorn's auto-cleanup-recurring-job-backup-snapshot): the job's snapshots
 * older than the newest one whose backup completed are no longer needed on the volume — that newest one
 * stays as the base of the next incremental backup. Snapshots in `keep` (a backup in flight reads
 * them) are never deleted.
 */
export function snapshotsSupersededByBackup(
  snapshots: Snapshot[],
  backups: Backup[],
  keep: ReadonlySet<string> = new Set(),
): Snapshot[] {
  const backedUp = new Set(backups.filter((b) => b.status.state === 'Completed').map((b) => b.spec.snapshotName));
  const sorted = newestFirst(snapshots);
  const newest = sorted.findIndex((s) => backedUp.has(s.metadata.name) && snapshotIsGood(s));
  if (newest < 0) return [];
  return sorted.slice(newest + 1).filter((s) => !keep.has(s.metadata.name));
}

/** Snapshots a `snapshot-cleanup` run deletes: taken system snapshots and removed ones. */
export function snapshotsToClean(snapshots: Snapshot[], volume: string): Snapshot[] {
  return snapshots.filter(
    (s) =>
      s.spec.volume === volume &&
      !s.metadata.deletionTimestamp &&
      s.status.creationTime !== '' &&
      (!s.status.userCreated || s.status.markRemoved),
  );
}

/** Effective retain: at least 1 (a job that keeps none would delete what it just made), at most the setting. */
export function effectiveRetain(job: RecurringJob, maxRetention: number): number {
  return Math.max(1, Math.min(job.spec.retain, maxRetention));
}
