// The control plane's actions on backups, backup targets and recurring jobs, as the API (GraphQL, CLI)
// calls them. Same rules as VolumeApi: each checks its input first, writes desired state and returns at
// once (the backup, backup-target, volume and recurring-job controllers do the work and report in
// status); every expected failure is an ApiError a person can act on, and a refused action changes
// nothing. Credentials go into a Secret; nothing here ever returns a secret's values.
import { CronExpressionParser } from 'cron-parser';
import { ZodError, z } from 'zod';
import { BACKUP_VOLUME_LABEL, type Backup, backupMode } from '../model/backup.js';
import { type BackupTarget, DEFAULT_BACKUP_TARGET } from '../model/backup-target.js';
import type { BackupVolume } from '../model/backup-volume.js';
import { nowIso, resourceName } from '../model/meta.js';
import {
  RECURRING_JOB_GROUP_LABEL_PREFIX,
  RECURRING_JOB_LABEL_PREFIX,
  type RecurringJob,
  type RecurringJobSpec,
  recurringJobTask,
} from '../model/recurring-job.js';
import type { Volume } from '../model/volume.js';
import { isStoreError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { type ApiError, conflict, invalid, invalidState, notFound } from './api-errors.js';
import { FINALIZER, newBackupName } from './labels.js';
import type { VolumeApi } from './volume-api.js';

export interface SetBackupTargetInput {
  /** file:///abs/dir or s3://bucket[@region]/path; '' = no target. */
  url: string;
  /** An existing Secret holding the target's credential keys; '' = none. */
  credentialSecret?: string;
  /** Keys (AWS_ACCESS_KEY_ID, …) written to the Secret `<target>-credential`, which the target then names. */
  credential?: Record<string, string>;
  /** Seconds between syncs from the target; 0 = only when asked. */
  pollInterval?: number;
}

export interface CreateBackupInput {
  volume: string;
  /** A snapshot of the volume; none = a new snapshot is taken first and backed up. */
  snapshot?: string;
  labels?: Record<string, string>;
  mode?: 'incremental' | 'full';
}

export interface RestoreBackupInput {
  /** Longhorn's backup URL: <target>?backup=<name>&volume=<volume>. */
  backupURL: string;
  /** The new volume. */
  name: string;
  /** A standby (DR) volume: keeps restoring the newest backup until activated. */
  standby?: boolean;
  numberOfReplicas?: number;
}

export interface RecurringJobInput {
  task?: string;
  cron?: string;
  retain?: number;
  concurrency?: number;
  groups?: string[];
  labels?: Record<string, string>;
}

export interface CreateRecurringJobInput extends RecurringJobInput {
  name: string;
  task: string;
  cron: string;
}

/** The Secret setBackupTarget writes a given credential to. */
export function credentialSecretName(target: string): string {
  return `${target}-credential`;
}

const labels = z.record(
  z
    .string()
    .min(1)
    .max(63)
    .regex(/^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/, 'a label key is letters, digits, "-", "_", "." and "/"'),
  z.string().max(253, 'a label value has at most 253 characters'),
);

/** Keys as environment variables (Longhorn's AWS_* keys); values are never echoed in a message. */
const credential = z
  .record(
    z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a credential key is letters, digits and "_" (AWS_ACCESS_KEY_ID, …)')
      .max(253),
    z.string({ error: 'a credential value is a string' }).max(64 * 1024, 'a credential value has at most 64 KiB'),
  )
  .refine((c) => Object.keys(c).length > 0, 'give at least one key (AWS_ACCESS_KEY_ID, …)')
  .refine(
    (c) => 'AWS_ACCESS_KEY_ID' in c === 'AWS_SECRET_ACCESS_KEY' in c,
    'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together',
  );

/** A day at most: a longer poll is as good as none (pollInterval 0). */
const pollInterval = z
  .number()
  .int('pollInterval is whole seconds')
  .min(0, 'pollInterval is 0 (only when asked) or more seconds')
  .max(86_400, 'pollInterval is at most 86400 seconds (a day); 0 syncs only when asked');

/** Recurring job groups end up in label keys (recurring-job-group.shorthorn.io/<group>). */
const groupName = z
  .string()
  .min(1, 'a group name cannot be empty')
  .max(63, 'a group name has at most 63 characters')
  .regex(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, 'a group name is letters, digits, "-", "_" and "."');

function fromZod(err: ZodError, prefix = ''): ApiError {
  const issue = err.issues[0]!;
  const at = (path: PropertyKey[]) => [prefix, ...path.map(String)].filter(Boolean).join('.') || 'input';
  if (issue.code === 'invalid_key') {
    // A bad key in a record: name the key (never a value) and say what keys look like.
    const key = String(issue.path[issue.path.length - 1]);
    return invalid(at(issue.path.slice(0, -1)), `key "${key}": ${issue.issues[0]?.message ?? issue.message}`);
  }
  return invalid(at(issue.path), issue.message);
}

/** Checks `value`; a problem is a ValidationError naming the field (values are never quoted). */
function check<T>(schema: z.ZodType<T>, value: unknown, field: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw fromZod(r.error, field);
  return r.data;
}

function checkName(name: string, field: string): void {
  const r = resourceName.safeParse(name);
  if (!r.success) throw invalid(field, r.error.issues[0]!.message);
}

/** Why a backup target URL cannot be used, or undefined. '' (no target) is fine. */
export function backupTargetUrlProblem(url: string): string | undefined {
  if (url === '') return undefined;
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined)
    return `"${url}" is not a URL: use file:///<absolute dir> or s3://<bucket>[@<region>]/<path>`;
  const rest = url.slice(scheme.length + 3);
  if (/[?#\s]/.test(rest)) return 'a backup target URL takes no query, fragment or spaces';
  const segments = (path: string) => path.split('/').some((s) => s === '.' || s === '..');
  if (scheme === 'file') {
    const slash = rest.indexOf('/');
    const host = slash < 0 ? rest : rest.slice(0, slash);
    if (host !== '' && host !== 'localhost')
      return `file:// takes an absolute local path (file:///mnt/backups), not host "${host}"`;
    const dir = slash < 0 ? '' : rest.slice(slash);
    if (dir === '' || dir === '/') return 'file:// needs a directory: file:///mnt/backups';
    if (segments(dir)) return 'the path must not contain "." or ".." segments';
    return undefined;
  }
  if (scheme === 's3') {
    const slash = rest.indexOf('/');
    const authority = slash < 0 ? rest : rest.slice(0, slash);
    const at = authority.indexOf('@');
    const bucket = at < 0 ? authority : authority.slice(0, at);
    const region = at < 0 ? undefined : authority.slice(at + 1);
    if (bucket === '') return 'missing the bucket: s3://<bucket>[@<region>]/<path>';
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) return `"${bucket}" is not a valid S3 bucket name`;
    if (region !== undefined && !/^[a-z0-9][a-z0-9-]*$/.test(region)) return `"${region}" is not a valid region`;
    if (slash >= 0 && segments(rest.slice(slash + 1))) return 'the path must not contain "." or ".." segments';
    return undefined;
  }
  if (scheme === 'nfs' || scheme === 'cifs')
    return `${scheme}:// is not supported: mount the share on every node and use file://<mount point>`;
  return `unsupported scheme ${scheme}://: use file:///<absolute dir> or s3://<bucket>[@<region>]/<path>`;
}

export interface ParsedBackupUrl {
  target: string;
  backup: string;
  volume: string;
}

/** Longhorn's backup URL, `<target>?backup=<name>&volume=<volume>`; undefined when it is not one. */
export function parseBackupUrl(url: string): ParsedBackupUrl | undefined {
  const q = url.indexOf('?');
  if (q <= 0) return undefined;
  const params = new URLSearchParams(url.slice(q + 1));
  const backup = params.get('backup') ?? '';
  const volume = params.get('volume') ?? '';
  if (backup === '' || volume === '') return undefined;
  return { target: url.slice(0, q).replace(/\/+$/, ''), backup, volume };
}

function sameBackupUrl(a: ParsedBackupUrl, b: ParsedBackupUrl): boolean {
  return a.target === b.target && a.backup === b.backup && a.volume === b.volume;
}

/** Why a cron expression cannot be used, or undefined: 5 fields, or 6 with seconds first (UTC). */
export function cronProblem(cron: string): string | undefined {
  const fields = cron.trim().split(/\s+/).filter(Boolean);
  if (fields.length !== 5 && fields.length !== 6)
    return `"${cron}" has ${fields.length} field(s): a cron expression has 5 (minute hour day-of-month month day-of-week), or 6 with seconds first`;
  try {
    CronExpressionParser.parse(fields.join(' '), { tz: 'UTC' }).next();
  } catch (err) {
    return `"${cron}" is not a valid cron expression: ${err instanceof Error ? err.message : String(err)}`;
  }
  return undefined;
}

/** Snapshot and backup jobs keep `retain` of what they made; the others make nothing to keep. */
const RETAINING_TASKS: readonly string[] = ['snapshot', 'backup'];

export class BackupApi {
  constructor(
    private readonly store: Store,
    private readonly volumes: VolumeApi,
  ) {}

  private async volume(name: string): Promise<Volume> {
    const v = await this.store.get('Volume', name);
    if (!v) throw notFound('volume', name);
    return v;
  }

  private async target(name: string): Promise<BackupTarget> {
    const t = await this.store.get('BackupTarget', name);
    if (!t) throw notFound('backup target', name);
    return t;
  }

  /** The default target, refused when it has no URL. */
  private async usableTarget(): Promise<BackupTarget> {
    const t = await this.store.get('BackupTarget', DEFAULT_BACKUP_TARGET);
    if (!t?.spec.backupTargetURL)
      throw invalidState(
        'no backup target set: set one first (setBackupTarget, or shorthorn backup target set file:///<dir> | s3://<bucket>@<region>/<path>)',
      );
    return t;
  }

  // ---- backup target ------------------------------------------------------------------------------

  /**
   * Points a target at a URL (and its credential); the backup-target controller then syncs from it and
   * reports status.available. A credential given is stored in the Secret `<target>-credential`.
   */
  async setBackupTarget(input: SetBackupTargetInput, name: string = DEFAULT_BACKUP_TARGET): Promise<BackupTarget> {
    const url = (input.url ?? '').trim();
    const urlProblem = backupTargetUrlProblem(url);
    if (urlProblem) throw invalid('url', urlProblem);
    const poll = input.pollInterval === undefined ? undefined : check(pollInterval, input.pollInterval, 'pollInterval');
    const cred = input.credential === undefined ? undefined : check(credential, input.credential, 'credential');
    const ownSecret = credentialSecretName(name);
    let secretName = input.credentialSecret?.trim();
    if (cred && secretName && secretName !== ownSecret)
      throw invalid(
        'credentialSecret',
        `give credential (stored in secret "${ownSecret}") or credentialSecret (an existing secret), not both`,
      );
    if (cred) secretName = ownSecret;
    else if (secretName) {
      checkName(secretName, 'credentialSecret');
      if (!(await this.store.get('Secret', secretName))) throw notFound('secret', secretName);
    }
    if (!(await this.store.get('BackupTarget', name))) {
      if (name !== DEFAULT_BACKUP_TARGET) throw notFound('backup target', name);
      await ensureDefaultBackupTarget(this.store);
    }
    if (cred) await this.writeSecret(ownSecret, cred);
    return this.retryOnConflict(async () => {
      const t = await this.target(name);
      const before = JSON.stringify(t.spec);
      t.spec.backupTargetURL = url;
      if (secretName !== undefined) t.spec.credentialSecret = secretName;
      if (poll !== undefined) t.spec.pollInterval = poll;
      // A new URL or credential: sync now rather than at the next poll. Same values: nothing to write.
      if (JSON.stringify(t.spec) === before && !cred) return t;
      t.spec.syncRequestedAt = nowIso();
      return this.store.update('BackupTarget', t);
    });
  }

  private async writeSecret(name: string, data: Record<string, string>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const s = await this.store.get('Secret', name);
        if (!s) await this.store.create('Secret', { metadata: { name }, spec: { data } });
        else if (JSON.stringify(s.spec.data) !== JSON.stringify(data)) {
          s.spec.data = data;
          await this.store.update('Secret', s);
        }
        return;
      } catch (err) {
        const raced = isStoreError(err, 'AlreadyExists') || isStoreError(err, 'Conflict');
        if (!raced || attempt >= 5) throw err;
      }
    }
  }

  /** Asks the backup-target controller for a sync now (BackupVolumes and Backups from the target). */
  async syncBackupTarget(name: string = DEFAULT_BACKUP_TARGET): Promise<BackupTarget> {
    const t = await this.target(name);
    if (!t.spec.backupTargetURL)
      throw invalidState(`backup target "${name}" has no URL: no backup target set (setBackupTarget first)`);
    return this.retryOnConflict(async () => {
      const cur = await this.target(name);
      cur.spec.syncRequestedAt = nowIso();
      return this.store.update('BackupTarget', cur);
    });
  }

  // ---- backups ------------------------------------------------------------------------------------

  /**
   * Backs up a snapshot of an attached volume to the default target; without a snapshot, takes one
   * first. Returns the Backup at once: the backup controller runs it (state, progress, url in status).
   */
  async createBackup(input: CreateBackupInput): Promise<Backup> {
    const lbls = check(labels, input.labels ?? {}, 'labels');
    const mode = check(backupMode, input.mode ?? 'incremental', 'mode');
    if (input.snapshot !== undefined) checkName(input.snapshot, 'snapshot');
    const vol = await this.volume(input.volume);
    const name = input.volume;
    if (vol.metadata.deletionTimestamp) throw invalidState(`volume "${name}" is being deleted; it cannot be backed up`);
    if (vol.spec.standby || vol.status.isStandby)
      throw invalidState(`volume "${name}" is a standby volume; activate it (activateVolume) before backing it up`);
    if (vol.status.state !== 'attached')
      throw invalidState(
        `volume "${name}" is ${vol.status.state}; attach it to back it up (a backup reads its snapshot through the replicas)`,
      );
    await this.usableTarget();
    let snapshotName: string;
    if (input.snapshot !== undefined) {
      const snap = await this.store.get('Snapshot', input.snapshot);
      if (!snap || snap.spec.volume !== name) throw notFound('snapshot', input.snapshot);
      if (snap.metadata.deletionTimestamp || snap.status.markRemoved)
        throw invalidState(`snapshot "${input.snapshot}" is removed; it cannot be backed up`);
      snapshotName = snap.metadata.name;
    } else {
      snapshotName = (await this.volumes.createSnapshot(name)).metadata.name;
    }
    for (let attempt = 0; ; attempt++) {
      try {
        // The finalizer from the start (the backup controller adds it too): a delete that comes before the
        // controller's first look still removes the backup from the target before the resource goes.
        return await this.store.create('Backup', {
          metadata: { name: newBackupName(), labels: { [BACKUP_VOLUME_LABEL]: name }, finalizers: [FINALIZER] },
          spec: { snapshotName, labels: lbls, backupMode: mode, syncRequestedAt: '' },
        });
      } catch (err) {
        if (!isStoreError(err, 'AlreadyExists') || attempt >= 3) throw err;
      }
    }
  }

  /** Deletes a backup: the backup controller removes it from the target, then the resource goes. */
  async deleteBackup(name: string): Promise<Backup> {
    const b = await this.store.get('Backup', name);
    if (!b) throw notFound('backup', name);
    if (b.metadata.deletionTimestamp) return b;
    return this.store.delete('Backup', name);
  }

  /**
   * Deletes a whole backup volume from the target — every backup of it and all its blocks (Longhorn's
   * "delete all backups"). Refused while one of its backups is being made. The backup-volume
   * controller removes the data, then the resource and its Backup resources go.
   */
  async deleteBackupVolume(name: string): Promise<BackupVolume> {
    const bv = await this.store.get('BackupVolume', name);
    if (!bv) throw notFound('backup volume', name);
    if (bv.metadata.deletionTimestamp) return bv;
    const running = (
      await this.store.list('Backup', { labelSelector: { [BACKUP_VOLUME_LABEL]: bv.spec.volumeName } })
    ).items.find((b) => b.status.state === 'InProgress' || b.status.state === 'Pending');
    if (running)
      throw invalidState(
        `backup ${running.metadata.name} of ${bv.spec.volumeName} is in progress; delete the backup volume once it has finished`,
      );
    return this.retryOnConflict(async () => {
      const cur = await this.store.get('BackupVolume', name);
      if (!cur) throw notFound('backup volume', name);
      // Synced backup volumes carry no finalizer: add it so the data goes before the resource does.
      if (!cur.metadata.finalizers.includes(FINALIZER)) {
        cur.metadata.finalizers.push(FINALIZER);
        await this.store.update('BackupVolume', cur);
      }
      return this.store.delete('BackupVolume', name);
    });
  }

  /**
   * Restores a backup into a new volume (the volume controller restores before first use; a standby
   * volume keeps following its backup volume). The backup must be known: synced from the target.
   */
  async restoreBackup(input: RestoreBackupInput): Promise<Volume> {
    const url = (input.backupURL ?? '').trim();
    const wanted = parseBackupUrl(url);
    if (!wanted)
      throw invalid(
        'backupURL',
        `"${url}" is not a backup URL (<target>?backup=<name>&volume=<volume>, from backup ls)`,
      );
    checkName(input.name, 'name');
    const backups = (await this.store.list('Backup')).items;
    const b =
      backups.find((x) => x.status.url === url) ??
      backups.find((x) => {
        const p = parseBackupUrl(x.status.url);
        return p !== undefined && sameBackupUrl(p, wanted);
      });
    if (!b)
      throw notFound(
        'backup',
        url,
        'sync the backup target (syncBackupTarget, shorthorn backup target sync) if it was made elsewhere, and use a URL that backup ls shows',
      );
    if (b.metadata.deletionTimestamp) throw invalidState(`backup "${b.metadata.name}" is being deleted`);
    if (b.status.state !== 'Completed')
      throw invalidState(
        `backup "${b.metadata.name}" is ${b.status.state || 'not started'}; only a completed backup can be restored`,
      );
    if (b.status.volumeSize <= 0)
      throw invalidState(`backup "${b.metadata.name}" does not say its volume's size yet; sync the backup target`);
    return this.volumes.createVolume({
      name: input.name,
      size: b.status.volumeSize,
      numberOfReplicas: input.numberOfReplicas,
      fromBackup: b.status.url,
      standby: input.standby ?? false,
    });
  }

  /** A standby (DR) volume becomes a normal one: the last restore finishes, then it can be attached. */
  async activateVolume(name: string): Promise<Volume> {
    return this.retryOnConflict(async () => {
      const vol = await this.volume(name);
      if (vol.metadata.deletionTimestamp) throw invalidState(`volume "${name}" is being deleted`);
      if (!vol.spec.standby)
        throw invalidState(`volume "${name}" is not a standby volume; only a standby (DR) volume is activated`);
      vol.spec.standby = false;
      return this.store.update('Volume', vol);
    });
  }

  // ---- recurring jobs -----------------------------------------------------------------------------

  private recurringJobSpec(input: RecurringJobInput, base?: RecurringJobSpec): RecurringJobSpec {
    const task = check(recurringJobTask, input.task ?? base?.task, 'task');
    const cron = (input.cron ?? base?.cron ?? '').trim().replace(/\s+/g, ' ');
    const cronBad = cronProblem(cron);
    if (cronBad) throw invalid('cron', cronBad);
    const retaining = RETAINING_TASKS.includes(task);
    let retain = input.retain ?? (base && retaining === RETAINING_TASKS.includes(base.task) ? base.retain : undefined);
    if (retaining) {
      retain = check(
        z
          .number()
          .int('retain is a whole number')
          .min(1, `a ${task} job keeps at least 1 ${task}`)
          .max(100, 'retain is at most 100'),
        retain ?? 1,
        'retain',
      );
    } else {
      if (retain !== undefined && retain !== 0)
        throw invalid('retain', `a ${task} job makes nothing to keep: retain applies to snapshot and backup jobs`);
      retain = 0;
    }
    const concurrency = check(
      z
        .number()
        .int('concurrency is a whole number')
        .min(1, 'concurrency is at least 1')
        .max(100, 'concurrency is at most 100'),
      input.concurrency ?? base?.concurrency ?? 1,
      'concurrency',
    );
    const groups = check(
      z
        .array(groupName)
        .max(50, 'at most 50 groups')
        .transform((g) => [...new Set(g)].sort()),
      input.groups ?? base?.groups ?? [],
      'groups',
    );
    const lbls = check(labels, input.labels ?? base?.labels ?? {}, 'labels');
    return { task, cron, retain, concurrency, groups, labels: lbls };
  }

  async createRecurringJob(input: CreateRecurringJobInput): Promise<RecurringJob> {
    checkName(input.name, 'name');
    const spec = this.recurringJobSpec(input);
    if (await this.store.get('RecurringJob', input.name))
      throw conflict(`recurring job "${input.name}" already exists`);
    try {
      return await this.store.create('RecurringJob', { metadata: { name: input.name }, spec });
    } catch (err) {
      if (isStoreError(err, 'AlreadyExists')) throw conflict(`recurring job "${input.name}" already exists`);
      throw err;
    }
  }

  /** Changes the fields given; the others keep their value. */
  async updateRecurringJob(name: string, patch: RecurringJobInput): Promise<RecurringJob> {
    return this.retryOnConflict(async () => {
      const job = await this.store.get('RecurringJob', name);
      if (!job) throw notFound('recurring job', name);
      const spec = this.recurringJobSpec(patch, job.spec);
      if (JSON.stringify(spec) === JSON.stringify(job.spec)) return job;
      job.spec = spec;
      return this.store.update('RecurringJob', job);
    });
  }

  /** Deletes a job; volume labels naming it stay (harmless) until setVolumeRecurringJobs changes them. */
  async deleteRecurringJob(name: string): Promise<RecurringJob> {
    const job = await this.store.get('RecurringJob', name);
    if (!job) throw notFound('recurring job', name);
    if (job.metadata.deletionTimestamp) return job;
    return this.store.delete('RecurringJob', name);
  }

  /**
   * Sets which jobs and groups a volume takes part in (its labels): `jobs` replaces its jobs, `groups`
   * its groups; one left out keeps what the volume has.
   */
  async setVolumeRecurringJobs(volume: string, sel: { jobs?: string[]; groups?: string[] }): Promise<Volume> {
    if (sel.jobs === undefined && sel.groups === undefined) throw invalid('jobs', 'give jobs, groups or both');
    const jobs = sel.jobs === undefined ? undefined : [...new Set(check(z.array(resourceName), sel.jobs, 'jobs'))];
    const groups = sel.groups === undefined ? undefined : [...new Set(check(z.array(groupName), sel.groups, 'groups'))];
    await this.volume(volume);
    for (const j of jobs ?? []) if (!(await this.store.get('RecurringJob', j))) throw notFound('recurring job', j);
    return this.retryOnConflict(async () => {
      const vol = await this.volume(volume);
      if (vol.metadata.deletionTimestamp) throw invalidState(`volume "${volume}" is being deleted`);
      const next = { ...vol.metadata.labels };
      const replace = (prefix: string, names: string[] | undefined) => {
        if (names === undefined) return;
        for (const k of Object.keys(next)) if (k.startsWith(prefix)) delete next[k];
        for (const n of names) next[`${prefix}${n}`] = 'enabled';
      };
      replace(RECURRING_JOB_LABEL_PREFIX, jobs);
      replace(RECURRING_JOB_GROUP_LABEL_PREFIX, groups);
      if (JSON.stringify(Object.entries(next).sort()) === JSON.stringify(Object.entries(vol.metadata.labels).sort()))
        return vol;
      vol.metadata.labels = next;
      return this.store.update('Volume', vol);
    });
  }

  private async retryOnConflict<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof ZodError) throw fromZod(err);
        if (!isStoreError(err, 'Conflict') || attempt >= 5) throw err;
      }
    }
  }
}

/** Creates the `default` backup target (no URL: "none set") when it is missing. */
export async function ensureDefaultBackupTarget(store: Store): Promise<void> {
  if (await store.get('BackupTarget', DEFAULT_BACKUP_TARGET)) return;
  await store
    .create('BackupTarget', {
      metadata: { name: DEFAULT_BACKUP_TARGET },
      spec: { backupTargetURL: '', credentialSecret: '', pollInterval: 300, syncRequestedAt: '' },
    })
    .catch((err: unknown) => {
      if (!isStoreError(err, 'AlreadyExists')) throw err;
    });
}
