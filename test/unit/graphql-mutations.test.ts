// Every mutation in-process (`yoga.fetch`) against a real SqliteStore with no controller running:
// a mutation only writes desired state and returns the resource, so each case asserts the answer and
// then what the store holds. Controllers' side of revert (ticket, attachment) is checked with single
// reconcile passes at the end.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REVERT_TICKET_ID } from '../../controllers/snapshot-controller.js';
import { ensureDefaultSettings, VolumeApi } from '../../controllers/volume-api.js';
import { reconcileVolumeAttachment } from '../../controllers/volume-attachment-controller.js';
import { reconcileVolume } from '../../controllers/volume-controller.js';
import { snapshotStatus } from '../../model/snapshot.js';
import type { Role } from '../../schema/context.js';
import { createShorthornYoga, type ShorthornYoga } from '../../schema/yoga.js';
import {
  ago,
  attachment,
  cluster,
  engine,
  failedReplica,
  GiB,
  MIN,
  type ReconcileFixture,
  replica,
  type SeedItem,
  startFixture,
  ticket,
  VOL,
  volume,
} from '../helpers/reconcile-fixtures.js';

const MiB = 1024 * 1024;

let fx: ReconcileFixture | undefined;
let yoga: ShorthornYoga | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await fx?.close();
  fx = undefined;
  yoga = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup(items: SeedItem[], role: Role = 'admin') {
  fx = await startFixture(items);
  await ensureDefaultSettings(fx.store);
  yoga = createShorthornYoga({ store: fx.store, api: new VolumeApi(fx.store), anonymousRole: role });
  return fx.store;
}

// biome-ignore lint/suspicious/noExplicitAny: GraphQL answers are checked field by field
type Json = any;

async function gql(query: string, variables?: Record<string, unknown>): Promise<Json> {
  const res = await yoga!.fetch('http://shorthorn/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as Json;
  if (body.errors) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

const ERR = '... on Error { __typename code message } ... on ValidationError { field }';

function snapshot(name: string, o: { taken?: boolean; removed?: boolean } = {}): SeedItem {
  return {
    kind: 'Snapshot',
    obj: {
      metadata: { name, labels: { 'shorthorn.io/volume': VOL }, finalizers: ['shorthorn.io'] },
      spec: { volume: VOL, createSnapshot: true, labels: {} },
      status: snapshotStatus.parse({
        creationTime: o.taken === false ? '' : ago(5 * MIN),
        markRemoved: o.removed ?? false,
        readyToUse: !o.removed,
      }),
    },
  };
}

const attachedVolume = () =>
  volume({
    spec: { nodeID: 'node-1' },
    status: { state: 'attached', robustness: 'healthy', currentNodeID: 'node-1', currentSize: GiB },
  });
const detachedVolume = () => volume({ status: { state: 'detached' } });
const twoReplicas = () => [replica('vol-r-a', 'node-1'), replica('vol-r-b', 'node-2')];

describe('volume mutations', () => {
  it('createVolume stores the spec with defaults and returns the volume', async () => {
    const store = await setup(cluster(3));
    const data = await gql(
      `mutation($input: CreateVolumeInput!) { createVolume(input: $input) { __typename ... on Volume { name size numberOfReplicas state } ${ERR} } }`,
      { input: { name: 'data', size: 64 * MiB, numberOfReplicas: 2, nodeSelector: [] } },
    );
    expect(data.createVolume).toEqual({
      __typename: 'Volume',
      name: 'data',
      size: 64 * MiB,
      numberOfReplicas: 2,
      state: 'creating',
    });
    const v = await store.get('Volume', 'data');
    expect(v?.spec).toMatchObject({ size: 64 * MiB, numberOfReplicas: 2, dataLocality: 'disabled', nodeID: '' });
    expect(v?.spec.revertRequested).toBeUndefined();
    expect(v?.metadata.finalizers).toEqual(['shorthorn.io']);
  });

  it('updateVolume changes only the fields given', async () => {
    const store = await setup([...cluster(3), detachedVolume()]);
    const data = await gql(
      `mutation { updateVolume(name: "vol", input: {numberOfReplicas: 2, dataLocality: "best-effort", nodeSelector: ["ssd"], staleReplicaTimeout: 30}) { __typename ... on Volume { numberOfReplicas dataLocality nodeSelector } ${ERR} } }`,
    );
    expect(data.updateVolume).toEqual({
      __typename: 'Volume',
      numberOfReplicas: 2,
      dataLocality: 'best-effort',
      nodeSelector: ['ssd'],
    });
    const v = await store.get('Volume', VOL);
    expect(v?.spec).toMatchObject({
      numberOfReplicas: 2,
      dataLocality: 'best-effort',
      nodeSelector: ['ssd'],
      diskSelector: [],
      staleReplicaTimeout: 30,
      size: GiB,
    });
  });

  it('attachVolume adds an API ticket (creating the attachment if needed); detachVolume removes it, force removes all', async () => {
    const store = await setup([...cluster(2), detachedVolume()]);
    const a = await gql(
      `mutation { attachVolume(name: "vol", node: "node-2") { __typename ... on Volume { name endpoint } ${ERR} } }`,
    );
    expect(a.attachVolume).toEqual({ __typename: 'Volume', name: VOL, endpoint: '' });
    let va = await store.get('VolumeAttachment', VOL);
    expect(va?.spec.attachmentTickets).toEqual({
      'shorthorn-api-node-2': {
        id: 'shorthorn-api-node-2',
        type: 'shorthorn-api',
        nodeID: 'node-2',
        parameters: { disableFrontend: false },
        generation: 0,
      },
    });
    expect(va?.metadata.ownerReferences[0]).toMatchObject({ kind: 'Volume', name: VOL });
    // Again: the same ticket, no write.
    const rv = va!.metadata.resourceVersion;
    await gql(`mutation { attachVolume(name: "vol", node: "node-2") { __typename } }`);
    expect((await store.get('VolumeAttachment', VOL))?.metadata.resourceVersion).toBe(rv);

    await gql(`mutation { detachVolume(name: "vol") { __typename } }`);
    expect((await store.get('VolumeAttachment', VOL))?.spec.attachmentTickets).toEqual({});

    va = (await store.get('VolumeAttachment', VOL))!;
    va.spec.attachmentTickets['csi-x'] = ticket('csi-x', 'node-1', 'csi-attacher');
    await store.update('VolumeAttachment', va);
    await gql(`mutation { attachVolume(name: "vol", node: "node-1", disableFrontend: true) { __typename } }`);
    expect(
      (await store.get('VolumeAttachment', VOL))?.spec.attachmentTickets['shorthorn-api-node-1']?.parameters,
    ).toEqual({ disableFrontend: true });
    await gql(`mutation { detachVolume(name: "vol") { __typename } }`);
    expect(Object.keys((await store.get('VolumeAttachment', VOL))!.spec.attachmentTickets)).toEqual(['csi-x']);
    await gql(`mutation { detachVolume(name: "vol", force: true) { __typename } }`);
    expect((await store.get('VolumeAttachment', VOL))?.spec.attachmentTickets).toEqual({});
  });

  it('expandVolume grows spec.size of an attached volume', async () => {
    const store = await setup([...cluster(2), attachedVolume()]);
    const data = await gql(
      `mutation { expandVolume(name: "vol", size: ${2 * GiB}) { __typename ... on Volume { size currentSize } ${ERR} } }`,
    );
    expect(data.expandVolume).toEqual({ __typename: 'Volume', size: 2 * GiB, currentSize: GiB });
    expect((await store.get('Volume', VOL))?.spec.size).toBe(2 * GiB);
  });

  it('salvageVolume clears failedAt of the chosen failed replicas of a faulted detached volume', async () => {
    const store = await setup([
      ...cluster(3),
      volume({ status: { state: 'detached', robustness: 'faulted' } }),
      failedReplica('vol-r-a', 'node-1', 2 * MIN),
      failedReplica('vol-r-b', 'node-2', 1 * MIN),
      failedReplica('vol-r-c', 'node-3', 1 * MIN, { spec: { lastHealthyAt: '', healthyAt: '' } }),
    ]);
    const data = await gql(
      `mutation { salvageVolume(name: "vol", replicas: ["vol-r-b"]) { __typename ... on Volume { name } ${ERR} } }`,
    );
    expect(data.salvageVolume).toEqual({ __typename: 'Volume', name: VOL });
    const failed = async () =>
      Object.fromEntries((await store.list('Replica')).items.map((r) => [r.metadata.name, r.spec.failedAt !== '']));
    expect(await failed()).toEqual({ 'vol-r-a': true, 'vol-r-b': false, 'vol-r-c': true });
  });

  it('salvageVolume without names takes every failed replica that held data', async () => {
    const store = await setup([
      ...cluster(3),
      volume({ status: { state: 'detached', robustness: 'faulted' } }),
      failedReplica('vol-r-a', 'node-1', 2 * MIN),
      failedReplica('vol-r-b', 'node-2', 1 * MIN),
      failedReplica('vol-r-c', 'node-3', 1 * MIN, { spec: { lastHealthyAt: '', healthyAt: '' } }),
    ]);
    await gql(`mutation { salvageVolume(name: "vol") { __typename } }`);
    const r = (await store.list('Replica')).items;
    expect(r.filter((x) => !x.spec.failedAt).map((x) => x.metadata.name)).toEqual(['vol-r-a', 'vol-r-b']);
  });

  it('deleteVolume marks the volume for deletion (the finalizer keeps it for the controllers)', async () => {
    const store = await setup([...cluster(1), detachedVolume()]);
    const data = await gql(`mutation { deleteVolume(name: "vol") { __typename ... on Volume { deleting } ${ERR} } }`);
    expect(data.deleteVolume).toEqual({ __typename: 'Volume', deleting: true });
    expect((await store.get('Volume', VOL))?.metadata.deletionTimestamp).toBeDefined();
  });
});

describe('snapshot and replica mutations', () => {
  it('createSnapshot stores a requested snapshot with its labels; deleteSnapshot marks it for deletion', async () => {
    const store = await setup([...cluster(2), attachedVolume()]);
    const data = await gql(
      `mutation { createSnapshot(volume: "vol", name: "before-upgrade", labels: {app: "db"}) { __typename ... on Snapshot { name volumeName requested } ${ERR} } }`,
    );
    expect(data.createSnapshot).toEqual({
      __typename: 'Snapshot',
      name: 'before-upgrade',
      volumeName: VOL,
      requested: true,
    });
    const s = await store.get('Snapshot', 'before-upgrade');
    expect(s?.spec).toEqual({ volume: VOL, createSnapshot: true, labels: { app: 'db' } });
    expect(s?.metadata.labels).toEqual({ 'shorthorn.io/volume': VOL });

    const unnamed = await gql(`mutation { createSnapshot(volume: "vol") { ... on Snapshot { name } } }`);
    expect(unnamed.createSnapshot.name).toMatch(/^[0-9a-f-]{36}$/);

    const del = await gql(
      `mutation { deleteSnapshot(name: "before-upgrade") { __typename ... on Snapshot { deleting } ${ERR} } }`,
    );
    expect(del.deleteSnapshot).toEqual({ __typename: 'Snapshot', deleting: true });
    expect((await store.get('Snapshot', 'before-upgrade'))?.metadata.deletionTimestamp).toBeDefined();
  });

  it('revertSnapshot on a detached volume records the request in spec.revertRequested', async () => {
    const store = await setup([...cluster(2), detachedVolume(), ...twoReplicas(), snapshot('snap1')]);
    const data = await gql(
      `mutation { revertSnapshot(volume: "vol", name: "snap1") { __typename ... on Volume { name state } ${ERR} } }`,
    );
    expect(data.revertSnapshot).toEqual({ __typename: 'Volume', name: VOL, state: 'detached' });
    const v = await store.get('Volume', VOL);
    expect(v?.spec.revertRequested).toEqual({ snapshot: 'snap1', requestedAt: expect.any(String) });
    // Asking again for the same snapshot is a no-op; for another one it is refused until done.
    const rv = v!.metadata.resourceVersion;
    await gql(`mutation { revertSnapshot(volume: "vol", name: "snap1") { __typename } }`);
    expect((await store.get('Volume', VOL))?.metadata.resourceVersion).toBe(rv);
  });

  it('purgeSnapshots on an attached volume records spec.purgeRequestedAt', async () => {
    const store = await setup([...cluster(2), attachedVolume()]);
    const data = await gql(`mutation { purgeSnapshots(volume: "vol") { __typename ... on Volume { name } ${ERR} } }`);
    expect(data.purgeSnapshots).toEqual({ __typename: 'Volume', name: VOL });
    expect((await store.get('Volume', VOL))?.spec.purgeRequestedAt).toMatch(/^\d{4}-/);
  });

  it('removeReplica deletes one of two healthy replicas and refuses the last', async () => {
    const store = await setup([...cluster(2), detachedVolume(), ...twoReplicas()]);
    const data = await gql(
      `mutation { removeReplica(name: "vol-r-a") { __typename ... on Replica { name deleting } ${ERR} } }`,
    );
    expect(data.removeReplica).toEqual({ __typename: 'Replica', name: 'vol-r-a', deleting: true });
    expect((await store.get('Replica', 'vol-r-a'))?.metadata.deletionTimestamp).toBeDefined();
    const last = await gql(`mutation { removeReplica(name: "vol-r-b") { __typename ${ERR} } }`);
    expect(last.removeReplica).toMatchObject({ __typename: 'InvalidState', code: 'InvalidState' });
    expect(last.removeReplica.message).toContain('last healthy replica');
    expect((await store.get('Replica', 'vol-r-b'))?.metadata.deletionTimestamp).toBeUndefined();
  });
});

describe('node, disk and setting mutations', () => {
  it('updateNode sets scheduling, eviction and tags (sorted, de-duplicated)', async () => {
    const store = await setup(cluster(2));
    const data = await gql(
      `mutation { updateNode(name: "node-1", input: {allowScheduling: false, evictionRequested: true, tags: ["ssd", "fast", "ssd"]}) { __typename ... on Node { name allowScheduling evictionRequested tags } ${ERR} } }`,
    );
    expect(data.updateNode).toEqual({
      __typename: 'Node',
      name: 'node-1',
      allowScheduling: false,
      evictionRequested: true,
      tags: ['fast', 'ssd'],
    });
    expect((await store.get('Node', 'node-1'))?.spec).toMatchObject({
      allowScheduling: false,
      evictionRequested: true,
      tags: ['fast', 'ssd'],
    });
    // Only what is given changes.
    await gql(`mutation { updateNode(name: "node-1", input: {allowScheduling: true}) { __typename } }`);
    expect((await store.get('Node', 'node-1'))?.spec).toMatchObject({ allowScheduling: true, evictionRequested: true });
  });

  it('addDisk, updateDisk and removeDisk edit the node spec', async () => {
    const store = await setup(cluster(1));
    const dir = mkdtempSync(join(tmpdir(), 'shorthorn-disk-'));
    dirs.push(dir);
    const add = await gql(
      `mutation($path: String!) { addDisk(node: "node-1", input: {name: "disk-1", path: $path, storageReserved: ${GiB}, tags: ["nvme"]}) { __typename ... on Node { disks { name } } ${ERR} } }`,
      { path: dir },
    );
    expect(add.addDisk.__typename).toBe('Node');
    expect(add.addDisk.disks.map((d: { name: string }) => d.name)).toEqual(['disk-0', 'disk-1']);
    expect((await store.get('Node', 'node-1'))?.spec.disks['disk-1']).toEqual({
      diskType: 'filesystem',
      path: dir,
      allowScheduling: true,
      evictionRequested: false,
      storageReserved: GiB,
      tags: ['nvme'],
    });
    await gql(
      `mutation { updateDisk(node: "node-1", disk: "disk-1", input: {allowScheduling: false, evictionRequested: true, storageReserved: 0}) { __typename } }`,
    );
    expect((await store.get('Node', 'node-1'))?.spec.disks['disk-1']).toMatchObject({
      allowScheduling: false,
      evictionRequested: true,
      storageReserved: 0,
      tags: ['nvme'],
    });
    const rm = await gql(
      `mutation { removeDisk(node: "node-1", disk: "disk-1") { __typename ... on Node { disks { name } } ${ERR} } }`,
    );
    expect(rm.removeDisk).toEqual({ __typename: 'Node', disks: [{ name: 'disk-0' }] });
    expect(Object.keys((await store.get('Node', 'node-1'))!.spec.disks)).toEqual(['disk-0']);
  });

  it('updateSetting stores a valid value', async () => {
    const store = await setup(cluster(1));
    const data = await gql(
      `mutation { updateSetting(name: "default-replica-count", value: "2") { __typename ... on Setting { name value } ${ERR} } }`,
    );
    expect(data.updateSetting).toEqual({ __typename: 'Setting', name: 'default-replica-count', value: '2' });
    expect((await store.get('Setting', 'default-replica-count'))?.spec.value).toBe('2');
  });
});

describe('revert: the controllers side, one reconcile at a time', () => {
  const revertVolume = () =>
    volume({
      spec: { revertRequested: { snapshot: 'snap1', requestedAt: ago(1000) } },
      status: { state: 'detached' },
    });

  it('the volume controller adds a frontend-less ticket on a node holding a healthy replica', async () => {
    await setup([
      ...cluster(3),
      revertVolume(),
      engine(),
      failedReplica('vol-r-a', 'node-1', MIN),
      replica('vol-r-b', 'node-2'),
      replica('vol-r-c', 'node-3'),
      attachment(),
      snapshot('snap1'),
    ]);
    await fx!.pass((ctx) => reconcileVolume(ctx, VOL));
    const va = await fx!.store.get('VolumeAttachment', VOL);
    expect(va?.spec.attachmentTickets[REVERT_TICKET_ID]).toEqual({
      id: REVERT_TICKET_ID,
      type: 'snapshot-controller',
      nodeID: 'node-2',
      parameters: { disableFrontend: true },
      generation: 0,
    });
  });

  it('with no node holding a healthy replica up, no ticket: the Revert condition says the revert waits', async () => {
    await setup([
      ...cluster(2, { down: ['node-2'] }),
      revertVolume(),
      engine(),
      failedReplica('vol-r-a', 'node-1', MIN),
      replica('vol-r-b', 'node-2'),
      attachment(),
      snapshot('snap1'),
    ]);
    await fx!.pass((ctx) => reconcileVolume(ctx, VOL));
    expect((await fx!.store.get('VolumeAttachment', VOL))?.spec.attachmentTickets).toEqual({});
    const v = await fx!.store.get('Volume', VOL);
    expect(v?.status.conditions.find((c) => c.type === 'Revert')).toMatchObject({
      status: 'False',
      reason: 'RevertWaiting',
    });
    expect(v?.spec.revertRequested?.snapshot).toBe('snap1');
  });

  it('the attachment controller honours only the revert ticket while a revert is requested', async () => {
    const revertTicket = {
      ...ticket(REVERT_TICKET_ID, 'node-2', 'snapshot-controller'),
      parameters: { disableFrontend: true },
    };
    await setup([...cluster(3), revertVolume(), attachment([ticket('shorthorn-api-node-1', 'node-1'), revertTicket])]);
    await fx!.pass((ctx) => reconcileVolumeAttachment(ctx, VOL));
    const v = await fx!.store.get('Volume', VOL);
    expect(v?.spec).toMatchObject({ nodeID: 'node-2', disableFrontend: true });
    const va = await fx!.store.get('VolumeAttachment', VOL);
    expect(va?.status.attachmentTicketStatuses['shorthorn-api-node-1']).toMatchObject({
      satisfied: false,
      conditions: [{ reason: 'RevertInProgress' }],
    });
  });

  it('once the revert is done the ticket goes, and a volume attached without frontend is detached to bring it up', async () => {
    await setup([
      ...cluster(2),
      volume({
        spec: { nodeID: 'node-1', disableFrontend: true },
        status: { state: 'attached', currentNodeID: 'node-1' },
      }),
      attachment([ticket('shorthorn-api-node-1', 'node-1')]),
    ]);
    await fx!.pass((ctx) => reconcileVolumeAttachment(ctx, VOL));
    expect((await fx!.store.get('Volume', VOL))?.spec.nodeID).toBe('');
  });
});
