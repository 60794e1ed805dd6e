// RecurringJob: a cron-scheduled task over a set of volumes (Longhorn's RecurringJob CR). Volumes take
// part through labels: recurring-job.shorthorn.io/<job>=enabled or recurring-job-group.shorthorn.io/<group>=enabled;
// group `default` covers volumes that carry no job label at all.
import { z } from 'zod';
import { type Resource, resourceSchema } from './meta.js';

export const recurringJobTask = z.enum(['snapshot', 'snapshot-cleanup', 'backup', 'filesystem-trim']);
export type RecurringJobTask = z.infer<typeof recurringJobTask>;

export const RECURRING_JOB_LABEL_PREFIX = 'recurring-job.shorthorn.io/';
export const RECURRING_JOB_GROUP_LABEL_PREFIX = 'recurring-job-group.shorthorn.io/';
/** On snapshots and backups a job made: which job, so retention only deletes its own. */
export const RECURRING_JOB_CREATED_BY_LABEL = 'shorthorn.io/recurring-job';

export const recurringJobSpec = z.object({
  task: recurringJobTask,
  /** Five-field cron expression, evaluated in UTC. */
  cron: z.string().min(1),
  /** How many of its snapshots or backups the job keeps per volume (snapshot, backup). */
  retain: z.number().int().min(0).max(100).default(1),
  groups: z.array(z.string()).default([]),
  /** Volumes handled at once. */
  concurrency: z.number().int().min(1).max(100).default(1),
  /** Put on every snapshot and backup the job makes. */
  labels: z.record(z.string(), z.string()).default({}),
});
export type RecurringJobSpec = z.infer<typeof recurringJobSpec>;

export const recurringJobStatus = z.object({
  ownerID: z.string().default(''),
  executionCount: z.number().int().default(0),
  lastRunAt: z.string().default(''),
  nextRunAt: z.string().default(''),
  lastError: z.string().default(''),
});
export type RecurringJobStatus = z.infer<typeof recurringJobStatus>;

export const recurringJobSchema = resourceSchema(
  'RecurringJob',
  recurringJobSpec,
  recurringJobStatus.default(recurringJobStatus.parse({})),
);
export type RecurringJob = Resource<'RecurringJob', RecurringJobSpec, RecurringJobStatus>;
