// Recurring jobs: the schedule (cron-parser, UTC, 5 or 6 fields, missed ticks collapse into one run),
// which volumes a job selects (its label, its groups, group `default`), and single passes of the
// controller over a seeded store (stack-and-style pattern 12): a run creates the snapshot or backup
// with the job's labels, retention keeps exactly `retain` of the job's own, concurrency bounds the
// volumes in flight, and a bad cron or an unsupported task is reported, never run.
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  FILESYSTEM_TRIM_UNSUPPORTED,
  type JobRuns,
  MAX_REQUEUE_MS,
  RUN_POLL_MS,
  reconcileRecurringJob,
} from '../../controllers/recurring-job-controller.js';
import { CronError, parseCron, planSchedule } from '../../controllers/recurring-job-schedule.js';
import {
  backupsBeyondRetention,
  jobSelectsVolume,
  newJobSnapshotName,
  snapshotsBeyondRetention,
} from '../../controllers/recurring-job-selection.js';
import { checkSnapshotName } from '../../dataplane/replica/store/replica.js';
import type { Backup } from '../../model/backup.js';
import { resourceName } from '../../model/meta.js';
import { RECURRING_JOB_CREATED_BY_LABEL as BY } from '../../model/recurring-job.js';
import type { Snapshot } from '../../model/snapshot.js';
import {
  backupResource,
  type ReconcileFixture,
  recurringJob,
  type SeedItem,
  setting,
  snapshotResource,
  startFixture,
  volume,
} from '../helpers/reconcile-fixtures.js';

const JOB_LABEL = (job: string) => `recurring-job.shorthorn.io/${job}`;
const GROUP_LABEL = (g: string) => `recurring-job-group.shorthorn.io/${g}`;

/** An attached volume with these labels. */
function attachedVolume(name: string, labels: Record<string, string> = {}, state = 'attached'): SeedItem {
  const item = volume({ name, status: { state: state as 'attached' } });
  item.obj.metadata.labels = labels;
  return item;
}

let fx: ReconcileFixture | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await fx?.close();
  fx = undefined;
});

/** One pass of the job at `now` (default: a tick after it was created, so a new job is due). */
async function pass(job: string, runs: JobRuns, now?: Date) {
  const f = fx!;
  const created = f.ctx.informers.RecurringJob.get(job)?.metadata.creationTimestamp ?? new Date().toISOString();
  return f.pass((ctx) => reconcileRecurringJob(ctx, job, runs, now ?? new Date(Date.parse(created) + 61_000)));
}

/**
 * One second after the job's first every-minute tick. Passes a second or so apart from here stay inside
 * one minute, so only the ones a test means to be due are (created + 61 s could sit just before the
 * next tick, and a pass 600 ms later started a second run in ~1 % of runs).
 */
function firstTickPlus1s(createdIso: string): number {
  return Math.floor(Date.parse(createdIso) / 60_000) * 60_000 + 61_000;
}

async function snapshots(f: ReconcileFixture, vol?: string): Promise<Snapshot[]> {
  return (await f.store.list('Snapshot')).items.filter((s) => !vol || s.spec.volume === vol);
}

const live = <T extends { metadata: { deletionTimestamp?: string } }>(xs: T[]) =>
  xs.filter((x) => !x.metadata.deletionTimestamp);
const names = (xs: { metadata: { name: string } }[]) => xs.map((x) => x.metadata.name).sort();

/** What the snapshot controller does once the engine took it: creationTime and userCreated. */
async function markTaken(f: ReconcileFixture, name: string) {
  const s = f.ctx.informers.Snapshot.get(name)!;
  await f.ctx.store.updateStatus('Snapshot', {
    ...s,
    status: { ...s.status, creationTime: new Date().toISOString(), userCreated: true, readyToUse: true },
  });
}

async function setBackupState(f: ReconcileFixture, name: string, state: Backup['status']['state']) {
  const b = f.ctx.informers.Backup.get(name)!;
  await f.ctx.store.updateStatus('Backup', { ...b, status: { ...b.status, state } });
}

describe('schedule', () => {
  const t = (iso: string) => new Date(iso);

  it('5 fields are minutes, in UTC', () => {
    const cron = parseCron('30 3 * * *');
    expect(cron.nextAfter(t('2024-05-01T04:00:00Z')).toISOString()).toBe('2024-05-02T03:30:00.000Z');
    expect(cron.nextAfter(t('2024-05-01T03:29:59Z')).toISOString()).toBe('2024-05-01T03:30:00.000Z');
  });

  it('6 fields have seconds first; the next tick is strictly after', () => {
    const cron = parseCron('*/2 * * * * *');
    expect(cron.nextAfter(t('2024-05-01T00:00:01.500Z')).toISOString()).toBe('2024-05-01T00:00:02.000Z');
    expect(cron.nextAfter(t('2024-05-01T00:00:02.000Z')).toISOString()).toBe('2024-05-01T00:00:04.000Z');
  });

  it('a new job is due at its first tick after creation', () => {
    const cron = parseCron('*/2 * * * * *');
    const created = '2024-05-01T00:00:00.300Z';
    expect(planSchedule(cron, '', created, t('2024-05-01T00:00:01.900Z'))).toEqual({
      due: false,
      next: t('2024-05-01T00:00:02.000Z'),
    });
    expect(planSchedule(cron, '', created, t('2024-05-01T00:00:02.010Z'))).toEqual({
      due: true,
      next: t('2024-05-01T00:00:04.000Z'),
    });
  });

  it('missed ticks (the manager was down an hour) make one run, and the next is counted from now', () => {
    const cron = parseCron('*/5 * * * *');
    const plan = planSchedule(cron, '2024-05-01T10:00:00.000Z', '2024-01-01T00:00:00Z', t('2024-05-01T11:02:00Z'));
    expect(plan).toEqual({ due: true, next: t('2024-05-01T11:05:00.000Z') });
    // After that run lastRunAt is now: nothing more is due before the next tick.
    expect(planSchedule(cron, '2024-05-01T11:02:00.000Z', '', t('2024-05-01T11:02:30Z')).due).toBe(false);
  });

  it('a lastRunAt in the future (the clock went back) waits for the next tick from now', () => {
    const cron = parseCron('* * * * *');
    expect(planSchedule(cron, '2030-01-01T00:00:00Z', '', t('2024-05-01T00:00:30Z'))).toEqual({
      due: false,
      next: t('2024-05-01T00:01:00.000Z'),
    });
  });

  it.each([
    ['', /got 0/],
    ['* * *', /expected 5 fields .* got 3/],
    ['* * * * * * *', /got 7/],
    ['every minute', /got 2/],
    ['61 * * * *', /invalid cron "61 \* \* \* \*": .*61/],
    ['a b c d e', /invalid cron/],
  ])('rejects %j', (expr, message) => {
    expect(() => parseCron(expr)).toThrow(CronError);
    expect(() => parseCron(expr)).toThrow(message);
  });

  it('a cron that can never fire (30 February) is rejected', () => {
    expect(() => parseCron('0 0 30 2 *')).toThrow(/invalid cron "0 0 30 2 \*": Invalid explicit day of month/);
  });
});

describe('selection and names', () => {
  const job = (name: string, groups: string[] = []) => ({ metadata: { name }, spec: { groups } });

  it('by the job label, a group label, or group default for volumes with no recurring-job label', () => {
    expect(jobSelectsVolume(job('j'), { [JOB_LABEL('j')]: 'enabled' })).toBe(true);
    expect(jobSelectsVolume(job('j'), { [JOB_LABEL('j')]: 'disabled' })).toBe(false);
    expect(jobSelectsVolume(job('j'), { [JOB_LABEL('k')]: 'enabled' })).toBe(false);
    expect(jobSelectsVolume(job('j', ['g']), { [GROUP_LABEL('g')]: 'enabled' })).toBe(true);
    expect(jobSelectsVolume(job('j', ['g']), { [GROUP_LABEL('h')]: 'enabled' })).toBe(false);
    expect(jobSelectsVolume(job('j'), {})).toBe(false);
    expect(jobSelectsVolume(job('j', ['default']), {})).toBe(true);
    expect(jobSelectsVolume(job('j', ['default']), { app: 'db' })).toBe(true);
    expect(jobSelectsVolume(job('j', ['default']), { [JOB_LABEL('k')]: 'enabled' })).toBe(false);
    expect(jobSelectsVolume(job('j', ['default']), { [GROUP_LABEL('g')]: 'enabled' })).toBe(false);
    expect(jobSelectsVolume(job('j', ['default']), { [GROUP_LABEL('default')]: 'enabled' })).toBe(true);
  });

  it('snapshot names are valid resource names and replica snapshot names, also for a 63-character job', () => {
    for (const j of ['daily', 'a'.repeat(63), `${'b'.repeat(53)}-x-yyyyyyyy`]) {
      const n = newJobSnapshotName(j);
      expect(n.length).toBeLessThanOrEqual(63);
      expect(resourceName.safeParse(n).success, n).toBe(true);
      expect(() => checkSnapshotName(n)).not.toThrow();
    }
    expect(newJobSnapshotName('daily')).toMatch(/^daily-[0-9a-f]{8}$/);
  });
});

describe('retention rules', () => {
  let seq = 0;
  const at = (n: number) => new Date(Date.UTC(2024, 4, 1) + n * 1000).toISOString();
  const snap = (taken = true, markRemoved = false): Snapshot =>
    ({
      metadata: { name: `s${String(++seq).padStart(3, '0')}`, creationTimestamp: at(seq) },
      status: { creationTime: taken ? 'x' : '', markRemoved },
    }) as Snapshot;
  const backup = (state: Backup['status']['state']): Backup =>
    ({
      metadata: { name: `b${String(++seq).padStart(3, '0')}`, creationTimestamp: at(seq) },
      status: { state },
    }) as Backup;

  it('keeps the newest `retain` taken snapshots and what is newer; deletes older ones of any state', () => {
    const [a, b, c, d, e] = [snap(), snap(false), snap(true, true), snap(), snap(false)];
    // Newest first: e (pending), d, c (removed), b (never taken), a.
    expect(names(snapshotsBeyondRetention([a!, b!, c!, d!, e!], 1))).toEqual(names([a!, b!, c!]));
    expect(names(snapshotsBeyondRetention([a!, b!, c!, d!, e!], 2))).toEqual([]);
    expect(names(snapshotsBeyondRetention([a!, b!, c!, d!, e!], 1, new Set([a!.metadata.name])))).toEqual(
      names([b!, c!]),
    );
  });

  it('backups: keeps `retain` Completed; never one in flight; failures only while newer than a Completed', () => {
    const old = [backup('Completed'), backup('Error'), backup('Completed'), backup('InProgress')];
    const recent = [backup('Completed'), backup('Completed'), backup('Error'), backup('Pending')];
    const out = backupsBeyondRetention([...old, ...recent], 2);
    // Kept: the two newest Completed, the Error newer than them, everything in flight.
    expect(names(out)).toEqual(names([old[0]!, old[1]!, old[2]!]));
  });
});

describe('recurring-job controller, one pass at a time', () => {
  it('selects volumes by job label and by group; skips detached ones and other jobs', async () => {
    fx = await startFixture([
      attachedVolume('v-job', { [JOB_LABEL('j')]: 'enabled' }),
      attachedVolume('v-group', { [GROUP_LABEL('g')]: 'enabled' }),
      attachedVolume('v-none'),
      attachedVolume('v-other', { [JOB_LABEL('k')]: 'enabled' }),
      attachedVolume('v-detached', { [JOB_LABEL('j')]: 'enabled' }, 'detached'),
      recurringJob('j', { spec: { groups: ['g'], concurrency: 10 } }),
    ]);
    await pass('j', new Map());
    expect([...new Set((await snapshots(fx)).map((s) => s.spec.volume))].sort()).toEqual(['v-group', 'v-job']);
  });

  it('group default takes the volumes with no recurring-job label at all', async () => {
    fx = await startFixture([
      attachedVolume('v-job', { [JOB_LABEL('k')]: 'enabled' }),
      attachedVolume('v-group', { [GROUP_LABEL('g')]: 'enabled' }),
      attachedVolume('v-plain', { app: 'db' }),
      recurringJob('d', { spec: { groups: ['default'], concurrency: 10 } }),
    ]);
    await pass('d', new Map());
    expect((await snapshots(fx)).map((s) => s.spec.volume)).toEqual(['v-plain']);
  });

  it('a run creates the snapshot with the job labels and records the run in status', async () => {
    fx = await startFixture([
      attachedVolume('vol', { [JOB_LABEL('hourly')]: 'enabled' }),
      recurringJob('hourly', { spec: { cron: '0 * * * *', labels: { tier: 'gold' } } }),
    ]);
    const created = fx.ctx.informers.RecurringJob.get('hourly')!.metadata.creationTimestamp;
    const now = new Date(Date.parse(created) + 3_600_000 + 5);
    const result = await pass('hourly', new Map(), now);
    const [snap, ...rest] = await snapshots(fx);
    expect(rest).toEqual([]);
    expect(snap!.metadata.name).toMatch(/^hourly-[0-9a-f]{8}$/);
    expect(snap!.spec).toEqual({ volume: 'vol', createSnapshot: true, labels: { tier: 'gold', [BY]: 'hourly' } });
    expect(snap!.metadata.labels).toEqual({ 'shorthorn.io/volume': 'vol', [BY]: 'hourly' });
    expect(snap!.metadata.finalizers).toEqual(['shorthorn.io']);
    expect(snap!.metadata.ownerReferences.map((r) => `${r.kind}/${r.name}`)).toEqual(['Volume/vol']);
    const job = (await fx.store.get('RecurringJob', 'hourly'))!;
    expect(job.status).toMatchObject({ executionCount: 1, lastRunAt: now.toISOString(), lastError: '' });
    expect(Date.parse(job.status.nextRunAt)).toBeGreaterThan(now.getTime());
    // The snapshot is in flight: the run is looked at again soon.
    expect(result?.requeueAfterMs).toBe(RUN_POLL_MS);
  });

  it('retention keeps exactly `retain` newest of its own snapshots, once the new one is taken', async () => {
    const mine = { [BY]: 'j' };
    fx = await startFixture([
      attachedVolume('vol', { [JOB_LABEL('j')]: 'enabled' }),
      attachedVolume('vol2', {}),
      snapshotResource('j-00000001', 'vol', { labels: mine }),
      snapshotResource('j-00000002', 'vol', { labels: mine }),
      snapshotResource('j-00000003', 'vol', { labels: mine }),
      snapshotResource('j-00000004', 'vol', { labels: mine }),
      snapshotResource('k-00000001', 'vol', { labels: { [BY]: 'k' } }),
      snapshotResource('user-snap', 'vol'),
      snapshotResource('system-snap', 'vol', { userCreated: false }),
      snapshotResource('j-00000009', 'vol2', { labels: mine }),
      recurringJob('j', { spec: { retain: 2 } }),
    ]);
    const runs: JobRuns = new Map();
    const created = fx.ctx.informers.RecurringJob.get('j')!.metadata.creationTimestamp;
    const t0 = firstTickPlus1s(created);
    await pass('j', runs, new Date(t0));
    const fresh = live(await snapshots(fx, 'vol')).find(
      (s) => s.metadata.name.startsWith('j-') && !s.status.creationTime,
    );
    expect(fresh).toBeDefined();
    // Not taken yet: nothing deleted (a failed snapshot must never cost an older one).
    expect(live(await snapshots(fx))).toHaveLength(9);

    await markTaken(fx, fresh!.metadata.name);
    const r = await pass('j', runs, new Date(t0 + 600));
    const left = live(await snapshots(fx, 'vol'));
    expect(names(left)).toEqual([fresh!.metadata.name, 'j-00000004', 'k-00000001', 'system-snap', 'user-snap'].sort());
    // Deleted as resources (the finalizer stays until the snapshot controller removed it from the chain).
    const gone = (await snapshots(fx, 'vol')).filter((s) => s.metadata.deletionTimestamp);
    expect(names(gone)).toEqual(['j-00000001', 'j-00000002', 'j-00000003']);
    expect(live(await snapshots(fx, 'vol2'))).toHaveLength(1);
    // The run is over: the next pass is at the next tick, at most a minute away.
    expect(r?.requeueAfterMs).toBeGreaterThan(RUN_POLL_MS);
    expect(r?.requeueAfterMs).toBeLessThanOrEqual(MAX_REQUEUE_MS);
    expect(runs.size).toBe(0);
  });

  it('retention never deletes a snapshot that a backup in flight reads, whoever asked for the backup', async () => {
    const mine = { [BY]: 'j' };
    fx = await startFixture([
      attachedVolume('vol', { [JOB_LABEL('j')]: 'enabled' }),
      snapshotResource('j-00000001', 'vol', { labels: mine }),
      snapshotResource('j-00000002', 'vol', { labels: mine }),
      backupResource('backup-0000000000000001', 'vol', { snapshotName: 'j-00000001', state: 'InProgress' }),
      recurringJob('j', { spec: { retain: 1 } }),
    ]);
    const runs: JobRuns = new Map();
    const t0 = firstTickPlus1s(fx.ctx.informers.RecurringJob.get('j')!.metadata.creationTimestamp);
    await pass('j', runs, new Date(t0));
    const fresh = live(await snapshots(fx)).find((s) => !s.status.creationTime)!;
    await markTaken(fx, fresh.metadata.name);
    await pass('j', runs, new Date(t0 + 600));
    expect(names(live(await snapshots(fx)))).toEqual([fresh.metadata.name, 'j-00000001'].sort());
  });

  it('retain is clamped to recurring-job-max-retention', async () => {
    const mine = { [BY]: 'j' };
    fx = await startFixture([
      setting('recurring-job-max-retention', '1'),
      attachedVolume('vol', { [JOB_LABEL('j')]: 'enabled' }),
      snapshotResource('j-00000001', 'vol', { labels: mine }),
      snapshotResource('j-00000002', 'vol', { labels: mine }),
      recurringJob('j', { spec: { retain: 5 } }),
    ]);
    const runs: JobRuns = new Map();
    const t0 = firstTickPlus1s(fx.ctx.informers.RecurringJob.get('j')!.metadata.creationTimestamp);
    await pass('j', runs, new Date(t0));
    const fresh = live(await snapshots(fx)).find((s) => !s.status.creationTime)!;
    await markTaken(fx, fresh.metadata.name);
    await pass('j', runs, new Date(t0 + 600));
    expect(names(live(await snapshots(fx)))).toEqual([fresh.metadata.name]);
  });

  it('at most `concurrency` volumes in flight: the next one starts when a snapshot is taken', async () => {
    fx = await startFixture([
      attachedVolume('va', { [JOB_LABEL('j')]: 'enabled' }),
      attachedVolume('vb', { [JOB_LABEL('j')]: 'enabled' }),
      attachedVolume('vc', { [JOB_LABEL('j')]: 'enabled' }),
      recurringJob('j', { spec: { concurrency: 2 } }),
    ]);
    const runs: JobRuns = new Map();
    const t0 = firstTickPlus1s(fx.ctx.informers.RecurringJob.get('j')!.metadata.creationTimestamp);
    await pass('j', runs, new Date(t0));
    expect((await snapshots(fx)).map((s) => s.spec.volume).sort()).toEqual(['va', 'vb']);
    await pass('j', runs, new Date(t0 + 500));
    expect(await snapshots(fx)).toHaveLength(2);
    await markTaken(fx, (await snapshots(fx, 'va'))[0]!.metadata.name);
    await pass('j', runs, new Date(t0 + 1000));
    expect((await snapshots(fx)).map((s) => s.spec.volume).sort()).toEqual(['va', 'vb', 'vc']);
    expect((await fx.store.get('RecurringJob', 'j'))!.status.executionCount).toBe(1);
  });

  it('a job that missed runs while the manager was down runs once', async () => {
    fx = await startFixture([
      attachedVolume('vol', { [JOB_LABEL('j')]: 'enabled' }),
      recurringJob('j', {
        spec: { cron: '* * * * *' },
        status: { lastRunAt: new Date(Date.now() - 3_600_000).toISOString() },
      }),
    ]);
    const runs: JobRuns = new Map();
    const now = Date.now();
    await pass('j', runs, new Date(now));
    await pass('j', runs, new Date(now + 50));
    const r = await pass('j', runs, new Date(now + 100));
    expect(await snapshots(fx)).toHaveLength(1);
    const job = (await fx.store.get('RecurringJob', 'j'))!;
    expect(job.status.executionCount).toBe(1);
    expect(job.status.lastRunAt).toBe(new Date(now).toISOString());
    const next = Date.parse(job.status.nextRunAt);
    expect(next).toBeGreaterThan(now);
    expect(next).toBeLessThanOrEqual(now + 60_000);
    expect(r?.requeueAfterMs).toBeLessThanOrEqual(RUN_POLL_MS); // the snapshot is still in flight
  });

  it('a 6-field cron runs every 2 s: due after a tick, then requeued for the next one', async () => {
    fx = await startFixture([
      attachedVolume('vol', { [JOB_LABEL('j')]: 'enabled' }),
      recurringJob('j', { spec: { cron: '*/2 * * * * *' } }),
    ]);
    const runs: JobRuns = new Map();
    const created = Date.parse(fx.ctx.informers.RecurringJob.get('j')!.metadata.creationTimestamp);
    // 100 ms after the first 2 s tick after creation, so the pass 10 ms later cannot meet the next one.
    const t0 = Math.floor(created / 2000) * 2000 + 2100;
    await pass('j', runs, new Date(t0));
    await markTaken(fx, (await snapshots(fx))[0]!.metadata.name);
    const r = await pass('j', runs, new Date(t0 + 10));
    const job = (await fx.store.get('RecurringJob', 'j'))!;
    expect(job.status.executionCount).toBe(1);
    const next = Date.parse(job.status.nextRunAt);
    expect(next % 2000).toBe(0);
    expect(next - t0).toBeGreaterThan(0);
    expect(next - t0).toBeLessThanOrEqual(2000);
    expect(r?.requeueAfterMs).toBe(next - (t0 + 10));
    await pass('j', runs, new Date(next + 1));
    expect((await fx.store.get('RecurringJob', 'j'))!.status.executionCount).toBe(2);
    expect(await snapshots(fx)).toHaveLength(2);
  });

  it('a bad cron is reported in status and an event, not run and not requeued', async () => {
    fx = await startFixture([
      attachedVolume('vol', { [JOB_LABEL('j')]: 'enabled' }),
      recurringJob('j', { spec: { cron: '61 * * * *' }, status: { nextRunAt: '2024-01-01T00:00:00.000Z' } }),
    ]);
    const runs: JobRuns = new Map();
    expect(await pass('j', runs)).toBeUndefined();
    expect(await pass('j', runs)).toBeUndefined();
    const job = (await fx.store.get('RecurringJob', 'j'))!;
    expect(job.status.lastError).toMatch(/^invalid cron "61 \* \* \* \*"/);
    expect(job.status).toMatchObject({ nextRunAt: '', executionCount: 0 });
    expect(await snapshots(fx)).toEqual([]);
    expect(fx.events.filter((e) => e.reason === 'InvalidCron')).toHaveLength(1);

    // Fixed: the error goes and the job is scheduled again.
    const cur = fx.ctx.informers.RecurringJob.get('j')!;
    await fx.ctx.store.update('RecurringJob', { ...cur, spec: { ...cur.spec, cron: '0 * * * *' } });
    const r = await fx.pass((ctx) => reconcileRecurringJob(ctx, 'j', runs));
    expect((await fx.store.get('RecurringJob', 'j'))!.status).toMatchObject({ lastError: '', executionCount: 0 });
    expect(r?.requeueAfterMs).toBeLessThanOrEqual(MAX_REQUEUE_MS);
  });

  it('filesystem-trim says it needs the CSI node plugin and does nothing', async () => {
    fx = await startFixture([
      attachedVolume('vol', { [JOB_LABEL('t')]: 'enabled' }),
      recurringJob('t', { spec: { task: 'filesystem-trim' } }),
    ]);
    expect(await pass('t', new Map())).toBeUndefined();
    const job = (await fx.store.get('RecurringJob', 't'))!;
    expect(job.status).toMatchObject({ lastError: FILESYSTEM_TRIM_UNSUPPORTED, executionCount: 0, nextRunAt: '' });
    expect(fx.events.map((e) => e.reason)).toEqual(['FilesystemTrimUnsupported']);
  });

  it("one volume's failure is recorded and the run goes on with the others", async () => {
    fx = await startFixture([
      attachedVolume('va', { [JOB_LABEL('j')]: 'enabled' }),
      attachedVolume('vb', { [JOB_LABEL('j')]: 'enabled' }),
      recurringJob('j', { spec: { concurrency: 5 } }),
    ]);
    const store = fx.ctx.store;
    const create = store.create.bind(store);
    vi.spyOn(store, 'create').mockImplementation(async (kind, obj) => {
      if (kind === 'Snapshot' && (obj.spec as { volume: string }).volume === 'va') throw new Error('disk full');
      return create(kind, obj);
    });
    const r = await pass('j', new Map());
    expect((await snapshots(fx)).map((s) => s.spec.volume)).toEqual(['vb']);
    const job = (await fx.store.get('RecurringJob', 'j'))!;
    expect(job.status.lastError).toBe('snapshot on volume va: disk full');
    expect(job.status.executionCount).toBe(1);
    expect(fx.events.filter((e) => e.type === 'Warning').map((e) => e.reason)).toEqual(['RecurringJobFailed']);
    expect(r?.requeueAfterMs).toBe(RUN_POLL_MS);
  });

  it('backup: a snapshot and a Backup of it; retention of backups and of the snapshots they superseded', async () => {
    const mine = { [BY]: 'bk' };
    fx = await startFixture([
      attachedVolume('vol', { [JOB_LABEL('bk')]: 'enabled' }),
      snapshotResource('bk-00000001', 'vol', { labels: mine }),
      snapshotResource('bk-00000002', 'vol', { labels: mine }),
      snapshotResource('bk-00000003', 'vol', { labels: mine }),
      backupResource('backup-0000000000000001', 'vol', {
        snapshotName: 'bk-00000001',
        state: 'Completed',
        labels: mine,
      }),
      backupResource('backup-0000000000000002', 'vol', {
        snapshotName: 'bk-00000002',
        state: 'InProgress',
        labels: mine,
      }),
      backupResource('backup-0000000000000003', 'vol', {
        snapshotName: 'bk-00000003',
        state: 'Completed',
        labels: mine,
      }),
      backupResource('backup-00000000000000ff', 'vol', { snapshotName: 'other', state: 'Completed' }),
      recurringJob('bk', { spec: { task: 'backup', retain: 1, labels: { tier: 'gold' } } }),
    ]);
    const runs: JobRuns = new Map();
    const t0 = firstTickPlus1s(fx.ctx.informers.RecurringJob.get('bk')!.metadata.creationTimestamp);
    await pass('bk', runs, new Date(t0));
    // The previous backup (backup-…02) of this job is still in flight: no new one is started.
    expect(await snapshots(fx)).toHaveLength(3);
    expect(runs.size).toBe(0);

    await setBackupState(fx, 'backup-0000000000000002', 'Completed');
    await pass('bk', runs, new Date(t0 + 61_000));
    const newSnap = (await snapshots(fx)).find((s) => !s.status.creationTime)!;
    expect(newSnap.spec.labels).toEqual({ tier: 'gold', [BY]: 'bk' });
    const newBackup = (await fx.store.list('Backup')).items.find((b) => b.spec.snapshotName === newSnap.metadata.name)!;
    expect(newBackup.metadata.name).toMatch(/^backup-[0-9a-f]{16}$/);
    expect(newBackup.metadata.labels).toEqual({ 'backup-volume': 'vol', [BY]: 'bk' });
    expect(newBackup.spec.labels).toEqual({ tier: 'gold' });

    // In flight: nothing of the job is deleted yet.
    await pass('bk', runs, new Date(t0 + 61_500));
    expect(live((await fx.store.list('Backup')).items)).toHaveLength(5);

    await markTaken(fx, newSnap.metadata.name);
    await setBackupState(fx, newBackup.metadata.name, 'Completed');
    await pass('bk', runs, new Date(t0 + 62_000));
    expect(names(live((await fx.store.list('Backup')).items))).toEqual(
      [newBackup.metadata.name, 'backup-00000000000000ff'].sort(),
    );
    // auto-cleanup-recurring-job-backup-snapshot (Longhorn's default): only the newest backed-up one stays.
    expect(names(live(await snapshots(fx)))).toEqual([newSnap.metadata.name]);
    expect((await fx.store.get('RecurringJob', 'bk'))!.status).toMatchObject({ executionCount: 2, lastError: '' });
  });

  it('snapshot-cleanup deletes system and removed snapshots and asks for a purge', async () => {
    fx = await startFixture([
      attachedVolume('vol', { [JOB_LABEL('c')]: 'enabled' }),
      snapshotResource('user-snap', 'vol'),
      snapshotResource('system-snap', 'vol', { userCreated: false }),
      snapshotResource('removed-snap', 'vol', { markRemoved: true }),
      snapshotResource('pending-snap', 'vol', { taken: false }),
      recurringJob('c', { spec: { task: 'snapshot-cleanup' } }),
    ]);
    const r = await pass('c', new Map());
    expect(names(live(await snapshots(fx)))).toEqual(['pending-snap', 'user-snap']);
    expect((await fx.store.get('Volume', 'vol'))!.spec.purgeRequestedAt).toBeTruthy();
    expect(r?.requeueAfterMs).toBe(RUN_POLL_MS); // until the purge is done
  });
});
