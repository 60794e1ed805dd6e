// `shorthorn backup ls|create|rm|restore|activate|volumes|target`: backups through the GraphQL API
// (cli/graphql-client.ts). Tables for people, -o json for scripts. `create --wait` shows the backup's
// progress bar from the backupChanged subscription and exits 1 with its error if it fails; `restore
// --wait` shows restoreProgress from volumeChanged.
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { formatSize } from '../dataplane/util/size.js';
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
  type Subscription,
  show,
  unwrap,
} from './graphql-client.js';
import { formatTable } from './table.js';

const BACKUP_FIELDS = `name volumeName snapshotName state progress error url size volumeSize backupCreatedAt createdAt
  labels isIncremental compressionMethod backupMode requested deleting`;

export interface BackupView {
  name: string;
  volumeName: string;
  snapshotName: string;
  state: string;
  progress: number;
  error: string;
  url: string;
  size: number;
  volumeSize: number;
  backupCreatedAt: string;
  createdAt: string;
  labels: Record<string, string>;
  isIncremental: boolean;
  compressionMethod: string;
  backupMode: string;
  requested: boolean;
  deleting: boolean;
}

const TARGET_FIELDS = `name url credentialSecret credentialKeys credentialSecretMissing pollInterval available
  lastSyncedAt syncRequestedAt conditions { type status reason message }`;

interface TargetView {
  name: string;
  url: string;
  credentialSecret: string;
  credentialKeys: string[];
  credentialSecretMissing: boolean;
  pollInterval: number;
  available: boolean;
  lastSyncedAt: string;
  syncRequestedAt: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
}

const BACKUP_VOLUME_FIELDS = 'name size lastBackupName lastBackupAt dataStored compressionMethod createdAt';

interface BackupVolumeView {
  name: string;
  size: number;
  lastBackupName: string;
  lastBackupAt: string;
  dataStored: number;
  compressionMethod: string;
  createdAt: string;
}

const RESTORE_FIELDS = `name state robustness size numberOfReplicas fromBackup standby isStandby restoreRequired
  restoreProgress lastRestoredBackup conditions { type status reason message }`;

interface RestoreView {
  name: string;
  state: string;
  robustness: string;
  size: number;
  numberOfReplicas: number;
  fromBackup: string;
  standby: boolean;
  isStandby: boolean;
  restoreRequired: boolean;
  restoreProgress: number;
  lastRestoredBackup: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
}

const LIST = `query Backups($volume: String) { backups(volume: $volume) { ${BACKUP_FIELDS} } }`;
const CREATE = `mutation CreateBackup($volume: String!, $snapshot: String, $labels: JSON, $mode: String) {
  result: createBackup(volume: $volume, snapshot: $snapshot, labels: $labels, mode: $mode) {
    ${ERROR_FIELDS} ... on Backup { ${BACKUP_FIELDS} } }
}`;
const DELETE = `mutation DeleteBackup($name: String!) {
  result: deleteBackup(name: $name) { ${ERROR_FIELDS} ... on Backup { ${BACKUP_FIELDS} } }
}`;
const RESTORE = `mutation RestoreBackup($url: String!, $name: String!, $standby: Boolean, $replicas: Int) {
  result: restoreBackup(backupURL: $url, name: $name, standby: $standby, numberOfReplicas: $replicas) {
    ${ERROR_FIELDS} ... on Volume { ${RESTORE_FIELDS} } }
}`;
const ACTIVATE = `mutation ActivateVolume($name: String!) {
  result: activateVolume(name: $name) { ${ERROR_FIELDS} ... on Volume { ${RESTORE_FIELDS} } }
}`;
const TARGET = `query BackupTarget { backupTarget { ${TARGET_FIELDS} } }`;
const SET_TARGET = `mutation SetBackupTarget($input: SetBackupTargetInput!) {
  result: setBackupTarget(input: $input) { ${ERROR_FIELDS} ... on BackupTarget { ${TARGET_FIELDS} } }
}`;
const SYNC_TARGET = `mutation SyncBackupTarget {
  result: syncBackupTarget { ${ERROR_FIELDS} ... on BackupTarget { ${TARGET_FIELDS} } }
}`;
const BACKUP_VOLUMES = `query BackupVolumes { backupVolumes { ${BACKUP_VOLUME_FIELDS} } }`;
const DELETE_VOLUME = `mutation DeleteBackupVolume($name: String!) {
  result: deleteBackupVolume(name: $name) { ${ERROR_FIELDS} ... on BackupVolume { ${BACKUP_VOLUME_FIELDS} } }
}`;
const BACKUP_CHANGED = `subscription BackupChanged($volume: String) { backupChanged(volume: $volume) { ${BACKUP_FIELDS} } }`;
const RESTORE_CHANGED = `subscription RestoreChanged($name: String!) { volumeChanged(name: $name) { ${RESTORE_FIELDS} } }`;

export function backupTable(backups: BackupView[]): string {
  const now = Date.now();
  return formatTable(
    ['name', 'volume', 'snapshot', 'state', 'progress', 'size', 'created', 'url'],
    backups.map((b) => [
      b.name,
      b.volumeName,
      b.snapshotName,
      b.deleting ? 'Deleting' : b.state === 'Error' && b.error ? `Error: ${b.error}` : b.state,
      `${b.progress}%`,
      b.size ? formatSize(b.size) : '',
      age(b.backupCreatedAt || b.createdAt, now),
      b.url,
    ]),
  );
}

function targetDetail(t: TargetView): string {
  const available = t.conditions.find((c) => c.type === 'Available');
  return formatTable(
    ['field', 'value'],
    [
      ['name', t.name],
      ['url', t.url || '(none set: shorthorn backup target set URL)'],
      [
        'credential secret',
        t.credentialSecret
          ? `${t.credentialSecret}${t.credentialSecretMissing ? ' (MISSING)' : ''} (keys: ${t.credentialKeys.join(', ') || 'none'})`
          : '',
      ],
      ['poll interval', t.pollInterval > 0 ? `${t.pollInterval} s` : 'only when asked'],
      ['available', t.url ? (t.available ? 'yes' : `no${available?.message ? `: ${available.message}` : ''}`) : ''],
      ['last synced', t.lastSyncedAt],
    ],
  );
}

function parseTimeout(text: string): number {
  const s = Number(text);
  if (!Number.isFinite(s) || s <= 0) throw new CliError('BAD_ARGUMENT', `--timeout takes seconds, not "${text}"`);
  return s * 1000;
}

/** A bar on a terminal (stderr), a line per change on a pipe, nothing for -o json. */
function progressDisplay(label: string, quiet: boolean) {
  const bar =
    process.stderr.isTTY && !quiet
      ? new cliProgress.SingleBar(
          { stream: process.stderr, format: `${label} [{bar}] {percentage}% | {what}`, hideCursor: true },
          cliProgress.Presets.shades_classic,
        )
      : null;
  let started = false;
  let lastLine = '';
  return {
    update(percent: number, what: string) {
      if (bar) {
        if (!started) bar.start(100, 0, { what });
        started = true;
        bar.update(Math.min(100, Math.max(0, percent)), { what });
      } else if (!quiet) {
        const line = `${label}: ${percent}% (${what})`;
        if (line !== lastLine) process.stderr.write(`${line}\n`);
        lastLine = line;
      }
    },
    stop() {
      if (started) bar?.stop();
    },
  };
}

/**
 * Follows `subscribe` until `check` says done (resolves with that value) or fails (rejects with its
 * CliError), the subscription ends, or the timeout passes.
 */
async function follow<T>(
  start: (onNext: (value: T) => void) => Subscription,
  step: (value: T) => { done?: boolean; error?: CliError },
  timeoutMs: number,
  timeoutMessage: () => string,
  endedMessage: string,
): Promise<T> {
  let result: { value: T } | undefined;
  let failure: CliError | undefined;
  const sub: Subscription = start((value) => {
    if (result || failure) return;
    const s = step(value);
    if (s.error) failure = s.error;
    else if (s.done) result = { value };
    else return;
    sub.stop();
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      sub.done,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CliError('TIMEOUT', timeoutMessage())), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    sub.stop();
  }
  if (failure) throw failure;
  if (!result) throw new CliError('NotFound', endedMessage);
  return result.value;
}

async function waitForBackup(c: GraphQLClient, b: BackupView, timeoutMs: number, quiet: boolean): Promise<BackupView> {
  const display = progressDisplay(`backup ${b.name}`, quiet);
  let last = b;
  try {
    return await follow<BackupView>(
      (onNext) =>
        c.subscribe<{ backupChanged: BackupView }>(BACKUP_CHANGED, { volume: b.volumeName }, (d) => {
          if (d.backupChanged.name === b.name) onNext(d.backupChanged);
        }),
      (x) => {
        last = x;
        display.update(x.progress, x.state || 'waiting for the backup controller');
        if (x.state === 'Completed') return { done: true };
        if (x.state === 'Error')
          return {
            error: new CliError(
              'BackupFailed',
              `backup ${x.name} of volume ${x.volumeName} failed: ${x.error || 'no reason given'}`,
            ),
          };
        if (x.deleting) return { error: new CliError('BackupFailed', `backup ${x.name} is being deleted`) };
        return {};
      },
      timeoutMs,
      () => `backup ${b.name} not done after ${timeoutMs / 1000} s (${last.state || 'not started'}, ${last.progress}%)`,
      `backup ${b.name} went away before it was done`,
    );
  } finally {
    display.stop();
  }
}

function restoreFailure(v: RestoreView): string | undefined {
  const cond = v.conditions.find((x) => x.type === 'Restore');
  if (cond && cond.status === 'False' && /fail/i.test(cond.reason)) return cond.message || cond.reason;
  if (v.robustness === 'faulted') return `volume ${v.name} is faulted`;
  return undefined;
}

async function waitForRestore(c: GraphQLClient, name: string, timeoutMs: number, quiet: boolean): Promise<RestoreView> {
  const display = progressDisplay(`restore ${name}`, quiet);
  let last: RestoreView | undefined;
  try {
    return await follow<RestoreView>(
      (onNext) =>
        c.subscribe<{ volumeChanged: RestoreView }>(RESTORE_CHANGED, { name }, (d) => onNext(d.volumeChanged)),
      (v) => {
        last = v;
        const done = !v.restoreRequired && v.lastRestoredBackup !== '';
        display.update(done ? 100 : v.restoreProgress, done ? 'restored' : v.restoreRequired ? 'restoring' : 'waiting');
        const failed = restoreFailure(v);
        if (failed)
          return {
            error: new CliError(
              'RestoreFailed',
              `restore of volume ${name} failed: ${failed} (the controllers try again; shorthorn volume get ${name})`,
            ),
          };
        return { done };
      },
      timeoutMs,
      () => `volume ${name} not restored after ${timeoutMs / 1000} s (${last?.restoreProgress ?? 0}%)`,
      `volume ${name} went away before it was restored`,
    );
  } finally {
    display.stop();
  }
}

/** `--credential KEY=VALUE`, or `--credential KEY` to take the value from the environment (off the command line). */
function parseCredential(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    if (p.includes('=')) Object.assign(out, parseKeyValues([p], '--credential'));
    else {
      const v = process.env[p];
      if (v === undefined)
        throw new CliError('BAD_ARGUMENT', `--credential ${p}: no environment variable ${p} to take it from`);
      out[p] = v;
    }
  }
  return out;
}

export function registerBackupCommand(program: Command): void {
  const backup = addClientOptions(
    program.command('backup').description('backups, restores and the backup target through the GraphQL API'),
  );

  backup
    .command('ls')
    .description('backups, newest first (the URL is what restore takes)')
    .option('--volume <name>', 'only backups of this volume')
    .action(
      action(async (c, opts) => {
        const { backups } = await c.request<{ backups: BackupView[] }>(LIST, { volume: opts['volume'] });
        show(opts, backups, () => backupTable(backups));
      }),
    );

  backup
    .command('create <volume>')
    .description('back up an attached volume (a new snapshot, unless --snapshot)')
    .option('--snapshot <name>', 'back up this snapshot of the volume')
    .option('-l, --label <key=value...>', 'labels on the backup', [])
    .option('--full', 'upload every block, not only those changed since the last backup')
    .option('--wait', 'show progress until it is done; exit 1 with the error if it fails')
    .option('--timeout <seconds>', 'how long --wait waits', '86400')
    .action(
      action(async (c, opts, volume: string) => {
        const { result } = await c.request<{ result: Result<BackupView> }>(CREATE, {
          volume,
          snapshot: opts['snapshot'] ?? null,
          labels: parseKeyValues(opts['label'] as string[], '--label'),
          mode: opts['full'] ? 'full' : null,
        });
        let b = unwrap(result);
        if (opts['wait'])
          b = await waitForBackup(c, b, parseTimeout(opts['timeout'] as string), opts.output === 'json');
        show(opts, b, () =>
          opts['wait']
            ? `backup ${b.name} of volume ${volume} completed: ${b.url}`
            : `backup ${b.name} of volume ${volume} (snapshot ${b.snapshotName}) requested (shorthorn backup ls --volume ${volume})`,
        );
      }),
    );

  backup
    .command('rm <name...>')
    .description('delete backups from the target')
    .action(
      action(async (c, opts, names: string[]) => {
        const removed: BackupView[] = [];
        for (const name of names) {
          const { result } = await c.request<{ result: Result<BackupView> }>(DELETE, { name });
          removed.push(unwrap(result));
        }
        show(opts, removed, () => `deleting: ${names.join(', ')}`);
      }),
    );

  backup
    .command('restore <backup-url>')
    .description('create a volume from a backup (its URL: backup ls)')
    .requiredOption('--name <volume>', 'the new volume')
    .option('--standby', 'a standby (DR) volume: keeps restoring newer backups until activated')
    .option('--replicas <n>', 'number of replicas (default: the default-replica-count setting)')
    .option('--wait', 'show restore progress until the volume is restored')
    .option('--timeout <seconds>', 'how long --wait waits', '86400')
    .action(
      action(async (c, opts, url: string) => {
        const name = opts['name'] as string;
        const { result } = await c.request<{ result: Result<RestoreView> }>(RESTORE, {
          url,
          name,
          standby: !!opts['standby'],
          replicas: opts['replicas'] === undefined ? null : parseIntFlag(opts['replicas'] as string, '--replicas'),
        });
        let v = unwrap(result);
        if (opts['wait'])
          v = await waitForRestore(c, name, parseTimeout(opts['timeout'] as string), opts.output === 'json');
        show(opts, v, () =>
          opts['wait']
            ? `volume ${v.name} restored from ${v.lastRestoredBackup}${v.standby ? ' (standby: follows newer backups until activated)' : ''}`
            : `volume ${v.name} (${formatSize(v.size)}) is being restored${v.standby ? ' as a standby volume' : ''} (shorthorn volume get ${v.name})`,
        );
      }),
    );

  backup
    .command('activate <volume>')
    .description('turn a standby (DR) volume into a normal one')
    .action(
      action(async (c, opts, name: string) => {
        const { result } = await c.request<{ result: Result<RestoreView> }>(ACTIVATE, { name });
        const v = unwrap(result);
        show(opts, v, () => `volume ${v.name} is being activated (attach it once it is detached and not standby)`);
      }),
    );

  backup
    .command('volumes')
    .description('volumes with backups in the target')
    .action(
      action(async (c, opts) => {
        const { backupVolumes } = await c.request<{ backupVolumes: BackupVolumeView[] }>(BACKUP_VOLUMES);
        const now = Date.now();
        show(opts, backupVolumes, () =>
          formatTable(
            ['name', 'size', 'last backup', 'last backup at', 'data stored', 'compression'],
            backupVolumes.map((bv) => [
              bv.name,
              formatSize(bv.size),
              bv.lastBackupName,
              age(bv.lastBackupAt, now),
              formatSize(bv.dataStored),
              bv.compressionMethod,
            ]),
          ),
        );
      }),
    );

  backup
    .command('volume-rm <name>')
    .description('delete a backup volume from the target: all its backups and blocks')
    .action(
      action(async (c, opts, name: string) => {
        const { result } = await c.request<{ result: Result<BackupVolumeView> }>(DELETE_VOLUME, { name });
        const bv = unwrap(result);
        show(opts, bv, () => `deleting backup volume ${bv.name} and all its backups`);
      }),
    );

  const target = backup
    .command('target')
    .description('show the backup target (set: point it somewhere; sync: list it again now)')
    .action(
      action(async (c, opts) => {
        const { backupTarget: t } = await c.request<{ backupTarget: TargetView | null }>(TARGET);
        if (!t) throw new CliError('NotFound', 'backup target "default" not found');
        show(opts, t, () => targetDetail(t));
      }),
    );

  target
    .command('set <url>')
    .description('file:///<dir> or s3://<bucket>@<region>/<path> ("" removes the target)')
    .option('--credential-secret <name>', 'an existing secret with the credential keys ("" for none)')
    .option(
      '--credential <KEY=VALUE...>',
      'credential keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINTS …); KEY alone takes the value from the environment',
    )
    .option('--poll-interval <seconds>', 'seconds between syncs (0: only when asked)')
    .action(
      action(async (c, opts, url: string) => {
        const input: Record<string, unknown> = { url };
        if (opts['credentialSecret'] !== undefined) input['credentialSecret'] = opts['credentialSecret'];
        if (opts['credential'] !== undefined) input['credential'] = parseCredential(opts['credential'] as string[]);
        if (opts['pollInterval'] !== undefined)
          input['pollInterval'] = parseIntFlag(opts['pollInterval'] as string, '--poll-interval');
        const { result } = await c.request<{ result: Result<TargetView> }>(SET_TARGET, { input });
        const t = unwrap(result);
        show(opts, t, () => `backup target ${t.name} set to ${t.url || '(none)'}; syncing\n${targetDetail(t)}`);
      }),
    );

  target
    .command('sync')
    .description('list the target again now (backups made elsewhere show up)')
    .action(
      action(async (c, opts) => {
        const { result } = await c.request<{ result: Result<TargetView> }>(SYNC_TARGET);
        const t = unwrap(result);
        show(opts, t, () => `backup target ${t.name}: sync requested`);
      }),
    );
}
