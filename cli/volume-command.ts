// `shorthorn volume ls|get|create|update|delete|attach|detach|expand|rebuild-status`: volumes through
// the GraphQL API (cli/graphql-client.ts). Tables for people, -o json for scripts; `ls --watch` keeps
// the table live from subscriptions, `attach --wait` waits for the endpoint, `rebuild-status --wait`
// shows a rebuild's progress bar from the rebuildProgress subscription.
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { formatSize, parseSize } from '../dataplane/util/size.js';
import {
  type ActionOptions,
  action,
  addClientOptions,
  age,
  CliError,
  ERROR_FIELDS,
  type GraphQLClient,
  humanSize,
  parseIntFlag,
  type Result,
  type Subscription,
  show,
  unwrap,
} from './graphql-client.js';
import { formatTable } from './table.js';
import { watchList } from './watch-list.js';

const VOLUME_FIELDS = `name state robustness size currentSize actualSize numberOfReplicas currentNodeID endpoint
  frontend dataLocality staleReplicaTimeout nodeSelector diskSelector labels createdAt lastDegradedAt deleting
  conditions { type status reason message }
  replicas { name nodeID currentState mode }`;

const VOLUME_DETAIL_FIELDS = `${VOLUME_FIELDS}
  replicas { name nodeID diskPath currentState mode address failedAt healthyAt }
  engine { name nodeID currentState endpoint rebuildStatus { replicaName state progress bytesDone bytesTotal error } }
  attachment { tickets { id type nodeID disableFrontend satisfied } }`;

export interface VolumeView {
  name: string;
  state: string;
  robustness: string;
  size: number;
  currentSize: number;
  actualSize: number;
  numberOfReplicas: number;
  currentNodeID: string;
  endpoint: string;
  frontend: string;
  dataLocality: string;
  staleReplicaTimeout: number;
  nodeSelector: string[];
  diskSelector: string[];
  labels: Record<string, string>;
  createdAt: string;
  lastDegradedAt: string;
  deleting: boolean;
  conditions: { type: string; status: string; reason: string; message: string }[];
  replicas: {
    name: string;
    nodeID: string;
    currentState: string;
    mode: string | null;
    diskPath?: string;
    address?: string;
    failedAt?: string | null;
    healthyAt?: string | null;
  }[];
  engine?: {
    name: string;
    nodeID: string;
    currentState: string;
    endpoint: string;
    rebuildStatus: {
      replicaName: string;
      state: string;
      progress: number;
      bytesDone: number;
      bytesTotal: number;
      error: string;
    }[];
  } | null;
  attachment?: {
    tickets: { id: string; type: string; nodeID: string; disableFrontend: boolean; satisfied: boolean }[];
  } | null;
}

const LIST = `query Volumes($name: String, $label: String, $state: String, $node: String) {
  volumes(name: $name, label: $label, state: $state, node: $node) { ${VOLUME_FIELDS} }
}`;
const GET = `query Volume($name: String!) { volume(name: $name) { ${VOLUME_DETAIL_FIELDS} } }`;

const mutation = (name: string, args: string, call: string) => `mutation ${name}(${args}) {
  result: ${call} { ${ERROR_FIELDS} ... on Volume { ${VOLUME_FIELDS} } }
}`;
const CREATE = mutation('CreateVolume', '$input: CreateVolumeInput!', 'createVolume(input: $input)');
const UPDATE = mutation(
  'UpdateVolume',
  '$name: String!, $input: UpdateVolumeInput!',
  'updateVolume(name: $name, input: $input)',
);
const DELETE = mutation('DeleteVolume', '$name: String!', 'deleteVolume(name: $name)');
const ATTACH = mutation(
  'AttachVolume',
  '$name: String!, $node: String!, $disableFrontend: Boolean',
  'attachVolume(name: $name, node: $node, disableFrontend: $disableFrontend)',
);
const DETACH = mutation('DetachVolume', '$name: String!, $force: Boolean', 'detachVolume(name: $name, force: $force)');
const EXPAND = mutation('ExpandVolume', '$name: String!, $size: Bytes!', 'expandVolume(name: $name, size: $size)');
const SALVAGE = mutation(
  'SalvageVolume',
  '$name: String!, $replicas: [String!]',
  'salvageVolume(name: $name, replicas: $replicas)',
);

const VOLUME_CHANGED = `subscription VolumeChanged($name: String!) { volumeChanged(name: $name) { ${VOLUME_FIELDS} } }`;
const REBUILD_PROGRESS = `subscription RebuildProgress($volume: String!) {
  rebuildProgress(volume: $volume) {
    volume rebuilding replicasRebuilding progress bytesDone bytesTotal
    engine { rebuildStatus { replicaName state progress bytesDone bytesTotal error fromReplicaAddress } }
  }
}`;
/** Any event: something changed somewhere, a new volume perhaps (ls --watch re-lists). */

interface RebuildProgressView {
  volume: string;
  rebuilding: boolean;
  replicasRebuilding: number;
  progress: number | null;
  bytesDone: number;
  bytesTotal: number;
  engine: {
    rebuildStatus: {
      replicaName: string;
      state: string;
      progress: number;
      bytesDone: number;
      bytesTotal: number;
      error: string;
      fromReplicaAddress: string;
    }[];
  };
}

type Opts = ActionOptions;

function healthyReplicas(v: VolumeView): string {
  const rw = v.replicas.filter((r) => r.mode === 'RW').length;
  return `${rw}/${v.numberOfReplicas}`;
}

export function volumeTable(volumes: VolumeView[]): string {
  const now = Date.now();
  return formatTable(
    ['name', 'state', 'robustness', 'size', 'replicas', 'node', 'endpoint', 'age'],
    volumes.map((v) => [
      v.name,
      v.deleting ? `${v.state} (deleting)` : v.state,
      v.robustness,
      formatSize(v.size),
      healthyReplicas(v),
      v.currentNodeID,
      v.endpoint,
      age(v.createdAt, now),
    ]),
  );
}

function volumeDetail(v: VolumeView): string {
  const lines = [
    formatTable(
      ['field', 'value'],
      [
        ['name', v.name],
        ['state', v.deleting ? `${v.state} (deleting)` : v.state],
        ['robustness', v.robustness],
        ['size', `${formatSize(v.size)}${v.currentSize !== v.size ? ` (engine: ${formatSize(v.currentSize)})` : ''}`],
        ['actual size', humanSize(v.actualSize)],
        ['replicas', `${healthyReplicas(v)} healthy`],
        ['node', v.currentNodeID],
        ['endpoint', v.endpoint],
        ['frontend', v.frontend],
        ['data locality', v.dataLocality],
        ['stale replica timeout', `${v.staleReplicaTimeout} min`],
        ['node selector', v.nodeSelector.join(',')],
        ['disk selector', v.diskSelector.join(',')],
        [
          'labels',
          Object.entries(v.labels)
            .map(([k, val]) => `${k}=${val}`)
            .join(','),
        ],
        ['created', v.createdAt],
        ['last degraded', v.lastDegradedAt],
      ],
    ),
  ];
  if (v.replicas.length > 0)
    lines.push(
      '',
      formatTable(
        ['replica', 'node', 'state', 'mode', 'address', 'disk'],
        v.replicas.map((r) => [r.name, r.nodeID, r.currentState, r.mode ?? '', r.address ?? '', r.diskPath ?? '']),
      ),
    );
  const rebuilds = v.engine?.rebuildStatus.filter((s) => s.state !== '') ?? [];
  if (rebuilds.length > 0)
    lines.push(
      '',
      formatTable(
        ['rebuilding', 'state', 'progress', 'done', 'error'],
        rebuilds.map((s) => [
          s.replicaName,
          s.state,
          `${s.progress}%`,
          `${formatSize(s.bytesDone)} / ${formatSize(s.bytesTotal)}`,
          s.error,
        ]),
      ),
    );
  const tickets = v.attachment?.tickets ?? [];
  if (tickets.length > 0)
    lines.push(
      '',
      formatTable(
        ['ticket', 'type', 'node', 'frontend', 'satisfied'],
        tickets.map((t) => [t.id, t.type, t.nodeID, t.disableFrontend ? 'off' : 'on', t.satisfied ? 'yes' : 'no']),
      ),
    );
  const conditions = v.conditions.filter((c) => c.status !== 'False' || c.message !== '');
  if (conditions.length > 0)
    lines.push(
      '',
      formatTable(
        ['condition', 'status', 'reason', 'message'],
        conditions.map((c) => [c.type, c.status, c.reason, c.message]),
      ),
    );
  return lines.join('\n');
}

async function getVolume(c: GraphQLClient, name: string): Promise<VolumeView> {
  const { volume } = await c.request<{ volume: VolumeView | null }>(GET, { name });
  if (!volume) throw new CliError('NotFound', `volume "${name}" not found`);
  return volume;
}

function parseSizeFlag(text: string, flag: string): number {
  try {
    return parseSize(text);
  } catch (err) {
    throw new CliError('BAD_ARGUMENT', `${flag}: ${(err as Error).message}`);
  }
}

function parseTimeout(text: string): number {
  const s = Number(text);
  if (!Number.isFinite(s) || s <= 0) throw new CliError('BAD_ARGUMENT', `--timeout takes seconds, not "${text}"`);
  return s * 1000;
}

/**
 * Follows volumeChanged(name) until `check` holds (resolves with that volume) or `timeoutMs` passes.
 */
export async function waitForVolume(
  c: GraphQLClient,
  name: string,
  check: (v: VolumeView) => boolean,
  timeoutMs: number,
  what: string,
): Promise<VolumeView> {
  let last: VolumeView | undefined;
  let matched: VolumeView | undefined;
  const sub: Subscription = c.subscribe<{ volumeChanged: VolumeView }>(VOLUME_CHANGED, { name }, (d) => {
    last = d.volumeChanged;
    if (!matched && check(last)) {
      matched = last;
      sub.stop();
    }
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new CliError(
            'TIMEOUT',
            `volume "${name}" not ${what} after ${timeoutMs / 1000} s (state ${last?.state ?? 'unknown'}, robustness ${last?.robustness ?? 'unknown'})`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    await Promise.race([sub.done, timeout]);
  } finally {
    clearTimeout(timer);
    sub.stop();
  }
  if (!matched) throw new CliError('NotFound', `volume "${name}" went away while waiting for it to be ${what}`);
  return matched;
}

/**
 * Shows the volume's rebuilds from the rebuildProgress subscription: a bar on a terminal (stderr),
 * one line per change on a pipe; resolves with the last progress once nothing rebuilds (`wait`) or
 * after the first answer.
 */
export async function followRebuild(
  c: GraphQLClient,
  volume: string,
  opts: { wait: boolean; timeoutMs: number; quiet?: boolean },
): Promise<RebuildProgressView> {
  const bar =
    process.stderr.isTTY && !opts.quiet
      ? new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: `rebuild ${volume} [{bar}] {percentage}% | {done} / {all} | {replicas} replica(s)`,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
  let started = false;
  let last: RebuildProgressView | undefined;
  let lastLine = '';
  const sub: Subscription = c.subscribe<{ rebuildProgress: RebuildProgressView }>(REBUILD_PROGRESS, { volume }, (d) => {
    const p = d.rebuildProgress;
    last = p;
    if (bar) {
      const total = Math.max(p.bytesTotal, 1);
      if (!started) bar.start(total, 0, { done: '0 B', all: '?', replicas: 0 });
      started = true;
      bar.setTotal(total);
      bar.update(Math.min(p.bytesDone, total), {
        done: formatSize(p.bytesDone),
        all: formatSize(p.bytesTotal),
        replicas: p.replicasRebuilding,
      });
    } else if (opts.wait && !opts.quiet) {
      const line = p.rebuilding
        ? `rebuild ${volume}: ${p.progress ?? 0}% (${formatSize(p.bytesDone)} / ${formatSize(p.bytesTotal)}, ${p.replicasRebuilding} replica(s))`
        : `rebuild ${volume}: nothing rebuilding`;
      if (line !== lastLine) process.stderr.write(`${line}\n`);
      lastLine = line;
    }
    if (!opts.wait || !p.rebuilding) sub.stop();
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new CliError(
            'TIMEOUT',
            `volume "${volume}" still rebuilding after ${opts.timeoutMs / 1000} s (${last?.progress ?? 0}%)`,
          ),
        ),
      opts.timeoutMs,
    );
  });
  try {
    await Promise.race([sub.done, timeout]);
  } finally {
    clearTimeout(timer);
    sub.stop();
    bar?.stop();
  }
  if (!last) throw new CliError('NotFound', `no rebuild progress for volume "${volume}"`);
  return last;
}

/** `ls --watch`: the table again on every volumeChanged of a listed volume and on any event. */
function watchVolumes(c: GraphQLClient, opts: Opts, filter: Record<string, unknown>): Promise<void> {
  return watchList<VolumeView>(c, opts, {
    list: async () => (await c.request<{ volumes: VolumeView[] }>(LIST, filter)).volumes,
    nameOf: (v) => v.name,
    subscribeOne: (name, onChange) => c.subscribe(VOLUME_CHANGED, { name }, onChange),
    table: volumeTable,
  });
}

export function registerVolumeCommand(program: Command): void {
  const vol = addClientOptions(program.command('volume').description('manage volumes through the GraphQL API'));

  vol
    .command('ls')
    .description('list volumes (--watch: keep the table live)')
    .option('--name <substring>', 'only names containing this')
    .option('--label <key=value>', 'only volumes with these labels')
    .option('--state <state>', 'only volumes in this state (attached, detached, …)')
    .option('--node <node>', 'only volumes attached on this node')
    .option('-w, --watch', 'keep listing as volumes change (Ctrl-C ends)')
    .action(
      action(async (c, opts) => {
        const filter = {
          name: opts['name'] as string | undefined,
          label: opts['label'] as string | undefined,
          state: opts['state'] as string | undefined,
          node: opts['node'] as string | undefined,
        };
        if (opts['watch']) return watchVolumes(c, opts, filter);
        const { volumes } = await c.request<{ volumes: VolumeView[] }>(LIST, filter);
        show(opts, volumes, () => volumeTable(volumes));
      }),
    );

  vol
    .command('get <name>')
    .description('one volume: status, replicas, rebuilds, attachment tickets, conditions')
    .action(
      action(async (c, opts, name: string) => {
        const v = await getVolume(c, name);
        show(opts, v, () => volumeDetail(v));
      }),
    );

  vol
    .command('create <name>')
    .description('create a volume (its replicas are placed at once)')
    .requiredOption('--size <size>', 'size: bytes or 512Mi, 1Gi, 10G … (a multiple of 4096 bytes)')
    .option('--replicas <n>', 'number of replicas (default: the default-replica-count setting)')
    .option('--data-locality <mode>', 'disabled, best-effort or strict-local')
    .option('--node-selector <tags>', 'node tags every replica node must have (comma separated)')
    .option('--disk-selector <tags>', 'disk tags every replica disk must have (comma separated)')
    .option('--stale-replica-timeout <minutes>', 'minutes a failed replica is kept for reuse')
    .action(
      action(async (c, opts, name: string) => {
        const input: Record<string, unknown> = { name, size: parseSizeFlag(opts['size'] as string, '--size') };
        Object.assign(input, specInput(opts));
        const { result } = await c.request<{ result: Result<VolumeView> }>(CREATE, { input });
        const v = unwrap(result);
        show(opts, v, () => `volume ${v.name} created (${formatSize(v.size)}, ${v.numberOfReplicas} replicas)`);
      }),
    );

  vol
    .command('update <name>')
    .description('change replica count, data locality, selectors or stale-replica timeout')
    .option('--replicas <n>', 'number of replicas')
    .option('--data-locality <mode>', 'disabled, best-effort or strict-local')
    .option('--node-selector <tags>', 'node tags every replica node must have (comma separated; "" for none)')
    .option('--disk-selector <tags>', 'disk tags every replica disk must have (comma separated; "" for none)')
    .option('--stale-replica-timeout <minutes>', 'minutes a failed replica is kept for reuse')
    .action(
      action(async (c, opts, name: string) => {
        const input = specInput(opts);
        if (Object.keys(input).length === 0)
          throw new CliError(
            'BAD_ARGUMENT',
            'nothing to update: give --replicas, --data-locality, --node-selector, --disk-selector or --stale-replica-timeout',
          );
        const { result } = await c.request<{ result: Result<VolumeView> }>(UPDATE, { name, input });
        const v = unwrap(result);
        show(opts, v, () => `volume ${v.name} updated`);
      }),
    );

  vol
    .command('delete <name>')
    .alias('rm')
    .description('delete a volume: its processes stop and its replica data is removed')
    .option('--wait', 'wait until it is gone')
    .option('--timeout <seconds>', 'how long --wait waits', '120')
    .action(
      action(async (c, opts, name: string) => {
        const { result } = await c.request<{ result: Result<VolumeView> }>(DELETE, { name });
        const v = unwrap(result);
        if (opts['wait']) {
          const deadline = Date.now() + parseTimeout(opts['timeout'] as string);
          for (;;) {
            const { volume } = await c.request<{ volume: { name: string } | null }>(
              'query Gone($name: String!) { volume(name: $name) { name } }',
              { name },
            );
            if (!volume) break;
            if (Date.now() > deadline) throw new CliError('TIMEOUT', `volume "${name}" is still being deleted`);
            await new Promise((r) => setTimeout(r, 300));
          }
        }
        show(opts, v, () => `volume ${v.name} ${opts['wait'] ? 'deleted' : 'is being deleted'}`);
      }),
    );

  vol
    .command('attach <name>')
    .description('attach a volume on a node; status endpoint then holds its NBD URI')
    .requiredOption('--node <node>', 'the node to attach on')
    .option('--disable-frontend', 'attach without the NBD frontend (maintenance)')
    .option('--wait', 'wait until attached and print the endpoint; then show any rebuild until it ends')
    .option('--timeout <seconds>', 'how long --wait waits', '120')
    .action(
      action(async (c, opts, name: string) => {
        const { result } = await c.request<{ result: Result<VolumeView> }>(ATTACH, {
          name,
          node: opts['node'],
          disableFrontend: !!opts['disableFrontend'],
        });
        let v = unwrap(result);
        if (opts['wait']) {
          const timeoutMs = parseTimeout(opts['timeout'] as string);
          v = await waitForVolume(
            c,
            name,
            (x) =>
              x.state === 'attached' && x.currentNodeID === opts['node'] && (!!x.endpoint || !!opts['disableFrontend']),
            timeoutMs,
            'attached',
          );
          if (v.replicas.some((r) => r.mode === 'WO'))
            await followRebuild(c, name, { wait: true, timeoutMs, quiet: opts.output === 'json' });
        }
        show(opts, v, () =>
          opts['wait']
            ? `volume ${v.name} attached on ${v.currentNodeID}${v.endpoint ? `: ${v.endpoint}` : ''}`
            : `volume ${v.name}: attach on ${opts['node']} requested (shorthorn volume get ${v.name} shows the endpoint)`,
        );
      }),
    );

  vol
    .command('detach <name>')
    .description("withdraw the API's attach request (--force: every request)")
    .option('--force', 'withdraw every attach request, CSI and controllers too')
    .option('--wait', 'wait until detached')
    .option('--timeout <seconds>', 'how long --wait waits', '120')
    .action(
      action(async (c, opts, name: string) => {
        const { result } = await c.request<{ result: Result<VolumeView> }>(DETACH, { name, force: !!opts['force'] });
        let v = unwrap(result);
        if (opts['wait'])
          v = await waitForVolume(
            c,
            name,
            (x) => x.state === 'detached',
            parseTimeout(opts['timeout'] as string),
            'detached',
          );
        show(opts, v, () => `volume ${v.name} ${opts['wait'] ? 'detached' : 'detach requested'}`);
      }),
    );

  vol
    .command('expand <name>')
    .description('grow an attached volume online')
    .requiredOption('--size <size>', 'the new size: bytes or 2Gi, 20G …')
    .option('--wait', 'wait until the engine serves the new size')
    .option('--timeout <seconds>', 'how long --wait waits', '120')
    .action(
      action(async (c, opts, name: string) => {
        const size = parseSizeFlag(opts['size'] as string, '--size');
        const { result } = await c.request<{ result: Result<VolumeView> }>(EXPAND, { name, size });
        let v = unwrap(result);
        if (opts['wait'])
          v = await waitForVolume(
            c,
            name,
            (x) => x.currentSize >= size,
            parseTimeout(opts['timeout'] as string),
            'expanded',
          );
        show(opts, v, () => `volume ${v.name} ${opts['wait'] ? 'expanded' : 'expanding'} to ${formatSize(size)}`);
      }),
    );

  vol
    .command('salvage <name>')
    .description('a faulted, detached volume: start again from its failed replicas')
    .option('--replica <name...>', 'only these replicas (default: every one that held data)')
    .action(
      action(async (c, opts, name: string) => {
        const replicas = opts['replica'] as string[] | undefined;
        const { result } = await c.request<{ result: Result<VolumeView> }>(SALVAGE, { name, replicas });
        const v = unwrap(result);
        show(opts, v, () => `volume ${v.name} salvage requested; attach it afterwards`);
      }),
    );

  vol
    .command('rebuild-status <name>')
    .description("a volume's replica rebuilds (--wait: a progress bar until they end)")
    .option('--wait', 'follow until nothing rebuilds')
    .option('--timeout <seconds>', 'how long --wait waits', '3600')
    .action(
      action(async (c, opts, name: string) => {
        const p = await followRebuild(c, name, {
          wait: !!opts['wait'],
          timeoutMs: parseTimeout(opts['timeout'] as string),
          quiet: opts.output === 'json',
        });
        show(opts, p, () => {
          const rows = p.engine.rebuildStatus.filter((s) => s.state !== '');
          return [
            p.rebuilding
              ? `${name}: ${p.replicasRebuilding} replica(s) rebuilding, ${p.progress ?? 0}%`
              : `${name}: nothing rebuilding`,
            ...(rows.length > 0
              ? [
                  formatTable(
                    ['replica', 'state', 'progress', 'done', 'from', 'error'],
                    rows.map((s) => [
                      s.replicaName,
                      s.state,
                      `${s.progress}%`,
                      `${formatSize(s.bytesDone)} / ${formatSize(s.bytesTotal)}`,
                      s.fromReplicaAddress,
                      s.error,
                    ]),
                  ),
                ]
              : []),
          ].join('\n');
        });
      }),
    );
}

/** The flags shared by create and update, as CreateVolumeInput/UpdateVolumeInput fields. */
function specInput(opts: Opts): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  const tags = (v: unknown) =>
    String(v)
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== '');
  if (opts['replicas'] !== undefined)
    input['numberOfReplicas'] = parseIntFlag(opts['replicas'] as string, '--replicas');
  if (opts['dataLocality'] !== undefined) input['dataLocality'] = opts['dataLocality'];
  if (opts['nodeSelector'] !== undefined) input['nodeSelector'] = tags(opts['nodeSelector']);
  if (opts['diskSelector'] !== undefined) input['diskSelector'] = tags(opts['diskSelector']);
  if (opts['staleReplicaTimeout'] !== undefined)
    input['staleReplicaTimeout'] = parseIntFlag(opts['staleReplicaTimeout'] as string, '--stale-replica-timeout');
  return input;
}
