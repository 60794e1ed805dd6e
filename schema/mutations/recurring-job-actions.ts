// Recurring job mutations, and which jobs and groups a volume takes part in (its labels). The cron
// expression, task and ranges are checked by BackupApi; the recurring-job controller runs the jobs.
import { builder } from '../builder.js';
import { API_ERRORS } from '../errors.js';
import { RecurringJobRef } from '../recurring-job.js';
import { VolumeRef } from '../volume.js';

const CreateRecurringJobInput = builder.inputType('CreateRecurringJobInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: 'Lower-case letters, digits and "-", at most 63' }),
    task: t.string({ required: true, description: 'snapshot, snapshot-cleanup, backup or filesystem-trim' }),
    cron: t.string({
      required: true,
      description: '5 fields (minute hour day month weekday), or 6 with seconds first; UTC',
    }),
    retain: t.int({
      required: false,
      description: 'snapshot and backup jobs: how many to keep per volume (1–100, default 1)',
    }),
    concurrency: t.int({ required: false, description: 'Volumes at once (1–100, default 1)' }),
    groups: t.stringList({ required: false }),
    labels: t.field({ type: 'JSON', required: false, description: 'Put on every snapshot and backup it makes' }),
  }),
});

const UpdateRecurringJobInput = builder.inputType('UpdateRecurringJobInput', {
  description: 'Fields left out keep their value',
  fields: (t) => ({
    task: t.string({ required: false }),
    cron: t.string({ required: false }),
    retain: t.int({ required: false }),
    concurrency: t.int({ required: false }),
    groups: t.stringList({ required: false, description: 'Replaces the groups' }),
    labels: t.field({ type: 'JSON', required: false, description: 'Replaces the labels' }),
  }),
});

const opt = <T>(v: T | null | undefined): T | undefined => v ?? undefined;

builder.mutationFields((t) => ({
  createRecurringJob: t.field({
    type: RecurringJobRef,
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { input: t.arg({ type: CreateRecurringJobInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      ctx.backups.createRecurringJob({
        name: input.name,
        task: input.task,
        cron: input.cron,
        retain: opt(input.retain),
        concurrency: opt(input.concurrency),
        groups: opt(input.groups),
        labels: opt(input.labels) as Record<string, string> | undefined, // checked by the API
      }),
  }),
  updateRecurringJob: t.field({
    type: RecurringJobRef,
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: {
      name: t.arg.string({ required: true }),
      input: t.arg({ type: UpdateRecurringJobInput, required: true }),
    },
    resolve: (_root, { name, input }, ctx) =>
      ctx.backups.updateRecurringJob(name, {
        task: opt(input.task),
        cron: opt(input.cron),
        retain: opt(input.retain),
        concurrency: opt(input.concurrency),
        groups: opt(input.groups),
        labels: opt(input.labels) as Record<string, string> | undefined, // checked by the API
      }),
  }),
  deleteRecurringJob: t.field({
    type: RecurringJobRef,
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.backups.deleteRecurringJob(name),
  }),
  setVolumeRecurringJobs: t.field({
    type: VolumeRef,
    description:
      'Which recurring jobs and groups a volume takes part in: jobs replaces its jobs, groups its groups; one left out stays as it is',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: {
      volume: t.arg.string({ required: true }),
      jobs: t.arg.stringList({ required: false }),
      groups: t.arg.stringList({ required: false }),
    },
    resolve: (_root, { volume, jobs, groups }, ctx) =>
      ctx.backups.setVolumeRecurringJobs(volume, { jobs: opt(jobs), groups: opt(groups) }),
  }),
}));
