// Recurring-job controller: runs each RecurringJob on its cron inside the manager (Longhorn makes a
// Kubernetes CronJob per job instead; reference §1.10, §2). Key: the job's name.
//
// Each pass derives the schedule from status (recurring-job-schedule.ts): when a tick has passed since
// lastRunAt a run starts — lastRunAt, executionCount — and the pass asks to be run again at the next
// tick (at most a minute away, recomputed each time). A run selects the attached volumes the job's
// labels and groups name (recurring-job-selection.ts) and works through them, at most spec.concurrency
// volumes in flight at once:
// - snapshot: a Snapshot resource (the snapshot controller takes it); once taken, the job's older
//   snapshots of that volume beyond `retain` are deleted (their resources; the snapshot controller
//   removes them from the chain and purges);
// - backup: a snapshot and a Backup resource of it (the backup controller runs it); once it ends, the
//   job's backups beyond `retain` are deleted, and its snapshots older than the newest one backed up;
// - snapshot-cleanup: deletes the volume's system and removed snapshots and asks its engine to purge;
// - filesystem-trim: needs the filesystem mounted by a CSI node plugin, which does not exist yet; the
//   job reports that in status.lastError and never runs.
// A volume's failure is recorded (status.lastError, a Warning event on the job) and the run goes on.
//
// A run in progress (which volumes are waiting, which are in flight) lives in this process only: a
// manager restart in the middle of a run ends that run; the next tick starts a fresh one.
// Volumes that are detached are skipped: Longhorn's allow-recurring-job-while-volume-detached
// (attach, run, detach) is not implemented.
import type { Logger } from 'pino';
import { BACKUP_VOLUME_LABEL } from '../model/backup.js';
import type { RecurringJob } from '../model/recurring-job.js';
import { RECURRING_JOB_CREATED_BY_LABEL } from '../model/recurring-job.js';
import { isStoreError } from '../store/errors.js';
import type { ControllerContext } from './context.js';
import { FINALIZER, ownedByVolume } from './labels.js';
import { CronError, parseCron, planSchedule, type SchedulePlan } from './recurring-job-schedule.js';
import {
  backupInFlight,
  backupsBeyondRetention,
  effectiveRetain,
  jobBackupsOf,
  jobSelectsVolume,
  jobSnapshotsOf,
  newJobBackupName,
  newJobSnapshotName,
  snapshotsBeyondRetention,
  snapshotsSupersededByBackup,
  snapshotsToClean,
} from './recurring-job-selection.js';
import { Controller, type ReconcileResult } from './runtime/controller.js';
import { patchStatus } from './write.js';

/** The longest a pass waits for the next one: the schedule is recomputed at least this often. */
export const MAX_REQUEUE_MS = 60_000;
/** While a run has volumes waiting or in flight, how often it is looked at. */
export const RUN_POLL_MS = 500;
/** A snapshot the job asked for and the engine has not taken by then counts as failed. */
export const SNAPSHOT_TIMEOUT_MS = 120_000;
/** A backup the backup controller has not started by then counts as failed (a running one has no limit). */
export const BACKUP_START_TIMEOUT_MS = 10 * 60_000;
/** A purge the snapshot controller has not done by then counts as failed. */
export const PURGE_TIMEOUT_MS = 120_000;

export const FILESYSTEM_TRIM_UNSUPPORTED = 'filesystem-trim needs the CSI node plugin (not built yet)';

const MAX_LAST_ERROR = 1000;

/** One volume's work in a run: what it made and waits on. */
interface VolumeWork {
  volume: string;
  startedAt: number;
  snapshot?: string;
  backup?: string;
}

/** A run in progress: volumes still to start, volumes in flight, and what failed so far. */
export interface JobRun {
  startedAt: number;
  queue: string[];
  active: Map<string, VolumeWork>;
  errors: string[];
}

/** Runs in progress by job name (this process's memory). */
export type JobRuns = Map<string, JobRun>;

export function recurringJobController(ctx: ControllerContext): Controller {
  const runs: JobRuns = new Map();
  return new Controller({
    name: 'recurring-job',
    logger: ctx.log,
    workers: 2,
    reconcile: (name) => reconcileRecurringJob(ctx, name, runs),
  });
}

/** One pass over job `name`; `now` is injectable for tests. */
export async function reconcileRecurringJob(
  ctx: ControllerContext,
  name: string,
  runs: JobRuns,
  now: Date = new Date(),
): Promise<ReconcileResult | undefined> {
  const log = ctx.log.child({ controller: 'recurring-job', job: name });
  let job = ctx.informers.RecurringJob.get(name);
  if (!job || job.metadata.deletionTimestamp) {
    runs.delete(name);
    return;
  }
  if (job.spec.task === 'filesystem-trim') {
    runs.delete(name);
    await reportConfigProblem(ctx, job, 'FilesystemTrimUnsupported', FILESYSTEM_TRIM_UNSUPPORTED);
    return;
  }
  let plan: SchedulePlan;
  try {
    plan = planSchedule(parseCron(job.spec.cron), job.status.lastRunAt, job.metadata.creationTimestamp, now);
  } catch (err) {
    if (!(err instanceof CronError)) throw err;
    // No requeue: nothing changes until the spec does, and a spec change wakes the job.
    runs.delete(name);
    await reportConfigProblem(ctx, job, 'InvalidCron', err.message);
    return;
  }

  let run = runs.get(name);
  if (plan.due) {
    run = startRun(ctx, job, run, now, log);
    runs.set(name, run);
    job = await patchStatus(ctx.store, 'RecurringJob', job, (s) => {
      s.ownerID = ctx.managerID;
      s.lastRunAt = now.toISOString();
      s.executionCount += 1;
      s.nextRunAt = plan.next.toISOString();
      s.lastError = '';
    });
    log.info({ volumes: run.queue, task: job.spec.task, next: plan.next.toISOString() }, 'recurring job run started');
  }
  if (run) {
    await advanceRun(ctx, job, run, now, log);
    if (run.queue.length === 0 && run.active.size === 0) runs.delete(name);
  }
  const finalRun = run;
  await patchStatus(ctx.store, 'RecurringJob', job, (st) => {
    st.ownerID = ctx.managerID;
    st.nextRunAt = plan.next.toISOString();
    if (finalRun) st.lastError = summarize(finalRun.errors);
    else if (isConfigProblem(st.lastError)) st.lastError = '';
  });
  const busy = !!run && (run.queue.length > 0 || run.active.size > 0);
  const untilNext = plan.next.getTime() - now.getTime();
  return { requeueAfterMs: Math.max(1, Math.min(untilNext, busy ? RUN_POLL_MS : MAX_REQUEUE_MS)) };
}

/** An invalid cron or an unsupported task: in status.lastError (and one event per new message), no schedule. */
async function reportConfigProblem(ctx: ControllerContext, job: RecurringJob, reason: string, message: string) {
  if (job.status.lastError !== message) ctx.events.warning(job, reason, message);
  await patchStatus(ctx.store, 'RecurringJob', job, (st) => {
    st.ownerID = ctx.managerID;
    st.lastError = message;
    st.nextRunAt = '';
  });
}

function isConfigProblem(message: string): boolean {
  return message === FILESYSTEM_TRIM_UNSUPPORTED || message.startsWith('invalid cron ') || message.startsWith('cron ');
}

function summarize(errors: string[]): string {
  const all = errors.join('; ');
  return all.length <= MAX_LAST_ERROR ? all : `${all.slice(0, MAX_LAST_ERROR - 1)}…`;
}

/**
 * A new run: the attached volumes the job selects, in name order. A volume whose work from the previous
 * run is still in flight (a long backup) stays with that work and is not started again.
 */
function startRun(ctx: ControllerContext, job: RecurringJob, prev: JobRun | undefined, now: Date, log: Logger) {
  const active = prev?.active ?? new Map<string, VolumeWork>();
  const queue: string[] = [];
  const volumes = ctx.informers.Volume.list()
    .filter((v) => !v.metadata.deletionTimestamp && jobSelectsVolume(job, v.metadata.labels))
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const v of volumes) {
    const volume = v.metadata.name;
    if (v.status.state !== 'attached') {
      log.debug({ volume, state: v.status.state }, 'volume is not attached; skipped by this run');
    } else if (active.has(volume)) {
      log.info({ volume }, "volume still has the previous run's work in flight; skipped by this run");
    } else {
      queue.push(volume);
    }
  }
  return { startedAt: now.getTime(), queue, active, errors: [] } satisfies JobRun;
}

/** Looks at the volumes in flight (finishing those that are done), then starts waiting ones up to concurrency. */
async function advanceRun(ctx: ControllerContext, job: RecurringJob, run: JobRun, now: Date, log: Logger) {
  for (const w of [...run.active.values()]) {
    let done: boolean;
    try {
      done = await checkWork(ctx, job, run, w, now);
    } catch (err) {
      fail(ctx, job, run, w.volume, `${job.spec.task} on volume ${w.volume}: ${(err as Error).message}`);
      done = true;
    }
    if (done) run.active.delete(w.volume);
  }
  while (run.queue.length > 0 && run.active.size < job.spec.concurrency) {
    const volume = run.queue.shift()!;
    try {
      const w = await startWork(ctx, job, volume, now, log);
      if (w) run.active.set(volume, w);
    } catch (err) {
      fail(ctx, job, run, volume, `${job.spec.task} on volume ${volume}: ${(err as Error).message}`);
    }
  }
}

function fail(ctx: ControllerContext, job: RecurringJob, run: JobRun, volume: string, message: string) {
  run.errors.push(message);
  ctx.events.warning(job, 'RecurringJobFailed', message);
  ctx.log.warn({ job: job.metadata.name, volume }, message);
}

/** Starts the job's work on one volume; undefined if the volume is no longer one to run on. */
async function startWork(
  ctx: ControllerContext,
  job: RecurringJob,
  volume: string,
  now: Date,
  log: Logger,
): Promise<VolumeWork | undefined> {
  const vol = ctx.informers.Volume.get(volume);
  if (!vol || vol.metadata.deletionTimestamp) return;
  if (vol.status.state !== 'attached') {
    log.debug({ volume, state: vol.status.state }, 'volume is not attached any more; skipped');
    return;
  }
  if (vol.spec.revertRequested) {
    log.info({ volume }, 'volume is being reverted; skipped');
    return;
  }
  const jobName = job.metadata.name;
  const work: VolumeWork = { volume, startedAt: now.getTime() };
  switch (job.spec.task) {
    case 'snapshot':
    case 'backup': {
      if (job.spec.task === 'backup') {
        const busy = jobBackupsOf(ctx.informers.Backup.list(), jobName, volume, BACKUP_VOLUME_LABEL).find(
          backupInFlight,
        );
        if (busy) {
          log.info(
            { volume, backup: busy.metadata.name },
            "the job's previous backup of the volume is in flight; skipped",
          );
          return;
        }
      }
      const snapshot = newJobSnapshotName(jobName);
      const owned = ownedByVolume(snapshot, vol);
      await ctx.store.create('Snapshot', {
        metadata: { ...owned, labels: { ...owned.labels, [RECURRING_JOB_CREATED_BY_LABEL]: jobName } },
        spec: {
          volume,
          createSnapshot: true,
          labels: { ...job.spec.labels, [RECURRING_JOB_CREATED_BY_LABEL]: jobName },
        },
      });
      work.snapshot = snapshot;
      if (job.spec.task === 'snapshot') return work;
      const backup = newJobBackupName();
      await ctx.store.create('Backup', {
        metadata: {
          name: backup,
          labels: { [BACKUP_VOLUME_LABEL]: volume, [RECURRING_JOB_CREATED_BY_LABEL]: jobName },
          finalizers: [FINALIZER],
        },
        spec: {
          snapshotName: snapshot,
          labels: { ...job.spec.labels },
          backupMode: 'incremental',
          syncRequestedAt: '',
        },
      });
      work.backup = backup;
      return work;
    }
    case 'snapshot-cleanup': {
      const keep = protectedSnapshots(ctx, volume);
      for (const snap of snapshotsToClean(ctx.informers.Snapshot.list(), volume)) {
        if (!keep.has(snap.metadata.name)) await deleteQuietly(ctx, 'Snapshot', snap.metadata.name);
      }
      await requestPurge(ctx, volume);
      return work;
    }
    case 'filesystem-trim':
      return;
  }
}

/** Whether the volume's work is over (done or failed, recorded); retention runs when it is. */
async function checkWork(
  ctx: ControllerContext,
  job: RecurringJob,
  run: JobRun,
  w: VolumeWork,
  now: Date,
): Promise<boolean> {
  const elapsed = now.getTime() - w.startedAt;
  const failed = (message: string) => {
    fail(ctx, job, run, w.volume, message);
    return true;
  };
  switch (job.spec.task) {
    case 'snapshot': {
      const snap = ctx.informers.Snapshot.get(w.snapshot ?? '');
      if (!snap || snap.metadata.deletionTimestamp)
        return failed(`snapshot ${w.snapshot} of volume ${w.volume} was deleted before it was taken`);
      if (snap.status.markRemoved) return failed(`snapshot ${w.snapshot} of volume ${w.volume} was marked removed`);
      if (!snap.status.creationTime) {
        if (elapsed <= SNAPSHOT_TIMEOUT_MS) return false;
        return failed(
          `snapshot ${w.snapshot} of volume ${w.volume} was not taken within ${SNAPSHOT_TIMEOUT_MS / 1000} s${snap.status.error ? `: ${snap.status.error}` : ''}`,
        );
      }
      await applySnapshotRetention(ctx, job, w.volume);
      return true;
    }
    case 'backup': {
      const b = ctx.informers.Backup.get(w.backup ?? '');
      if (!b || b.metadata.deletionTimestamp)
        return failed(`backup ${w.backup} of volume ${w.volume} was deleted before it completed`);
      if (b.status.state === 'Completed') {
        await applyBackupRetention(ctx, job, w.volume);
        return true;
      }
      if (b.status.state === 'Error' || b.status.state === 'Unknown') {
        failed(`backup ${w.backup} of volume ${w.volume} failed${b.status.error ? `: ${b.status.error}` : ''}`);
        await applyBackupRetention(ctx, job, w.volume);
        return true;
      }
      if ((b.status.state === '' || b.status.state === 'Pending') && elapsed > BACKUP_START_TIMEOUT_MS)
        return failed(
          `backup ${w.backup} of volume ${w.volume} did not start within ${BACKUP_START_TIMEOUT_MS / 60_000} min${b.status.error ? `: ${b.status.error}` : ''}`,
        );
      return false;
    }
    case 'snapshot-cleanup': {
      const vol = ctx.informers.Volume.get(w.volume);
      if (!vol?.spec.purgeRequestedAt) return true;
      if (elapsed <= PURGE_TIMEOUT_MS) return false;
      return failed(`the purge of volume ${w.volume} was not done within ${PURGE_TIMEOUT_MS / 1000} s`);
    }
    case 'filesystem-trim':
      return true;
  }
}

function maxRetention(ctx: ControllerContext): number {
  return ctx.settings.int('recurring-job-max-retention');
}

/** Snapshots of `volume` that must stay: those any backup in flight reads, and a revert's target. */
function protectedSnapshots(ctx: ControllerContext, volume: string): Set<string> {
  const keep = new Set<string>();
  for (const b of ctx.informers.Backup.list()) {
    if (b.metadata.labels[BACKUP_VOLUME_LABEL] === volume && backupInFlight(b)) keep.add(b.spec.snapshotName);
  }
  const revert = ctx.informers.Volume.get(volume)?.spec.revertRequested?.snapshot;
  if (revert) keep.add(revert);
  return keep;
}

/** The job's snapshots of `volume` beyond the newest `retain` go. */
async function applySnapshotRetention(ctx: ControllerContext, job: RecurringJob, volume: string) {
  const retain = effectiveRetain(job, maxRetention(ctx));
  const snaps = jobSnapshotsOf(ctx.informers.Snapshot.list(), job.metadata.name, volume);
  for (const snap of snapshotsBeyondRetention(snaps, retain, protectedSnapshots(ctx, volume))) {
    await deleteQuietly(ctx, 'Snapshot', snap.metadata.name);
  }
}

/**
 * The job's backups of `volume` beyond the newest `retain` go; so do its snapshots beyond `retain` and,
 * with auto-cleanup-recurring-job-backup-snapshot (Longhorn's default), those older than the newest one
 * backed up.
 */
async function applyBackupRetention(ctx: ControllerContext, job: RecurringJob, volume: string) {
  const retain = effectiveRetain(job, maxRetention(ctx));
  const backups = jobBackupsOf(ctx.informers.Backup.list(), job.metadata.name, volume, BACKUP_VOLUME_LABEL);
  for (const b of backupsBeyondRetention(backups, retain)) await deleteQuietly(ctx, 'Backup', b.metadata.name);
  const snaps = jobSnapshotsOf(ctx.informers.Snapshot.list(), job.metadata.name, volume);
  const keep = protectedSnapshots(ctx, volume);
  const doomed = new Set(snapshotsBeyondRetention(snaps, retain, keep).map((x) => x.metadata.name));
  if (autoCleanupBackupSnapshots(ctx)) {
    for (const x of snapshotsSupersededByBackup(snaps, backups, keep)) doomed.add(x.metadata.name);
  }
  for (const name of doomed) await deleteQuietly(ctx, 'Snapshot', name);
}

function autoCleanupBackupSnapshots(ctx: ControllerContext): boolean {
  return ctx.settings.bool('auto-cleanup-recurring-job-backup-snapshot');
}

async function deleteQuietly(ctx: ControllerContext, kind: 'Snapshot' | 'Backup', name: string) {
  try {
    await ctx.store.delete(kind, name);
  } catch (err) {
    if (!isStoreError(err, 'NotFound')) throw err;
  }
}

/** As VolumeApi.purgeSnapshots: sets spec.purgeRequestedAt; the snapshot controller purges on the engine. */
async function requestPurge(ctx: ControllerContext, volume: string) {
  for (let attempt = 0; ; attempt++) {
    const vol = await ctx.store.get('Volume', volume);
    if (!vol || vol.metadata.deletionTimestamp || vol.spec.purgeRequestedAt) return;
    vol.spec.purgeRequestedAt = new Date().toISOString();
    try {
      await ctx.store.update('Volume', vol);
      return;
    } catch (err) {
      if (!isStoreError(err, 'Conflict') || attempt >= 3) throw err;
    }
  }
}
