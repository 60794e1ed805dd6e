// The API server answers queries from its in-memory read model and caches whole query results per
// generation of that model. Both must be invisible to clients: a change made anywhere (here straight in
// the store, as a controller would) shows in the very next query, a mutation's effect shows in the next
// request, and roles never share cached answers.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { ensureDefaultSettings, VolumeApi } from '../../controllers/volume-api.js';
import { createApiToken } from '../../resolvers/tokens.js';
import { type ApiServer, startApiServer } from '../../schema/server.js';
import { openSqliteStore, type SqliteStore } from '../../store/sqlite-store.js';

let dir: string | undefined;
let store: SqliteStore | undefined;
let server: ApiServer | undefined;
afterEach(async () => {
  await server?.close();
  await store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  server = store = dir = undefined;
});

async function gql(query: string, token?: string): Promise<{ data?: Record<string, unknown>; errors?: unknown[] }> {
  const r = await fetch(server!.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query }),
  });
  return (await r.json()) as { data?: Record<string, unknown> };
}

async function start(): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), 'shorthorn-rm-'));
  store = openSqliteStore(join(dir, 'db'));
  await ensureDefaultSettings(store);
  await store.create('Volume', { metadata: { name: 'v1' }, spec: { size: 4096, numberOfReplicas: 1 } } as never);
  server = await startApiServer({
    host: '127.0.0.1',
    port: 0,
    store,
    api: new VolumeApi(store),
    logger: pino({ level: 'silent' }),
  });
}

it('a change written to the store shows in the next query (no stale cached answer)', async () => {
  await start();
  const q = '{ volume(name: "v1") { state robustness } }';
  expect((await gql(q)).data).toEqual({ volume: { state: 'creating', robustness: 'unknown' } });
  expect((await gql(q)).data).toEqual({ volume: { state: 'creating', robustness: 'unknown' } }); // cached
  const v = (await store!.get('Volume', 'v1'))!;
  v.status.state = 'detached';
  v.status.robustness = 'faulted';
  await store!.updateStatus('Volume', v);
  expect((await gql(q)).data).toEqual({ volume: { state: 'detached', robustness: 'faulted' } });
});

it("a mutation's effect shows in the next request's query", async () => {
  await start();
  const list = '{ volumes { name } }';
  expect((await gql(list)).data).toEqual({ volumes: [{ name: 'v1' }] });
  const del = await gql('mutation { deleteVolume(name: "v1") { __typename ... on Volume { deleting } } }');
  expect(del.errors).toBeUndefined();
  expect((await gql(list)).data).toEqual({ volumes: [] });
});

it('answers cached for one role are not served to another', async () => {
  await start();
  // Tokens made after start are picked up by the server's watch; from then on every request needs one.
  const admin = (await createApiToken(store!, { role: 'admin', description: 'a' })).token;
  const viewer = (await createApiToken(store!, { role: 'viewer', description: 'v' })).token;
  await new Promise((r) => setTimeout(r, 100));
  const q = '{ apiTokens { description } }';
  const asAdmin = await gql(q, admin);
  expect(asAdmin.errors).toBeUndefined();
  expect(asAdmin.data?.['apiTokens']).toHaveLength(2);
  const asViewer = await gql(q, viewer);
  expect(asViewer.data?.['apiTokens'] ?? null).toBeNull();
  expect(JSON.stringify(asViewer.errors)).toContain('FORBIDDEN');
});
