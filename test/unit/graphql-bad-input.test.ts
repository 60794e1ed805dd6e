// A table of bad requests, each sent in-process (`yoga.fetch`) against one seeded SqliteStore with no
// controller running. Every row must come back as its typed error result (__typename, code, field) or
// as a GraphQL error with a code; the server must keep answering (a follow-up `{ volumes { name } }`);
// and the store must be exactly as before (every resource of every kind compared).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultSettings, VolumeApi } from '../../controllers/volume-api.js';
import { KINDS } from '../../model/kinds.js';
import { snapshotStatus } from '../../model/snapshot.js';
import { createApiToken, TokenVerifier } from '../../resolvers/tokens.js';
import type { Role } from '../../schema/context.js';
import { createShorthornYoga, type ShorthornYoga } from '../../schema/yoga.js';
import {
  ago,
  attachment,
  cluster,
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

// biome-ignore lint/suspicious/noExplicitAny: GraphQL answers are checked field by field
type Json = any;

type Server = 'admin' | 'viewer' | 'operator' | 'anonymous-refused' | 'tokens';

interface TypedError {
  typename: 'NotFound' | 'ValidationError' | 'Conflict' | 'InsufficientCapacity' | 'InvalidState';
  field?: string;
  message?: RegExp;
}
interface GraphQLFailure {
  code: string;
  status?: number;
  message?: RegExp;
}

interface Row {
  name: string;
  /** A mutation field call (`attachVolume(name: "vol", node: "x")`): its result's type is checked. */
  mutation?: string;
  /** A whole operation (or raw body) for GraphQL-level refusals. */
  query?: string;
  variables?: Record<string, unknown>;
  body?: () => BodyInit;
  method?: 'GET' | 'POST';
  server?: Server;
  headers?: Record<string, string>;
  expect: TypedError | GraphQLFailure;
}

const MiB = 1024 * 1024;
const ERR = '__typename ... on Error { code message } ... on ValidationError { field }';
const nested = (levels: number) => {
  let q = 'name';
  for (let i = 0; i < levels; i++) q = `replicas { volume { ${q} } }`;
  return `{ volumes { ${q} } }`;
};

let viewerToken = '';
let operatorToken = '';

const rows: Row[] = [
  // --- wrong types, unknown fields: GraphQL validation (yoga) ------------------------------------------
  {
    name: 'size as a string',
    query: 'mutation { createVolume(input: {name: "a", size: "big"}) { __typename } }',
    expect: { code: 'GRAPHQL_VALIDATION_FAILED', message: /Bytes/ },
  },
  {
    name: 'size with a fraction',
    query: 'mutation { createVolume(input: {name: "a", size: 4096.5}) { __typename } }',
    expect: { code: 'GRAPHQL_VALIDATION_FAILED', message: /whole number/ },
  },
  {
    name: 'size over 2^53',
    query: 'mutation { createVolume(input: {name: "a", size: 1152921504606846976000}) { __typename } }',
    expect: { code: 'GRAPHQL_VALIDATION_FAILED', message: /2\^53/ },
  },
  {
    name: 'numberOfReplicas as a string',
    query: 'mutation { createVolume(input: {name: "a", size: 4096, numberOfReplicas: "three"}) { __typename } }',
    expect: { code: 'GRAPHQL_VALIDATION_FAILED', message: /Int/ },
  },
  {
    name: 'required name missing',
    query: 'mutation { createVolume(input: {size: 4096}) { __typename } }',
    expect: { code: 'GRAPHQL_VALIDATION_FAILED', message: /name/ },
  },
  {
    name: 'disableFrontend as a string',
    query: 'mutation { attachVolume(name: "vol", node: "node-2", disableFrontend: "yes") { __typename } }',
    expect: { code: 'GRAPHQL_VALIDATION_FAILED', message: /Boolean/ },
  },
  {
    name: 'unknown argument',
    query: 'mutation { attachVolume(name: "vol", node: "node-2", frobnicate: 1) { __typename } }',
    expect: { code: 'GRAPHQL_VALIDATION_FAILED', message: /frobnicate/ },
  },
  {
    name: 'unknown field',
    query: '{ volumes { name nope } }',
    expect: { code: 'GRAPHQL_VALIDATION_FAILED', message: /nope/ },
  },
  {
    name: 'unknown mutation',
    query: 'mutation { formatEverything { __typename } }',
    expect: { code: 'GRAPHQL_VALIDATION_FAILED', message: /formatEverything/ },
  },
  {
    name: 'size variable of the wrong type',
    query: 'mutation($s: Bytes!) { expandVolume(name: "vol", size: $s) { __typename } }',
    variables: { s: '2G' },
    expect: { code: 'BAD_USER_INPUT', status: 400, message: /whole number/ },
  },
  {
    name: 'Int variable of the wrong type',
    query: 'mutation($n: Int!) { updateVolume(name: "vol", input: {numberOfReplicas: $n}) { __typename } }',
    variables: { n: 'x' },
    expect: { code: 'BAD_USER_INPUT', status: 400, message: /Int/ },
  },
  {
    name: 'required variable missing',
    query: 'mutation($n: String!) { deleteVolume(name: $n) { __typename } }',
    expect: { code: 'BAD_USER_INPUT', status: 400, message: /not provided/ },
  },
  {
    name: 'syntax error',
    query: '{ volumes { name }',
    expect: { code: 'GRAPHQL_PARSE_FAILED' },
  },
  {
    name: 'body that is not JSON',
    body: () => '{"query": ',
    expect: { code: 'BAD_REQUEST', status: 400 },
  },

  // --- sizes ----------------------------------------------------------------------------------------------
  {
    name: 'size 0',
    mutation: 'createVolume(input: {name: "a", size: 0})',
    expect: { typename: 'ValidationError', field: 'size', message: /greater than 0/ },
  },
  {
    name: 'negative size',
    mutation: 'createVolume(input: {name: "a", size: -4096})',
    expect: { typename: 'ValidationError', field: 'size' },
  },
  {
    name: 'size not a multiple of 4096',
    mutation: 'createVolume(input: {name: "a", size: 4097})',
    expect: { typename: 'ValidationError', field: 'size', message: /multiple of 4096/ },
  },
  {
    name: 'huge size (4 PiB)',
    mutation: `createVolume(input: {name: "a", size: ${2 ** 52}, numberOfReplicas: 1})`,
    expect: { typename: 'InsufficientCapacity' },
  },
  {
    name: 'expand to a smaller size',
    mutation: `expandVolume(name: "vol", size: ${GiB / 2})`,
    expect: { typename: 'ValidationError', field: 'size', message: /shrink/ },
  },
  {
    name: 'expand to a non-multiple',
    mutation: `expandVolume(name: "vol", size: ${GiB + 1})`,
    expect: { typename: 'ValidationError', field: 'size' },
  },
  {
    name: 'negative storageReserved',
    mutation: 'updateDisk(node: "node-1", disk: "disk-0", input: {storageReserved: -1})',
    expect: { typename: 'ValidationError', field: 'storageReserved' },
  },

  // --- names and values -------------------------------------------------------------------------------------
  {
    name: 'name with upper case and "_"',
    mutation: 'createVolume(input: {name: "Bad_Name", size: 4096})',
    expect: { typename: 'ValidationError', field: 'name' },
  },
  {
    name: 'name all upper case',
    mutation: 'createVolume(input: {name: "DATA", size: 4096})',
    expect: { typename: 'ValidationError', field: 'name' },
  },
  {
    name: 'name of 64 characters',
    mutation: `createVolume(input: {name: "${'a'.repeat(64)}", size: 4096})`,
    expect: { typename: 'ValidationError', field: 'name' },
  },
  {
    name: 'empty name',
    mutation: 'createVolume(input: {name: "", size: 4096})',
    expect: { typename: 'ValidationError', field: 'name' },
  },
  {
    name: 'name starting with "-"',
    mutation: 'createVolume(input: {name: "-x", size: 4096})',
    expect: { typename: 'ValidationError', field: 'name' },
  },
  {
    name: 'bad snapshot name',
    mutation: 'createSnapshot(volume: "vol", name: "Snap!")',
    expect: { typename: 'ValidationError', field: 'name' },
  },
  {
    name: 'snapshot labels not an object',
    mutation: 'createSnapshot(volume: "vol", name: "s2", labels: "x")',
    expect: { typename: 'ValidationError', field: 'labels' },
  },
  {
    name: 'duplicate volume name',
    mutation: 'createVolume(input: {name: "vol", size: 4096, numberOfReplicas: 1})',
    expect: { typename: 'Conflict', message: /already exists/ },
  },
  {
    name: 'duplicate snapshot name',
    mutation: 'createSnapshot(volume: "vol", name: "snap1")',
    expect: { typename: 'Conflict' },
  },
  {
    name: '0 replicas',
    mutation: 'createVolume(input: {name: "a", size: 4096, numberOfReplicas: 0})',
    expect: { typename: 'ValidationError', field: 'numberOfReplicas' },
  },
  {
    name: '21 replicas',
    mutation: 'updateVolume(name: "vol", input: {numberOfReplicas: 21})',
    expect: { typename: 'ValidationError', field: 'numberOfReplicas' },
  },
  {
    name: 'unknown data locality',
    mutation: 'updateVolume(name: "vol", input: {dataLocality: "sometimes"})',
    expect: { typename: 'ValidationError', field: 'dataLocality' },
  },
  {
    name: 'strict-local with 2 replicas',
    mutation: 'createVolume(input: {name: "a", size: 4096, numberOfReplicas: 2, dataLocality: "strict-local"})',
    expect: { typename: 'ValidationError', field: 'numberOfReplicas' },
  },
  {
    name: 'negative stale replica timeout',
    mutation: 'updateVolume(name: "vol", input: {staleReplicaTimeout: -1})',
    expect: { typename: 'ValidationError', field: 'staleReplicaTimeout' },
  },
  {
    name: 'bad node tag',
    mutation: 'updateNode(name: "node-1", input: {tags: ["ok", "not ok"]})',
    expect: { typename: 'ValidationError', field: 'tags.1' },
  },
  {
    name: 'disk path not absolute',
    mutation: 'addDisk(node: "node-1", input: {name: "d1", path: "data/disk"})',
    expect: { typename: 'ValidationError', field: 'path', message: /absolute/ },
  },
  {
    name: 'disk path that does not exist',
    mutation: 'addDisk(node: "node-1", input: {name: "d1", path: "/nonexistent/shorthorn/disk"})',
    expect: { typename: 'ValidationError', field: 'path', message: /does not exist/ },
  },
  {
    name: 'disk name in use',
    mutation: 'addDisk(node: "node-1", input: {name: "disk-0", path: "/tmp"})',
    expect: { typename: 'Conflict' },
  },
  {
    name: 'bad disk name',
    mutation: 'addDisk(node: "node-1", input: {name: "Disk 1", path: "/tmp"})',
    expect: { typename: 'ValidationError', field: 'name' },
  },
  {
    name: 'setting value of the wrong type',
    mutation: 'updateSetting(name: "default-replica-count", value: "three")',
    expect: { typename: 'ValidationError', field: 'value', message: /whole number/ },
  },
  {
    name: 'setting value out of range',
    mutation: 'updateSetting(name: "default-replica-count", value: "0")',
    expect: { typename: 'ValidationError', field: 'value', message: /at least 1/ },
  },
  {
    name: 'setting bool that is not one',
    mutation: 'updateSetting(name: "auto-salvage", value: "maybe")',
    expect: { typename: 'ValidationError', field: 'value' },
  },
  {
    name: 'setting enum outside its choices',
    mutation: 'updateSetting(name: "default-data-locality", value: "everywhere")',
    expect: { typename: 'ValidationError', field: 'value' },
  },

  // --- unknown resources ------------------------------------------------------------------------------------
  {
    name: 'attach to an unknown node',
    mutation: 'attachVolume(name: "cold", node: "node-9")',
    expect: { typename: 'NotFound', message: /node "node-9"/ },
  },
  {
    name: 'attach an unknown volume',
    mutation: 'attachVolume(name: "nope", node: "node-1")',
    expect: { typename: 'NotFound', message: /volume "nope"/ },
  },
  { name: 'delete an unknown volume', mutation: 'deleteVolume(name: "nope")', expect: { typename: 'NotFound' } },
  {
    name: 'update an unknown volume',
    mutation: 'updateVolume(name: "nope", input: {numberOfReplicas: 2})',
    expect: { typename: 'NotFound' },
  },
  {
    name: 'delete an unknown snapshot',
    mutation: 'deleteSnapshot(name: "nope")',
    expect: { typename: 'NotFound', message: /snapshot "nope"/ },
  },
  {
    name: 'revert to an unknown snapshot',
    mutation: 'revertSnapshot(volume: "cold", name: "nope")',
    expect: { typename: 'NotFound' },
  },
  {
    name: "revert to another volume's snapshot",
    mutation: 'revertSnapshot(volume: "cold", name: "snap1")',
    expect: { typename: 'NotFound', message: /snapshot "snap1"/ },
  },
  {
    name: 'update an unknown node',
    mutation: 'updateNode(name: "node-9", input: {allowScheduling: false})',
    expect: { typename: 'NotFound' },
  },
  {
    name: 'update an unknown disk',
    mutation: 'updateDisk(node: "node-1", disk: "disk-9", input: {allowScheduling: false})',
    expect: { typename: 'NotFound' },
  },
  {
    name: 'remove a disk of an unknown node',
    mutation: 'removeDisk(node: "node-9", disk: "disk-0")',
    expect: { typename: 'NotFound' },
  },
  { name: 'remove an unknown replica', mutation: 'removeReplica(name: "nope")', expect: { typename: 'NotFound' } },
  {
    name: 'update an unknown setting',
    mutation: 'updateSetting(name: "no-such-setting", value: "1")',
    expect: { typename: 'NotFound', message: /setting "no-such-setting"/ },
  },
  {
    name: 'salvage an unknown replica',
    mutation: 'salvageVolume(name: "faulty", replicas: ["nope"])',
    expect: { typename: 'NotFound' },
  },

  // --- actions in the wrong state -------------------------------------------------------------------------
  {
    name: 'expand a detached volume',
    mutation: `expandVolume(name: "cold", size: ${2 * GiB})`,
    expect: { typename: 'InvalidState', message: /attach it to expand/ },
  },
  {
    name: 'revert an attached volume',
    mutation: 'revertSnapshot(volume: "vol", name: "snap1")',
    expect: {
      typename: 'InvalidState',
      message: /volume is attached; detach it before reverting|"vol" is attached; detach it before reverting/,
    },
  },
  {
    name: 'revert to a snapshot not taken yet',
    mutation: 'revertSnapshot(volume: "cold", name: "pending")',
    expect: { typename: 'InvalidState', message: /not been taken/ },
  },
  {
    name: 'remove the last healthy replica',
    mutation: 'removeReplica(name: "vol-r-a")',
    expect: { typename: 'InvalidState', message: /last healthy replica/ },
  },
  {
    name: 'remove a disk in use',
    mutation: 'removeDisk(node: "node-1", disk: "disk-0")',
    expect: { typename: 'InvalidState', message: /holds 1 replica\(s\) of 1 volume\(s\) \(vol\)/ },
  },
  {
    name: 'attach to a second node',
    mutation: 'attachVolume(name: "vol", node: "node-2")',
    expect: { typename: 'InvalidState', message: /attached to node-1; detach it first/ },
  },
  {
    name: 'snapshot a detached volume',
    mutation: 'createSnapshot(volume: "cold", name: "s3")',
    expect: { typename: 'InvalidState', message: /attach it to take a snapshot/ },
  },
  {
    name: 'purge a detached volume',
    mutation: 'purgeSnapshots(volume: "cold")',
    expect: { typename: 'InvalidState', message: /attach it to purge/ },
  },
  {
    name: 'salvage a volume that is not faulted',
    mutation: 'salvageVolume(name: "vol")',
    expect: { typename: 'InvalidState', message: /not faulted/ },
  },
  {
    name: 'attach a volume being deleted',
    mutation: 'attachVolume(name: "gone", node: "node-1")',
    expect: { typename: 'InvalidState', message: /being deleted/ },
  },

  // --- oversized and deeply nested requests -----------------------------------------------------------------
  { name: 'query 32 levels deep', query: nested(15), expect: { code: 'QUERY_TOO_DEEP', message: /depth is 32/ } },
  { name: 'query too costly', query: nested(4), expect: { code: 'QUERY_TOO_COMPLEX' } },
  {
    name: 'query too broad (300 aliases)',
    query: `{ ${Array.from({ length: 300 }, (_, i) => `a${i}: volumes { name }`).join(' ')} }`,
    expect: { code: 'QUERY_TOO_BROAD' },
  },
  {
    name: 'body over 1 MiB',
    body: () => JSON.stringify({ query: `{ volumes { name } }${' '.repeat(2 * MiB)}` }),
    expect: { code: 'REQUEST_TOO_LARGE', status: 413 },
  },
  {
    name: 'body over 1 MiB without Content-Length (streamed)',
    body: () =>
      new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode('{"query": "{ volumes { name } }", "x": "'));
          for (let i = 0; i < 40; i++) c.enqueue(new Uint8Array(64 * 1024).fill(0x61));
          c.enqueue(new TextEncoder().encode('"}'));
          c.close();
        },
      }),
    expect: { code: 'REQUEST_TOO_LARGE', status: 413 },
  },

  // --- who is asking --------------------------------------------------------------------------------------
  {
    name: 'a viewer creating a volume',
    server: 'viewer',
    mutation: 'createVolume(input: {name: "a", size: 4096})',
    expect: { code: 'FORBIDDEN', message: /viewer/ },
  },
  {
    name: 'a viewer deleting a volume',
    server: 'viewer',
    mutation: 'deleteVolume(name: "vol")',
    expect: { code: 'FORBIDDEN' },
  },
  {
    name: 'an operator changing a setting',
    server: 'operator',
    mutation: 'updateSetting(name: "auto-salvage", value: "false")',
    expect: { code: 'FORBIDDEN', message: /operator/ },
  },
  {
    name: 'an operator draining a node',
    server: 'operator',
    mutation: 'updateNode(name: "node-1", input: {evictionRequested: true})',
    expect: { code: 'FORBIDDEN' },
  },
  {
    name: 'anonymous on a non-loopback server',
    server: 'anonymous-refused',
    mutation: 'deleteVolume(name: "vol")',
    expect: { code: 'UNAUTHENTICATED', status: 401 },
  },
  {
    name: 'unknown bearer token',
    server: 'tokens',
    headers: { authorization: 'Bearer shorthorn_not-a-token' },
    mutation: 'deleteVolume(name: "vol")',
    expect: { code: 'UNAUTHENTICATED', status: 401 },
  },
  {
    name: 'not a bearer token',
    server: 'tokens',
    headers: { authorization: 'Basic dXNlcjpwYXNz' },
    mutation: 'deleteVolume(name: "vol")',
    expect: { code: 'UNAUTHENTICATED', status: 401 },
  },
  {
    name: 'a viewer token mutating',
    server: 'tokens',
    headers: { authorization: 'VIEWER' },
    mutation: 'deleteVolume(name: "vol")',
    expect: { code: 'FORBIDDEN' },
  },
  {
    name: 'an operator token on an admin action',
    server: 'tokens',
    headers: { authorization: 'OPERATOR' },
    mutation: 'removeDisk(node: "node-2", disk: "disk-0")',
    expect: { code: 'FORBIDDEN' },
  },
];

function snapshotOf(vol: string, name: string, taken: boolean): SeedItem {
  return {
    kind: 'Snapshot',
    obj: {
      metadata: { name, labels: { 'shorthorn.io/volume': vol }, finalizers: ['shorthorn.io'] },
      spec: { volume: vol, createSnapshot: true, labels: {} },
      status: snapshotStatus.parse({ creationTime: taken ? ago(5 * MIN) : '', readyToUse: taken }),
    },
  };
}

/** A fixture replica (they belong to `vol`) moved to volume `vol`. */
function replicaOf(vol: string, item: SeedItem): SeedItem {
  if (item.kind !== 'Replica') throw new Error('not a replica');
  const obj = structuredClone(item.obj);
  obj.spec.volumeName = vol;
  obj.metadata.labels = { 'shorthorn.io/volume': vol };
  obj.metadata.ownerReferences = [{ kind: 'Volume', name: vol, uid: '', controller: true }];
  return { ...item, obj };
}

let fx: ReconcileFixture;
let verifier: TokenVerifier;
const servers = {} as Record<Server, ShorthornYoga>;

beforeAll(async () => {
  fx = await startFixture([
    ...cluster(2),
    volume({
      spec: { nodeID: 'node-1' },
      status: { state: 'attached', robustness: 'healthy', currentNodeID: 'node-1', currentSize: GiB },
    }),
    replica('vol-r-a', 'node-1', { state: 'running' }),
    attachment([ticket('shorthorn-api-node-1', 'node-1')]),
    volume({ name: 'cold', status: { state: 'detached' } }),
    volume({ name: 'faulty', status: { state: 'detached', robustness: 'faulted' } }),
    volume({ name: 'gone', status: { state: 'detached' }, deleted: true }),
    replicaOf('faulty', failedReplica('faulty-r-a', 'node-2', MIN)),
    snapshotOf(VOL, 'snap1', true),
    snapshotOf('cold', 'pending', false),
  ]);
  await ensureDefaultSettings(fx.store);
  viewerToken = (await createApiToken(fx.store, { role: 'viewer' })).token;
  operatorToken = (await createApiToken(fx.store, { role: 'operator' })).token;
  verifier = await TokenVerifier.start(fx.store);
  const api = new VolumeApi(fx.store);
  const make = (anonymousRole: Role | undefined) => createShorthornYoga({ store: fx.store, api, anonymousRole });
  servers.admin = make('admin');
  servers.viewer = make('viewer');
  servers.operator = make('operator');
  servers['anonymous-refused'] = make(undefined);
  servers.tokens = createShorthornYoga({
    store: fx.store,
    api,
    anonymousRole: undefined,
    resolveToken: async (t) => verifier.verify(t),
  });
});

afterAll(async () => {
  verifier?.stop();
  await fx?.close();
});

async function dump(): Promise<unknown> {
  const out: Record<string, unknown> = {};
  for (const k of KINDS) out[k] = (await fx.store.list(k)).items;
  return out;
}

async function send(row: Row): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...row.headers };
  if (headers['authorization'] === 'VIEWER') headers['authorization'] = `Bearer ${viewerToken}`;
  if (headers['authorization'] === 'OPERATOR') headers['authorization'] = `Bearer ${operatorToken}`;
  const query = row.mutation ? `mutation { ${row.mutation} { ${ERR} } }` : row.query;
  const body = row.body ? row.body() : JSON.stringify({ query, variables: row.variables });
  const init: RequestInit & { duplex?: 'half' } = { method: row.method ?? 'POST', headers, body };
  if (body instanceof ReadableStream) init.duplex = 'half';
  const res = await servers[row.server ?? 'admin'].fetch('http://shorthorn/graphql', init);
  return { status: res.status, body: (await res.json()) as Json };
}

describe('bad input', () => {
  it('has at least 40 rows', () => {
    expect(rows.length).toBeGreaterThanOrEqual(40);
  });

  it.each(rows.map((r) => [r.name, r] as const))('%s', async (_name, row) => {
    const before = await dump();
    const { status, body } = await send(row);
    const want = row.expect;
    if ('typename' in want) {
      expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
      const result = Object.values(body.data as Record<string, Json>)[0];
      expect(result.__typename, JSON.stringify(result)).toBe(want.typename);
      expect(result.code).toBe(want.typename);
      expect(result.message.length).toBeGreaterThan(10);
      if (want.field !== undefined) expect(result.field).toBe(want.field);
      if (want.message) expect(result.message).toMatch(want.message);
    } else {
      expect(body.errors?.length, JSON.stringify(body)).toBeGreaterThan(0);
      const err = body.errors[0];
      expect(err.extensions?.code, JSON.stringify(err)).toBe(want.code);
      if (want.status) expect(status).toBe(want.status);
      if (want.message) expect(err.message).toMatch(want.message);
      expect(body.data ?? null).toBeNull();
    }
    // Still serving, and nothing was written.
    const next = await send({ name: 'follow-up', query: '{ volumes { name } }', expect: { code: '' } });
    expect(next.status).toBe(200);
    expect((next.body.data.volumes as { name: string }[]).map((v) => v.name).sort()).toEqual([
      'cold',
      'faulty',
      'gone',
      VOL,
    ]);
    expect(await dump()).toEqual(before);
  });
});
