// The API over the network: startApiServer on 127.0.0.1 (or 0.0.0.0) and a free port, a real SqliteStore,
// clients over HTTP, SSE (fetch with `accept: text/event-stream`) and WebSocket (graphql-ws + ws).
// Subscriptions must see changes written with store.updateStatus — what a controller does — not only
// those made by mutations; tokens and roles are checked end to end.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Manager, startManager } from '../../controllers/manager.js';
import { ensureDefaultSettings, VolumeApi } from '../../controllers/volume-api.js';
import type { ApiTokenRole } from '../../model/api-token.js';
import type { Kind } from '../../model/kinds.js';
import { createApiToken } from '../../resolvers/tokens.js';
import { type ApiServer, startApiServer } from '../../schema/server.js';
import { openSqliteStore, type SqliteStore } from '../../store/sqlite-store.js';
import type { CreateInput } from '../../store/store.js';
import { startVolume, type TestVolume } from '../helpers/cluster.js';
import { engine, node, type SeedItem, VOL, volume } from '../helpers/reconcile-fixtures.js';
import { run } from '../helpers/tools.js';
import { FIO, MiB } from '../helpers/volume-tools.js';

/** The API's error logs: a subscription left open when the server closed fails with "store closed". */
const apiErrors: string[] = [];
const log = pino(
  { level: 'error' },
  {
    write: (line: string) => {
      if (line.includes('"component":"api"')) apiErrors.push(line);
    },
  },
);

interface Env {
  dir: string;
  store: SqliteStore;
  server?: ApiServer;
  manager?: Manager;
  /** http://127.0.0.1:PORT/graphql, whatever address the server listens on. */
  url: string;
  tokens: Partial<Record<ApiTokenRole, string>>;
}

const envs: Env[] = [];

afterEach(async () => {
  for (const env of envs.splice(0)) {
    await env.server?.close();
    await env.manager?.stop();
    await env.store.close();
    rmSync(env.dir, { recursive: true, force: true });
  }
  await new Promise((r) => setTimeout(r, 20));
  expect(apiErrors.splice(0)).toEqual([]);
});

async function seed(store: SqliteStore, items: SeedItem[]): Promise<void> {
  for (const item of items) {
    const obj = structuredClone(item.obj) as CreateInput<Kind>;
    obj.metadata.ownerReferences = [];
    await store.create(item.kind, obj as never);
  }
}

/** A store with three schedulable nodes and the default settings; tokens of these roles; the server. */
async function start(
  o: { host?: string; roles?: ApiTokenRole[]; manager?: boolean; items?: SeedItem[] } = {},
): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'shorthorn-api-'));
  const store = openSqliteStore(join(dir, 'shorthorn.db'), { synchronous: 'NORMAL' });
  const env: Env = { dir, store, url: '', tokens: {} };
  envs.push(env);
  await seed(store, [node('node-1'), node('node-2'), node('node-3'), ...(o.items ?? [])]);
  await ensureDefaultSettings(store);
  for (const role of o.roles ?? []) env.tokens[role] = (await createApiToken(store, { role })).token;
  let api = new VolumeApi(store);
  if (o.manager) {
    env.manager = await startManager({ store, managerID: 'manager', logger: log });
    api = env.manager.api;
  }
  env.server = await startApiServer({ host: o.host ?? '127.0.0.1', port: 0, store, api, logger: log });
  env.url = `http://127.0.0.1:${env.server.port}/graphql`;
  return env;
}

interface GqlResult {
  status: number;
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

async function gql(env: Env, query: string, variables: Record<string, unknown> = {}, token?: string) {
  const res = await fetch(env.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, ...((await res.json()) as Omit<GqlResult, 'status'>) } as GqlResult;
}

/** A subscription over SSE: `next()` gives each `next` event's payload, undefined once complete. */
function sse(env: Env, query: string, variables: Record<string, unknown> = {}, token?: string) {
  const ctl = new AbortController();
  const queue: (GqlResult | undefined)[] = [];
  const waiters: ((r: GqlResult | undefined) => void)[] = [];
  const emit = (r: GqlResult | undefined) => {
    const w = waiters.shift();
    if (w) w(r);
    else queue.push(r);
  };
  const done = (async () => {
    const res = await fetch(env.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
      signal: ctl.signal,
    });
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trim())
          .join('\n');
        if (event === 'next') emit({ status: res.status, ...JSON.parse(data) });
        if (event === 'complete') emit(undefined);
      }
    }
    emit(undefined);
  })().catch(() => emit(undefined));
  return {
    next: (ms = 10_000) =>
      new Promise<GqlResult | undefined>((resolve, reject) => {
        if (queue.length > 0) return resolve(queue.shift());
        const t = setTimeout(() => reject(new Error(`no SSE event within ${ms} ms`)), ms);
        waiters.push((r) => {
          clearTimeout(t);
          resolve(r);
        });
      }),
    close: async () => {
      ctl.abort();
      await done;
    },
  };
}

/** A subscription over WebSocket (graphql-ws), same shape as sse(). */
function wsSubscribe(env: Env, query: string, variables: Record<string, unknown> = {}, token?: string) {
  const client = createClient({
    url: env.url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
  });
  const it = client.iterate({ query, variables })[Symbol.asyncIterator]();
  return {
    next: async (ms = 10_000) => {
      let t: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`no WebSocket message within ${ms} ms`)), ms);
      });
      try {
        const r = await Promise.race([it.next(), timeout]);
        return r.done ? undefined : (r.value as GqlResult);
      } catch (err) {
        // graphql-ws rejects the iterator with the operation's errors
        if (Array.isArray(err)) return { status: 0, errors: err } as GqlResult;
        throw err;
      } finally {
        clearTimeout(t);
      }
    },
    close: async () => {
      await it.return?.();
      await client.dispose();
    },
  };
}

const VOLUME_CHANGED = 'subscription($name: String!) { volumeChanged(name: $name) { name state robustness } }';

/** What a controller does: write the volume's status. */
async function setVolumeState(env: Env, name: string, state: 'detached' | 'attached', robustness = 'unknown') {
  const v = (await env.store.get('Volume', name))!;
  v.status.state = state;
  v.status.robustness = robustness as never;
  await env.store.updateStatus('Volume', v);
}

describe('GraphQL API server', () => {
  it('answers queries over HTTP, serves GraphiQL, and anonymous is admin on loopback without tokens', async () => {
    const env = await start({ items: [volume()] });
    expect(env.server!.anonymousRole).toBe('admin');
    const r = await gql(env, '{ volumes { name state } nodes { name } }');
    expect(r.status).toBe(200);
    expect(r.errors).toBeUndefined();
    expect(r.data!['volumes']).toEqual([{ name: VOL, state: 'creating' }]);
    expect((r.data!['nodes'] as { name: string }[]).map((n) => n.name)).toEqual(['node-1', 'node-2', 'node-3']);
    const page = await fetch(env.url, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/graphiql/i);
  });

  it('volumeChanged over SSE: the current value, then a status change written to the store', async () => {
    const env = await start({ items: [volume()] });
    const sub = sse(env, VOLUME_CHANGED, { name: VOL });
    try {
      expect((await sub.next())!.data).toEqual({
        volumeChanged: { name: VOL, state: 'creating', robustness: 'unknown' },
      });
      await setVolumeState(env, VOL, 'detached');
      expect((await sub.next())!.data).toEqual({
        volumeChanged: { name: VOL, state: 'detached', robustness: 'unknown' },
      });
      await setVolumeState(env, VOL, 'attached', 'healthy');
      expect((await sub.next())!.data).toEqual({
        volumeChanged: { name: VOL, state: 'attached', robustness: 'healthy' },
      });
    } finally {
      await sub.close();
    }
  });

  it('volumeChanged over WebSocket: the current value, then a status change written to the store', async () => {
    const env = await start({ items: [volume()] });
    const sub = wsSubscribe(env, VOLUME_CHANGED, { name: VOL });
    try {
      expect((await sub.next())!.data).toEqual({
        volumeChanged: { name: VOL, state: 'creating', robustness: 'unknown' },
      });
      await setVolumeState(env, VOL, 'detached');
      expect((await sub.next())!.data).toEqual({
        volumeChanged: { name: VOL, state: 'detached', robustness: 'unknown' },
      });
    } finally {
      await sub.close();
    }
  });

  it('nested fields of later events are read afresh (no stale per-request cache in a subscription)', async () => {
    const env = await start({ items: [volume(), engine()] });
    const sub = wsSubscribe(env, 'subscription { volumeChanged(name: "vol") { state engine { currentState } } }');
    try {
      expect((await sub.next())!.data).toEqual({
        volumeChanged: { state: 'creating', engine: { currentState: 'stopped' } },
      });
      const e = (await env.store.get('Engine', `${VOL}-e-0`))!;
      e.status.currentState = 'running';
      await env.store.updateStatus('Engine', e);
      await setVolumeState(env, VOL, 'attached');
      expect((await sub.next())!.data).toEqual({
        volumeChanged: { state: 'attached', engine: { currentState: 'running' } },
      });
    } finally {
      await sub.close();
    }
  });

  it('engineChanged over WebSocket sees the engine that the volume controller creates', async () => {
    const env = await start();
    const sub = wsSubscribe(env, 'subscription { engineChanged(volume: "v1") { name volumeName desireState } }');
    try {
      // Created while the seeded nodes look schedulable; no instance managers answer for them, so
      // once the manager runs its node controller marks them down (which does not matter here).
      const created = await gql(
        env,
        'mutation { createVolume(input: { name: "v1", size: 1073741824, numberOfReplicas: 2 }) { __typename ... on Volume { name } } }',
      );
      expect(created.errors).toBeUndefined();
      expect(created.data!['createVolume']).toEqual({ __typename: 'Volume', name: 'v1' });
      // graphql-ws subscribes once the socket is up; give it that before the controller acts.
      await new Promise((r) => setTimeout(r, 300));
      env.manager = await startManager({ store: env.store, managerID: 'manager', logger: log });
      expect((await sub.next(20_000))!.data).toEqual({
        engineChanged: { name: 'v1-e-0', volumeName: 'v1', desireState: 'stopped' },
      });
    } finally {
      await sub.close();
    }
  });

  it('rebuildProgress follows the engine status (current value first, then each progress write)', async () => {
    const env = await start({ items: [volume(), engine()] });
    const sub = sse(
      env,
      'subscription { rebuildProgress(volume: "vol") { rebuilding progress bytesDone engine { name } } }',
    );
    try {
      expect((await sub.next())!.data).toEqual({
        rebuildProgress: { rebuilding: false, progress: null, bytesDone: 0, engine: { name: 'vol-e-0' } },
      });
      const e = (await env.store.get('Engine', 'vol-e-0'))!;
      const status = { isRebuilding: true, state: 'in_progress', error: '', fromReplicaAddress: '' };
      e.status.rebuildStatus = { 'vol-r-1': { ...status, progress: 25, bytesDone: 256, bytesTotal: 1024 } };
      await env.store.updateStatus('Engine', await env.store.updateStatus('Engine', e));
      expect((await sub.next())!.data).toEqual({
        rebuildProgress: { rebuilding: true, progress: 25, bytesDone: 256, engine: { name: 'vol-e-0' } },
      });
    } finally {
      await sub.close();
    }
  });

  it('events: only events recorded after subscribing (no backlog), filtered; `since` replays', async () => {
    const env = await start();
    const event = (name: string, involved: string, reason: string) =>
      env.store.create('Event', {
        metadata: { name },
        spec: {
          type: 'Normal',
          reason,
          message: `${involved}: ${reason}`,
          involvedObject: { kind: 'Volume', name: involved },
          source: 'volume-controller',
          firstTimestamp: new Date().toISOString(),
          lastTimestamp: new Date().toISOString(),
          count: 1,
        },
      });
    await event('old', 'vol', 'Attached');
    const sub = sse(env, 'subscription { events(kind: "Volume", name: "vol") { name reason } }');
    const replay = sse(env, 'subscription($since: DateTime) { events(since: $since) { name } }', {
      since: new Date(Date.now() - 60_000).toISOString(),
    });
    try {
      expect((await replay.next())!.data).toEqual({ events: { name: 'old' } });
      await new Promise((r) => setTimeout(r, 300)); // the SSE subscription is set up
      await event('other', 'vol2', 'Detached');
      await event('new', 'vol', 'Degraded');
      // Neither the old event nor vol2's: the first one through is the new one about vol.
      expect((await sub.next())!.data).toEqual({ events: { name: 'new', reason: 'Degraded' } });
    } finally {
      await sub.close();
      await replay.close();
    }
  });

  it('volumeMetrics on a detached volume ends at once with a clear error, over SSE and WebSocket', async () => {
    const env = await start({ items: [volume({ status: { state: 'detached' } })] });
    const query = 'subscription { volumeMetrics(name: "vol", intervalMs: 200) { readIOPS } }';
    const sub = sse(env, query);
    try {
      const r = (await sub.next())!;
      expect(r.errors?.[0]?.message).toMatch(/vol is detached, not attached/);
      expect(r.errors?.[0]?.extensions?.code).toBe('InvalidState');
    } finally {
      await sub.close();
    }
    const ws = wsSubscribe(env, query);
    try {
      const r = (await ws.next())!;
      expect(r.errors?.[0]?.message).toMatch(/not attached/);
    } finally {
      await ws.close();
    }
    const tooOften = await gql(env, 'subscription { volumeMetrics(name: "vol", intervalMs: 10) { readIOPS } }');
    expect(JSON.stringify(tooOften)).toMatch(/intervalMs must be/);
  });

  it('volumeMetrics samples a real engine while subscribed and ends with an error once detached', async () => {
    let vol: TestVolume | undefined;
    try {
      vol = await startVolume({ name: VOL, size: 64 * MiB, replicas: 1 });
      const env = await start({
        items: [
          volume({ status: { state: 'attached', currentNodeID: 'node-1', endpoint: vol.uri } }),
          engine({
            spec: { nodeID: 'node-1', desireState: 'running' },
            status: { currentState: 'running', ip: '127.0.0.1', port: vol.enginePort, endpoint: vol.uri },
          }),
        ],
      });
      const sub = wsSubscribe(
        env,
        'subscription { volumeMetrics(name: "vol", intervalMs: 200) { volume at writeIOPS writeThroughput writeLatency } }',
      );
      try {
        const first = (await sub.next())!;
        expect(first.errors).toBeUndefined();
        expect(first.data!['volumeMetrics']).toMatchObject({ volume: VOL });
        const load = run(
          FIO,
          [
            '--name=w',
            '--ioengine=nbd',
            `--uri=${vol.uri}`,
            '--rw=randwrite',
            '--bs=4k',
            '--size=32M',
            '--time_based',
            '--runtime=3',
          ],
          { timeoutMs: 30_000 },
        );
        let busy: Record<string, number> | undefined;
        for (let i = 0; i < 40 && !busy; i++) {
          const m = (await sub.next())!.data!['volumeMetrics'] as Record<string, number>;
          if (m['writeIOPS']! > 0) busy = m;
        }
        expect(busy, 'a sample showing the fio writes').toBeDefined();
        expect(busy!['writeThroughput']).toBeGreaterThan(0);
        expect(busy!['writeLatency']).toBeGreaterThan(0);
        expect((await load).code).toBe(0);
        await setVolumeState(env, VOL, 'detached');
        let end: GqlResult | undefined;
        for (let i = 0; i < 20; i++) {
          end = await sub.next();
          if (!end || end.errors) break;
        }
        expect(end?.errors?.[0]?.message).toMatch(/no longer attached/);
      } finally {
        await sub.close();
      }
    } finally {
      await vol?.destroy();
    }
  });

  describe('tokens', () => {
    it('a non-loopback address without tokens refuses to start', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'shorthorn-api-'));
      const store = openSqliteStore(join(dir, 'shorthorn.db'));
      try {
        await expect(
          startApiServer({ host: '0.0.0.0', port: 0, store, api: new VolumeApi(store), logger: log }),
        ).rejects.toThrow(/refusing to serve the API on 0\.0\.0\.0.*without API tokens/);
      } finally {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('with tokens: anonymous and bad tokens are UNAUTHENTICATED; viewer reads, operator and admin act', async () => {
      const env = await start({ host: '0.0.0.0', roles: ['viewer', 'operator', 'admin'] });
      expect(env.server!.anonymousRole).toBeUndefined();
      const q = '{ volumes { name } }';
      for (const token of [undefined, 'shorthorn_nope', env.tokens.viewer!.slice(0, -1)]) {
        const r = await gql(env, q, {}, token);
        expect(r.status).toBe(401);
        expect(r.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
        expect(r.data ?? undefined).toBeUndefined();
      }
      expect(await gql(env, q, {}, env.tokens.viewer)).toMatchObject({ status: 200, data: { volumes: [] } });

      const create = (name: string) =>
        `mutation { createVolume(input: { name: "${name}", size: 1073741824, numberOfReplicas: 1 }) { __typename ... on Volume { name } } }`;
      const byViewer = await gql(env, create('v-viewer'), {}, env.tokens.viewer);
      expect(byViewer.errors?.[0]?.message).toMatch(/not authorized/i);
      expect(await env.store.get('Volume', 'v-viewer')).toBeUndefined();
      const byOperator = await gql(env, create('v-operator'), {}, env.tokens.operator);
      expect(byOperator.errors).toBeUndefined();
      expect(byOperator.data).toEqual({ createVolume: { __typename: 'Volume', name: 'v-operator' } });

      const setting = 'mutation { updateSetting(name: "default-replica-count", value: "2") { __typename } }';
      expect((await gql(env, setting, {}, env.tokens.operator)).errors?.[0]?.message).toMatch(/not authorized/i);
      const byAdmin = await gql(env, setting, {}, env.tokens.admin);
      expect(byAdmin.errors).toBeUndefined();
      expect((await env.store.get('Setting', 'default-replica-count'))!.spec.value).toBe('2');

      // A token made through the API works at once; only its hash is stored.
      const made = await gql(
        env,
        'mutation { createToken(role: viewer, description: "ci") { __typename ... on CreatedToken { token apiToken { name role } } } }',
        {},
        env.tokens.admin,
      );
      const token = (made.data!['createToken'] as { token: string }).token;
      expect(token).toMatch(/^shorthorn_/);
      const stored = JSON.stringify((await env.store.list('ApiToken')).items);
      expect(stored).not.toContain(token);
      expect(await gql(env, q, {}, token)).toMatchObject({ status: 200, data: { volumes: [{ name: 'v-operator' }] } });
      expect(
        (await gql(env, 'mutation { createToken(role: admin) { __typename } }', {}, token)).errors?.[0]?.message,
      ).toMatch(/not authorized/i);
    });

    it('subscriptions need a valid token too (SSE and WebSocket)', async () => {
      const env = await start({ roles: ['viewer'], items: [volume()] });
      expect(env.server!.anonymousRole).toBeUndefined(); // loopback, but tokens exist
      const bad = sse(env, VOLUME_CHANGED, { name: VOL }, 'shorthorn_bad');
      try {
        expect((await bad.next())?.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      } finally {
        await bad.close();
      }
      const badWs = wsSubscribe(env, VOLUME_CHANGED, { name: VOL });
      try {
        expect((await badWs.next())?.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      } finally {
        await badWs.close();
      }
      const ok = wsSubscribe(env, VOLUME_CHANGED, { name: VOL }, env.tokens.viewer);
      try {
        expect((await ok.next())!.data).toEqual({
          volumeChanged: { name: VOL, state: 'creating', robustness: 'unknown' },
        });
      } finally {
        await ok.close();
      }
    });
  });
});
