// RecurringJob: a cron-scheduled snapshot, backup, snapshot-cleanup or filesystem-trim over the volumes
// that carry its label or one of its groups' (Longhorn RecurringJob). Queries recurringJobs and
// recurringJob(name).
import type { RecurringJob as RecurringJobModel } from '../model/recurring-job.js';
import { volumesOfRecurringJob } from '../resolvers/graph-reads.js';
import { builder } from './builder.js';
import { VolumeRef } from './volume.js';

export const RecurringJobRef = builder.objectRef<RecurringJobModel>('RecurringJob');

RecurringJobRef.implement({
  description: 'A task run on a cron schedule (UTC) over a set of volumes (Longhorn RecurringJob)',
  fields: (t) => ({
    name: t.string({ resolve: (j) => j.metadata.name }),
    task: t.string({
      description: 'snapshot, snapshot-cleanup, backup or filesystem-trim',
      resolve: (j) => j.spec.task,
    }),
    cron: t.string({ description: '5 fields, or 6 with seconds first; UTC', resolve: (j) => j.spec.cron }),
    retain: t.int({
      description: 'How many of its snapshots or backups it keeps per volume',
      resolve: (j) => j.spec.retain,
    }),
    concurrency: t.int({ description: 'Volumes handled at once', resolve: (j) => j.spec.concurrency }),
    groups: t.stringList({ resolve: (j) => j.spec.groups }),
    labels: t.field({
      type: 'JSON',
      description: 'Put on every snapshot and backup it makes',
      resolve: (j) => j.spec.labels,
    }),
    createdAt: t.string({ resolve: (j) => j.metadata.creationTimestamp }),
    executionCount: t.int({ resolve: (j) => j.status.executionCount }),
    lastRunAt: t.string({ resolve: (j) => j.status.lastRunAt }),
    nextRunAt: t.string({ resolve: (j) => j.status.nextRunAt }),
    lastError: t.string({ resolve: (j) => j.status.lastError }),
    volumes: t.field({
      type: [VolumeRef],
      description: 'The volumes it runs on: by its label, a group label, or (group default) no job label at all',
      resolve: async (j, _args, ctx) =>
        [...(await volumesOfRecurringJob(ctx.reads, j))].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
    }),
  }),
});

builder.queryFields((t) => ({
  recurringJobs: t.field({
    type: [RecurringJobRef],
    description: 'Recurring jobs by name; filtered by task or group',
    authScopes: { viewer: true },
    args: { task: t.arg.string({ required: false }), group: t.arg.string({ required: false }) },
    resolve: async (_root, args, ctx) =>
      (await ctx.reads.list('RecurringJob'))
        .filter((j) => (!args.task || j.spec.task === args.task) && (!args.group || j.spec.groups.includes(args.group)))
        .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
  }),
  recurringJob: t.field({
    type: RecurringJobRef,
    nullable: true,
    authScopes: { viewer: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: async (_root, { name }, ctx) => (await ctx.reads.get('RecurringJob', name)) ?? null,
  }),
}));
