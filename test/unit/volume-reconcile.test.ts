// Volume and volume-attachment controllers, one reconcile at a time (stack-and-style pattern 12): each
// case seeds a real SqliteStore with what the other controllers would have written (nodes with measured
// disks, running instance managers, the volume and its children), runs exactly one reconcile of the
// controller under test, and compares the store afterwards with the expected state. Longhorn's
// behaviour each case follows: reference/longhorn-manager.md §2.1–§2.4.
import { afterEach, describe, expect, it } from 'vitest';
import type { ReconcileResult } from '../../controllers/runtime/controller.js';
import { reconcileVolumeAttachment } from '../../controllers/volume-attachment-controller.js';
import { reconcileVolume } from '../../controllers/volume-controller.js';
import {
  ago,
  attachment,
  cluster,
  diskUUID,
  engine,
  failedReplica,
  MIN,
  node,
  type ReconcileFixture,
  type RecordedEvent,
  replica,
  replicaAddr,
  runningEngine,
  SEC,
  type SeedItem,
  type StoreView,
  setting,
  startFixture,
  ticket,
  VOL,
  volume,
} from '../helpers/reconcile-fixtures.js';

type DeepPartial<T> = T extends object ? { [P in keyof T]?: DeepPartial<T[P]> } : T;

interface Case {
  name: string;
  given: SeedItem[];
  /** Which controller runs its one pass (default: volume). */
  controller?: 'volume' | 'attachment';
  /** Compared with toMatchObject: named fields must match, arrays (replicas) must match in length. */
  expected: DeepPartial<StoreView> & { volume?: DeepPartial<StoreView['volume']> | undefined };
  /** `none`: no requeueAfter; `later`: requeueAfter > 0; a number: exactly that. */
  requeue?: 'none' | 'later' | number;
  /** Reasons of events that must have been recorded (others may be too). */
  events?: string[];
  /** Reasons that must not have been recorded. */
  noEvents?: string[];
  /** Extra checks on the view. */
  check?: (view: StoreView) => void;
}

let fx: ReconcileFixture | undefined;
afterEach(async () => {
  await fx?.close();
  fx = undefined;
});

async function runCase(c: Case): Promise<void> {
  fx = await startFixture(c.given);
  const result = await fx.pass(async (ctx): Promise<ReconcileResult | undefined> => {
    if (c.controller !== 'attachment') return reconcileVolume(ctx, VOL);
    await reconcileVolumeAttachment(ctx, VOL);
    return undefined;
  });
  const view = await fx.view();
  expect(view).toMatchObject(c.expected);
  const requeue = result?.requeueAfterMs;
  if (c.requeue === 'none') expect(requeue).toBeUndefined();
  else if (c.requeue === 'later') expect(requeue).toBeGreaterThan(0);
  else if (typeof c.requeue === 'number') expect(requeue).toBe(c.requeue);
  const reasons = fx.events.map((e: RecordedEvent) => e.reason);
  for (const r of c.events ?? []) expect(reasons, `event ${r}`).toContain(r);
  for (const r of c.noEvents ?? []) expect(reasons, `no event ${r}`).not.toContain(r);
  c.check?.(view);
}

const OWNED = ['Volume/vol'];
const A = 'vol-r-a';
const B = 'vol-r-b';
const C = 'vol-r-c';
const D = 'vol-r-d';
const ENDPOINT = `nbd://127.0.0.1:10809/${VOL}`;

/** Three replicas a, b, c on node-1..3, running or stopped. */
function threeReplicas(state: 'running' | 'stopped') {
  return [replica(A, 'node-1', { state }), replica(B, 'node-2', { state }), replica(C, 'node-3', { state })];
}

const attachedHealthy = { nodeID: 'node-1' };
const attachedStatus = { state: 'attached', currentNodeID: 'node-1', endpoint: ENDPOINT } as const;

// ---- creation ------------------------------------------------------------------------------------------

const creation: Case[] = [
  {
    name: 'new volume, 3 schedulable nodes: 3 replicas on 3 nodes, an engine and an attachment, all owned',
    given: [...cluster(3), volume()],
    expected: {
      volume: {
        finalizers: ['shorthorn.io'],
        state: 'detached',
        robustness: 'unknown',
        currentNodeID: '',
        endpoint: '',
        scheduled: 'True',
      },
      engine: { deleting: false, nodeID: '', desireState: 'stopped', replicaAddressMap: {}, owners: OWNED },
      attachment: { tickets: [], owners: OWNED },
      replicas: ['node-1', 'node-2', 'node-3'].map((n) => ({
        name: 'new',
        nodeID: n,
        diskID: diskUUID(n),
        desireState: 'stopped',
        failedAt: '',
        healthyAt: '',
        rebuildRetryCount: 0,
        owners: OWNED,
      })),
    },
    requeue: 'none',
  },
  {
    name: 'new volume, only 2 nodes and hard node anti-affinity: 2 replicas, Scheduled=False with the reason',
    given: [...cluster(2), volume()],
    expected: {
      volume: { state: 'detached', scheduled: 'False ReplicaSchedulingFailure' },
      replicas: [
        { name: 'new', nodeID: 'node-1', diskID: diskUUID('node-1') },
        { name: 'new', nodeID: 'node-2', diskID: diskUUID('node-2') },
      ],
    },
    requeue: 10_000,
    check: (v) => {
      expect(v.volume?.scheduledMessage).toContain('hard node anti-affinity');
      expect(v.volume?.scheduledMessage).toContain('node-1');
    },
  },
];

// ---- the attachment controller: tickets → volume.spec.nodeID ---------------------------------------------

const detached = { state: 'detached', currentNodeID: '' } as const;

const tickets: Case[] = [
  {
    name: 'a ticket for node-1 on a detached volume: spec.nodeID = node-1',
    given: [...cluster(3), volume({ status: detached }), attachment([ticket('t1', 'node-1')])],
    expected: {
      volume: { nodeID: 'node-1', disableFrontend: false },
      attachment: { ticketStatuses: { t1: 'unsatisfied' } },
    },
  },
  {
    name: 'two tickets on different nodes: the higher priority wins (csi-attacher over snapshot-controller)',
    given: [
      ...cluster(3),
      volume({ status: detached }),
      attachment([ticket('a-snapshot', 'node-1', 'snapshot-controller'), ticket('z-csi', 'node-2', 'csi-attacher')]),
    ],
    expected: { volume: { nodeID: 'node-2' } },
  },
  {
    name: 'two tickets of equal priority: the smallest ticket id wins',
    given: [
      ...cluster(3),
      volume({ status: detached }),
      attachment([ticket('t-b', 'node-2'), ticket('t-a', 'node-3')]),
    ],
    expected: { volume: { nodeID: 'node-3' } },
  },
  {
    name: 'a ticket for a node that does not exist: ignored, its status says NodeNotFound',
    given: [...cluster(3), volume({ status: detached }), attachment([ticket('t9', 'node-9')])],
    expected: { volume: { nodeID: '' }, attachment: { ticketStatuses: { t9: 'NodeNotFound' } } },
  },
  {
    name: 'the ticket is removed: spec.nodeID is cleared',
    given: [...cluster(3), volume({ spec: attachedHealthy, status: attachedStatus }), attachment([])],
    expected: { volume: { nodeID: '' }, attachment: { ticketStatuses: {} } },
  },
  {
    name: 'attached on node-1 and its ticket there: satisfied, nodeID kept',
    given: [
      ...cluster(3),
      volume({ spec: attachedHealthy, status: attachedStatus }),
      attachment([ticket('t1', 'node-1')]),
    ],
    expected: { volume: { nodeID: 'node-1' }, attachment: { ticketStatuses: { t1: 'satisfied' } } },
  },
  {
    name: 'move, step 1: attached on node-1, the only ticket wants node-2: detach first (nodeID cleared)',
    given: [
      ...cluster(3),
      volume({ spec: attachedHealthy, status: attachedStatus }),
      attachment([ticket('t2', 'node-2')]),
    ],
    expected: { volume: { nodeID: '' } },
  },
  {
    name: 'move, step 2: still detaching from node-1: nodeID stays empty',
    given: [
      ...cluster(3),
      volume({ status: { state: 'detaching', currentNodeID: 'node-1' } }),
      attachment([ticket('t2', 'node-2')]),
    ],
    expected: { volume: { nodeID: '' }, attachment: { ticketStatuses: { t2: 'unsatisfied' } } },
  },
  {
    name: 'move, step 3: fully detached: nodeID = node-2',
    given: [...cluster(3), volume({ status: detached }), attachment([ticket('t2', 'node-2')])],
    expected: { volume: { nodeID: 'node-2' } },
  },
].map((c) => ({ ...c, controller: 'attachment' as const }));

// ---- attach ------------------------------------------------------------------------------------------------

const addrs = (...names: string[]) => Object.fromEntries(names.map((n) => [n, replicaAddr(n)]));

const attach: Case[] = [
  {
    name: 'spec.nodeID set, replicas stopped: replicas desireState running, engine untouched, attaching',
    given: [
      ...cluster(3),
      volume({ spec: attachedHealthy, status: detached }),
      engine(),
      attachment([ticket('t1', 'node-1')]),
      ...threeReplicas('stopped'),
    ],
    expected: {
      volume: { state: 'attaching', currentNodeID: '', endpoint: '' },
      engine: { nodeID: '', desireState: 'stopped', replicaAddressMap: {} },
      replicas: [A, B, C].map((name) => ({ name, desireState: 'running', failedAt: '' })),
    },
    requeue: 'later',
  },
  {
    name: 'replicas running: the engine gets nodeID, desireState running and the replicas ip:port',
    given: [
      ...cluster(3),
      volume({ spec: attachedHealthy, status: { state: 'attaching' } }),
      engine(),
      attachment([ticket('t1', 'node-1')]),
      ...threeReplicas('running'),
    ],
    expected: {
      volume: { state: 'attaching', currentNodeID: '' },
      engine: { nodeID: 'node-1', desireState: 'running', replicaAddressMap: addrs(A, B, C) },
    },
    requeue: 'later',
  },
  {
    name: 'engine running, every replica RW: attached, healthy, endpoint copied',
    given: [
      ...cluster(3),
      volume({ spec: attachedHealthy, status: { state: 'attaching' } }),
      runningEngine('node-1', { [A]: 'RW', [B]: 'RW', [C]: 'RW' }),
      attachment([ticket('t1', 'node-1')]),
      ...threeReplicas('running'),
    ],
    expected: {
      volume: {
        state: 'attached',
        robustness: 'healthy',
        currentNodeID: 'node-1',
        endpoint: ENDPOINT,
        lastDegradedAt: '',
      },
      engine: { nodeID: 'node-1', desireState: 'running', replicaAddressMap: addrs(A, B, C) },
      replicas: [A, B, C].map((name) => ({ name, desireState: 'running', failedAt: '', healthyAt: 'old' })),
    },
    requeue: 'none',
    events: ['Attached', 'Healthy'],
  },
];

// ---- failure, rebuild, replenish -----------------------------------------------------------------------------

const attachedDegraded = (degradedAgo: number) => ({
  ...attachedStatus,
  robustness: 'degraded' as const,
  lastDegradedAt: ago(degradedAgo),
});

const rebuild: Case[] = [
  {
    name: 'engine reports one replica ERR: it is failed and stopped, leaves the engine, the volume is degraded',
    given: [
      ...cluster(3),
      volume({ spec: attachedHealthy, status: { ...attachedStatus, robustness: 'healthy' } }),
      runningEngine('node-1', { [A]: 'RW', [B]: 'RW', [C]: 'ERR' }),
      attachment([ticket('t1', 'node-1')]),
      ...threeReplicas('running'),
    ],
    expected: {
      volume: { state: 'attached', robustness: 'degraded', lastDegradedAt: 'new', endpoint: ENDPOINT },
      engine: { desireState: 'running', replicaAddressMap: addrs(A, B) },
      replicas: [
        { name: A, failedAt: '', desireState: 'running' },
        { name: B, failedAt: '', desireState: 'running' },
        {
          name: C,
          failedAt: 'new',
          lastFailedAt: 'new',
          desireState: 'stopped',
          rebuildRetryCount: 0,
          deleting: false,
        },
      ],
    },
    events: ['Failed', 'Degraded'],
    noEvents: ['ReplicaReused', 'ReplicaCreated'],
  },
  {
    name: "degraded, the failed replica's node is back and Ready: that replica is reused, no new one",
    given: [
      ...cluster(3),
      volume({ spec: attachedHealthy, status: attachedDegraded(1 * MIN) }),
      runningEngine('node-1', { [A]: 'RW', [B]: 'RW' }),
      attachment([ticket('t1', 'node-1')]),
      replica(A, 'node-1', { state: 'running' }),
      replica(B, 'node-2', { state: 'running' }),
      failedReplica(C, 'node-3', 1 * MIN),
    ],
    expected: {
      volume: { state: 'attached', robustness: 'degraded', lastDegradedAt: 'old' },
      // Not in the engine yet: the replica controller starts it first, the next pass adds it.
      engine: { replicaAddressMap: addrs(A, B) },
      replicas: [
        { name: A },
        { name: B },
        { name: C, failedAt: '', lastFailedAt: 'old', healthyAt: '', rebuildRetryCount: 1, desireState: 'running' },
      ],
    },
    events: ['ReplicaReused'],
    noEvents: ['ReplicaCreated'],
  },
  {
    name: "degraded, the failed replica's node is down, wait interval not elapsed: nothing created, requeued",
    given: [
      ...cluster(4, { down: ['node-3'] }),
      volume({ spec: attachedHealthy, status: attachedDegraded(1 * MIN) }),
      runningEngine('node-1', { [A]: 'RW', [B]: 'RW' }),
      attachment([ticket('t1', 'node-1')]),
      replica(A, 'node-1', { state: 'running' }),
      replica(B, 'node-2', { state: 'running' }),
      failedReplica(C, 'node-3', 1 * MIN, { state: 'unknown' }),
    ],
    expected: {
      volume: { robustness: 'degraded', scheduled: 'True' },
      replicas: [{ name: A }, { name: B }, { name: C, failedAt: 'old', desireState: 'stopped' }],
    },
    requeue: 'later',
    noEvents: ['ReplicaReused', 'ReplicaCreated'],
  },
  {
    name: "degraded, the failed replica's node is down, wait interval elapsed: a new replica on another node",
    given: [
      ...cluster(4, { down: ['node-3'] }),
      volume({ spec: attachedHealthy, status: attachedDegraded(11 * MIN) }),
      runningEngine('node-1', { [A]: 'RW', [B]: 'RW' }),
      attachment([ticket('t1', 'node-1')]),
      replica(A, 'node-1', { state: 'running' }),
      replica(B, 'node-2', { state: 'running' }),
      failedReplica(C, 'node-3', 11 * MIN, { state: 'unknown' }),
    ],
    expected: {
      volume: { robustness: 'degraded', scheduled: 'True' },
      engine: { replicaAddressMap: addrs(A, B) },
      replicas: [
        { name: A },
        { name: B },
        { name: C, failedAt: 'old', deleting: false },
        { name: 'new', nodeID: 'node-4', diskID: diskUUID('node-4'), desireState: 'running', owners: OWNED },
      ],
    },
    events: ['ReplicaCreated'],
  },
  {
    name: 'a replica in WO (rebuilding): no second replenish while it rebuilds',
    given: [
      ...cluster(4, { down: ['node-3'] }),
      volume({ spec: attachedHealthy, status: attachedDegraded(11 * MIN) }),
      runningEngine('node-1', { [A]: 'RW', [B]: 'WO' }),
      attachment([ticket('t1', 'node-1')]),
      replica(A, 'node-1', { state: 'running' }),
      replica(B, 'node-2', { state: 'running', spec: { healthyAt: '', rebuildRetryCount: 1 } }),
      failedReplica(C, 'node-3', 11 * MIN, { state: 'unknown' }),
    ],
    expected: {
      volume: { robustness: 'degraded' },
      engine: { replicaAddressMap: addrs(A, B) },
      replicas: [{ name: A }, { name: B, healthyAt: '' }, { name: C, failedAt: 'old' }],
    },
    noEvents: ['ReplicaReused', 'ReplicaCreated'],
  },
];

// ---- every replica failed: auto-salvage ------------------------------------------------------------------------

/** Attached on node-1 and every replica failed: a 10 s ago, b 30 s ago, c 5 min ago. */
function allFailed(engineModes: Record<string, 'ERR'>): SeedItem[] {
  return [
    ...cluster(3),
    volume({ spec: attachedHealthy, status: { ...attachedStatus, robustness: 'faulted' } }),
    runningEngine('node-1', engineModes),
    attachment([ticket('t1', 'node-1')]),
    failedReplica(A, 'node-1', 10 * SEC),
    failedReplica(B, 'node-2', 30 * SEC),
    failedReplica(C, 'node-3', 5 * MIN),
  ];
}

const nothingSalvaged: Case['expected'] = {
  volume: { lastAutoSalvagedAt: '', robustness: 'faulted' },
  engine: { desireState: 'running', replicaAddressMap: {} },
  replicas: [A, B, C].map((name) => ({
    name,
    failedAt: 'old',
    desireState: 'stopped',
    rebuildRetryCount: 0,
    deleting: false,
  })),
};

const salvage: Case[] = [
  {
    name: 'all failed with data, auto-salvage on: those within 60 s of the last failure are cleared, engine stopped',
    given: allFailed({ [A]: 'ERR', [B]: 'ERR' }),
    expected: {
      volume: { lastAutoSalvagedAt: 'new' },
      engine: { desireState: 'stopped' },
      replicas: [
        { name: A, failedAt: '', lastFailedAt: 'old' },
        { name: B, failedAt: '', lastFailedAt: 'old' },
        { name: C, failedAt: 'old' },
      ],
    },
    requeue: 'later',
    events: ['AutoSalvaged'],
  },
  {
    name: 'all failed with data, auto-salvage off, the engine still lists them ERR: nothing reused or created',
    given: [...allFailed({ [A]: 'ERR', [B]: 'ERR' }), setting('auto-salvage', 'false')],
    expected: nothingSalvaged,
    noEvents: ['AutoSalvaged', 'ReplicaReused', 'ReplicaCreated'],
  },
  {
    name: 'all failed with data, auto-salvage off, the engine has dropped them: nothing reused or created',
    given: [...allFailed({}), setting('auto-salvage', 'false')],
    expected: nothingSalvaged,
    noEvents: ['AutoSalvaged', 'ReplicaReused', 'ReplicaCreated'],
  },
];

// ---- detach ----------------------------------------------------------------------------------------------------

const detach: Case[] = [
  {
    name: 'spec.nodeID cleared: the engine is stopped first, replicas keep running, detaching',
    given: [
      ...cluster(3),
      volume({ status: { ...attachedStatus, robustness: 'healthy' } }),
      runningEngine('node-1', { [A]: 'RW', [B]: 'RW', [C]: 'RW' }),
      attachment([]),
      ...threeReplicas('running'),
    ],
    expected: {
      volume: { state: 'detaching', currentNodeID: 'node-1', endpoint: '' },
      engine: { desireState: 'stopped' },
      replicas: [A, B, C].map((name) => ({ name, desireState: 'running' })),
    },
    requeue: 'later',
  },
  {
    name: 'engine stopped: the replicas are stopped',
    given: [
      ...cluster(3),
      volume({ status: { ...attachedStatus, state: 'detaching', endpoint: '' } }),
      engine({ spec: { nodeID: 'node-1', desireState: 'stopped', replicaAddressMap: addrs(A, B, C) } }),
      attachment([]),
      ...threeReplicas('running'),
    ],
    expected: {
      volume: { state: 'detaching', currentNodeID: 'node-1' },
      replicas: [A, B, C].map((name) => ({ name, desireState: 'stopped' })),
    },
    requeue: 'later',
  },
  {
    name: 'engine and replicas stopped: detached, no node, no endpoint',
    given: [
      ...cluster(3),
      volume({ status: { ...attachedStatus, state: 'detaching', endpoint: '' } }),
      engine({ spec: { nodeID: 'node-1', desireState: 'stopped', replicaAddressMap: addrs(A, B, C) } }),
      attachment([]),
      ...threeReplicas('stopped'),
    ],
    expected: {
      volume: { state: 'detached', currentNodeID: '', endpoint: '', robustness: 'unknown' },
      replicas: [A, B, C].map((name) => ({ name, desireState: 'stopped', deleting: false })),
    },
    requeue: 'none',
    events: ['Detached'],
  },
];

// ---- deletion --------------------------------------------------------------------------------------------------

const deletion: Case[] = [
  {
    name: 'deletionTimestamp: the engine is deleted first, replicas stay',
    given: [
      ...cluster(3),
      volume({ status: detached, deleted: true }),
      engine(),
      attachment(),
      ...threeReplicas('stopped'),
    ],
    expected: {
      volume: { deleting: true, state: 'deleting', finalizers: ['shorthorn.io'] },
      engine: { deleting: true },
      replicas: [A, B, C].map((name) => ({ name, deleting: false })),
    },
  },
  {
    name: 'deletionTimestamp, engine gone: the replicas are deleted, the volume keeps its finalizer',
    given: [...cluster(3), volume({ status: detached, deleted: true }), attachment(), ...threeReplicas('stopped')],
    expected: {
      volume: { deleting: true, state: 'deleting', finalizers: ['shorthorn.io'] },
      replicas: [A, B, C].map((name) => ({ name, deleting: true })),
    },
  },
  {
    name: 'deletionTimestamp, engine and replicas gone: the finalizer is removed and the volume is gone',
    given: [...cluster(3), volume({ status: detached, deleted: true }), attachment()],
    expected: { replicas: [] },
    events: ['Deleted'],
    check: (v) => {
      expect(v.volume).toBeUndefined();
      expect(v.attachment).toBeUndefined();
      expect(v.engine).toBeUndefined();
    },
  },
];

// ---- eviction --------------------------------------------------------------------------------------------------

/** `node(name)` with its eviction requested (node level, or only its disk). */
function evicting(name: string, level: 'node' | 'disk'): SeedItem {
  const item = node(name);
  if (item.kind !== 'Node') throw new Error('node() returned another kind');
  if (level === 'node') item.obj.spec.evictionRequested = true;
  else item.obj.spec.disks['disk-0']!.evictionRequested = true;
  return item;
}

const eviction: Case[] = [
  {
    name: 'node eviction requested: its replica is flagged but keeps serving; a replacement goes to another node',
    given: [
      node('node-1'),
      node('node-2'),
      evicting('node-3', 'node'),
      node('node-4'),
      ...cluster(4).filter((i) => i.kind === 'InstanceManager'),
      volume({ spec: attachedHealthy, status: { ...attachedStatus, robustness: 'healthy' } }),
      runningEngine('node-1', { [A]: 'RW', [B]: 'RW', [C]: 'RW' }),
      attachment([ticket('t1', 'node-1')]),
      ...threeReplicas('running'),
    ],
    expected: {
      volume: { state: 'attached', robustness: 'healthy' },
      engine: { replicaAddressMap: addrs(A, B, C) },
      replicas: [
        { name: A },
        { name: B },
        { name: C, desireState: 'running', deleting: false },
        { name: 'new', nodeID: 'node-4' },
      ],
    },
    events: ['EvictionRequested', 'ReplicaCreated'],
  },
  {
    name: 'disk eviction requested and the replacement is healthy: the evicted replica is removed',
    given: [
      node('node-1'),
      node('node-2'),
      evicting('node-3', 'disk'),
      node('node-4'),
      ...cluster(4).filter((i) => i.kind === 'InstanceManager'),
      volume({ spec: attachedHealthy, status: { ...attachedStatus, robustness: 'healthy' } }),
      runningEngine('node-1', { [A]: 'RW', [B]: 'RW', [C]: 'RW', [D]: 'RW' }),
      attachment([ticket('t1', 'node-1')]),
      ...threeReplicas('running'),
      replica(D, 'node-4', { state: 'running' }),
    ],
    expected: {
      replicas: [{ name: A }, { name: B }, { name: C, deleting: true }, { name: D, deleting: false }],
    },
    events: ['EvictionRequested', 'ReplicaEvicted'],
    noEvents: ['ReplicaCreated'],
  },
  {
    name: 'eviction withdrawn: the flag is cleared and nothing is created or removed',
    given: [
      ...cluster(3),
      volume({ spec: attachedHealthy, status: { ...attachedStatus, robustness: 'healthy' } }),
      runningEngine('node-1', { [A]: 'RW', [B]: 'RW', [C]: 'RW' }),
      attachment([ticket('t1', 'node-1')]),
      replica(A, 'node-1', { state: 'running' }),
      replica(B, 'node-2', { state: 'running' }),
      replica(C, 'node-3', { state: 'running', spec: { evictionRequested: true } }),
    ],
    expected: {
      volume: { robustness: 'healthy' },
      replicas: [{ name: A }, { name: B }, { name: C, deleting: false }],
    },
    noEvents: ['ReplicaCreated', 'ReplicaEvicted'],
    check: (view) => expect(view.replicas.find((r) => r.name === C)?.evictionRequested).toBe(false),
  },
];

// ---- cleanup ---------------------------------------------------------------------------------------------------

const cleanup: Case[] = [
  {
    name: 'a failed replica older than staleReplicaTimeout, other healthy replicas: it is deleted',
    given: [
      ...cluster(3, { down: ['node-3'] }),
      volume({ spec: { ...attachedHealthy, staleReplicaTimeout: 60 }, status: attachedDegraded(3 * 60 * MIN) }),
      runningEngine('node-1', { [A]: 'RW', [B]: 'RW' }),
      attachment([ticket('t1', 'node-1')]),
      replica(A, 'node-1', { state: 'running' }),
      replica(B, 'node-2', { state: 'running' }),
      failedReplica(C, 'node-3', 2 * 60 * MIN, { state: 'unknown' }),
    ],
    expected: {
      // No third node to put a replacement on (node-3 is down, hard anti-affinity).
      volume: { robustness: 'degraded', scheduled: 'False ReplicaSchedulingFailure' },
      replicas: [
        { name: A, deleting: false },
        { name: B, deleting: false },
        { name: C, deleting: true },
      ],
    },
    events: ['ReplicaRemoved'],
  },
  {
    name: 'the only replica with data, failed long past staleReplicaTimeout: never deleted',
    given: [
      ...cluster(3),
      volume({ spec: { staleReplicaTimeout: 60 }, status: { state: 'detached', robustness: 'faulted' } }),
      engine(),
      attachment(),
      failedReplica(C, 'node-3', 3 * 24 * 60 * MIN),
      // Failed before it ever held data: not a copy of anything, but nothing safe exists to delete it for.
      failedReplica(D, 'node-1', 3 * 24 * 60 * MIN, { spec: { healthyAt: '', lastHealthyAt: '' } }),
    ],
    expected: {
      volume: { state: 'detached', robustness: 'faulted' },
      replicas: [
        { name: C, deleting: false, failedAt: 'old' },
        { name: D, deleting: false },
      ],
    },
    noEvents: ['ReplicaRemoved'],
  },
  {
    // Replenish runs before cleanup and cleanup sees what replenish left: the replica is reused (a delta
    // rebuild), not reused and then deleted in the same pass.
    name: 'a stale failed replica whose node is Ready again: reused, and so not deleted',
    given: [
      ...cluster(3),
      volume({ spec: { ...attachedHealthy, staleReplicaTimeout: 60 }, status: attachedDegraded(3 * 60 * MIN) }),
      runningEngine('node-1', { [A]: 'RW', [B]: 'RW' }),
      attachment([ticket('t1', 'node-1')]),
      replica(A, 'node-1', { state: 'running' }),
      replica(B, 'node-2', { state: 'running' }),
      failedReplica(C, 'node-3', 2 * 60 * MIN),
    ],
    expected: {
      replicas: [{ name: A }, { name: B }, { name: C, deleting: false, failedAt: '', rebuildRetryCount: 1 }],
    },
    events: ['ReplicaReused'],
    noEvents: ['ReplicaRemoved'],
  },
];

describe('volume controller, one reconcile', () => {
  describe('creation', () => {
    it.each(creation)('$name', runCase);
  });
  describe('attach', () => {
    it.each(attach)('$name', runCase);
  });
  describe('failure, rebuild and replenish', () => {
    it.each(rebuild)('$name', runCase);
  });
  describe('auto-salvage', () => {
    it.each(salvage)('$name', runCase);
  });
  describe('detach', () => {
    it.each(detach)('$name', runCase);
  });
  describe('deletion', () => {
    it.each(deletion)('$name', runCase);
  });
  describe('eviction', () => {
    it.each(eviction)('$name', runCase);
  });
  describe('cleanup of failed replicas', () => {
    it.each(cleanup)('$name', runCase);
  });
});

describe('volume-attachment controller, one reconcile', () => {
  it.each(tickets)('$name', runCase);
});
