// `shorthorn recurring-job ls|create|update|rm|add|remove`: cron-scheduled snapshots, backups, snapshot
// cleanups and filesystem trims through the GraphQL API; add/remove put a volume in or out of jobs and
// groups (its labels).
import type { Command } from 'commander';
import {
  action,
  addClientOptions,
  age,
  CliError,
  ERROR_FIELDS,
  type GraphQLClient,
  parseIntFlag,
  parseKeyValues,
  type Result,
  show,
  unwrap,
} from './graphql-client.js';
import { formatTable } from './table.js';

const JOB_FIELDS = `name task cron retain concurrency groups labels executionCount lastRunAt nextRunAt lastError
  volumes { name }`;

interface JobView {
  name: string;
  task: string;
  cron: string;
  retain: number;
  concurrency: number;
  groups: string[];
  labels: Record<string, string>;
  executionCount: number;
  lastRunAt: string;
  nextRunAt: string;
  lastError: string;
  volumes: { name: string }[];
}

interface VolumeJobsView {
  name: string;
  recurringJobs: string[];
  recurringJobGroups: string[];
}

const LIST = `query RecurringJobs { recurringJobs { ${JOB_FIELDS} } }`;
const CREATE = `mutation CreateRecurringJob($input: CreateRecurringJobInput!) {
  result: createRecurringJob(input: $input) { ${ERROR_FIELDS} ... on RecurringJob { ${JOB_FIELDS} } }
}`;
const UPDATE = `mutation UpdateRecurringJob($name: String!, $input: UpdateRecurringJobInput!) {
  result: updateRecurringJob(name: $name, input: $input) { ${ERROR_FIELDS} ... on RecurringJob { ${JOB_FIELDS} } }
}`;
const DELETE = `mutation DeleteRecurringJob($name: String!) {
  result: deleteRecurringJob(name: $name) { ${ERROR_FIELDS} ... on RecurringJob { ${JOB_FIELDS} } }
}`;
const VOLUME_JOBS = `query VolumeJobs($name: String!) { volume(name: $name) { name recurringJobs recurringJobGroups } }`;
const SET_VOLUME_JOBS = `mutation SetVolumeRecurringJobs($volume: String!, $jobs: [String!], $groups: [String!]) {
  result: setVolumeRecurringJobs(volume: $volume, jobs: $jobs, groups: $groups) {
    ${ERROR_FIELDS} ... on Volume { name recurringJobs recurringJobGroups } }
}`;

function jobTable(jobs: JobView[]): string {
  const now = Date.now();
  return formatTable(
    ['name', 'task', 'cron', 'retain', 'concurrency', 'groups', 'volumes', 'last run', 'next run', 'labels', 'error'],
    jobs.map((j) => [
      j.name,
      j.task,
      j.cron,
      j.retain,
      j.concurrency,
      j.groups.join(','),
      j.volumes.length,
      age(j.lastRunAt, now),
      j.nextRunAt,
      Object.entries(j.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
      j.lastError,
    ]),
  );
}

/** The flags create and update share, as input fields (only those given). */
function jobInput(opts: Record<string, unknown>): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  if (opts['task'] !== undefined) input['task'] = opts['task'];
  if (opts['cron'] !== undefined) input['cron'] = opts['cron'];
  if (opts['retain'] !== undefined) input['retain'] = parseIntFlag(opts['retain'] as string, '--retain');
  if (opts['concurrency'] !== undefined)
    input['concurrency'] = parseIntFlag(opts['concurrency'] as string, '--concurrency');
  if (opts['group'] !== undefined) input['groups'] = opts['group'];
  if (opts['label'] !== undefined) input['labels'] = parseKeyValues(opts['label'] as string[], '--label');
  return input;
}

/** A volume's jobs and groups changed by `edit`, written back in one mutation. */
async function editVolumeJobs(
  c: GraphQLClient,
  volume: string,
  opts: Record<string, unknown>,
  edit: (have: string[], given: string[]) => string[],
): Promise<VolumeJobsView> {
  const jobs = opts['job'] as string[] | undefined;
  const groups = opts['group'] as string[] | undefined;
  if (!jobs && !groups) throw new CliError('BAD_ARGUMENT', 'give --job NAME and/or --group NAME');
  const { volume: v } = await c.request<{ volume: VolumeJobsView | null }>(VOLUME_JOBS, { name: volume });
  if (!v) throw new CliError('NotFound', `volume "${volume}" not found`);
  const { result } = await c.request<{ result: Result<VolumeJobsView> }>(SET_VOLUME_JOBS, {
    volume,
    jobs: jobs ? edit(v.recurringJobs, jobs) : null,
    groups: groups ? edit(v.recurringJobGroups, groups) : null,
  });
  return unwrap(result);
}

const volumeJobsLine = (v: VolumeJobsView) =>
  `volume ${v.name}: jobs ${v.recurringJobs.join(', ') || '(none)'}; groups ${v.recurringJobGroups.join(', ') || '(none)'}`;

export function registerRecurringJobCommand(program: Command): void {
  const job = addClientOptions(
    program
      .command('recurring-job')
      .description('cron-scheduled snapshots, backups, snapshot cleanups and trims, through the GraphQL API'),
  );

  job
    .command('ls')
    .description('recurring jobs, with how many volumes each runs on')
    .action(
      action(async (c, opts) => {
        const { recurringJobs } = await c.request<{ recurringJobs: JobView[] }>(LIST);
        show(opts, recurringJobs, () => jobTable(recurringJobs));
      }),
    );

  const TASK = ['--task <task>', 'snapshot, snapshot-cleanup, backup or filesystem-trim'] as const;
  const CRON = [
    '--cron <expression>',
    '5 fields (minute hour day month weekday), or 6 with seconds first; UTC',
  ] as const;
  const jobFlags = (cmd: Command, create: boolean) => {
    if (create) cmd.requiredOption(...TASK).requiredOption(...CRON);
    else cmd.option(...TASK).option(...CRON);
    return cmd
      .option('--retain <n>', 'snapshot and backup jobs: how many to keep per volume (default 1)')
      .option('--concurrency <n>', 'volumes at once (default 1)')
      .option('--group <name...>', 'groups it belongs to (a volume joins all jobs of a group); update replaces them')
      .option('-l, --label <key=value...>', 'labels on every snapshot and backup it makes; update replaces them');
  };

  jobFlags(job.command('create <name>').description('create a recurring job'), true).action(
    action(async (c, opts, name: string) => {
      const { result } = await c.request<{ result: Result<JobView> }>(CREATE, { input: { name, ...jobInput(opts) } });
      const j = unwrap(result);
      show(opts, j, () => `recurring job ${j.name} created: ${j.task} at "${j.cron}" (UTC)`);
    }),
  );

  jobFlags(
    job.command('update <name>').description('change a recurring job (flags left out keep their value)'),
    false,
  ).action(
    action(async (c, opts, name: string) => {
      const input = jobInput(opts);
      if (Object.keys(input).length === 0)
        throw new CliError(
          'BAD_ARGUMENT',
          'nothing to update: give --task, --cron, --retain, --concurrency, --group or --label',
        );
      const { result } = await c.request<{ result: Result<JobView> }>(UPDATE, { name, input });
      const j = unwrap(result);
      show(opts, j, () => `recurring job ${j.name} updated`);
    }),
  );

  job
    .command('rm <name...>')
    .description('delete recurring jobs')
    .action(
      action(async (c, opts, names: string[]) => {
        const removed: JobView[] = [];
        for (const name of names) {
          const { result } = await c.request<{ result: Result<JobView> }>(DELETE, { name });
          removed.push(unwrap(result));
        }
        show(opts, removed, () => `deleted: ${names.join(', ')}`);
      }),
    );

  job
    .command('add <volume>')
    .description('run jobs (or the jobs of groups) on a volume')
    .option('--job <name...>', 'recurring jobs')
    .option('--group <name...>', 'recurring job groups')
    .action(
      action(async (c, opts, volume: string) => {
        const v = await editVolumeJobs(c, volume, opts, (have, given) => [...new Set([...have, ...given])].sort());
        show(opts, v, () => volumeJobsLine(v));
      }),
    );

  job
    .command('remove <volume>')
    .description('stop running jobs (or groups) on a volume')
    .option('--job <name...>', 'recurring jobs')
    .option('--group <name...>', 'recurring job groups')
    .action(
      action(async (c, opts, volume: string) => {
        const v = await editVolumeJobs(c, volume, opts, (have, given) => have.filter((x) => !given.includes(x)));
        show(opts, v, () => volumeJobsLine(v));
      }),
    );
}
