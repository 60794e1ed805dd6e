// `shorthorn engine-ctl … backup create|status` and `restore`, `restore-status`: back a snapshot up to
// a backup target and restore one into the engine's volume, from a terminal. S3 credentials come from
// the environment under Longhorn's secret keys, as a backup target's secret would hold them.
import type { Command } from 'commander';
import { Option } from 'commander';
import { unary } from '../dataplane/grpc/unary.js';
import type { ControllerServiceClient, EngineBackupJob, RestoreStatus } from '../dataplane/proto/gen/engine.js';
import { formatSize } from '../dataplane/util/size.js';
import { waitWithProgress } from './backup-progress.js';
import { formatTable } from './table.js';

/** Environment variables passed to the target as its credential (when set). */
export const CREDENTIAL_ENV = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_ENDPOINTS',
  'AWS_REGION',
  'AWS_CERT',
  'VIRTUAL_HOSTED_STYLE',
];

export function credentialFromEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const credential: Record<string, string> = {};
  for (const key of CREDENTIAL_ENV) {
    const value = env[key];
    if (value !== undefined && value !== '') credential[key] = value;
  }
  return credential;
}

interface Opts {
  output: 'table' | 'json';
}
type WithClient<O extends Opts> = <A extends unknown[]>(
  fn: (c: ControllerServiceClient, opts: O, ...args: A) => Promise<void>,
) => (...args: A) => Promise<void>;
type Show<O extends Opts> = (opts: O, value: unknown, table: () => string) => void;

function backupTable(j: EngineBackupJob): string {
  return formatTable(
    ['backup', 'snapshot', 'state', 'progress', 'incremental', 'uploaded', 'reused', 'replica', 'error'],
    [
      [
        j.backupName,
        j.snapshotName,
        j.state,
        `${j.progress}%`,
        j.isIncremental ? 'yes' : 'no',
        `${j.blocksUploaded} blocks, ${formatSize(j.bytesUploaded)}`,
        `${j.blocksReused} blocks`,
        j.replicaAddress,
        j.error,
      ],
    ],
  );
}

function restoreTable(r: RestoreStatus): string {
  return formatTable(
    ['backup', 'state', 'progress', 'done', 'total', 'snapshot', 'last restored', 'error'],
    [
      [
        r.backupName,
        r.state,
        `${r.progress}%`,
        formatSize(r.bytesDone),
        formatSize(r.bytesTotal),
        r.snapshotName,
        r.lastRestoredBackupName,
        r.error,
      ],
    ],
  );
}

function parseLabels(pairs: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new Error(`label ${JSON.stringify(pair)} is not key=value`);
    labels[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return labels;
}

function parseCount(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`expected a non-negative integer, got ${text}`);
  return n;
}

export function registerBackupCommands<O extends Opts>(ctl: Command, withClient: WithClient<O>, show: Show<O>): void {
  const backup = ctl.command('backup').description('back up snapshots of the volume to a backup target');

  backup
    .command('create <snapshot>')
    .description('back a snapshot up (S3 credentials from AWS_* / VIRTUAL_HOSTED_STYLE in the environment)')
    .requiredOption('--target <url>', 'backup target: file:///DIR or s3://BUCKET@REGION/PATH/')
    .option('--backup-name <name>', 'name of the backup (default backup-<16 hex>)')
    .addOption(new Option('--mode <mode>', 'incremental when possible, or full').choices(['incremental', 'full']))
    .addOption(
      new Option('--compression <method>', "the volume's first backup fixes it (default lz4)").choices([
        'lz4',
        'gzip',
        'none',
      ]),
    )
    .option('-l, --label <key=value...>', 'labels of the backup', [])
    .option('--concurrency <n>', 'blocks read and uploaded at once', parseCount)
    .option('--wait', 'wait until it ends, with a progress bar on a terminal; exit 1 if it fails')
    .action(
      withClient(
        async (
          c,
          opts,
          snapshot: string,
          cmd: {
            target: string;
            backupName?: string;
            mode?: string;
            compression?: string;
            label: string[];
            concurrency?: number;
            wait?: boolean;
          },
        ) => {
          let job = await unary(
            c.backupCreate,
            c,
            {
              backupName: cmd.backupName ?? '',
              snapshotName: snapshot,
              volumeName: '',
              volumeSize: 0,
              targetUrl: cmd.target,
              credential: credentialFromEnv(),
              labels: parseLabels(cmd.label),
              mode: cmd.mode ?? '',
              compression: cmd.compression ?? '',
              concurrency: cmd.concurrency ?? 0,
              blockSize: 0,
              volumeLabels: {},
            },
            120_000,
          );
          if (cmd.wait) {
            const started = job;
            job = await waitWithProgress(`backup ${job.backupName}`, () =>
              unary(c.backupStatus, c, { backupName: started.backupName, replicaAddress: started.replicaAddress }),
            );
          }
          show(opts, job, () =>
            job.state === 'complete'
              ? `backup ${job.backupName} complete (${job.isIncremental ? 'incremental' : 'full'}: ${job.blocksUploaded} blocks uploaded, ${formatSize(job.bytesUploaded)}; ${job.blocksReused} reused)\n${job.url}`
              : backupTable(job),
          );
          if (job.state === 'error') {
            process.stderr.write(`shorthorn: backup ${job.backupName} failed: ${job.error}\n`);
            process.exitCode = 1;
          }
        },
      ),
    );

  backup
    .command('status <name>')
    .description('progress of a backup')
    .option('--replica <address>', 'the replica running it (as backup create reported); default: ask them all')
    .action(
      withClient(async (c, opts, name: string, cmd: { replica?: string }) => {
        const job = await unary(c.backupStatus, c, { backupName: name, replicaAddress: cmd.replica ?? '' });
        show(opts, job, () => `${backupTable(job)}${job.url ? `\n${job.url}` : ''}`);
      }),
    );

  ctl
    .command('restore <backup-url>')
    .description(
      'restore a backup into the volume (frontend stopped; credentials from the environment); snapshot restore-<backup> at the end',
    )
    .option('--last-restored <backup>', 'incremental: the backup this volume already holds')
    .option('--concurrency <n>', 'blocks downloaded at once', parseCount)
    .option('--wait', 'wait until it ends, with a progress bar on a terminal; exit 1 if it fails')
    .action(
      withClient(async (c, opts, url: string, cmd: { lastRestored?: string; concurrency?: number; wait?: boolean }) => {
        let r = await unary(
          c.backupRestore,
          c,
          {
            backupUrl: url,
            credential: credentialFromEnv(),
            lastRestoredBackupName: cmd.lastRestored ?? '',
            concurrency: cmd.concurrency ?? 0,
          },
          120_000,
        );
        if (cmd.wait) r = await waitWithProgress(`restore ${r.backupName}`, () => unary(c.backupRestoreStatus, c, {}));
        show(opts, r, () =>
          r.state === 'complete'
            ? `backup ${r.backupName} restored (${r.blocksWritten} blocks written, ${formatSize(r.bytesZeroed)} zeroed); snapshot ${r.snapshotName}`
            : restoreTable(r),
        );
        if (r.state === 'error') {
          process.stderr.write(`shorthorn: restore of ${r.backupName} failed: ${r.error}\n`);
          process.exitCode = 1;
        }
      }),
    );

  ctl
    .command('restore-status')
    .description('progress of the restore into the volume')
    .action(
      withClient(async (c, opts) => {
        const r = await unary(c.backupRestoreStatus, c, {});
        show(opts, r, () => restoreTable(r));
      }),
    );
}
