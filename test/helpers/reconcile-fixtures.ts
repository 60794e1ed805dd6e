// Fixtures for single-pass controller tests (stack-and-style pattern 12): builders for the resources a
// reconcile reads, a real SqliteStore seeded with them, a ControllerContext built as the manager builds
// it (informers per kind, ReadYourWritesStore, Settings), and a view of the store after the pass with
// what varies from run to run (uids, resourceVersions, timestamps, random replica names) normalized.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { ControllerContext, Informers } from '../../controllers/context.js';
import { DataplaneClients } from '../../controllers/context.js';
import { EventRecorder } from '../../controllers/events.js';
import { engineNameOf, FINALIZER, VOLUME_LABEL } from '../../controllers/labels.js';
import { ReadYourWritesStore } from '../../controllers/read-your-writes.js';
import { Informer } from '../../controllers/runtime/informer.js';
import { Settings } from '../../controllers/settings.js';
import { type BackupStatus, backupStatus } from '../../model/backup.js';
import type { EngineSpec, EngineStatus } from '../../model/engine.js';
import type { InstanceManagerStatus } from '../../model/instance-manager.js';
import { type AnyResource, KINDS, type Kind } from '../../model/kinds.js';
import type { Condition, OwnerReference } from '../../model/meta.js';
import type { RecurringJobSpec, RecurringJobStatus } from '../../model/recurring-job.js';
import type { ReplicaSpec, ReplicaStatus } from '../../model/replica.js';
import type { SettingName } from '../../model/setting-definitions.js';
import type { VolumeSpec, VolumeStatus } from '../../model/volume.js';
import type { AttachmentTicket } from '../../model/volume-attachment.js';
import { openSqliteStore, type SqliteStore } from '../../store/sqlite-store.js';
import type { CreateInput } from '../../store/store.js';

export const GiB = 1024 ** 3;
export const VOL = 'vol';
export const ENGINE = engineNameOf(VOL);

/** An ISO time `ms` before now. Fixtures only use past times, so the view can tell them from new ones. */
export function ago(ms: number): string {
  return new Date(Date.now() - ms).toISOString();
}
export const SEC = 1000;
export const MIN = 60 * SEC;

export function diskUUID(node: string): string {
  return `${node}-disk-0-uuid`;
}

function cond(type: string, status: 'True' | 'False', reason = '', message = ''): Condition {
  return { type, status, reason, message, lastProbeTime: '', lastTransitionTime: ago(10 * MIN) };
}

// ---- builders -----------------------------------------------------------------------------------------

/** One resource to create, and whether to delete it right after (it keeps a deletionTimestamp). */
export type SeedItem = { [K in Kind]: { kind: K; obj: CreateInput<K>; deleted?: boolean } }[Kind];

/** References the volume by name; the seeder fills in its uid once it exists. */
function volumeOwner(vol: string): OwnerReference[] {
  return [{ kind: 'Volume', name: vol, uid: '', controller: true }];
}

export interface NodeOpts {
  /** false = its instance manager is unreachable (node controller: Ready=False InstanceManagerDown). */
  up?: boolean;
  zone?: string;
  allowScheduling?: boolean;
}

/** A Node as the node controller leaves it: one disk `disk-0` measured and Ready/Schedulable. */
export function node(name: string, o: NodeOpts = {}): SeedItem {
  const up = o.up ?? true;
  const path = `/data/${name}/disk-0`;
  return {
    kind: 'Node',
    obj: {
      metadata: { name },
      spec: {
        disks: {
          'disk-0': {
            diskType: 'filesystem',
            path,
            allowScheduling: true,
            evictionRequested: false,
            storageReserved: 0,
            tags: [],
          },
        },
        allowScheduling: o.allowScheduling ?? true,
        evictionRequested: false,
        tags: [],
      },
      status: {
        conditions: [
          up
            ? cond('Ready', 'True')
            : cond('Ready', 'False', 'InstanceManagerDown', `instance manager at 127.0.0.1:1 is error`),
          cond('Schedulable', 'True'),
        ],
        diskStatus: {
          'disk-0': {
            conditions: [cond('Ready', 'True'), cond('Schedulable', 'True')],
            storageAvailable: 90 * GiB,
            storageScheduled: 0,
            storageMaximum: 100 * GiB,
            scheduledReplica: {},
            diskUUID: diskUUID(name),
            diskName: 'disk-0',
            diskPath: path,
            filesystemType: 'ext4',
          },
        },
        region: '',
        zone: o.zone ?? '',
        instanceManagerAddress: up ? `127.0.0.1:${imPort(name)}` : '',
        lastHeartbeatAt: ago(5 * SEC),
      },
    },
  };
}

function imPort(node: string): number {
  return 40000 + Number(node.replace(/\D/g, '') || 0) * 10;
}

/** The InstanceManager of a node: running (with these instances) or unreachable (`error`). */
export function instanceManager(
  nodeID: string,
  o: { state?: InstanceManagerStatus['currentState']; instances?: InstanceManagerStatus['instances'] } = {},
): SeedItem {
  return {
    kind: 'InstanceManager',
    obj: {
      metadata: { name: `im-${nodeID}` },
      spec: { nodeID, address: `127.0.0.1:${imPort(nodeID)}` },
      status: {
        ownerID: 'manager',
        currentState: o.state ?? 'running',
        instances: o.instances ?? {},
        conditions: [],
        lastHeartbeatAt: ago(5 * SEC),
      },
    },
  };
}

/** `n` nodes node-1..node-n with their instance managers; `down` lists nodes whose manager is unreachable. */
export function cluster(n: number, o: { down?: string[] } = {}): SeedItem[] {
  const out: SeedItem[] = [];
  for (let i = 1; i <= n; i++) {
    const name = `node-${i}`;
    const up = !o.down?.includes(name);
    out.push(node(name, { up }), instanceManager(name, { state: up ? 'running' : 'error' }));
  }
  return out;
}

/** Volume `vol` (1 GiB, 3 replicas) as the API creates it: with the finalizer. */
export function volume(
  o: { spec?: Partial<VolumeSpec>; status?: Partial<VolumeStatus>; deleted?: boolean; name?: string } = {},
): SeedItem {
  const name = o.name ?? VOL;
  return {
    kind: 'Volume',
    deleted: o.deleted,
    obj: {
      metadata: { name, finalizers: [FINALIZER], labels: {} },
      spec: {
        size: GiB,
        numberOfReplicas: 3,
        frontend: 'nbd',
        dataLocality: 'disabled',
        staleReplicaTimeout: 2880,
        nodeSelector: [],
        diskSelector: [],
        replicaAutoBalance: 'ignored',
        replicaSoftAntiAffinity: 'ignored',
        replicaZoneSoftAntiAffinity: 'ignored',
        replicaDiskSoftAntiAffinity: 'ignored',
        unmapMarkSnapChainRemoved: 'ignored',
        nodeID: '',
        disableFrontend: false,
        snapshotMaxCount: 0,
        fromBackup: '',
        standby: false,
        ...o.spec,
      },
      status: {
        ownerID: 'manager',
        state: 'creating',
        robustness: 'unknown',
        currentNodeID: '',
        endpoint: '',
        currentSize: 0,
        actualSize: 0,
        conditions: [],
        lastDegradedAt: '',
        lastAutoSalvagedAt: '',
        frontendDisabled: false,
        expansionRequired: false,
        restoreRequired: false,
        restoreInitiated: false,
        isStandby: false,
        lastRestoredBackup: '',
        restoreProgress: 0,
        lastBackup: '',
        lastBackupAt: '',
        ...o.status,
      },
    },
  };
}

/** The volume's engine as the volume controller creates it (stopped, no node), with overrides. */
export function engine(o: { spec?: Partial<EngineSpec>; status?: Partial<EngineStatus> } = {}): SeedItem {
  return {
    kind: 'Engine',
    obj: {
      metadata: {
        name: ENGINE,
        labels: { [VOLUME_LABEL]: VOL },
        finalizers: [FINALIZER],
        ownerReferences: volumeOwner(VOL),
      },
      spec: {
        volumeName: VOL,
        volumeSize: GiB,
        nodeID: '',
        desireState: 'stopped',
        salvageRequested: false,
        frontend: 'nbd',
        replicaAddressMap: {},
        disableFrontend: false,
        unmapMarkSnapChainRemovedEnabled: false,
        replicaTimeout: 8,
        requestedBackupRestore: '',
        requestedBackupRestoreURL: '',
        ...o.spec,
      },
      status: {
        ownerID: 'manager',
        instanceManagerName: '',
        currentState: 'stopped',
        ip: '',
        port: 0,
        started: false,
        errorMsg: '',
        conditions: [],
        currentSize: 0,
        currentReplicaAddressMap: {},
        replicaModeMap: {},
        endpoint: '',
        rebuildStatus: {},
        snapshots: {},
        snapshotsError: '',
        salvageExecuted: false,
        lastRestoredBackup: '',
        restoreStatus: { state: 'idle', backupName: '', progress: 0, error: '' },
        ...o.status,
      },
    },
  };
}

/** The engine of `vol` running on `nodeID` with these replicas in these modes (address from replicaAddr). */
export function runningEngine(nodeID: string, modes: Record<string, 'RW' | 'WO' | 'ERR'>): SeedItem {
  const map = Object.fromEntries(Object.keys(modes).map((r) => [r, replicaAddr(r)]));
  return engine({
    spec: { nodeID, desireState: 'running', replicaAddressMap: map },
    status: {
      currentState: 'running',
      instanceManagerName: `im-${nodeID}`,
      ip: '127.0.0.1',
      port: 10000,
      started: true,
      currentSize: GiB,
      replicaModeMap: modes,
      currentReplicaAddressMap: map,
      endpoint: `nbd://127.0.0.1:10809/${VOL}`,
    },
  });
}

/** Fixture replicas are `vol-r-a`, `vol-r-b`, … ; each has its own port. */
export function replicaPort(name: string): number {
  return 20000 + name.charCodeAt(name.length - 1) * 10;
}
export function replicaAddr(name: string): string {
  return `tcp://127.0.0.1:${replicaPort(name)}`;
}

/**
 * A replica of `vol` on `nodeID`'s disk-0 that has been healthy once (healthyAt/lastHealthyAt set long
 * ago). `state: 'running'` = its process runs (status ip/port as the replica controller reports).
 */
export function replica(
  name: string,
  nodeID: string,
  o: { state?: ReplicaStatus['currentState']; spec?: Partial<ReplicaSpec> } = {},
): SeedItem {
  const state = o.state ?? 'stopped';
  const running = state === 'running';
  return {
    kind: 'Replica',
    obj: {
      metadata: {
        name,
        labels: { [VOLUME_LABEL]: VOL },
        finalizers: [FINALIZER],
        ownerReferences: volumeOwner(VOL),
      },
      spec: {
        volumeName: VOL,
        volumeSize: GiB,
        nodeID,
        desireState: running ? 'running' : 'stopped',
        salvageRequested: false,
        engineName: '',
        diskID: diskUUID(nodeID),
        diskPath: `/data/${nodeID}/disk-0`,
        dataDirectoryName: name,
        hardNodeAffinity: '',
        active: true,
        rebuildRetryCount: 0,
        evictionRequested: false,
        healthyAt: ago(60 * MIN),
        lastHealthyAt: ago(60 * MIN),
        failedAt: '',
        lastFailedAt: '',
        ...o.spec,
      },
      status: {
        ownerID: 'manager',
        instanceManagerName: `im-${nodeID}`,
        currentState: state,
        ip: running ? '127.0.0.1' : '',
        port: running ? replicaPort(name) : 0,
        started: running,
        errorMsg: '',
        conditions: [],
      },
    },
  };
}

/** A replica that failed `failedAgo` ms ago (after having been healthy), stopped. */
export function failedReplica(
  name: string,
  nodeID: string,
  failedAgo: number,
  o: { state?: ReplicaStatus['currentState']; spec?: Partial<ReplicaSpec> } = {},
): SeedItem {
  const at = ago(failedAgo);
  return replica(name, nodeID, {
    state: o.state ?? 'stopped',
    spec: { failedAt: at, lastFailedAt: at, desireState: 'stopped', ...o.spec },
  });
}

export function ticket(id: string, nodeID: string, type: AttachmentTicket['type'] = 'shorthorn-api'): AttachmentTicket {
  return { id, type, nodeID, parameters: { disableFrontend: false }, generation: 0 };
}

export function attachment(tickets: AttachmentTicket[] = []): SeedItem {
  return {
    kind: 'VolumeAttachment',
    obj: {
      metadata: { name: VOL, labels: { [VOLUME_LABEL]: VOL }, ownerReferences: volumeOwner(VOL) },
      spec: { volume: VOL, attachmentTickets: Object.fromEntries(tickets.map((t) => [t.id, t])) },
    },
  };
}

export function setting(name: SettingName, value: string): SeedItem {
  return { kind: 'Setting', obj: { metadata: { name }, spec: { value } } };
}

/** A RecurringJob (task snapshot, every minute, retain 1 unless overridden) with this status. */
export function recurringJob(
  name: string,
  o: { spec?: Partial<RecurringJobSpec>; status?: Partial<RecurringJobStatus> } = {},
): SeedItem {
  return {
    kind: 'RecurringJob',
    obj: {
      metadata: { name },
      spec: { task: 'snapshot', cron: '* * * * *', retain: 1, groups: [], concurrency: 1, labels: {}, ...o.spec },
      status: { ownerID: '', executionCount: 0, lastRunAt: '', nextRunAt: '', lastError: '', ...o.status },
    },
  };
}

/**
 * A Snapshot resource of `volume` (seed the volume first) as the snapshot controller leaves it: taken
 * (creationTime set, user-created) unless `taken: false`; `labels` go to spec and status labels.
 */
export function snapshotResource(
  name: string,
  volume: string,
  o: { labels?: Record<string, string>; taken?: boolean; userCreated?: boolean; markRemoved?: boolean } = {},
): SeedItem {
  const taken = o.taken ?? true;
  const labels = o.labels ?? {};
  return {
    kind: 'Snapshot',
    obj: {
      metadata: {
        name,
        labels: { [VOLUME_LABEL]: volume },
        finalizers: [FINALIZER],
        ownerReferences: volumeOwner(volume),
      },
      spec: { volume, createSnapshot: true, labels },
      status: {
        ownerID: 'manager',
        parent: '',
        children: [],
        markRemoved: o.markRemoved ?? false,
        userCreated: taken && (o.userCreated ?? true),
        creationTime: taken ? ago(10 * MIN) : '',
        size: 0,
        labels: taken ? labels : {},
        readyToUse: taken && !o.markRemoved,
        error: '',
      },
    },
  };
}

/** A Backup resource of `volume`'s snapshot in `state`, with these metadata labels besides `backup-volume`. */
export function backupResource(
  name: string,
  volume: string,
  o: { snapshotName?: string; state?: BackupStatus['state']; labels?: Record<string, string> } = {},
): SeedItem {
  return {
    kind: 'Backup',
    obj: {
      metadata: { name, labels: { 'backup-volume': volume, ...o.labels }, finalizers: [FINALIZER] },
      spec: { snapshotName: o.snapshotName ?? '', labels: {}, backupMode: 'incremental', syncRequestedAt: '' },
      status: backupStatus.parse({ state: o.state ?? '', volumeName: volume, snapshotName: o.snapshotName ?? '' }),
    },
  };
}

// ---- the context -------------------------------------------------------------------------------------

/** The volume and attachment controllers make no gRPC calls; any call is a test failure. */
export class UnusedDataplaneClients extends DataplaneClients {
  override instanceManager(address: string): never {
    throw new Error(`test: unexpected instance-manager call to ${address}`);
  }
  override engine(address: string): never {
    throw new Error(`test: unexpected engine call to ${address}`);
  }
}

export interface RecordedEvent {
  type: 'Normal' | 'Warning';
  kind: string;
  name: string;
  reason: string;
  message: string;
}

/** Keeps events in memory (no fire-and-forget store writes racing the end of a test). */
export class RecordingEventRecorder extends EventRecorder {
  readonly recorded: RecordedEvent[] = [];
  override normal(obj: AnyResource, reason: string, message: string): void {
    this.recorded.push({ type: 'Normal', kind: obj.kind, name: obj.metadata.name, reason, message });
  }
  override warning(obj: AnyResource, reason: string, message: string): void {
    this.recorded.push({ type: 'Warning', kind: obj.kind, name: obj.metadata.name, reason, message });
  }
}

export interface ReconcileFixture {
  store: SqliteStore;
  ctx: ControllerContext;
  events: RecordedEvent[];
  /** Set by `pass`: the time the pass started; timestamps written at or after it show as 'new'. */
  passStartedAt: number;
  /** Runs `fn` (one reconcile) and records when it started. */
  pass<T>(fn: (ctx: ControllerContext) => Promise<T>): Promise<T>;
  view(): Promise<StoreView>;
  close(): Promise<void>;
}

/**
 * A SQLite store in a temp dir with `items` created in order (owner references to the volume get its
 * uid), then informers over every kind, synced, and a context as the manager builds it.
 */
export async function startFixture(items: SeedItem[]): Promise<ReconcileFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'shorthorn-reconcile-'));
  const raw = openSqliteStore(join(dir, 'store.db'), { synchronous: 'NORMAL' });
  const uids = new Map<string, string>();
  for (const item of items) {
    const obj = structuredClone(item.obj) as CreateInput<Kind>;
    obj.metadata.ownerReferences = (obj.metadata.ownerReferences ?? []).map((ref) => {
      const uid = ref.uid || uids.get(`${ref.kind}/${ref.name}`);
      if (!uid)
        throw new Error(
          `fixture: ${item.kind} ${obj.metadata.name} is owned by ${ref.kind} ${ref.name}, seed it first`,
        );
      return { ...ref, uid };
    });
    const created = await raw.create(item.kind, obj as never);
    uids.set(`${item.kind}/${created.metadata.name}`, created.metadata.uid);
    if (item.deleted) await raw.delete(item.kind, created.metadata.name);
  }
  const log = pino({ level: 'silent' });
  const informers = Object.fromEntries(
    KINDS.map((k) => [k, new Informer(raw, k, { logger: log })]),
  ) as unknown as Informers;
  for (const k of KINDS) informers[k].start();
  const synced = await Promise.all(KINDS.map((k) => informers[k].waitForSync()));
  if (!synced.every(Boolean)) throw new Error('fixture: informers did not sync');
  const store = new ReadYourWritesStore(raw, () => informers);
  const events = new RecordingEventRecorder(store, log, 'manager');
  const ctx: ControllerContext = {
    store,
    informers,
    settings: new Settings(informers.Setting),
    events,
    log,
    managerID: 'manager',
    clients: new UnusedDataplaneClients(),
  };
  const fx: ReconcileFixture = {
    store: raw,
    ctx,
    events: events.recorded,
    passStartedAt: Number.POSITIVE_INFINITY,
    async pass(fn) {
      fx.passStartedAt = Date.now();
      return fn(ctx);
    },
    view: () => viewOf(raw, fx.passStartedAt, uids),
    async close() {
      for (const k of KINDS) informers[k].stop();
      await raw.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fx;
}

// ---- the view ----------------------------------------------------------------------------------------

/** '' = empty, 'old' = from the fixture (before the pass), 'new' = written by the pass. */
export type Stamp = '' | 'old' | 'new';

export interface VolumeView {
  deleting: boolean;
  finalizers: string[];
  nodeID: string;
  disableFrontend: boolean;
  state: string;
  robustness: string;
  currentNodeID: string;
  endpoint: string;
  lastDegradedAt: Stamp;
  lastAutoSalvagedAt: Stamp;
  /** The Scheduled condition: status and reason (message separately, it is long). */
  scheduled: string;
  scheduledMessage: string;
}

export interface EngineView {
  deleting: boolean;
  nodeID: string;
  desireState: string;
  replicaAddressMap: Record<string, string>;
  /** `Kind/name` of each owner whose uid is the live owner's, else `Kind/name (stale uid)`. */
  owners: string[];
}

export interface ReplicaView {
  /** The fixture's name, or `new` for one the pass created (names are random). */
  name: string;
  deleting: boolean;
  nodeID: string;
  diskID: string;
  desireState: string;
  failedAt: Stamp;
  lastFailedAt: Stamp;
  healthyAt: Stamp;
  rebuildRetryCount: number;
  evictionRequested: boolean;
  owners: string[];
}

export interface AttachmentView {
  deleting: boolean;
  tickets: string[];
  /** ticket id → `satisfied` / `unsatisfied` / the reason of its first condition. */
  ticketStatuses: Record<string, string>;
  owners: string[];
}

export interface StoreView {
  volume?: VolumeView;
  engine?: EngineView;
  /** Fixture replicas by name, then new ones by node. */
  replicas: ReplicaView[];
  attachment?: AttachmentView;
}

async function viewOf(store: SqliteStore, since: number, fixtureUids: Map<string, string>): Promise<StoreView> {
  const stamp = (v: string): Stamp => (v === '' ? '' : Date.parse(v) >= since ? 'new' : 'old');
  const live = new Map<string, string>();
  for (const k of ['Volume'] as const) {
    for (const o of (await store.list(k)).items) live.set(`${k}/${o.metadata.name}`, o.metadata.uid);
  }
  const owners = (refs: OwnerReference[]) =>
    refs.map((r) => `${r.kind}/${r.name}${live.get(`${r.kind}/${r.name}`) === r.uid ? '' : ' (stale uid)'}`);
  const vol = await store.get('Volume', VOL);
  const eng = await store.get('Engine', ENGINE);
  const va = await store.get('VolumeAttachment', VOL);
  const replicas = (await store.list('Replica')).items
    .filter((r) => r.spec.volumeName === VOL)
    .map(
      (r): ReplicaView => ({
        name: fixtureUids.has(`Replica/${r.metadata.name}`) ? r.metadata.name : 'new',
        deleting: !!r.metadata.deletionTimestamp,
        nodeID: r.spec.nodeID,
        diskID: r.spec.diskID,
        desireState: r.spec.desireState,
        failedAt: stamp(r.spec.failedAt),
        lastFailedAt: stamp(r.spec.lastFailedAt),
        healthyAt: stamp(r.spec.healthyAt),
        rebuildRetryCount: r.spec.rebuildRetryCount,
        evictionRequested: r.spec.evictionRequested,
        owners: owners(r.metadata.ownerReferences),
      }),
    )
    .sort(
      (a, b) =>
        Number(a.name === 'new') - Number(b.name === 'new') ||
        a.name.localeCompare(b.name) ||
        a.nodeID.localeCompare(b.nodeID),
    );
  const scheduled = vol?.status.conditions.find((c) => c.type === 'Scheduled');
  return {
    volume: vol && {
      deleting: !!vol.metadata.deletionTimestamp,
      finalizers: vol.metadata.finalizers,
      nodeID: vol.spec.nodeID,
      disableFrontend: vol.spec.disableFrontend,
      state: vol.status.state,
      robustness: vol.status.robustness,
      currentNodeID: vol.status.currentNodeID,
      endpoint: vol.status.endpoint,
      lastDegradedAt: stamp(vol.status.lastDegradedAt),
      lastAutoSalvagedAt: stamp(vol.status.lastAutoSalvagedAt),
      scheduled: scheduled ? [scheduled.status, scheduled.reason].filter(Boolean).join(' ') : 'none',
      scheduledMessage: scheduled?.message ?? '',
    },
    engine: eng && {
      deleting: !!eng.metadata.deletionTimestamp,
      nodeID: eng.spec.nodeID,
      desireState: eng.spec.desireState,
      replicaAddressMap: eng.spec.replicaAddressMap,
      owners: owners(eng.metadata.ownerReferences),
    },
    replicas,
    attachment: va && {
      deleting: !!va.metadata.deletionTimestamp,
      tickets: Object.keys(va.spec.attachmentTickets).sort(),
      ticketStatuses: Object.fromEntries(
        Object.values(va.status.attachmentTicketStatuses).map((s) => [
          s.id,
          s.conditions[0]?.reason ?? (s.satisfied ? 'satisfied' : 'unsatisfied'),
        ]),
      ),
      owners: owners(va.metadata.ownerReferences),
    },
  };
}
