// Backups, backup targets, restores and recurring jobs through GraphQL (`yoga.fetch` in-process) over a
// seeded SqliteStore with no controller running: each mutation's answer and what the store then holds;
// a table of bad input, each row a typed error (code, field) that writes nothing; queries over seeded
// Backup/BackupVolume/BackupTarget/RecurringJob resources at a constant number of store reads; secret
// values never in any answer; backupChanged following a Backup's status.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BackupApi, ensureDefaultBackupTarget } from '../../controllers/backup-api.js';
import { ensureDefaultSettings, VolumeApi } from '../../controllers/volume-api.js';
import { BACKUP_VOLUME_LABEL, type BackupStatus } from '../../model/backup.js';
import { KINDS, type Kind } from '../../model/kinds.js';
import { ReadModel } from '../../resolvers/read-model.js';
import type { Role } from '../../schema/context.js';
import { createShorthornYoga, type ShorthornYoga } from '../../schema/yoga.js';
import { CountingStore } from '../../store/counting-store.js';
import { openSqliteStore } from '../../store/sqlite-store.js';
import type { CreateInput, Store } from '../../store/store.js';
import {
  ago,
  attachment,
  cluster,
  GiB,
  MIN,
  type ReconcileFixture,
  replica,
  type SeedItem,
  snapshotResource,
  startFixture,
  ticket,
  VOL,
  volume,
} from '../helpers/reconcile-fixtures.js';

// biome-ignore lint/suspicious/noExplicitAny: GraphQL answers are checked field by field
type Json = any;

const TARGET = 's3://backups@us-east-1/cluster-a';
/** Secret values: must never be in any answer, error messages included. */
const SECRET_ID = 'AKIA-TOPSECRET-ID-1234';
const SECRET_KEY = 'topsecret-KEY-value-5678';
const SECRET_VALUES = [SECRET_ID, SECRET_KEY, 'TOPSECRET'];

const ERR = '__typename ... on Error { code message } ... on ValidationError { field }';

// ---- fixtures -----------------------------------------------------------------------------------------

const urlOf = (backup: string, vol: string, target = TARGET) => `${target}?backup=${backup}&volume=${vol}`;

function backupTarget(url: string, o: { credentialSecret?: string; available?: boolean } = {}): SeedItem {
  return {
    kind: 'BackupTarget',
    obj: {
      metadata: { name: 'default' },
      spec: {
        backupTargetURL: url,
        credentialSecret: o.credentialSecret ?? '',
        pollInterval: 300,
        syncRequestedAt: '',
      },
      status: {
        ownerID: 'manager',
        available: o.available ?? true,
        conditions: [
          {
            type: 'Available',
            status: o.available === false ? 'False' : 'True',
            reason: o.available === false ? 'Unavailable' : '',
            message: o.available === false ? 'connection refused' : '',
            lastProbeTime: '',
            lastTransitionTime: ago(MIN),
          },
        ],
        lastSyncedAt: ago(MIN),
      },
    },
  };
}

function secret(name: string, data: Record<string, string>): SeedItem {
  return { kind: 'Secret', obj: { metadata: { name }, spec: { data } } };
}

function backupVolume(vol: string, lastBackup = ''): SeedItem {
  return {
    kind: 'BackupVolume',
    obj: {
      metadata: { name: vol },
      spec: { backupTargetName: 'default', volumeName: vol, syncRequestedAt: '' },
      status: {
        ownerID: 'manager',
        size: GiB,
        labels: {},
        createdAt: ago(60 * MIN),
        lastBackupName: lastBackup,
        lastBackupAt: lastBackup ? ago(10 * MIN) : '',
        dataStored: 6 * 2 * 1024 * 1024,
        compressionMethod: 'lz4',
        messages: {},
        lastSyncedAt: '',
      },
    },
  };
}

function backup(
  name: string,
  vol: string,
  o: {
    state?: BackupStatus['state'];
    progress?: number;
    createdAgo?: number;
    snapshot?: string;
    requested?: boolean;
    url?: boolean;
  } = {},
): SeedItem {
  const state = o.state ?? 'Completed';
  const done = state === 'Completed';
  return {
    kind: 'Backup',
    obj: {
      metadata: { name, labels: { [BACKUP_VOLUME_LABEL]: vol } },
      spec: {
        snapshotName: o.requested ? (o.snapshot ?? 'snap1') : '',
        labels: {},
        backupMode: 'incremental',
        syncRequestedAt: '',
      },
      status: {
        ownerID: 'manager',
        state,
        progress: o.progress ?? (done ? 100 : 0),
        replicaAddress: '',
        error: state === 'Error' ? 'target unreachable' : '',
        url: done || o.url ? urlOf(name, vol) : '',
        snapshotName: o.snapshot ?? 'snap1',
        snapshotCreatedAt: ago((o.createdAgo ?? 10) * MIN + 1000),
        backupCreatedAt: done ? ago((o.createdAgo ?? 10) * MIN) : '',
        size: done ? 4 * 1024 * 1024 : 0,
        labels: { by: 'test' },
        volumeName: vol,
        volumeSize: done ? GiB : 0,
        compressionMethod: 'lz4',
        isIncremental: false,
        newlyUploadDataSize: 0,
        reUploadedDataSize: 0,
        backupTargetName: 'default',
        lastSyncedAt: '',
      },
    },
  };
}

function recurringJob(name: string, task: 'snapshot' | 'backup', groups: string[] = []): SeedItem {
  return {
    kind: 'RecurringJob',
    obj: {
      metadata: { name },
      spec: { task, cron: '0 * * * *', retain: 2, groups, concurrency: 1, labels: {} },
    },
  };
}

const attachedVolume = (name = VOL, labels: Record<string, string> = {}) => {
  const item = volume({
    name,
    spec: { nodeID: 'node-1' },
    status: { state: 'attached', robustness: 'healthy', currentNodeID: 'node-1', currentSize: GiB },
  });
  item.obj.metadata.labels = labels;
  return item;
};

// ---- a client of an in-process server ------------------------------------------------------------------

/** Every answer's raw text, to look for secret values in. */
const answers: string[] = [];

function clientOf(store: Store, role: Role = 'admin'): (q: string, v?: Record<string, unknown>) => Promise<Json> {
  const yoga = createShorthornYoga({ store, api: new VolumeApi(store), anonymousRole: role });
  return async (query, variables) => {
    const res = await yoga.fetch('http://shorthorn/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query, variables }),
    });
    const text = await res.text();
    answers.push(text);
    return JSON.parse(text) as Json;
  };
}

/** The data of an answer that must have no GraphQL errors. */
async function ok(q: ReturnType<typeof clientOf>, query: string, variables?: Record<string, unknown>) {
  const r = await q(query, variables);
  expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
  return r.data;
}

afterAll(() => {
  // Not one answer in this file carried a secret value.
  for (const a of answers) for (const v of SECRET_VALUES) expect(a).not.toContain(v);
  expect(answers.length).toBeGreaterThan(0);
});

// ---- mutations ----------------------------------------------------------------------------------------

describe('backup mutations', () => {
  let fx: ReconcileFixture | undefined;
  afterEach(async () => {
    await fx?.close();
    fx = undefined;
  });

  async function setup(items: SeedItem[], role: Role = 'admin') {
    fx = await startFixture(items);
    await ensureDefaultSettings(fx.store);
    await ensureDefaultBackupTarget(fx.store);
    return { store: fx.store, q: clientOf(fx.store, role) };
  }

  it('ensureDefaultBackupTarget makes `default` with no URL, once', async () => {
    const { store, q } = await setup([]);
    await ensureDefaultBackupTarget(store);
    const d = await ok(
      q,
      '{ backupTargets { name url credentialSecret credentialKeys pollInterval available lastSyncedAt } }',
    );
    expect(d.backupTargets).toEqual([
      {
        name: 'default',
        url: '',
        credentialSecret: '',
        credentialKeys: [],
        pollInterval: 300,
        available: false,
        lastSyncedAt: '',
      },
    ]);
  });

  it('setBackupTarget stores URL, poll interval and the credential in a Secret; answers show its keys only', async () => {
    const { store, q } = await setup([]);
    const d = await ok(
      q,
      `mutation($input: SetBackupTargetInput!) { setBackupTarget(input: $input) {
         ${ERR} ... on BackupTarget { name url credentialSecret credentialKeys credentialSecretMissing pollInterval syncRequestedAt } } }`,
      {
        input: {
          url: TARGET,
          pollInterval: 60,
          credential: { AWS_ACCESS_KEY_ID: SECRET_ID, AWS_SECRET_ACCESS_KEY: SECRET_KEY, AWS_REGION: 'us-east-1' },
        },
      },
    );
    expect(d.setBackupTarget).toMatchObject({
      __typename: 'BackupTarget',
      name: 'default',
      url: TARGET,
      credentialSecret: 'default-credential',
      credentialKeys: ['AWS_ACCESS_KEY_ID', 'AWS_REGION', 'AWS_SECRET_ACCESS_KEY'],
      credentialSecretMissing: false,
      pollInterval: 60,
    });
    expect(Date.parse(d.setBackupTarget.syncRequestedAt)).toBeGreaterThan(Date.now() - MIN);
    const s = await store.get('Secret', 'default-credential');
    expect(s?.spec.data).toEqual({
      AWS_ACCESS_KEY_ID: SECRET_ID,
      AWS_SECRET_ACCESS_KEY: SECRET_KEY,
      AWS_REGION: 'us-east-1',
    });
    const t = await store.get('BackupTarget', 'default');
    expect(t?.spec).toMatchObject({
      backupTargetURL: TARGET,
      credentialSecret: 'default-credential',
      pollInterval: 60,
    });

    // A new credential replaces the old; a file target with no credential drops the secret's name.
    await ok(
      q,
      `mutation { setBackupTarget(input: {url: "${TARGET}", credential: {AWS_REGION: "eu-west-1"}}) { __typename } }`,
    );
    expect((await store.get('Secret', 'default-credential'))?.spec.data).toEqual({ AWS_REGION: 'eu-west-1' });
    const f = await ok(
      q,
      `mutation { setBackupTarget(input: {url: "file:///mnt/backups", credentialSecret: ""}) { ${ERR} ... on BackupTarget { url credentialSecret credentialKeys pollInterval } } }`,
    );
    expect(f.setBackupTarget).toMatchObject({
      url: 'file:///mnt/backups',
      credentialSecret: '',
      credentialKeys: [],
      pollInterval: 60,
    });
    // Everything readable about targets, once more: keys, never values (checked for every answer in afterAll).
    await ok(q, '{ backupTargets { name url credentialSecret credentialKeys conditions { message } } }');
  });

  it('setBackupTarget with an existing secret; syncBackupTarget asks for a sync', async () => {
    const { store, q } = await setup([
      secret('s3-creds', { AWS_ACCESS_KEY_ID: SECRET_ID, AWS_SECRET_ACCESS_KEY: SECRET_KEY }),
    ]);
    const d = await ok(
      q,
      `mutation { setBackupTarget(input: {url: "${TARGET}", credentialSecret: "s3-creds"}) { ${ERR} ... on BackupTarget { credentialSecret credentialKeys } } }`,
    );
    expect(d.setBackupTarget).toEqual({
      __typename: 'BackupTarget',
      credentialSecret: 's3-creds',
      credentialKeys: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'],
    });
    const before = (await store.get('BackupTarget', 'default'))!.spec.syncRequestedAt;
    await new Promise((r) => setTimeout(r, 5));
    const s = await ok(q, `mutation { syncBackupTarget { ${ERR} ... on BackupTarget { syncRequestedAt } } }`);
    expect(s.syncBackupTarget.syncRequestedAt > before).toBe(true);
    expect((await store.get('BackupTarget', 'default'))!.spec.syncRequestedAt).toBe(s.syncBackupTarget.syncRequestedAt);
  });

  it('createBackup of a named snapshot: a Backup resource backup-<16 hex> labelled with its volume', async () => {
    const { store, q } = await setup([
      ...cluster(2),
      attachedVolume(),
      snapshotResource('snap1', VOL),
      backupTarget(TARGET),
    ]);
    const d = await ok(
      q,
      `mutation { createBackup(volume: "vol", snapshot: "snap1", labels: {why: "test"}, mode: "full") {
         ${ERR} ... on Backup { name volumeName snapshotName requested backupMode state progress url labels } } }`,
    );
    const b = d.createBackup;
    expect(b).toMatchObject({
      __typename: 'Backup',
      volumeName: VOL,
      snapshotName: 'snap1',
      requested: true,
      backupMode: 'full',
      state: 'New',
      progress: 0,
      url: '',
      labels: { why: 'test' },
    });
    expect(b.name).toMatch(/^backup-[0-9a-f]{16}$/);
    const stored = await store.get('Backup', b.name);
    expect(stored?.metadata.labels).toEqual({ [BACKUP_VOLUME_LABEL]: VOL });
    expect(stored?.metadata.finalizers).toEqual(['shorthorn.io']);
    expect(stored?.spec).toEqual({
      snapshotName: 'snap1',
      labels: { why: 'test' },
      backupMode: 'full',
      syncRequestedAt: '',
    });
  });

  it('createBackup with no snapshot takes one first and backs that up', async () => {
    const { store, q } = await setup([...cluster(2), attachedVolume(), backupTarget(TARGET)]);
    const d = await ok(q, `mutation { createBackup(volume: "vol") { ${ERR} ... on Backup { name snapshotName } } }`);
    const snaps = (await store.list('Snapshot')).items;
    expect(snaps).toHaveLength(1);
    expect(snaps[0]!.spec).toMatchObject({ volume: VOL, createSnapshot: true });
    expect(d.createBackup.snapshotName).toBe(snaps[0]!.metadata.name);
    expect((await store.get('Backup', d.createBackup.name))?.spec.snapshotName).toBe(snaps[0]!.metadata.name);
  });

  it('deleteBackup deletes the resource (the backup controller removes it from the target)', async () => {
    const { store, q } = await setup([...cluster(1), backupTarget(TARGET), backup('backup-0123456789abcdef', VOL)]);
    const d = await ok(
      q,
      `mutation { deleteBackup(name: "backup-0123456789abcdef") { ${ERR} ... on Backup { name } } }`,
    );
    expect(d.deleteBackup).toEqual({ __typename: 'Backup', name: 'backup-0123456789abcdef' });
    expect(await store.get('Backup', 'backup-0123456789abcdef')).toBeUndefined();
  });

  it('restoreBackup creates the volume from the backup (size, fromBackup, standby); activateVolume ends standby', async () => {
    const { store, q } = await setup([
      ...cluster(3),
      backupTarget(TARGET),
      backup('backup-00000000000000aa', 'source'),
    ]);
    const url = urlOf('backup-00000000000000aa', 'source');
    const d = await ok(
      q,
      `mutation($url: String!) { restoreBackup(backupURL: $url, name: "copy", numberOfReplicas: 2) {
         ${ERR} ... on Volume { name size numberOfReplicas fromBackup standby restoreRequired isStandby } } }`,
      { url },
    );
    expect(d.restoreBackup).toEqual({
      __typename: 'Volume',
      name: 'copy',
      size: GiB,
      numberOfReplicas: 2,
      fromBackup: url,
      standby: false,
      restoreRequired: false,
      isStandby: false,
    });
    expect((await store.get('Volume', 'copy'))?.spec).toMatchObject({ fromBackup: url, standby: false, size: GiB });

    // The same backup by an equivalent URL (query parameters the other way round): a standby volume.
    const swapped = `${TARGET}?volume=source&backup=backup-00000000000000aa`;
    const dr = await ok(
      q,
      `mutation($url: String!) { restoreBackup(backupURL: $url, name: "dr", standby: true) { ${ERR} ... on Volume { fromBackup standby } } }`,
      { url: swapped },
    );
    expect(dr.restoreBackup).toEqual({ __typename: 'Volume', fromBackup: url, standby: true });

    const a = await ok(q, `mutation { activateVolume(name: "dr") { ${ERR} ... on Volume { name standby } } }`);
    expect(a.activateVolume).toEqual({ __typename: 'Volume', name: 'dr', standby: false });
    expect((await store.get('Volume', 'dr'))?.spec.standby).toBe(false);
  });

  it('recurring jobs: create, update, delete; setVolumeRecurringJobs writes the labels', async () => {
    const { store, q } = await setup([...cluster(1), volume({ status: { state: 'detached' } })]);
    const c = await ok(
      q,
      `mutation { createRecurringJob(input: {name: "hourly", task: "snapshot", cron: " 0  *  * * * ", retain: 5, groups: ["gold", "gold", "default"], labels: {tier: "gold"}}) {
         ${ERR} ... on RecurringJob { name task cron retain concurrency groups labels volumes { name } } } }`,
    );
    expect(c.createRecurringJob).toEqual({
      __typename: 'RecurringJob',
      name: 'hourly',
      task: 'snapshot',
      cron: '0 * * * *',
      retain: 5,
      concurrency: 1,
      groups: ['default', 'gold'],
      labels: { tier: 'gold' },
      // Group default: every volume with no job label.
      volumes: [{ name: VOL }],
    });
    await ok(
      q,
      'mutation { createRecurringJob(input: {name: "trim", task: "filesystem-trim", cron: "0 0 3 * * 0"}) { __typename } }',
    );
    expect((await store.get('RecurringJob', 'trim'))?.spec).toMatchObject({ retain: 0, cron: '0 0 3 * * 0' });

    const u = await ok(
      q,
      `mutation { updateRecurringJob(name: "hourly", input: {task: "backup", concurrency: 3}) { ${ERR} ... on RecurringJob { task cron retain concurrency } } }`,
    );
    expect(u.updateRecurringJob).toEqual({
      __typename: 'RecurringJob',
      task: 'backup',
      cron: '0 * * * *',
      retain: 5,
      concurrency: 3,
    });

    const v = await ok(
      q,
      `mutation { setVolumeRecurringJobs(volume: "vol", jobs: ["trim"], groups: ["gold"]) { ${ERR} ... on Volume { recurringJobs recurringJobGroups } } }`,
    );
    expect(v.setVolumeRecurringJobs).toEqual({
      __typename: 'Volume',
      recurringJobs: ['trim'],
      recurringJobGroups: ['gold'],
    });
    expect((await store.get('Volume', VOL))?.metadata.labels).toEqual({
      'recurring-job.shorthorn.io/trim': 'enabled',
      'recurring-job-group.shorthorn.io/gold': 'enabled',
    });
    // Jobs only: groups stay.
    await ok(q, 'mutation { setVolumeRecurringJobs(volume: "vol", jobs: []) { __typename } }');
    expect((await store.get('Volume', VOL))?.metadata.labels).toEqual({
      'recurring-job-group.shorthorn.io/gold': 'enabled',
    });
    const jobs = await ok(
      q,
      '{ recurringJobs { name volumes { name } } recurringJobs2: recurringJobs(group: "gold") { name } }',
    );
    expect(jobs.recurringJobs).toEqual([
      { name: 'hourly', volumes: [{ name: VOL }] },
      { name: 'trim', volumes: [] },
    ]);
    expect(jobs.recurringJobs2).toEqual([{ name: 'hourly' }]);

    const del = await ok(q, `mutation { deleteRecurringJob(name: "trim") { ${ERR} ... on RecurringJob { name } } }`);
    expect(del.deleteRecurringJob).toEqual({ __typename: 'RecurringJob', name: 'trim' });
    expect(await store.get('RecurringJob', 'trim')).toBeUndefined();
  });

  it('createBackup with no target set: InvalidState, and no snapshot is taken', async () => {
    const { store, q } = await setup([...cluster(2), attachedVolume()]);
    const d = await ok(q, `mutation { createBackup(volume: "vol") { ${ERR} } }`);
    expect(d.createBackup).toMatchObject({
      __typename: 'InvalidState',
      message: expect.stringMatching(/no backup target set/),
    });
    expect((await store.list('Snapshot')).items).toEqual([]);
    expect((await store.list('Backup')).items).toEqual([]);
    const s = await ok(q, `mutation { syncBackupTarget { ${ERR} } }`);
    expect(s.syncBackupTarget).toMatchObject({
      __typename: 'InvalidState',
      message: expect.stringMatching(/no backup target set/),
    });
  });
});

// ---- bad input: typed errors, nothing written -------------------------------------------------------------

interface Row {
  name: string;
  mutation: string;
  variables?: Record<string, unknown>;
  role?: Role;
  typename?: 'NotFound' | 'ValidationError' | 'Conflict' | 'InvalidState' | 'InsufficientCapacity';
  field?: string;
  message?: RegExp;
  /** A GraphQL error code instead of a typed result. */
  code?: string;
}

const COMPLETED = 'backup-00000000000000c1';
const RUNNING = 'backup-00000000000000c2';
const FAILED = 'backup-00000000000000c3';

const rows: Row[] = [
  // setBackupTarget
  {
    name: 'target: http URL',
    mutation: 'setBackupTarget(input: {url: "http://example.com/x"})',
    typename: 'ValidationError',
    field: 'url',
    message: /unsupported scheme/,
  },
  {
    name: 'target: no scheme',
    mutation: 'setBackupTarget(input: {url: "/mnt/backups"})',
    typename: 'ValidationError',
    field: 'url',
  },
  {
    name: 'target: file with a host',
    mutation: 'setBackupTarget(input: {url: "file://server/backups"})',
    typename: 'ValidationError',
    field: 'url',
    message: /absolute local path/,
  },
  {
    name: 'target: file root',
    mutation: 'setBackupTarget(input: {url: "file:///"})',
    typename: 'ValidationError',
    field: 'url',
  },
  {
    name: 'target: file with ..',
    mutation: 'setBackupTarget(input: {url: "file:///mnt/../etc"})',
    typename: 'ValidationError',
    field: 'url',
  },
  {
    name: 'target: bad bucket',
    mutation: 'setBackupTarget(input: {url: "s3://Bad_Bucket/x"})',
    typename: 'ValidationError',
    field: 'url',
    message: /bucket/,
  },
  {
    name: 'target: bad region',
    mutation: 'setBackupTarget(input: {url: "s3://bucket@US East/x"})',
    typename: 'ValidationError',
    field: 'url',
  },
  {
    name: 'target: nfs',
    mutation: 'setBackupTarget(input: {url: "nfs://server:/export"})',
    typename: 'ValidationError',
    field: 'url',
    message: /mount/,
  },
  {
    name: 'target: query in URL',
    mutation: 'setBackupTarget(input: {url: "s3://bucket@us-east-1/x?a=b"})',
    typename: 'ValidationError',
    field: 'url',
  },
  {
    name: 'target: negative poll',
    mutation: 'setBackupTarget(input: {url: "file:///mnt/b", pollInterval: -1})',
    typename: 'ValidationError',
    field: 'pollInterval',
  },
  {
    name: 'target: poll over a day',
    mutation: 'setBackupTarget(input: {url: "file:///mnt/b", pollInterval: 100000})',
    typename: 'ValidationError',
    field: 'pollInterval',
  },
  {
    name: 'target: empty credential',
    mutation: 'setBackupTarget(input: {url: "file:///mnt/b", credential: {}})',
    typename: 'ValidationError',
    field: 'credential',
  },
  {
    name: 'target: credential not an object',
    mutation: 'setBackupTarget(input: {url: "file:///mnt/b", credential: "TOPSECRET"})',
    typename: 'ValidationError',
    field: 'credential',
  },
  {
    name: 'target: credential value not a string',
    mutation: 'setBackupTarget(input: {url: "file:///mnt/b", credential: {AWS_REGION: 5}})',
    typename: 'ValidationError',
    field: 'credential.AWS_REGION',
  },
  {
    name: 'target: bad credential key',
    variables: { c: { 'bad key': 'TOPSECRET' } },
    mutation: 'setBackupTarget(input: {url: "file:///mnt/b", credential: $c})',
    typename: 'ValidationError',
    field: 'credential',
  },
  {
    name: 'target: key id without secret key',
    variables: { c: { AWS_ACCESS_KEY_ID: 'TOPSECRET' } },
    mutation: 'setBackupTarget(input: {url: "s3://bucket@us-east-1/", credential: $c})',
    typename: 'ValidationError',
    field: 'credential',
    message: /go together/,
  },
  {
    name: 'target: credential and another secret',
    variables: { c: { AWS_REGION: 'TOPSECRET' } },
    mutation: 'setBackupTarget(input: {url: "file:///mnt/b", credential: $c, credentialSecret: "creds"})',
    typename: 'ValidationError',
    field: 'credentialSecret',
  },
  {
    name: 'target: missing secret',
    mutation: 'setBackupTarget(input: {url: "file:///mnt/b", credentialSecret: "nope"})',
    typename: 'NotFound',
    message: /secret "nope"/,
  },
  {
    name: 'target: bad secret name',
    mutation: 'setBackupTarget(input: {url: "file:///mnt/b", credentialSecret: "Bad_Name"})',
    typename: 'ValidationError',
    field: 'credentialSecret',
  },
  {
    name: 'target: unknown target',
    mutation: 'setBackupTarget(name: "other", input: {url: "file:///mnt/b"})',
    typename: 'NotFound',
  },
  {
    name: 'target: as an operator',
    role: 'operator',
    mutation: 'setBackupTarget(input: {url: "file:///mnt/b"})',
    code: 'FORBIDDEN',
  },
  { name: 'sync: unknown target', mutation: 'syncBackupTarget(name: "other")', typename: 'NotFound' },
  { name: 'sync: as a viewer', role: 'viewer', mutation: 'syncBackupTarget', code: 'FORBIDDEN' },
  // createBackup
  { name: 'backup: unknown volume', mutation: 'createBackup(volume: "nope")', typename: 'NotFound' },
  {
    name: 'backup: detached volume',
    mutation: 'createBackup(volume: "cold")',
    typename: 'InvalidState',
    message: /detached; attach it/,
  },
  {
    name: 'backup: standby volume',
    mutation: 'createBackup(volume: "dr")',
    typename: 'InvalidState',
    message: /standby/,
  },
  {
    name: 'backup: unknown snapshot',
    mutation: 'createBackup(volume: "vol", snapshot: "nosnap")',
    typename: 'NotFound',
  },
  {
    name: "backup: another volume's snapshot",
    mutation: 'createBackup(volume: "vol", snapshot: "cold-snap")',
    typename: 'NotFound',
  },
  {
    name: 'backup: removed snapshot',
    mutation: 'createBackup(volume: "vol", snapshot: "gone-snap")',
    typename: 'InvalidState',
    message: /removed/,
  },
  {
    name: 'backup: bad snapshot name',
    mutation: 'createBackup(volume: "vol", snapshot: "Bad Name")',
    typename: 'ValidationError',
    field: 'snapshot',
  },
  {
    name: 'backup: bad mode',
    mutation: 'createBackup(volume: "vol", mode: "differential")',
    typename: 'ValidationError',
    field: 'mode',
  },
  {
    name: 'backup: bad label key',
    mutation: 'createBackup(volume: "vol", labels: {_x: "y"})',
    typename: 'ValidationError',
    field: 'labels',
  },
  {
    name: 'backup: label value not a string',
    mutation: 'createBackup(volume: "vol", labels: {a: 1})',
    typename: 'ValidationError',
    field: 'labels.a',
  },
  { name: 'backup: as a viewer', role: 'viewer', mutation: 'createBackup(volume: "vol")', code: 'FORBIDDEN' },
  { name: 'delete: unknown backup', mutation: 'deleteBackup(name: "backup-ffffffffffffffff")', typename: 'NotFound' },
  { name: 'delete volume: unknown backup volume', mutation: 'deleteBackupVolume(name: "nope")', typename: 'NotFound' },
  {
    name: 'delete volume: as a viewer',
    role: 'viewer',
    mutation: 'deleteBackupVolume(name: "nope")',
    code: 'FORBIDDEN',
  },
  // restoreBackup
  {
    name: 'restore: not a backup URL',
    mutation: 'restoreBackup(backupURL: "s3://backups@us-east-1/x", name: "r")',
    typename: 'ValidationError',
    field: 'backupURL',
  },
  {
    name: 'restore: unknown backup',
    variables: { u: urlOf('backup-ffffffffffffffff', 'vol') },
    mutation: 'restoreBackup(backupURL: $u, name: "r")',
    typename: 'NotFound',
    message: /sync the backup target/,
  },
  {
    name: 'restore: bad volume name',
    variables: { u: urlOf(COMPLETED, 'vol') },
    mutation: 'restoreBackup(backupURL: $u, name: "Restored_Vol")',
    typename: 'ValidationError',
    field: 'name',
  },
  {
    name: 'restore: existing volume',
    variables: { u: urlOf(COMPLETED, 'vol') },
    mutation: 'restoreBackup(backupURL: $u, name: "cold")',
    typename: 'Conflict',
  },
  {
    name: 'restore: zero replicas',
    variables: { u: urlOf(COMPLETED, 'vol') },
    mutation: 'restoreBackup(backupURL: $u, name: "r", numberOfReplicas: 0)',
    typename: 'ValidationError',
    field: 'numberOfReplicas',
  },
  {
    name: 'restore: more replicas than nodes',
    variables: { u: urlOf(COMPLETED, 'vol') },
    mutation: 'restoreBackup(backupURL: $u, name: "r", numberOfReplicas: 5)',
    typename: 'InsufficientCapacity',
  },
  {
    name: 'restore: backup with no URL yet',
    variables: { u: urlOf(RUNNING, 'vol') },
    mutation: 'restoreBackup(backupURL: $u, name: "r")',
    typename: 'NotFound',
  },
  {
    name: 'restore: failed backup',
    variables: { u: urlOf(FAILED, 'vol') },
    mutation: 'restoreBackup(backupURL: $u, name: "r")',
    typename: 'InvalidState',
    message: /only a completed backup/,
  },
  {
    name: 'restore: as a viewer',
    role: 'viewer',
    variables: { u: urlOf(COMPLETED, 'vol') },
    mutation: 'restoreBackup(backupURL: $u, name: "r")',
    code: 'FORBIDDEN',
  },
  // activateVolume
  {
    name: 'activate: not standby',
    mutation: 'activateVolume(name: "cold")',
    typename: 'InvalidState',
    message: /not a standby/,
  },
  { name: 'activate: unknown volume', mutation: 'activateVolume(name: "nope")', typename: 'NotFound' },
  // recurring jobs
  {
    name: 'job: 3 cron fields',
    mutation: 'createRecurringJob(input: {name: "j", task: "snapshot", cron: "* * *"})',
    typename: 'ValidationError',
    field: 'cron',
    message: /5/,
  },
  {
    name: 'job: 7 cron fields',
    mutation: 'createRecurringJob(input: {name: "j", task: "snapshot", cron: "0 0 0 1 1 * 2030"})',
    typename: 'ValidationError',
    field: 'cron',
  },
  {
    name: 'job: cron out of range',
    mutation: 'createRecurringJob(input: {name: "j", task: "snapshot", cron: "61 * * * *"})',
    typename: 'ValidationError',
    field: 'cron',
    message: /0-59/,
  },
  {
    name: 'job: cron words',
    mutation: 'createRecurringJob(input: {name: "j", task: "snapshot", cron: "every hour on the hour"})',
    typename: 'ValidationError',
    field: 'cron',
  },
  {
    name: 'job: cron macro',
    mutation: 'createRecurringJob(input: {name: "j", task: "snapshot", cron: "@daily"})',
    typename: 'ValidationError',
    field: 'cron',
  },
  {
    name: 'job: unknown task',
    mutation: 'createRecurringJob(input: {name: "j", task: "reboot", cron: "0 * * * *"})',
    typename: 'ValidationError',
    field: 'task',
  },
  {
    name: 'job: retain 0 for snapshots',
    mutation: 'createRecurringJob(input: {name: "j", task: "snapshot", cron: "0 * * * *", retain: 0})',
    typename: 'ValidationError',
    field: 'retain',
  },
  {
    name: 'job: retain 101',
    mutation: 'createRecurringJob(input: {name: "j", task: "backup", cron: "0 * * * *", retain: 101})',
    typename: 'ValidationError',
    field: 'retain',
  },
  {
    name: 'job: retain for a trim',
    mutation: 'createRecurringJob(input: {name: "j", task: "filesystem-trim", cron: "0 * * * *", retain: 3})',
    typename: 'ValidationError',
    field: 'retain',
  },
  {
    name: 'job: concurrency 0',
    mutation: 'createRecurringJob(input: {name: "j", task: "snapshot", cron: "0 * * * *", concurrency: 0})',
    typename: 'ValidationError',
    field: 'concurrency',
  },
  {
    name: 'job: bad group',
    mutation: 'createRecurringJob(input: {name: "j", task: "snapshot", cron: "0 * * * *", groups: ["ok", "not ok"]})',
    typename: 'ValidationError',
    field: 'groups.1',
  },
  {
    name: 'job: bad name',
    mutation: 'createRecurringJob(input: {name: "Hourly", task: "snapshot", cron: "0 * * * *"})',
    typename: 'ValidationError',
    field: 'name',
  },
  {
    name: 'job: bad label',
    variables: { c: { '-x': 'y' } },
    mutation: 'createRecurringJob(input: {name: "j", task: "snapshot", cron: "0 * * * *", labels: $c})',
    typename: 'ValidationError',
    field: 'labels',
  },
  {
    name: 'job: exists',
    mutation: 'createRecurringJob(input: {name: "nightly", task: "snapshot", cron: "0 * * * *"})',
    typename: 'Conflict',
  },
  {
    name: 'job: as a viewer',
    role: 'viewer',
    mutation: 'createRecurringJob(input: {name: "j", task: "snapshot", cron: "0 * * * *"})',
    code: 'FORBIDDEN',
  },
  {
    name: 'update job: unknown',
    mutation: 'updateRecurringJob(name: "nope", input: {cron: "0 * * * *"})',
    typename: 'NotFound',
  },
  {
    name: 'update job: bad cron',
    mutation: 'updateRecurringJob(name: "nightly", input: {cron: "0 25 * * *"})',
    typename: 'ValidationError',
    field: 'cron',
  },
  {
    name: 'update job: to a trim keeping retain',
    mutation: 'updateRecurringJob(name: "nightly", input: {task: "filesystem-trim", retain: 2})',
    typename: 'ValidationError',
    field: 'retain',
  },
  { name: 'delete job: unknown', mutation: 'deleteRecurringJob(name: "nope")', typename: 'NotFound' },
  {
    name: 'volume jobs: unknown job',
    mutation: 'setVolumeRecurringJobs(volume: "vol", jobs: ["nightly", "nope"])',
    typename: 'NotFound',
    message: /recurring job "nope"/,
  },
  {
    name: 'volume jobs: nothing given',
    mutation: 'setVolumeRecurringJobs(volume: "vol")',
    typename: 'ValidationError',
    field: 'jobs',
  },
  {
    name: 'volume jobs: unknown volume',
    mutation: 'setVolumeRecurringJobs(volume: "nope", jobs: ["nightly"])',
    typename: 'NotFound',
  },
  {
    name: 'volume jobs: bad group',
    mutation: 'setVolumeRecurringJobs(volume: "vol", groups: ["a/b"])',
    typename: 'ValidationError',
    field: 'groups.0',
  },
  {
    name: 'volume jobs: as a viewer',
    role: 'viewer',
    mutation: 'setVolumeRecurringJobs(volume: "vol", jobs: [])',
    code: 'FORBIDDEN',
  },
];

describe('bad input to backup mutations', () => {
  let fx: ReconcileFixture;
  const clients = {} as Record<Role, ReturnType<typeof clientOf>>;

  beforeAll(async () => {
    fx = await startFixture([
      ...cluster(2),
      attachedVolume(),
      replica('vol-r-a', 'node-1', { state: 'running' }),
      attachment([ticket('shorthorn-api-node-1', 'node-1')]),
      volume({ name: 'cold', status: { state: 'detached' } }),
      volume({
        name: 'dr',
        spec: { standby: true, fromBackup: urlOf(COMPLETED, 'vol') },
        status: { state: 'detached', isStandby: true },
      }),
      snapshotResource('snap1', VOL),
      snapshotResource('gone-snap', VOL, { markRemoved: true }),
      snapshotResource('cold-snap', 'cold'),
      backupTarget(TARGET, { credentialSecret: 'creds' }),
      secret('creds', { AWS_ACCESS_KEY_ID: SECRET_ID, AWS_SECRET_ACCESS_KEY: SECRET_KEY }),
      backup(COMPLETED, VOL),
      backup(RUNNING, VOL, { state: 'InProgress', progress: 40, requested: true }),
      backup(FAILED, VOL, { state: 'Error', requested: true, url: true }),
      recurringJob('nightly', 'snapshot'),
    ]);
    await ensureDefaultSettings(fx.store);
    for (const role of ['admin', 'operator', 'viewer'] as const) clients[role] = clientOf(fx.store, role);
  });
  afterAll(async () => {
    await fx?.close();
  });

  async function dump(): Promise<unknown> {
    const out: Record<string, unknown> = {};
    for (const k of KINDS) out[k] = (await fx.store.list(k)).items;
    return out;
  }

  it('has a row for every backup and recurring-job mutation', () => {
    const names = new Set(rows.map((r) => /^\w+/.exec(r.mutation)![0]));
    expect([...names].sort()).toEqual([
      'activateVolume',
      'createBackup',
      'createRecurringJob',
      'deleteBackup',
      'deleteBackupVolume',
      'deleteRecurringJob',
      'restoreBackup',
      'setBackupTarget',
      'setVolumeRecurringJobs',
      'syncBackupTarget',
      'updateRecurringJob',
    ]);
  });

  it.each(rows.map((r) => [r.name, r] as const))('%s', async (_name, row) => {
    const before = await dump();
    const vars = Object.keys(row.variables ?? {});
    const decl = vars.length ? `(${vars.map((v) => `$${v}: ${v === 'c' ? 'JSON' : 'String!'}`).join(', ')})` : '';
    const body = await clients[row.role ?? 'admin'](
      `mutation${decl} { result: ${row.mutation} { ${ERR} } }`,
      row.variables,
    );
    if (row.code) {
      expect(body.errors?.[0]?.extensions?.code, JSON.stringify(body)).toBe(row.code);
      expect(body.data ?? null).toBeNull();
    } else {
      expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
      const r = body.data.result;
      expect(r.__typename, JSON.stringify(r)).toBe(row.typename);
      expect(r.code).toBe(row.typename);
      expect(r.message.length).toBeGreaterThan(10);
      if (row.field !== undefined) expect(r.field).toBe(row.field);
      if (row.message) expect(r.message).toMatch(row.message);
    }
    expect(await dump()).toEqual(before);
  });
});

// ---- queries: the backup graph, at a constant number of store reads --------------------------------------

const BACKUP_GRAPH = `{
  backupTargets { name url credentialKeys credentialSecretMissing available conditions { type status message }
    backupVolumes { name size dataStored lastBackup { name state } volume { name }
      backups(first: 3) { edges { node { name state url volume { name } snapshot { name } } } pageInfo { hasNextPage } } } }
  backupVolumes { name }
  backups { name volumeName state progress size volumeSize }
  recurringJobs { name volumes { name } }
  volumes { name backups { name } recurringJobs recurringJobGroups lastBackup fromBackup standby restoreProgress }
}`;

function seedGraph(from: number, to: number): SeedItem[] {
  const items: SeedItem[] = [];
  for (let i = from; i < to; i++) {
    const vol = `v${String(i).padStart(4, '0')}`;
    const b1 = `backup-${i.toString(16).padStart(12, '0')}0001`;
    const b2 = `backup-${i.toString(16).padStart(12, '0')}0002`;
    items.push(
      attachedVolume(
        vol,
        i % 2
          ? { 'recurring-job.shorthorn.io/hourly': 'enabled' }
          : { 'recurring-job-group.shorthorn.io/gold': 'enabled' },
      ),
      snapshotResource(`snap${i}`, vol),
      backupVolume(vol, b2),
      backup(b1, vol, { createdAgo: 20, snapshot: `snap${i}` }),
      backup(b2, vol, { createdAgo: 10, snapshot: `snap${i}` }),
    );
  }
  return items;
}

describe('backup queries', () => {
  let dir = '';
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answer from seeded resources, and cost the same store reads for 10 and 300 volumes (no N+1)', async () => {
    dir = mkdtempSync(join(tmpdir(), 'shorthorn-graphql-backup-'));
    const raw = openSqliteStore(join(dir, 'store.db'), { synchronous: 'NORMAL' });
    try {
      const counting = new CountingStore(raw);
      const q = clientOf(counting, 'viewer');
      const reads = () => {
        const c = counting.counts();
        return (c.get ?? 0) + (c.list ?? 0);
      };
      const uids = new Map<string, string>();
      const seed = async (items: SeedItem[]) => {
        for (const item of items) {
          const obj = structuredClone(item.obj) as CreateInput<Kind>;
          obj.metadata.ownerReferences = (obj.metadata.ownerReferences ?? []).map((r) => ({
            ...r,
            uid: r.uid || uids.get(`${r.kind}/${r.name}`) || '',
          }));
          const created = await raw.create(item.kind, obj as never);
          uids.set(`${item.kind}/${created.metadata.name}`, created.metadata.uid);
        }
      };
      await seed([
        ...cluster(3),
        backupTarget(TARGET, { credentialSecret: 'creds', available: false }),
        secret('creds', { AWS_ACCESS_KEY_ID: SECRET_ID, AWS_SECRET_ACCESS_KEY: SECRET_KEY }),
        recurringJob('hourly', 'snapshot'),
        recurringJob('gold-backup', 'backup', ['gold']),
        ...seedGraph(0, 10),
      ]);

      counting.reset();
      const small = await ok(q, BACKUP_GRAPH);
      const readsFor10 = reads();
      const t = small.backupTargets[0];
      expect(t).toMatchObject({
        name: 'default',
        url: TARGET,
        credentialKeys: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'],
        credentialSecretMissing: false,
        available: false,
        conditions: [{ type: 'Available', status: 'False', message: 'connection refused' }],
      });
      expect(t.backupVolumes).toHaveLength(10);
      const bv = t.backupVolumes[3];
      expect(bv).toEqual({
        name: 'v0003',
        size: GiB,
        dataStored: 12 * 1024 * 1024,
        lastBackup: { name: 'backup-0000000000030002', state: 'Completed' },
        volume: { name: 'v0003' },
        backups: {
          edges: [
            {
              node: {
                name: 'backup-0000000000030002',
                state: 'Completed',
                url: urlOf('backup-0000000000030002', 'v0003'),
                volume: { name: 'v0003' },
                snapshot: { name: 'snap3' },
              },
            },
            {
              node: {
                name: 'backup-0000000000030001',
                state: 'Completed',
                url: urlOf('backup-0000000000030001', 'v0003'),
                volume: { name: 'v0003' },
                snapshot: { name: 'snap3' },
              },
            },
          ],
          pageInfo: { hasNextPage: false },
        },
      });
      expect(small.backups).toHaveLength(20);
      expect(small.backups[0]).toMatchObject({
        state: 'Completed',
        progress: 100,
        size: 4 * 1024 * 1024,
        volumeSize: GiB,
      });
      expect(small.recurringJobs).toEqual([
        { name: 'gold-backup', volumes: ['v0000', 'v0002', 'v0004', 'v0006', 'v0008'].map((name) => ({ name })) },
        { name: 'hourly', volumes: ['v0001', 'v0003', 'v0005', 'v0007', 'v0009'].map((name) => ({ name })) },
      ]);
      expect(small.volumes[1]).toEqual({
        name: 'v0001',
        backups: [{ name: 'backup-0000000000010002' }, { name: 'backup-0000000000010001' }],
        recurringJobs: ['hourly'],
        recurringJobGroups: [],
        lastBackup: '',
        fromBackup: '',
        standby: false,
        restoreProgress: 0,
      });

      await seed(seedGraph(10, 300));
      counting.reset();
      const big = await ok(q, BACKUP_GRAPH);
      const readsFor300 = reads();
      expect(big.backups).toHaveLength(600);
      expect(big.backupTargets[0].backupVolumes).toHaveLength(300);
      console.log(`store reads, backup graph: 10 volumes ${readsFor10}, 300 volumes ${readsFor300}`);
      expect(readsFor10).toBeLessThanOrEqual(12);
      expect(readsFor300).toBe(readsFor10);

      // Filters and single lookups.
      const one = await ok(
        q,
        `{ backups(volume: "v0007") { name } running: backups(state: InProgress) { name }
           backup(name: "backup-0000000000070001") { name volumeName snapshotName requested }
           missing: backup(name: "backup-ffffffffffffffff") { name }
           backupVolume(name: "v0007") { name lastBackupName } backupVolumes(name: "v000") { name }
           backupTarget { name } other: backupTarget(name: "other") { name }
           recurringJob(name: "hourly") { task cron retain } }`,
      );
      expect(one).toEqual({
        backups: [{ name: 'backup-0000000000070002' }, { name: 'backup-0000000000070001' }],
        running: [],
        backup: { name: 'backup-0000000000070001', volumeName: 'v0007', snapshotName: 'snap7', requested: false },
        missing: null,
        backupVolume: { name: 'v0007', lastBackupName: 'backup-0000000000070002' },
        backupVolumes: Array.from({ length: 10 }, (_, i) => ({ name: `v000${i}` })),
        backupTarget: { name: 'default' },
        other: null,
        recurringJob: { task: 'snapshot', cron: '0 * * * *', retain: 2 },
      });
    } finally {
      await raw.close();
    }
  }, 60_000);
});

// ---- through the API server's read model and response cache ----------------------------------------------

describe('backup queries through the read model and response cache', () => {
  let fx: ReconcileFixture | undefined;
  let model: ReadModel | undefined;
  afterAll(async () => {
    model?.stop();
    await fx?.close();
  });

  it("a Backup's status, a target's change and its secret's keys show in the next query", async () => {
    fx = await startFixture([
      ...cluster(1),
      backupTarget(TARGET),
      backup('backup-00000000000000f1', VOL, { state: 'InProgress', progress: 10, requested: true }),
    ]);
    const store = fx.store;
    model = await ReadModel.start(store, pino({ level: 'silent' }));
    const yoga = createShorthornYoga({
      store,
      api: new VolumeApi(store),
      anonymousRole: 'admin',
      readModel: model,
      responseCache: true,
    });
    const q = async (query: string) => {
      const res = await yoga.fetch('http://shorthorn/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ query }),
      });
      const text = await res.text();
      answers.push(text);
      return (JSON.parse(text) as Json).data;
    };
    const Q = '{ backups(volume: "vol") { name progress state } backupTarget { url credentialKeys } }';
    /** The read model follows the store's watch: the next query may need a moment to see a write. */
    const eventually = async (want: unknown) => {
      for (let i = 0; i < 100; i++) {
        const d = await q(Q);
        if (JSON.stringify(d) === JSON.stringify(want)) return;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await q(Q)).toEqual(want);
    };
    await eventually({
      backups: [{ name: 'backup-00000000000000f1', progress: 10, state: 'InProgress' }],
      backupTarget: { url: TARGET, credentialKeys: [] },
    });
    const b = (await store.get('Backup', 'backup-00000000000000f1'))!;
    b.status.progress = 70;
    await store.updateStatus('Backup', b);
    await eventually({
      backups: [{ name: 'backup-00000000000000f1', progress: 70, state: 'InProgress' }],
      backupTarget: { url: TARGET, credentialKeys: [] },
    });
    const set = await q(
      `mutation { setBackupTarget(input: {url: "file:///mnt/b", credential: {AWS_ACCESS_KEY_ID: "${SECRET_ID}", AWS_SECRET_ACCESS_KEY: "${SECRET_KEY}"}}) { __typename } }`,
    );
    expect(set.setBackupTarget.__typename).toBe('BackupTarget');
    await eventually({
      backups: [{ name: 'backup-00000000000000f1', progress: 70, state: 'InProgress' }],
      backupTarget: { url: 'file:///mnt/b', credentialKeys: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] },
    });
    // The secret's keys change alone (no target change): still seen.
    const secret = (await store.get('Secret', 'default-credential'))!;
    secret.spec.data = { AWS_REGION: 'eu-west-1' };
    await store.update('Secret', secret);
    await eventually({
      backups: [{ name: 'backup-00000000000000f1', progress: 70, state: 'InProgress' }],
      backupTarget: { url: 'file:///mnt/b', credentialKeys: ['AWS_REGION'] },
    });
  });
});

// ---- backupChanged ----------------------------------------------------------------------------------------

/** A subscription over SSE through yoga.fetch: each `next` payload's data, in order. */
function sse(yoga: ShorthornYoga, query: string) {
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let stopped = false;
  const queue: Json[] = [];
  const waiters: ((d: Json) => void)[] = [];
  const emit = (d: Json) => {
    const w = waiters.shift();
    if (w) w(d);
    else queue.push(d);
  };
  const done = (async () => {
    const res = await yoga.fetch('http://shorthorn/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query }),
    });
    reader = res.body!.getReader();
    if (stopped) await reader.cancel();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trim())
          .join('\n');
        if (event === 'next') {
          answers.push(data);
          emit(JSON.parse(data));
        }
      }
    }
  })().catch(() => {});
  return {
    next: (ms = 5000) =>
      new Promise<Json>((resolve, reject) => {
        if (queue.length > 0) return resolve(queue.shift());
        const t = setTimeout(() => reject(new Error(`no SSE event within ${ms} ms`)), ms);
        waiters.push((d) => {
          clearTimeout(t);
          resolve(d);
        });
      }),
    /** Cancelling the response body ends the subscription (and its store watch) on the server. */
    stop: async () => {
      stopped = true;
      await reader?.cancel();
      await done;
    },
  };
}

describe('backupChanged', () => {
  let fx: ReconcileFixture | undefined;
  afterAll(async () => {
    await fx?.close();
  });

  it("sends the volume's backups now, then each status change (progress included), and none of another volume's", async () => {
    fx = await startFixture([
      ...cluster(1),
      backupTarget(TARGET),
      backup('backup-00000000000000d1', VOL, { state: 'InProgress', progress: 10, requested: true }),
      backup('backup-00000000000000e1', 'other'),
    ]);
    const yoga = createShorthornYoga({ store: fx.store, api: new VolumeApi(fx.store), anonymousRole: 'viewer' });
    const sub = sse(yoga, `subscription { backupChanged(volume: "${VOL}") { name state progress url } }`);
    try {
      expect((await sub.next()).data.backupChanged).toEqual({
        name: 'backup-00000000000000d1',
        state: 'InProgress',
        progress: 10,
        url: '',
      });
      const store = fx.store;
      const setStatus = async (name: string, patch: Partial<BackupStatus>) => {
        const b = (await store.get('Backup', name))!;
        Object.assign(b.status, patch);
        await store.updateStatus('Backup', b);
      };
      await setStatus('backup-00000000000000e1', { progress: 100, error: 'not ours' });
      await setStatus('backup-00000000000000d1', { progress: 55 });
      expect((await sub.next()).data.backupChanged).toMatchObject({ state: 'InProgress', progress: 55 });
      const url = urlOf('backup-00000000000000d1', VOL);
      await setStatus('backup-00000000000000d1', { state: 'Completed', progress: 100, url });
      expect((await sub.next()).data.backupChanged).toEqual({
        name: 'backup-00000000000000d1',
        state: 'Completed',
        progress: 100,
        url,
      });
      // A deleted one: its last state once more.
      await new BackupApi(store, new VolumeApi(store)).deleteBackup('backup-00000000000000d1');
      expect((await sub.next()).data.backupChanged).toMatchObject({
        name: 'backup-00000000000000d1',
        state: 'Completed',
      });
    } finally {
      await sub.stop();
    }
  });
});
