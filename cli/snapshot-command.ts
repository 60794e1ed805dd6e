// `shorthorn snapshot create|ls|rm|purge|revert|hash`: a volume's snapshots, two ways.
// - `--engine HOST:PORT`: straight through the engine's ControllerService (the data plane; works with no
//   control plane at all, e.g. an engine started by hand).
// - `--volume NAME` (no --engine): through the GraphQL API (--server/--token, SHORTHORN_SERVER,
//   SHORTHORN_TOKEN): Snapshot resources the controllers carry out (hash is data plane only).
// Tables for people, -o json for scripts.
import { credentials } from '@grpc/grpc-js';
import { type Command, Option } from 'commander';
import { unary } from '../dataplane/grpc/unary.js';
import { ControllerServiceClient, type SnapshotInfo } from '../dataplane/proto/gen/engine.js';
import { formatHostPort, parseHostPort } from '../dataplane/util/address.js';
import { formatSize } from '../dataplane/util/size.js';
import {
  addClientOptions,
  CliError,
  ERROR_FIELDS,
  GraphQLClient,
  type Result,
  type Subscription,
  unwrap,
} from './graphql-client.js';
import { formatTable } from './table.js';

interface SnapshotOpts {
  engine?: string;
  volume?: string;
  server?: string;
  token?: string;
  output: 'table' | 'json';
}

/** The GraphQL form of a subcommand: the client, the options, the volume name, then its arguments. */
type ApiFn<A extends unknown[]> = (
  c: GraphQLClient,
  opts: SnapshotOpts,
  volume: string,
  sub: Command,
  ...args: A
) => Promise<void>;

/** Purge and hash read whole files: give them a day, as Longhorn does. */
const LONG_MS = 24 * 3600 * 1000;

export function registerSnapshotCommand(program: Command): void {
  const snap = program
    .command('snapshot')
    .description(
      "manage a volume's snapshots: through its engine (--engine HOST:PORT) or through the API (--volume NAME)",
    )
    .option('--engine <host:port>', 'the engine gRPC address (data plane, no control plane needed)')
    .option('--volume <name>', 'the volume, through the GraphQL API (when --engine is not given)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'));
  addClientOptions(snap, false);

  /**
   * The data-plane form with --engine; else the GraphQL form with --volume (`api` undefined: this
   * subcommand exists only in the data plane).
   */
  const run =
    <A extends unknown[]>(
      fn: (c: ControllerServiceClient, opts: SnapshotOpts, ...args: A) => Promise<void>,
      api?: ApiFn<A>,
    ) =>
    async (...args: A) => {
      const opts = snap.opts<SnapshotOpts>();
      if (opts.engine === undefined) {
        if (opts.volume === undefined)
          throw new Error(
            'give --engine HOST:PORT (the engine, directly) or --volume NAME (through the API, see --server)',
          );
        const sub = args[args.length - 1] as Command;
        if (!api) throw new Error(`snapshot ${sub.name()} works on the engine only: give --engine HOST:PORT`);
        const client = GraphQLClient.from(opts);
        try {
          await api(client, opts, opts.volume, sub, ...args);
        } finally {
          await client.close();
        }
        return;
      }
      if (opts.volume !== undefined)
        throw new Error('--engine and --volume exclude each other: --engine talks to the engine, --volume to the API');
      const c = new ControllerServiceClient(formatHostPort(parseHostPort(opts.engine)), credentials.createInsecure());
      try {
        await fn(c, opts, ...args);
      } finally {
        c.close();
      }
    };
  const show = (opts: SnapshotOpts, value: unknown, text: () => string) =>
    process.stdout.write(`${opts.output === 'json' ? JSON.stringify(value) : text()}\n`);

  snap
    .command('create [name]')
    .description('take a snapshot (name defaults to a UUID) with I/O paused for a moment')
    .option('-l, --label <key=value...>', 'labels to attach', [])
    .action(
      run(async (c, opts, name: string | undefined, cmd: { label: string[] }) => {
        const labels = parseLabels(cmd.label);
        const r = await unary(c.snapshotCreate, c, { name: name ?? '', labels }, 120_000);
        show(opts, r, () => `snapshot ${r.name} created (I/O paused ${(r.pauseUs / 1000).toFixed(1)} ms)`);
      }, apiCreate),
    );

  snap
    .command('ls')
    .description('list snapshots as a tree (newest last; removed ones marked)')
    .action(
      run(async (c, opts) => {
        const { snapshots } = await unary(c.snapshotList, c, {});
        show(opts, snapshots, () => snapshotTable(snapshots));
      }, apiList),
    );

  snap
    .command('rm <name...>')
    .description('mark snapshots removed (purge frees their space)')
    .action(
      run(async (c, opts, names: string[]) => {
        for (const name of names) await unary(c.snapshotRemove, c, { name });
        show(opts, { removed: names }, () => `marked removed: ${names.join(', ')} (run purge to free the space)`);
      }, apiRemove),
    );

  snap
    .command('purge')
    .description('fold removed and system snapshots away on every replica')
    .option('--wait', 'with --volume: wait until the controllers have purged')
    .option('--timeout <seconds>', 'how long --wait waits', '3600')
    .action(
      run(async (c, opts) => {
        const { replicas } = await unary(c.snapshotPurge, c, {}, LONG_MS);
        show(opts, replicas, () =>
          formatTable(
            ['replica', 'actions', 'error'],
            replicas.map((r) => [r.address, r.actions, r.error]),
          ),
        );
        if (replicas.some((r) => r.error !== '')) process.exitCode = 1;
      }, apiPurge),
    );

  snap
    .command('revert <name>')
    .description('revert the volume to a snapshot (the frontend must be stopped)')
    .option('--stop-frontend', 'stop the NBD frontend first and start it again afterwards (disconnects clients)')
    .option('--wait', 'with --volume: wait until the controllers have reverted the (detached) volume')
    .option('--timeout <seconds>', 'how long --wait waits', '600')
    .action(
      run(async (c, opts, name: string, cmd: { stopFrontend?: boolean }) => {
        if (cmd.stopFrontend) await unary(c.volumeFrontendShutdown, c, {}, 60_000);
        try {
          await unary(c.snapshotRevert, c, { name }, 120_000);
        } finally {
          if (cmd.stopFrontend) await unary(c.volumeFrontendStart, c, {}, 60_000);
        }
        show(opts, { reverted: name }, () => `volume reverted to ${name}`);
      }, apiRevert),
    );

  snap
    .command('hash <name>')
    .description("checksum a snapshot on every replica and compare (stored in Longhorn's .checksum files)")
    .option('--rehash', 'hash again even if the recorded checksum is current')
    .action(
      run(async (c, opts, name: string, cmd: { rehash?: boolean }) => {
        const r = await unary(c.snapshotHash, c, { name, rehash: cmd.rehash ?? false }, LONG_MS);
        show(opts, r, () =>
          [
            formatTable(
              ['replica', 'crc64', 'corrupted', 'odd one out', 'error'],
              r.replicas.map((x) => [
                x.address,
                x.checksum,
                x.silentlyCorrupted ? 'YES' : 'no',
                x.oddOneOut ? 'YES' : '',
                x.error,
              ]),
            ),
            r.consistent
              ? `${name}: consistent on every replica`
              : `${name}: replicas DIFFER — rebuild the odd one out`,
          ].join('\n'),
        );
        if (!r.consistent) process.exitCode = 1;
      }),
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

/** Snapshots indented under their parents, oldest root first. */
function snapshotTable(snapshots: SnapshotInfo[]): string {
  const byName = new Map(snapshots.map((s) => [s.name, s]));
  const rows: string[][] = [];
  const visit = (s: SnapshotInfo, depth: number) => {
    const labels = Object.entries(s.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    rows.push([
      `${'  '.repeat(depth)}${s.name}`,
      s.removed ? 'removed' : s.userCreated ? 'user' : 'system',
      s.created,
      formatSize(s.size),
      labels,
    ]);
    for (const child of s.children) {
      const c = byName.get(child);
      if (c !== undefined) visit(c, depth + 1);
    }
  };
  for (const root of snapshots.filter((s) => s.parent === '' || !byName.has(s.parent))) visit(root, 0);
  return formatTable(['snapshot', 'kind', 'created', 'size', 'labels'], rows);
}

// ---- The GraphQL form (--volume NAME) ----

const SNAPSHOT_FIELDS = `name volumeName parentName children { name } creationTime size labels userCreated markRemoved
  readyToUse requested deleting error`;

interface ApiSnapshot {
  name: string;
  volumeName: string;
  parentName: string;
  children: { name: string }[];
  creationTime: string | null;
  size: number;
  labels: Record<string, string>;
  userCreated: boolean;
  markRemoved: boolean;
  readyToUse: boolean;
  requested: boolean;
  deleting: boolean;
  error: string;
}

interface ApiVolumeState {
  name: string;
  state: string;
  revertRequestedTo: string | null;
  purgeRequested: boolean;
  conditions: { type: string; status: string; reason: string; message: string }[];
}
const VOLUME_STATE = 'name state revertRequestedTo purgeRequested conditions { type status reason message }';

const LIST_SNAPSHOTS = `query Snapshots($volume: String!) {
  volume(name: $volume) { name }
  snapshots(volume: $volume) { ${SNAPSHOT_FIELDS} }
}`;
const CREATE_SNAPSHOT = `mutation CreateSnapshot($volume: String!, $name: String, $labels: JSON) {
  result: createSnapshot(volume: $volume, name: $name, labels: $labels) { ${ERROR_FIELDS} ... on Snapshot { ${SNAPSHOT_FIELDS} } }
}`;
const DELETE_SNAPSHOT = `mutation DeleteSnapshot($name: String!) {
  result: deleteSnapshot(name: $name) { ${ERROR_FIELDS} ... on Snapshot { ${SNAPSHOT_FIELDS} } }
}`;
const REVERT_SNAPSHOT = `mutation RevertSnapshot($volume: String!, $name: String!) {
  result: revertSnapshot(volume: $volume, name: $name) { ${ERROR_FIELDS} ... on Volume { ${VOLUME_STATE} } }
}`;
const PURGE_SNAPSHOTS = `mutation PurgeSnapshots($volume: String!) {
  result: purgeSnapshots(volume: $volume) { ${ERROR_FIELDS} ... on Volume { ${VOLUME_STATE} } }
}`;
const VOLUME_STATE_CHANGED = `subscription VolumeState($name: String!) { volumeChanged(name: $name) { ${VOLUME_STATE} } }`;

function showApi(opts: SnapshotOpts, value: unknown, text: () => string): void {
  process.stdout.write(`${opts.output === 'json' ? JSON.stringify(value, null, 2) : text()}\n`);
}

async function listApi(c: GraphQLClient, volume: string): Promise<ApiSnapshot[]> {
  const r = await c.request<{ volume: { name: string } | null; snapshots: ApiSnapshot[] }>(LIST_SNAPSHOTS, { volume });
  if (!r.volume) throw new CliError('NotFound', `volume "${volume}" not found`);
  return r.snapshots;
}

const apiCreate: ApiFn<[string | undefined, { label: string[] }]> = async (c, opts, volume, _sub, name, cmd) => {
  const labels = parseLabels(cmd.label);
  const { result } = await c.request<{ result: Result<ApiSnapshot> }>(CREATE_SNAPSHOT, {
    volume,
    name: name ?? null,
    labels,
  });
  const snap = unwrap(result);
  showApi(opts, snap, () => `snapshot ${snap.name} of volume ${volume} requested (snapshot ls --volume ${volume})`);
};

const apiList: ApiFn<[]> = async (c, opts, volume) => {
  const snapshots = await listApi(c, volume);
  showApi(opts, snapshots, () => apiSnapshotTable(snapshots));
};

const apiRemove: ApiFn<[string[]]> = async (c, opts, volume, _sub, names) => {
  // Snapshot names are global: refuse one of another volume rather than delete it by mistake.
  const known = new Set((await listApi(c, volume)).map((s) => s.name));
  const missing = names.filter((n) => !known.has(n));
  if (missing.length > 0)
    throw new CliError('NotFound', `volume "${volume}" has no snapshot ${missing.map((n) => `"${n}"`).join(', ')}`);
  const removed: ApiSnapshot[] = [];
  for (const name of names) {
    const { result } = await c.request<{ result: Result<ApiSnapshot> }>(DELETE_SNAPSHOT, { name });
    removed.push(unwrap(result));
  }
  showApi(opts, removed, () => `deleting: ${names.join(', ')} (removed from the chain and purged once attached)`);
};

const apiRevert: ApiFn<[string, { stopFrontend?: boolean }]> = async (c, opts, volume, sub, name, cmd) => {
  if (cmd.stopFrontend)
    throw new CliError(
      'BAD_ARGUMENT',
      '--stop-frontend is for --engine; through the API the volume must be detached and the controllers revert it',
    );
  const { result } = await c.request<{ result: Result<ApiVolumeState> }>(REVERT_SNAPSHOT, { volume, name });
  let v = unwrap(result);
  const { wait, timeout } = sub.opts<{ wait?: boolean; timeout: string }>();
  if (wait) v = await waitVolumeState(c, volume, (x) => x.revertRequestedTo === null, timeout, `reverted to ${name}`);
  const failed = wait ? failedCondition(v, 'Revert') : undefined;
  if (failed) throw new CliError('InvalidState', `revert of volume "${volume}" to "${name}" failed: ${failed}`);
  showApi(opts, v, () =>
    wait ? `volume ${volume} reverted to ${name}` : `volume ${volume}: revert to ${name} requested`,
  );
};

const apiPurge: ApiFn<[]> = async (c, opts, volume, sub) => {
  const { result } = await c.request<{ result: Result<ApiVolumeState> }>(PURGE_SNAPSHOTS, { volume });
  let v = unwrap(result);
  const { wait, timeout } = sub.opts<{ wait?: boolean; timeout: string }>();
  if (wait) v = await waitVolumeState(c, volume, (x) => !x.purgeRequested, timeout, 'purged');
  const failed = wait ? failedCondition(v, 'Purge') : undefined;
  if (failed) throw new CliError('InvalidState', `purge of volume "${volume}" failed: ${failed}`);
  showApi(opts, v, () => (wait ? `volume ${volume} purged` : `volume ${volume}: purge requested`));
};

function failedCondition(v: ApiVolumeState, type: string): string | undefined {
  const c = v.conditions.find((x) => x.type === type);
  return c && c.status === 'False' && c.message !== '' ? `${c.reason}: ${c.message}` : undefined;
}

async function waitVolumeState(
  c: GraphQLClient,
  name: string,
  check: (v: ApiVolumeState) => boolean,
  timeoutSeconds: string,
  what: string,
): Promise<ApiVolumeState> {
  const timeoutMs = Number(timeoutSeconds) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw new CliError('BAD_ARGUMENT', `--timeout takes seconds, not "${timeoutSeconds}"`);
  let matched: ApiVolumeState | undefined;
  const sub: Subscription = c.subscribe<{ volumeChanged: ApiVolumeState }>(VOLUME_STATE_CHANGED, { name }, (d) => {
    if (!matched && check(d.volumeChanged)) {
      matched = d.volumeChanged;
      sub.stop();
    }
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      sub.done,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new CliError('TIMEOUT', `volume "${name}" not ${what} after ${timeoutMs / 1000} s`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    sub.stop();
  }
  if (!matched) throw new CliError('NotFound', `volume "${name}" went away while waiting for it to be ${what}`);
  return matched;
}

/** Snapshot resources as a tree, like the engine's list. */
function apiSnapshotTable(snapshots: ApiSnapshot[]): string {
  const byName = new Map(snapshots.map((s) => [s.name, s]));
  const rows: string[][] = [];
  const visited = new Set<string>();
  const visit = (s: ApiSnapshot, depth: number) => {
    if (visited.has(s.name)) return;
    visited.add(s.name);
    const state = s.deleting
      ? 'deleting'
      : s.markRemoved
        ? 'removed'
        : s.error !== ''
          ? `error: ${s.error}`
          : s.readyToUse
            ? 'ready'
            : s.creationTime
              ? 'taken'
              : 'pending';
    rows.push([
      `${'  '.repeat(depth)}${s.name}`,
      s.userCreated ? 'user' : 'system',
      state,
      s.creationTime ?? '',
      formatSize(s.size),
      Object.entries(s.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    ]);
    for (const child of s.children) {
      const c = byName.get(child.name);
      if (c !== undefined) visit(c, depth + 1);
    }
  };
  for (const root of snapshots.filter((s) => s.parentName === '' || !byName.has(s.parentName))) visit(root, 0);
  for (const s of snapshots) visit(s, 0); // not in the tree yet (pending ones)
  return formatTable(['snapshot', 'kind', 'state', 'created', 'size', 'labels'], rows);
}
