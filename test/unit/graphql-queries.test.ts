// The typed resource graph through yoga.fetch in-process, over a real SqliteStore seeded with what the
// controllers leave behind: every query, its filters, navigation both ways, the cluster numbers, auth,
// and the N+1 guard (a dashboard query over 1,000 volumes costs the store reads of one over 10).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineNameOf, FINALIZER, VOLUME_LABEL } from '../../controllers/labels.js';
import { VolumeApi } from '../../controllers/volume-api.js';
import type { Kind } from '../../model/kinds.js';
import type { Role } from '../../schema/context.js';
import { createShorthornYoga } from '../../schema/yoga.js';
import { CountingStore } from '../../store/counting-store.js';
import { openSqliteStore, type SqliteStore } from '../../store/sqlite-store.js';
import type { CreateInput, Store } from '../../store/store.js';
import {
  ago,
  attachment,
  engine,
  GiB,
  instanceManager,
  MIN,
  node,
  replica,
  replicaAddr,
  runningEngine,
  SEC,
  type SeedItem,
  setting,
  ticket,
  volume,
} from '../helpers/reconcile-fixtures.js';

type ItemOf<K extends Kind> = Extract<SeedItem, { kind: K }>;

// ---- fixtures: the reconcile builders, moved onto any volume -----------------------------------------

function owned<K extends Kind>(item: ItemOf<K>, vol: string, name: string): ItemOf<K> {
  item.obj.metadata.name = name;
  item.obj.metadata.labels = { [VOLUME_LABEL]: vol };
  item.obj.metadata.ownerReferences = [{ kind: 'Volume', name: vol, uid: '', controller: true }];
  return item;
}

function replicaOf(
  vol: string,
  suffix: string,
  nodeID: string,
  o: Parameters<typeof replica>[2] = {},
): ItemOf<'Replica'> {
  const name = `${vol}-r-${suffix}`;
  const item = owned(replica(name, nodeID, o) as ItemOf<'Replica'>, vol, name);
  item.obj.spec.volumeName = vol;
  item.obj.spec.engineName = engineNameOf(vol);
  return item;
}

function runningEngineOf(vol: string, nodeID: string, modes: Record<string, 'RW' | 'WO' | 'ERR'>): ItemOf<'Engine'> {
  const full = Object.fromEntries(Object.entries(modes).map(([s, m]) => [`${vol}-r-${s}`, m]));
  const item = owned(runningEngine(nodeID, full) as ItemOf<'Engine'>, vol, engineNameOf(vol));
  item.obj.spec.volumeName = vol;
  item.obj.status!.endpoint = `nbd://127.0.0.1:10809/${vol}`;
  return item;
}

function stoppedEngineOf(vol: string): ItemOf<'Engine'> {
  const item = owned(engine() as ItemOf<'Engine'>, vol, engineNameOf(vol));
  item.obj.spec.volumeName = vol;
  return item;
}

function volumeNamed(
  name: string,
  o: {
    state: 'attached' | 'detached';
    robustness: 'healthy' | 'degraded' | 'unknown';
    node?: string;
    labels?: Record<string, string>;
  },
): ItemOf<'Volume'> {
  const item = volume({
    name,
    spec: { nodeID: o.node ?? '' },
    status: {
      state: o.state,
      robustness: o.robustness,
      currentNodeID: o.node ?? '',
      endpoint: o.node ? `nbd://127.0.0.1:10809/${name}` : '',
      currentSize: GiB,
      actualSize: 256 * 1024 ** 2,
    },
  }) as ItemOf<'Volume'>;
  item.obj.metadata.labels = o.labels ?? {};
  return item;
}

/** node-N with one disk of 100 GiB; what is free and scheduled as given. */
function nodeWith(
  name: string,
  o: { up?: boolean; available: number; scheduled: number; tags?: string[]; labels?: Record<string, string> },
): ItemOf<'Node'> {
  const item = node(name, { up: o.up, zone: name === 'node-3' ? 'zone-b' : 'zone-a' }) as ItemOf<'Node'>;
  const disk = item.obj.status!.diskStatus['disk-0']!;
  disk.storageAvailable = o.available;
  disk.storageScheduled = o.scheduled;
  item.obj.spec.tags = o.tags ?? [];
  item.obj.metadata.labels = o.labels ?? {};
  return item;
}

function snapshotOf(
  vol: string,
  name: string,
  o: { parent: string; children: string[]; createdAgo: number; size: number; removed?: boolean },
): ItemOf<'Snapshot'> {
  return {
    kind: 'Snapshot',
    obj: {
      metadata: {
        name,
        labels: { [VOLUME_LABEL]: vol },
        finalizers: [FINALIZER],
        ownerReferences: [{ kind: 'Volume', name: vol, uid: '', controller: true }],
      },
      spec: { volume: vol, createSnapshot: true, labels: { by: 'test' } },
      status: {
        ownerID: 'manager',
        parent: o.parent,
        children: o.children,
        markRemoved: o.removed ?? false,
        userCreated: true,
        creationTime: ago(o.createdAgo),
        size: o.size,
        labels: { by: 'test' },
        readyToUse: !o.removed,
        error: '',
      },
    },
  };
}

function event(
  name: string,
  kind: string,
  of: string,
  type: 'Normal' | 'Warning',
  reason: string,
  lastAgo: number,
  count = 1,
): ItemOf<'Event'> {
  return {
    kind: 'Event',
    obj: {
      metadata: { name, labels: { 'shorthorn.io/kind': kind, 'shorthorn.io/name': of } },
      spec: {
        type,
        reason,
        message: `${kind} ${of}: ${reason}`,
        involvedObject: { kind, name: of },
        source: 'manager',
        firstTimestamp: ago(lastAgo + count * MIN),
        lastTimestamp: ago(lastAgo),
        count,
      },
    },
  };
}

/** Creates `items` in order; owner references to a volume get its uid. */
async function seed(store: Store, items: SeedItem[]): Promise<void> {
  const uids = new Map<string, string>();
  for (const item of items) {
    const obj = structuredClone(item.obj) as CreateInput<Kind>;
    obj.metadata.ownerReferences = (obj.metadata.ownerReferences ?? []).map((r) => ({
      ...r,
      uid: r.uid || uids.get(`${r.kind}/${r.name}`) || '',
    }));
    const created = await store.create(item.kind, obj as never);
    uids.set(`${item.kind}/${created.metadata.name}`, created.metadata.uid);
  }
}

function openTempStore(): { store: SqliteStore; close: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), 'shorthorn-graphql-'));
  const store = openSqliteStore(join(dir, 'store.db'), { synchronous: 'NORMAL' });
  return {
    store,
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface GqlResult {
  // biome-ignore lint/suspicious/noExplicitAny: a test reads GraphQL JSON by path
  data?: any;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

/** A client of an in-process server; anonymous requests get `anonymousRole` (a viewer unless told). */
function client(store: Store, opts: { anonymousRole: Role | undefined } = { anonymousRole: 'viewer' }) {
  const yoga = createShorthornYoga({ store, api: new VolumeApi(store), anonymousRole: opts.anonymousRole });
  return async (query: string, variables?: Record<string, unknown>): Promise<GqlResult> => {
    const res = await yoga.fetch('http://yoga/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query, variables }),
    });
    return (await res.json()) as GqlResult;
  };
}

/** Data of a query that must succeed. */
async function ok(q: ReturnType<typeof client>, query: string, variables?: Record<string, unknown>) {
  const r = await q(query, variables);
  expect(r.errors).toBeUndefined();
  return r.data;
}

// ---- the cluster under test ---------------------------------------------------------------------------
//
// node-1 (zone-a, ssd), node-2 (zone-a), node-3 (zone-b, instance manager down).
// vol-a: attached on node-1, degraded: replicas a (node-1, RW), b (node-2, RW), c (node-3, WO, rebuilding
//        40 %); snapshots snap-1 → snap-2 → volume-head; one satisfied ticket.
// vol-b: detached (app=db): replicas a (node-2), b (node-3), both stopped; engine stopped; one snapshot
//        whose engine chain names a child `snap-2` that is vol-a's, not its own.

const fixture: SeedItem[] = [
  nodeWith('node-1', { available: 80 * GiB, scheduled: GiB, tags: ['ssd'], labels: { rack: 'r1' } }),
  nodeWith('node-2', { available: 85 * GiB, scheduled: 2 * GiB, labels: { rack: 'r1' } }),
  nodeWith('node-3', { up: false, available: 90 * GiB, scheduled: 2 * GiB, labels: { rack: 'r2' } }),
  instanceManager('node-1', {
    instances: {
      'vol-a-e-0': { type: 'engine', state: 'running', port: 10000, pid: 4242, errorMsg: '', startedAt: ago(MIN) },
      'vol-a-r-a': { type: 'replica', state: 'running', port: 21000, pid: 4243, errorMsg: '', startedAt: ago(MIN) },
    },
  }),
  instanceManager('node-2'),
  instanceManager('node-3', { state: 'error' }),
  volumeNamed('vol-a', { state: 'attached', robustness: 'degraded', node: 'node-1', labels: { app: 'web' } }),
  volumeNamed('vol-b', { state: 'detached', robustness: 'unknown', labels: { app: 'db' } }),
  replicaOf('vol-a', 'a', 'node-1', { state: 'running' }),
  replicaOf('vol-a', 'b', 'node-2', { state: 'running' }),
  replicaOf('vol-a', 'c', 'node-3', { state: 'running', spec: { healthyAt: '', failedAt: '' } }),
  replicaOf('vol-b', 'a', 'node-2'),
  replicaOf('vol-b', 'b', 'node-3', { spec: { failedAt: ago(10 * MIN), lastFailedAt: ago(10 * MIN) } }),
  (() => {
    const e = runningEngineOf('vol-a', 'node-1', { a: 'RW', b: 'RW', c: 'WO' });
    e.obj.status!.rebuildStatus = {
      'vol-a-r-c': {
        isRebuilding: true,
        progress: 40,
        bytesDone: 400 * 1024 ** 2,
        bytesTotal: GiB,
        state: 'in_progress',
        error: '',
        fromReplicaAddress: replicaAddr('vol-a-r-a'),
      },
    };
    return e;
  })(),
  stoppedEngineOf('vol-b'),
  (() => {
    const a = owned(attachment([ticket('api-1', 'node-1')]) as ItemOf<'VolumeAttachment'>, 'vol-a', 'vol-a');
    a.obj.spec.volume = 'vol-a';
    return a;
  })(),
  snapshotOf('vol-a', 'snap-1', { parent: '', children: ['snap-2'], createdAgo: 60 * MIN, size: 8 * 1024 ** 2 }),
  snapshotOf('vol-a', 'snap-2', { parent: 'snap-1', children: ['volume-head'], createdAgo: 30 * MIN, size: 4096 }),
  snapshotOf('vol-b', 'snap-b1', { parent: '', children: ['snap-2'], createdAgo: 90 * MIN, size: 0, removed: true }),
  setting('default-replica-count', '2'),
  event('ev-vol-a-degraded', 'Volume', 'vol-a', 'Warning', 'Degraded', 2 * MIN),
  event('ev-vol-a-attached', 'Volume', 'vol-a', 'Normal', 'Attached', 20 * MIN),
  event('ev-rep-c-rebuild', 'Replica', 'vol-a-r-c', 'Normal', 'Rebuilding', 30 * SEC),
  event('ev-eng-a-started', 'Engine', 'vol-a-e-0', 'Normal', 'Started', 21 * MIN),
  event('ev-vol-b-detached', 'Volume', 'vol-b', 'Normal', 'Detached', 5 * MIN, 3),
  event('ev-node-3-down', 'Node', 'node-3', 'Warning', 'InstanceManagerDown', 1 * MIN, 7),
];

describe('GraphQL queries over the resource graph', () => {
  let db: ReturnType<typeof openTempStore>;
  let q: ReturnType<typeof client>;

  beforeAll(async () => {
    db = openTempStore();
    await seed(db.store, fixture);
    // vol-a's ticket as the attachment controller reports it.
    const va = (await db.store.get('VolumeAttachment', 'vol-a'))!;
    va.status.attachmentTicketStatuses = { 'api-1': { id: 'api-1', satisfied: true, conditions: [] } };
    await db.store.updateStatus('VolumeAttachment', va);
    q = client(db.store);
  });
  afterAll(() => db.close());

  it('nodes with their disks, filtered by name, label, tag and readiness', async () => {
    const d = await ok(
      q,
      `{ nodes { name ready schedulable zone tags instanceManagerAddress
           disks { name path allowScheduling storageMaximum storageAvailable storageScheduled diskUUID
                   conditions { type status } } } }`,
    );
    expect(d.nodes.map((n: { name: string }) => n.name)).toEqual(['node-1', 'node-2', 'node-3']);
    expect(d.nodes[0]).toMatchObject({
      ready: true,
      zone: 'zone-a',
      tags: ['ssd'],
      disks: [
        {
          name: 'disk-0',
          path: '/data/node-1/disk-0',
          allowScheduling: true,
          storageMaximum: 100 * GiB,
          storageAvailable: 80 * GiB,
          storageScheduled: GiB,
          diskUUID: 'node-1-disk-0-uuid',
          conditions: [
            { type: 'Ready', status: 'True' },
            { type: 'Schedulable', status: 'True' },
          ],
        },
      ],
    });
    expect(d.nodes[2]).toMatchObject({ ready: false, zone: 'zone-b', instanceManagerAddress: '' });

    const names = async (args: string) =>
      (await ok(q, `{ nodes${args} { name } }`)).nodes.map((n: { name: string }) => n.name);
    expect(await names('(ready: false)')).toEqual(['node-3']);
    expect(await names('(ready: true)')).toEqual(['node-1', 'node-2']);
    expect(await names('(tag: "ssd")')).toEqual(['node-1']);
    expect(await names('(label: "rack=r1")')).toEqual(['node-1', 'node-2']);
    expect(await names('(label: "rack!=r1")')).toEqual(['node-3']);
    expect(await names('(name: "2")')).toEqual(['node-2']);
  });

  it('node(name) leads to its replicas and their volumes, its disks, engines and instance manager', async () => {
    const d = await ok(
      q,
      `{ node(name: "node-2") { name
           replicas { name volume { name state } }
           disks { name replicas { name } }
           engines { name }
           instanceManager { name currentState } } }`,
    );
    expect(d.node).toEqual({
      name: 'node-2',
      replicas: [
        { name: 'vol-a-r-b', volume: { name: 'vol-a', state: 'attached' } },
        { name: 'vol-b-r-a', volume: { name: 'vol-b', state: 'detached' } },
      ],
      disks: [{ name: 'disk-0', replicas: [{ name: 'vol-a-r-b' }, { name: 'vol-b-r-a' }] }],
      engines: [],
      instanceManager: { name: 'im-node-2', currentState: 'running' },
    });
    expect((await ok(q, `{ node(name: "node-1") { engines { name } } }`)).node.engines).toEqual([
      { name: 'vol-a-e-0' },
    ]);
    expect((await ok(q, `{ node(name: "node-9") { name } }`)).node).toBeNull();
  });

  it('volume navigation: replicas → node → disks, engine → replicas, attachment, snapshots → children, events, node', async () => {
    const d = await ok(
      q,
      `{ volume(name: "vol-a") { name state robustness
           node { name }
           replicas { name mode currentState address nodeID diskID
                      node { name disks { name storageAvailable } } disk { name } volume { name } engine { name } }
           engine { name currentState nodeID endpoint currentSize
                    replicas { name address mode wanted replica { name nodeID } }
                    rebuildStatus { replicaName isRebuilding progress bytesTotal state fromReplicaAddress } }
           attachment { name volumeName tickets { id type nodeID satisfied } }
           snapshots { name parentName parent { name } children { name } size readyToUse markRemoved }
           events { reason type involvedObject { kind name } } } }`,
    );
    const v = d.volume;
    expect(v).toMatchObject({ name: 'vol-a', state: 'attached', robustness: 'degraded', node: { name: 'node-1' } });
    expect(v.replicas).toEqual([
      {
        name: 'vol-a-r-a',
        mode: 'RW',
        currentState: 'running',
        address: replicaAddr('vol-a-r-a'),
        nodeID: 'node-1',
        diskID: 'node-1-disk-0-uuid',
        node: { name: 'node-1', disks: [{ name: 'disk-0', storageAvailable: 80 * GiB }] },
        disk: { name: 'disk-0' },
        volume: { name: 'vol-a' },
        engine: { name: 'vol-a-e-0' },
      },
      expect.objectContaining({ name: 'vol-a-r-b', mode: 'RW', node: expect.objectContaining({ name: 'node-2' }) }),
      expect.objectContaining({ name: 'vol-a-r-c', mode: 'WO', node: expect.objectContaining({ name: 'node-3' }) }),
    ]);
    expect(v.engine).toEqual({
      name: 'vol-a-e-0',
      currentState: 'running',
      nodeID: 'node-1',
      endpoint: 'nbd://127.0.0.1:10809/vol-a',
      currentSize: GiB,
      replicas: ['a', 'b', 'c'].map((s, i) => ({
        name: `vol-a-r-${s}`,
        address: replicaAddr(`vol-a-r-${s}`),
        mode: i < 2 ? 'RW' : 'WO',
        wanted: true,
        replica: { name: `vol-a-r-${s}`, nodeID: `node-${i + 1}` },
      })),
      rebuildStatus: [
        {
          replicaName: 'vol-a-r-c',
          isRebuilding: true,
          progress: 40,
          bytesTotal: GiB,
          state: 'in_progress',
          fromReplicaAddress: replicaAddr('vol-a-r-a'),
        },
      ],
    });
    expect(v.attachment).toEqual({
      name: 'vol-a',
      volumeName: 'vol-a',
      tickets: [{ id: 'api-1', type: 'shorthorn-api', nodeID: 'node-1', satisfied: true }],
    });
    expect(v.snapshots).toEqual([
      {
        name: 'snap-1',
        parentName: '',
        parent: null,
        children: [{ name: 'snap-2' }],
        size: 8 * 1024 ** 2,
        readyToUse: true,
        markRemoved: false,
      },
      {
        name: 'snap-2',
        parentName: 'snap-1',
        parent: { name: 'snap-1' },
        children: [],
        size: 4096,
        readyToUse: true,
        markRemoved: false,
      },
    ]);
    // Newest first, about the volume, its engine and its replicas (not vol-b's, not node-3's).
    expect(v.events).toEqual([
      { reason: 'Rebuilding', type: 'Normal', involvedObject: { kind: 'Replica', name: 'vol-a-r-c' } },
      { reason: 'Degraded', type: 'Warning', involvedObject: { kind: 'Volume', name: 'vol-a' } },
      { reason: 'Attached', type: 'Normal', involvedObject: { kind: 'Volume', name: 'vol-a' } },
      { reason: 'Started', type: 'Normal', involvedObject: { kind: 'Engine', name: 'vol-a-e-0' } },
    ]);
    const warnings = await ok(q, `{ volume(name: "vol-a") { events(type: "Warning", limit: 5) { reason } } }`);
    expect(warnings.volume.events).toEqual([{ reason: 'Degraded' }]);
  });

  it('a detached volume: no node, a stopped engine without modes, no attachment', async () => {
    const d = await ok(
      q,
      `{ volume(name: "vol-b") { node { name } attachment { name } replicas { name mode failedAt healthyAt }
           engine { currentState replicas { name } } snapshots { name children { name } markRemoved } } }`,
    );
    expect(d.volume.node).toBeNull();
    expect(d.volume.attachment).toBeNull();
    expect(d.volume.engine).toEqual({ currentState: 'stopped', replicas: [] });
    expect(d.volume.replicas.map((r: { mode: unknown }) => r.mode)).toEqual([null, null]);
    expect(d.volume.replicas[0].failedAt).toBeNull();
    expect(Date.parse(d.volume.replicas[1].failedAt)).toBeGreaterThan(Date.now() - 11 * MIN);
    expect(Date.parse(d.volume.replicas[0].healthyAt)).toBeLessThan(Date.now() - 59 * MIN);
    // snap-b1's chain names snap-2, which is vol-a's: children resolve within the same volume only.
    expect(d.volume.snapshots).toEqual([{ name: 'snap-b1', children: [], markRemoved: true }]);
  });

  it('volume(name: "missing") is null; volumes filter by label and state', async () => {
    expect((await ok(q, `{ volume(name: "missing") { name replicas { name } } }`)).volume).toBeNull();
    const names = async (args: string) =>
      (await ok(q, `{ volumes${args} { name } }`)).volumes.map((v: { name: string }) => v.name);
    expect(await names('(label: "app=db")')).toEqual(['vol-b']);
    expect(await names('(state: "attached")')).toEqual(['vol-a']);
    expect(await names('(node: "node-1")')).toEqual(['vol-a']);
  });

  it('engines and replicas filter by volume, node and state', async () => {
    const e = async (args: string) =>
      (await ok(q, `{ engines${args} { name } }`)).engines.map((x: { name: string }) => x.name);
    expect(await e('')).toEqual(['vol-a-e-0', 'vol-b-e-0']);
    expect(await e('(volume: "vol-b")')).toEqual(['vol-b-e-0']);
    expect(await e('(node: "node-1")')).toEqual(['vol-a-e-0']);
    expect(await e('(state: "stopped")')).toEqual(['vol-b-e-0']);

    const r = async (args: string) =>
      (await ok(q, `{ replicas${args} { name } }`)).replicas.map((x: { name: string }) => x.name);
    expect(await r('')).toHaveLength(5);
    expect(await r('(volume: "vol-a")')).toEqual(['vol-a-r-a', 'vol-a-r-b', 'vol-a-r-c']);
    expect(await r('(node: "node-3")')).toEqual(['vol-a-r-c', 'vol-b-r-b']);
    expect(await r('(node: "node-3", volume: "vol-b")')).toEqual(['vol-b-r-b']);
    expect(await r('(state: "stopped")')).toEqual(['vol-b-r-a', 'vol-b-r-b']);
    expect(await r('(label: "shorthorn.io/volume=vol-b", name: "-a")')).toEqual(['vol-b-r-a']);
  });

  it('snapshots(volume) oldest first, with children resolved; removed ones can be left out', async () => {
    const d = await ok(q, `{ snapshots(volume: "vol-a") { name volumeName creationTime children { name } labels } }`);
    expect(d.snapshots.map((s: { name: string }) => s.name)).toEqual(['snap-1', 'snap-2']);
    expect(d.snapshots[0]).toMatchObject({
      volumeName: 'vol-a',
      children: [{ name: 'snap-2' }],
      labels: { by: 'test' },
    });
    expect(Date.parse(d.snapshots[0].creationTime)).toBeLessThan(Date.parse(d.snapshots[1].creationTime));
    const all = await ok(q, `{ snapshots { name } }`);
    expect(all.snapshots.map((s: { name: string }) => s.name)).toEqual(['snap-b1', 'snap-1', 'snap-2']);
    const live = await ok(q, `{ snapshots(includeRemoved: false) { name } }`);
    expect(live.snapshots.map((s: { name: string }) => s.name)).toEqual(['snap-1', 'snap-2']);
  });

  it('settings by category with stored values or defaults and their definitions; setting(name)', async () => {
    const d = await ok(
      q,
      `{ settings(category: "general") { name value isDefault definition { category type default min max choices } } }`,
    );
    expect(d.settings.every((s: { definition: { category: string } }) => s.definition.category === 'general')).toBe(
      true,
    );
    expect(d.settings.find((s: { name: string }) => s.name === 'default-replica-count')).toEqual({
      name: 'default-replica-count',
      value: '2',
      isDefault: false,
      definition: { category: 'general', type: 'int', default: '3', min: 1, max: 20, choices: null },
    });
    expect(d.settings.find((s: { name: string }) => s.name === 'default-data-locality')).toMatchObject({
      value: 'disabled',
      isDefault: true,
      definition: { type: 'enum', choices: ['disabled', 'best-effort', 'strict-local'] },
    });
    const one = await ok(
      q,
      `{ setting(name: "storage-minimal-available-percentage") { value isDefault definition { displayName min max } }
         missing: setting(name: "no-such-setting") { name } }`,
    );
    expect(one.setting).toEqual({
      value: '25',
      isDefault: true,
      definition: { displayName: 'Storage Minimal Available Percentage', min: 0, max: 100 },
    });
    expect(one.missing).toBeNull();
  });

  it('events newest first, filtered by kind, name and type, limited', async () => {
    const reasons = async (args: string) =>
      (await ok(q, `{ events${args} { reason } }`)).events.map((e: { reason: string }) => e.reason);
    expect(await reasons('')).toEqual([
      'Rebuilding',
      'InstanceManagerDown',
      'Degraded',
      'Detached',
      'Attached',
      'Started',
    ]);
    expect(await reasons('(kind: "Volume")')).toEqual(['Degraded', 'Detached', 'Attached']);
    expect(await reasons('(kind: "Volume", name: "vol-b")')).toEqual(['Detached']);
    expect(await reasons('(type: "Warning")')).toEqual(['InstanceManagerDown', 'Degraded']);
    expect(await reasons('(limit: 2)')).toEqual(['Rebuilding', 'InstanceManagerDown']);
    const one = await ok(
      q,
      `{ events(kind: "Node") { type reason message involvedObject { kind name } source count firstTimestamp lastTimestamp } }`,
    );
    expect(one.events).toEqual([
      {
        type: 'Warning',
        reason: 'InstanceManagerDown',
        message: 'Node node-3: InstanceManagerDown',
        involvedObject: { kind: 'Node', name: 'node-3' },
        source: 'manager',
        count: 7,
        firstTimestamp: expect.any(String),
        lastTimestamp: expect.any(String),
      },
    ]);
    expect(Date.parse(one.events[0].firstTimestamp)).toBeLessThan(Date.parse(one.events[0].lastTimestamp));
  });

  it('instanceManagers with their instances, filtered by node and state', async () => {
    const d = await ok(
      q,
      `{ instanceManagers { name nodeID address currentState node { name } instances { name type state port pid } } }`,
    );
    expect(d.instanceManagers.map((im: { name: string }) => im.name)).toEqual(['im-node-1', 'im-node-2', 'im-node-3']);
    expect(d.instanceManagers[0]).toEqual({
      name: 'im-node-1',
      nodeID: 'node-1',
      address: '127.0.0.1:40010',
      currentState: 'running',
      node: { name: 'node-1' },
      instances: [
        { name: 'vol-a-e-0', type: 'engine', state: 'running', port: 10000, pid: 4242 },
        { name: 'vol-a-r-a', type: 'replica', state: 'running', port: 21000, pid: 4243 },
      ],
    });
    const err = await ok(q, `{ instanceManagers(state: "error") { name } }`);
    expect(err.instanceManagers).toEqual([{ name: 'im-node-3' }]);
    expect((await ok(q, `{ instanceManagers(node: "node-2") { name } }`)).instanceManagers).toEqual([
      { name: 'im-node-2' },
    ]);
  });

  it('cluster: capacity summed over disks, volumes by state and robustness, nodes by condition, replicas', async () => {
    const d = await ok(
      q,
      `{ cluster {
           capacity { disks storageMaximum storageAvailable storageScheduled storageReserved storageUsed }
           volumes { total size actualSize byState { value count } byRobustness { value count } }
           nodes { total ready notReady unknown byCondition { type status count } }
           replicas { total failed byState { value count } } } }`,
    );
    const c = d.cluster;
    expect(c.capacity).toEqual({
      disks: 3,
      storageMaximum: 300 * GiB,
      storageAvailable: 255 * GiB,
      storageScheduled: 5 * GiB,
      storageReserved: 0,
      storageUsed: 45 * GiB,
    });
    const counts = (l: { value: string; count: number }[]) =>
      Object.fromEntries(l.filter((x) => x.count > 0).map((x) => [x.value, x.count]));
    expect(c.volumes.total).toBe(2);
    expect(c.volumes.size).toBe(2 * GiB);
    expect(c.volumes.actualSize).toBe(512 * 1024 ** 2);
    expect(counts(c.volumes.byState)).toEqual({ attached: 1, detached: 1 });
    expect(c.volumes.byState.map((x: { value: string }) => x.value)).toEqual([
      'creating',
      'attached',
      'detached',
      'attaching',
      'detaching',
      'deleting',
    ]);
    expect(counts(c.volumes.byRobustness)).toEqual({ degraded: 1, unknown: 1 });
    expect(c.nodes).toEqual({
      total: 3,
      ready: 2,
      notReady: 1,
      unknown: 0,
      byCondition: [
        { type: 'Ready', status: 'False', count: 1 },
        { type: 'Ready', status: 'True', count: 2 },
        { type: 'Schedulable', status: 'True', count: 3 },
      ],
    });
    expect(c.replicas.total).toBe(5);
    expect(c.replicas.failed).toBe(1);
    expect(counts(c.replicas.byState)).toEqual({ running: 3, stopped: 2 });
  });

  it('volumesConnection and eventsConnection paginate with cursors and keep filters', async () => {
    const page1 = await ok(
      q,
      `{ volumesConnection(first: 1) { edges { cursor node { name } } pageInfo { hasNextPage endCursor } } }`,
    );
    expect(page1.volumesConnection.edges.map((e: { node: { name: string } }) => e.node.name)).toEqual(['vol-a']);
    expect(page1.volumesConnection.pageInfo.hasNextPage).toBe(true);
    const page2 = await ok(
      q,
      `query($after: String) { volumesConnection(first: 1, after: $after) { edges { node { name } } pageInfo { hasNextPage } } }`,
      { after: page1.volumesConnection.pageInfo.endCursor },
    );
    expect(page2.volumesConnection).toEqual({ edges: [{ node: { name: 'vol-b' } }], pageInfo: { hasNextPage: false } });
    const filtered = await ok(
      q,
      `{ volumesConnection(first: 10, robustness: "degraded") { edges { node { name } } } }`,
    );
    expect(filtered.volumesConnection.edges).toEqual([{ node: { name: 'vol-a' } }]);

    const ev1 = await ok(
      q,
      `{ eventsConnection(first: 2, kind: "Volume") { edges { node { reason } } pageInfo { hasNextPage endCursor } } }`,
    );
    expect(ev1.eventsConnection.edges.map((e: { node: { reason: string } }) => e.node.reason)).toEqual([
      'Degraded',
      'Detached',
    ]);
    const ev2 = await ok(
      q,
      `query($after: String) { eventsConnection(first: 2, kind: "Volume", after: $after) { edges { node { reason } } pageInfo { hasNextPage } } }`,
      { after: ev1.eventsConnection.pageInfo.endCursor },
    );
    expect(ev2.eventsConnection).toEqual({
      edges: [{ node: { reason: 'Attached' } }],
      pageInfo: { hasNextPage: false },
    });
  });

  it('refuses an anonymous client when the server gives anonymous no role', async () => {
    const anon = client(db.store, { anonymousRole: undefined });
    for (const query of ['{ nodes { name } }', '{ cluster { volumes { total } } }', '{ events { reason } }']) {
      const r = await anon(query);
      expect(r.errors?.length).toBeGreaterThan(0);
      expect(r.data?.nodes ?? r.data?.cluster ?? r.data?.events ?? null).toBeNull();
    }
  });
});

// ---- N+1: the dashboard query costs the same store reads for 10 and 1,000 volumes -----------------------

const DASHBOARD = `{ volumes { name state robustness
  replicas { name mode node { name disks { name storageAvailable } } }
  engine { currentState replicas { mode } } } }`;

/** The whole graph of every volume (issue 5's navigation example). */
const FULL_GRAPH = `{ volumes { name
  replicas { name mode node { name disks { name } } volume { name } }
  engine { replicas { name mode replica { name } } rebuildStatus { progress } }
  attachment { tickets { satisfied } } snapshots { name children { name } } events { reason } node { name } } }`;

function volumesWithReplicas(from: number, to: number): SeedItem[] {
  const items: SeedItem[] = [];
  for (let i = from; i < to; i++) {
    const vol = `v${String(i).padStart(4, '0')}`;
    items.push(
      volumeNamed(vol, { state: 'attached', robustness: 'healthy', node: `node-${(i % 3) + 1}` }),
      replicaOf(vol, 'a', 'node-1', { state: 'running' }),
      replicaOf(vol, 'b', 'node-2', { state: 'running' }),
      replicaOf(vol, 'c', 'node-3', { state: 'running' }),
      runningEngineOf(vol, `node-${(i % 3) + 1}`, { a: 'RW', b: 'RW', c: 'RW' }),
    );
  }
  return items;
}

describe('store reads of the dashboard query (N+1)', () => {
  let db: ReturnType<typeof openTempStore>;
  afterAll(() => db?.close());

  it('is a small constant, the same for 10 and 1,000 volumes', async () => {
    db = openTempStore();
    const counting = new CountingStore(db.store);
    const q = client(counting);
    const reads = () => {
      const c = counting.counts();
      return (c.get ?? 0) + (c.list ?? 0);
    };
    await seed(db.store, [
      nodeWith('node-1', { available: 80 * GiB, scheduled: 0 }),
      nodeWith('node-2', { available: 80 * GiB, scheduled: 0 }),
      nodeWith('node-3', { available: 80 * GiB, scheduled: 0 }),
      ...volumesWithReplicas(0, 10),
    ]);

    counting.reset();
    const small = await ok(q, DASHBOARD);
    const readsFor10 = reads();
    const detail10 = counting.counts();
    counting.reset();
    await ok(q, FULL_GRAPH);
    const fullFor10 = reads();
    expect(small.volumes).toHaveLength(10);
    expect(small.volumes[0].replicas[0]).toEqual({
      name: 'v0000-r-a',
      mode: 'RW',
      node: { name: 'node-1', disks: [{ name: 'disk-0', storageAvailable: 80 * GiB }] },
    });

    await seed(db.store, volumesWithReplicas(10, 1000));
    counting.reset();
    const big = await ok(q, DASHBOARD);
    const readsFor1000 = reads();
    expect(big.volumes).toHaveLength(1000);
    expect(big.volumes[999]).toMatchObject({
      name: 'v0999',
      state: 'attached',
      robustness: 'healthy',
      engine: { currentState: 'running', replicas: [{ mode: 'RW' }, { mode: 'RW' }, { mode: 'RW' }] },
    });
    expect(big.volumes.every((v: { replicas: unknown[] }) => v.replicas.length === 3)).toBe(true);
    const detail1000 = counting.counts();
    counting.reset();
    const full = await ok(q, FULL_GRAPH);
    const fullFor1000 = reads();
    expect(full.volumes[500].replicas[2]).toMatchObject({ node: { name: 'node-3' }, volume: { name: 'v0500' } });

    console.log(
      `store reads, dashboard query: 10 volumes ${readsFor10} ${JSON.stringify(detail10)}, ` +
        `1,000 volumes ${readsFor1000} ${JSON.stringify(detail1000)}; whole graph: ${fullFor10} and ${fullFor1000}`,
    );
    expect(readsFor10).toBeLessThanOrEqual(10);
    expect(readsFor1000).toBe(readsFor10);
    expect(fullFor10).toBeLessThanOrEqual(12);
    expect(fullFor1000).toBe(fullFor10);
  });
});
