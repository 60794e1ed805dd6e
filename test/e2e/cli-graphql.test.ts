// The `shorthorn` CLI as a GraphQL client, end to end: a real control plane (2 nodes, real instance
// managers, engines and replicas) served by startApiServer on a free loopback port, driven only through
// the real binary with --server: volume create/ls/attach/get/detach/delete, snapshots through
// --volume, settings, events --follow, typed errors (exit 1, the code on stderr) and bearer tokens.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SHORTHORN_BIN } from '../../cli/child-process.js';
import { createApiToken } from '../../resolvers/tokens.js';
import { type ApiServer, startApiServer } from '../../schema/server.js';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { shorthorn, shorthornJson } from '../helpers/engine-api.js';
import { startTool } from '../helpers/tools.js';
import { waitFor } from '../helpers/volume-tools.js';

let cp: TestControlPlane | undefined;
let server: ApiServer | undefined;
let S: string[] = [];
const started: ReturnType<typeof startTool>[] = [];

beforeAll(async () => {
  cp = await startControlPlane({ nodes: 2 });
  server = await startApiServer({
    host: '127.0.0.1',
    port: 0,
    store: cp.store,
    api: cp.manager.api,
    logger: pino({ level: 'silent' }),
  });
  S = ['--server', server.url];
}, 90_000);

afterAll(async () => {
  for (const p of started) await p.kill();
  await server?.close();
  await cp?.stop();
}, 60_000);

/** `shorthorn ARGS` as a long-running process (events --follow), killed in afterAll at the latest. */
function startShorthornCli(args: string[]) {
  const p = startTool(process.execPath, [SHORTHORN_BIN, ...args]);
  started.push(p);
  return p;
}

// biome-ignore lint/suspicious/noExplicitAny: CLI JSON is checked field by field
type Json = any;

describe('shorthorn CLI over GraphQL', () => {
  it('volume create, ls, attach, get, snapshots by --volume, events --follow, detach, delete', async () => {
    const created = await shorthornJson<Json>([
      'volume',
      'create',
      'cli-vol',
      '--size',
      '64Mi',
      '--replicas',
      '2',
      ...S,
      '-o',
      'json',
    ]);
    expect(created).toMatchObject({ name: 'cli-vol', size: 64 * 1024 * 1024, numberOfReplicas: 2 });

    const table = await shorthorn(['volume', 'ls', ...S]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^NAME\s+STATE\s+ROBUSTNESS\s+SIZE/);
    expect(table.stdout).toMatch(/cli-vol\s+\S+\s+\S+\s+64Mi/);
    const list = await shorthornJson<Json[]>(['volume', 'ls', ...S, '-o', 'json']);
    expect(list.map((v) => v.name)).toEqual(['cli-vol']);

    // Following before the attach: the Attached event happens after it started and must show up.
    const follow = startShorthornCli(['events', '--follow', '--kind', 'Volume', '--name', 'cli-vol', ...S]);
    await waitFor(async () => follow.output().stdout.includes('LAST SEEN'), 30_000);

    const attach = await shorthorn(['volume', 'attach', 'cli-vol', '--node', 'node-1', '--wait', ...S]);
    expect(attach.code, attach.stderr).toBe(0);
    expect(attach.stdout).toMatch(/attached on node-1: nbd:\/\//);

    const got = await shorthornJson<Json>(['volume', 'get', 'cli-vol', ...S, '-o', 'json']);
    expect(got.state).toBe('attached');
    expect(got.endpoint).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\//);
    expect(got.replicas).toHaveLength(2);
    const detail = await shorthorn(['volume', 'get', 'cli-vol', ...S]);
    expect(detail.code, detail.stderr).toBe(0);
    expect(detail.stdout).toContain(got.endpoint);

    try {
      await waitFor(async () => /Attached\s+Volume\/cli-vol/.test(follow.output().stdout), 30_000);
    } catch (err) {
      throw new Error(`events --follow did not print the Attached event:\n${JSON.stringify(follow.output())}`, {
        cause: err,
      });
    }
    follow.child.kill('SIGTERM');
    expect(await follow.exited).toBe(0);

    // Snapshots through the API (no --engine): a Snapshot resource the controllers take.
    const snap = await shorthornJson<Json>([
      'snapshot',
      '--volume',
      'cli-vol',
      ...S,
      '-o',
      'json',
      'create',
      'cli-snap',
      '--label',
      'why=test',
    ]);
    expect(snap).toMatchObject({ name: 'cli-snap', volumeName: 'cli-vol', labels: { why: 'test' } });
    await waitFor(async () => {
      const snaps = await shorthornJson<Json[]>(['snapshot', 'ls', '--volume', 'cli-vol', ...S, '-o', 'json']);
      return snaps.some((s) => s.name === 'cli-snap' && s.creationTime !== null);
    }, 30_000);
    const snapTable = await shorthorn(['snapshot', 'ls', '--volume', 'cli-vol', ...S]);
    expect(snapTable.code, snapTable.stderr).toBe(0);
    expect(snapTable.stdout).toMatch(/cli-snap\s+user\s+/);
    expect(snapTable.stdout).toContain('why=test');
    // Neither --engine nor --volume: told what to give.
    const neither = await shorthorn(['snapshot', 'ls', ...S]);
    expect(neither.code).toBe(1);
    expect(neither.stderr).toMatch(/--engine HOST:PORT.*--volume NAME/);

    const detach = await shorthorn(['volume', 'detach', 'cli-vol', '--wait', ...S]);
    expect(detach.code, detach.stderr).toBe(0);
    expect((await shorthornJson<Json>(['volume', 'get', 'cli-vol', ...S, '-o', 'json'])).endpoint).toBe('');

    const del = await shorthorn(['volume', 'delete', 'cli-vol', '--wait', ...S]);
    expect(del.code, del.stderr).toBe(0);
    expect(await shorthornJson<Json[]>(['volume', 'ls', ...S, '-o', 'json'])).toEqual([]);
  }, 240_000);

  it('typed errors exit 1 with their code on stderr; node and setting lists', async () => {
    const nodes = await shorthornJson<Json[]>(['node', 'ls', ...S, '-o', 'json']);
    expect(nodes.map((n) => n.name).sort()).toEqual(['node-1', 'node-2']);
    const nodeTable = await shorthorn(['node', 'ls', ...S]);
    expect(nodeTable.stdout).toMatch(/node-1\s+yes\s+yes/);

    const settings = await shorthorn(['setting', 'ls', ...S]);
    expect(settings.code, settings.stderr).toBe(0);
    expect(settings.stdout).toMatch(/default-replica-count\s+\d+/);

    const bad = await shorthorn(['setting', 'set', 'default-replica-count', 'abc', ...S]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/ValidationError: .*default-replica-count.*whole number/);
    const good = await shorthornJson<Json>(['setting', 'set', 'default-replica-count', '2', ...S, '-o', 'json']);
    expect(good).toMatchObject({ name: 'default-replica-count', value: '2' });

    const unknown = await shorthorn(['volume', 'get', 'no-such-volume', ...S]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/NotFound: .*no-such-volume/);
    // A mutation's typed result, not a client-side check.
    const detachUnknown = await shorthorn(['volume', 'detach', 'no-such-volume', ...S]);
    expect(detachUnknown.code).toBe(1);
    expect(detachUnknown.stderr).toMatch(/NotFound: .*no-such-volume/);
    const badSize = await shorthorn(['volume', 'create', 'odd', '--size', '1000', ...S]);
    expect(badSize.code).toBe(1);
    expect(badSize.stderr).toMatch(/ValidationError: /);

    const unreachable = await shorthorn(['volume', 'ls', '--server', 'http://127.0.0.1:1/graphql']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/UNREACHABLE: cannot reach/);
  }, 120_000);

  it('backup target set and show; recurring-job create, ls, rm', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shorthorn-cli-backups-'));
    try {
      const set = await shorthorn(['backup', 'target', 'set', `file://${dir}`, '--poll-interval', '0', ...S]);
      expect(set.code, set.stderr).toBe(0);
      const target = await shorthornJson<Json>(['backup', 'target', ...S, '-o', 'json']);
      expect(target).toMatchObject({ name: 'default', url: `file://${dir}`, pollInterval: 0, credentialKeys: [] });
      const shown = await shorthorn(['backup', 'target', ...S]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toMatch(new RegExp(`url\\s+file://${dir}`));
      const bad = await shorthorn(['backup', 'target', 'set', 'http://example.com/backups', ...S]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/ValidationError: url: /);
      const cleared = await shorthorn(['backup', 'target', 'set', '', ...S, '-o', 'json']);
      expect(cleared.code, cleared.stderr).toBe(0);
      expect(JSON.parse(cleared.stdout).url).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    const created = await shorthornJson<Json>([
      'recurring-job',
      'create',
      'cli-hourly',
      '--task',
      'snapshot',
      '--cron',
      '0 * * * *',
      '--retain',
      '2',
      '--group',
      'gold',
      ...S,
      '-o',
      'json',
    ]);
    expect(created).toMatchObject({
      name: 'cli-hourly',
      task: 'snapshot',
      cron: '0 * * * *',
      retain: 2,
      groups: ['gold'],
    });
    const badCron = await shorthorn([
      'recurring-job',
      'create',
      'cli-bad',
      '--task',
      'snapshot',
      '--cron',
      '0 * *',
      ...S,
    ]);
    expect(badCron.code).toBe(1);
    expect(badCron.stderr).toMatch(/ValidationError: cron: /);
    const ls = await shorthorn(['recurring-job', 'ls', ...S]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/cli-hourly\s+snapshot\s+0 \* \* \* \*\s+2\s+1\s+gold/);
    const rm = await shorthorn(['recurring-job', 'rm', 'cli-hourly', ...S]);
    expect(rm.code, rm.stderr).toBe(0);
    expect(await shorthornJson<Json[]>(['recurring-job', 'ls', ...S, '-o', 'json'])).toEqual([]);
  }, 120_000);

  it('node ls --watch prints the list again when a node changes, until stopped', async () => {
    const watch = startShorthornCli(['node', 'ls', '--watch', ...S, '-o', 'json']);
    const lines = () =>
      watch
        .output()
        .stdout.split('\n')
        .filter((l) => l.startsWith('['))
        .map((l) => JSON.parse(l) as Json[]);
    expect(await waitFor(() => lines().length >= 1, 30_000), JSON.stringify(watch.output())).toBe(true);
    expect(lines()[0]!.find((n: Json) => n.name === 'node-2')?.allowScheduling).toBe(true);
    const upd = await shorthorn(['node', 'update', 'node-2', '--allow-scheduling', 'false', ...S]);
    expect(upd.code, upd.stderr).toBe(0);
    const changed = await waitFor(
      () => lines().some((l) => l.find((n: Json) => n.name === 'node-2')?.allowScheduling === false),
      30_000,
    );
    expect(changed, watch.output().stdout).toBe(true);
    watch.child.kill('SIGTERM');
    // It must end on its own after SIGTERM (a re-list after the subscriptions ended kept it alive once).
    const code = await Promise.race([watch.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
    expect(code, watch.output().stderr).toBe(0);
    const back = await shorthorn(['node', 'update', 'node-2', '--allow-scheduling', 'true', ...S]);
    expect(back.code, back.stderr).toBe(0);
  });

  it('a server that needs tokens: a bad token is UNAUTHENTICATED (HTTP and WebSocket), a good one works', async () => {
    const { token } = await createApiToken(cp!.store, { role: 'viewer' });
    const secured = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      store: cp!.store,
      api: cp!.manager.api,
      logger: pino({ level: 'silent' }),
      requireTokens: true,
    });
    try {
      const T = ['--server', secured.url];
      for (const args of [
        ['volume', 'ls', ...T, '--token', 'sh_not-a-token'],
        ['volume', 'ls', ...T],
        // A subscription only: refused over the WebSocket.
        ['volume', 'rebuild-status', 'any', ...T, '--token', 'sh_not-a-token'],
      ]) {
        const r = await shorthorn(args, 30_000);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr).toMatch(/UNAUTHENTICATED/);
      }
      const ok = await shorthorn(['node', 'ls', ...T, '--token', token, '-o', 'json']);
      expect(ok.code, ok.stderr).toBe(0);
      // The WebSocket with a good token: a viewer may subscribe.
      const follow = startShorthornCli(['events', '--follow', '--limit', '0', ...T, '--token', token]);
      await waitFor(async () => follow.output().stdout.includes('LAST SEEN'), 30_000);
      // A viewer may not change settings.
      const refused = await shorthorn(['setting', 'set', 'default-replica-count', '3', ...T, '--token', token]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/FORBIDDEN|not authorized/i);
      expect(follow.child.exitCode, follow.output().stderr).toBe(null);
      follow.child.kill('SIGTERM');
      expect(await follow.exited).toBe(0);
      expect(follow.output().stderr).toBe('');
    } finally {
      await secured.close();
    }
  }, 120_000);
});
