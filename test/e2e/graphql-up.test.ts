// End to end on a real `shorthorn up --nodes 3`, through its GraphQL API alone (issue 5): create →
// attach → fio write+verify on status.endpoint → SIGKILL a replica process (the only thing done
// outside GraphQL: its PID comes from the node's instance manager) → a volumeChanged subscriber, open
// for the whole test, sees degraded then healthy → the fio data still verifies → snapshot, overwrite,
// detach, revert, attach: the content is the snapshot's → delete, and the subscription ends.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ShorthornProcess, startShorthorn } from '../../cli/child-process.js';
import { InstanceManagerClient } from '../../dataplane/instance-manager/instance-manager-client.js';
import { requireTool } from '../helpers/tools.js';
import { FIO, fio, fioProblems, MiB, PYTHON, python, sleep, waitFor } from '../helpers/volume-tools.js';

// biome-ignore lint/suspicious/noExplicitAny: GraphQL answers are checked field by field
type Json = any;

interface UpReady {
  ready: true;
  api: string;
  nodes: { name: string; instanceManager: string; pid: number; adopted: boolean }[];
  pid: number;
}

interface Run {
  root: string;
  tag: string;
  ups: ShorthornProcess[];
  nodePids: Set<number>;
  closers: (() => Promise<void>)[];
}

let current: Run | undefined;

const NODES = 3;
const VOL = 'gv';
const ERR = '... on Error { __typename code message }';

function killGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // gone already, or not a group leader
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Live processes carrying the run's tag in their environment (up, its nodes, their engines and replicas). */
function taggedPids(run: Run): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').includes(`SHORTHORN_UP_TEST_TAG=${run.tag}`))
        if (pidAlive(Number(entry))) found.push(Number(entry));
    } catch {
      // gone, or another user's
    }
  }
  return found;
}

afterEach(async () => {
  const run = current;
  current = undefined;
  if (!run) return;
  for (const close of run.closers) await close().catch(() => {});
  for (const up of run.ups) killGroup(up.pid);
  for (const pid of run.nodePids) killGroup(pid);
  for (let i = 0; i < 5; i++) {
    const left = taggedPids(run);
    if (left.length === 0) break;
    for (const pid of left) killGroup(pid);
    await sleep(200);
  }
  await Promise.all(run.ups.map((u) => u.exited));
  if (!process.env['SHORTHORN_KEEP_TEST_DIRS']) rmSync(run.root, { recursive: true, force: true });
});

function tryListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/**
 * A base port P for `up --nodes n`: P (the API) and P+1…P+n (instance managers) free, and the start of
 * each node's instance range P+1000·i… free too (the instance managers probe the rest themselves).
 */
async function upBasePort(n: number): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 20000 + Math.floor(Math.random() * (60000 - 1000 * (n + 1) - 20000));
    const ports = Array.from({ length: n + 1 }, (_, i) => base + i);
    for (let i = 1; i <= n; i++) for (let j = 0; j < 16; j++) ports.push(base + 1000 * i + j);
    let ok = true;
    for (const p of ports) {
      ok = await tryListen(p);
      if (!ok) break;
    }
    if (ok) return base;
  }
  throw new Error(`no free base port for up --nodes ${n}`);
}

/** `up` on free ports; a start that fails on a port taken meanwhile is retried on another base. */
async function startUp(run: Run): Promise<{ up: ShorthornProcess; ready: UpReady }> {
  for (let attempt = 1; ; attempt++) {
    const dataDir = join(run.root, `data-${attempt}`);
    const args = ['up', '--data-dir', dataDir, '--port', String(await upBasePort(NODES)), '--nodes', String(NODES)];
    try {
      const up = await startShorthorn(args, {
        ownProcessGroup: true,
        timeoutMs: 120_000,
        env: { SHORTHORN_UP_TEST_TAG: run.tag },
      });
      run.ups.push(up);
      const ready = up.ready as unknown as UpReady;
      for (const node of ready.nodes) run.nodePids.add(node.pid);
      return { up, ready };
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE|address already in use|cannot listen/i.test((err as Error).message)) throw err;
      for (const pid of taggedPids(run)) killGroup(pid);
    }
  }
}

/** fio with crc32c verify headers on [0, 16M) of the volume; `--verify_only` re-checks them later. */
function fioArgs(uri: string, extra: string[] = []): string[] {
  return [
    '--ioengine=nbd',
    `--uri=${uri}`,
    '--name=gup',
    '--rw=randwrite',
    '--bs=4k',
    '--offset=0',
    '--size=16M',
    '--iodepth=4',
    '--verify=crc32c',
    '--randseed=4242',
    ...extra,
  ];
}

const PATTERN_AT = 32 * MiB;
const PATTERN_LEN = 4 * MiB;

/** Writes byte `fill` over [32M, 36M) when given, then prints the sha256 of that range. */
async function pattern(uri: string, fill?: number): Promise<string> {
  const write = fill === undefined ? '' : `h.pwrite(bytes([${fill}]) * ${PATTERN_LEN}, ${PATTERN_AT})\nh.flush()\n`;
  const r = await python(
    `import nbd, sys, hashlib\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\n${write}print(hashlib.sha256(h.pread(${PATTERN_LEN}, ${PATTERN_AT})).hexdigest())\nh.shutdown()`,
    [uri],
  );
  if (r.code !== 0) throw new Error(`nbd on ${uri} failed:\n${r.stderr}`);
  return r.stdout.trim();
}

interface VolumeEvent {
  at: number;
  state: string;
  robustness: string;
  endpoint: string;
}

/**
 * volumeChanged over SSE (fetch, `accept: text/event-stream`), collecting every value it sends;
 * `ended` resolves when the server completes the stream (the volume was deleted).
 */
function subscribeVolume(url: string, name: string) {
  const ctl = new AbortController();
  const seen: VolumeEvent[] = [];
  const errors: unknown[] = [];
  let ended = false;
  const done = (async () => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({
        query: 'subscription($name: String!) { volumeChanged(name: $name) { state robustness endpoint } }',
        variables: { name },
      }),
      signal: ctl.signal,
    });
    if (res.status !== 200) throw new Error(`subscription answered HTTP ${res.status}: ${await res.text()}`);
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
        if (event === 'next') {
          const payload = JSON.parse(data) as Json;
          if (payload.errors) errors.push(payload.errors);
          else seen.push({ at: Date.now(), ...payload.data.volumeChanged });
        }
        if (event === 'complete') ended = true;
      }
    }
    ended = true;
  })().catch((err: unknown) => {
    if (!ctl.signal.aborted) errors.push(err);
  });
  return {
    seen,
    errors,
    ended: () => ended,
    /** Index of the first value at or after `from` that `match`es, once one arrived (else -1 after `ms`). */
    async waitSeen(what: string, match: (e: VolumeEvent) => boolean, from: number, ms: number): Promise<number> {
      const find = () => seen.findIndex((e, i) => i >= from && match(e));
      await waitFor(() => find() >= 0 || errors.length > 0, ms, 100);
      const i = find();
      if (i < 0)
        throw new Error(
          `volumeChanged: ${what} not seen within ${ms} ms after #${from}; seen: ${JSON.stringify(seen.map(({ state, robustness }) => [state, robustness]))}; errors: ${JSON.stringify(errors, Object.getOwnPropertyNames)}`,
        );
      return i;
    },
    close: async () => {
      ctl.abort();
      await done;
    },
  };
}

describe('GraphQL on shorthorn up --nodes 3', () => {
  it('create, attach, fio, replica killed → degraded → healthy, snapshot/detach/revert/attach, delete — over GraphQL alone', async () => {
    requireTool(FIO);
    requireTool(PYTHON);
    const nbdCheck = await python('import nbd; print(nbd.NBD().get_version())');
    expect(nbdCheck.code, `python3 has no libnbd module (python3-libnbd):\n${nbdCheck.stderr}`).toBe(0);

    const run: Run = {
      root: mkdtempSync(join(tmpdir(), 'shorthorn-gql-up-')),
      tag: randomUUID(),
      ups: [],
      nodePids: new Set(),
      closers: [],
    };
    current = run;
    const t0 = Date.now();
    const { up, ready } = await startUp(run);
    expect(ready.api).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/graphql$/);
    expect(ready.nodes.map((n) => n.name)).toEqual(['node-1', 'node-2', 'node-3']);
    const upLog = () =>
      up
        .logs()
        .split('\n')
        .filter((l) => /"level":(40|50)/.test(l))
        .slice(-30)
        .join('\n');

    const gql = async (query: string, variables?: Record<string, unknown>): Promise<Json> => {
      const res = await fetch(ready.api, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(15_000),
      });
      const body = (await res.json()) as Json;
      if (body.errors) throw new Error(`GraphQL errors for ${query}: ${JSON.stringify(body.errors)}`);
      return body.data;
    };
    /** A mutation whose typed result must be `typename` (else the error it answered is the failure). */
    const mutate = async (field: string, query: string, typename = 'Volume'): Promise<Json> => {
      const data = await gql(query);
      expect(data[field], `${field}: ${JSON.stringify(data[field])}`).toMatchObject({ __typename: typename });
      return data[field];
    };
    const volumeQuery = async () =>
      (
        await gql(
          'query($n: String!) { volume(name: $n) { state robustness endpoint currentNodeID replicas { name nodeID currentState } } }',
          { n: VOL },
        )
      ).volume;

    // Subscribed before the volume exists: it sends the volume as soon as it is created.
    const sub = subscribeVolume(ready.api, VOL);
    run.closers.push(sub.close);

    const setting = await mutate(
      'updateSetting',
      `mutation { updateSetting(name: "replica-replenishment-wait-interval", value: "1") { __typename ... on Setting { name value } ${ERR} } }`,
      'Setting',
    );
    expect(setting).toMatchObject({ name: 'replica-replenishment-wait-interval', value: '1' });

    // The nodes were registered just now; the scheduler refuses until they are Ready and Schedulable.
    let created: Json;
    const schedulable = await waitFor(async () => {
      created = (
        await gql(
          `mutation { createVolume(input: {name: "${VOL}", size: ${64 * MiB}, numberOfReplicas: 3}) { __typename ... on Volume { name numberOfReplicas } ${ERR} } }`,
        )
      ).createVolume;
      return created.__typename === 'Volume';
    }, 60_000);
    expect(schedulable, `createVolume: ${JSON.stringify(created)}`).toBe(true);
    expect(created).toMatchObject({ name: VOL, numberOfReplicas: 3 });
    await sub.waitSeen('detached', (e) => e.state === 'detached', 0, 60_000);

    await mutate('attachVolume', `mutation { attachVolume(name: "${VOL}", node: "node-1") { __typename ${ERR} } }`);
    const attachedAt = await sub.waitSeen(
      'attached, healthy, with an endpoint',
      (e) => e.state === 'attached' && e.robustness === 'healthy' && e.endpoint !== '',
      0,
      90_000,
    );
    const uri = sub.seen[attachedAt]!.endpoint;
    expect(uri).toMatch(new RegExp(`^nbd://127\\.0\\.0\\.1:\\d+/${VOL}$`));
    const attached = await volumeQuery();
    expect(attached).toMatchObject({
      state: 'attached',
      robustness: 'healthy',
      endpoint: uri,
      currentNodeID: 'node-1',
    });
    expect(new Set(attached.replicas.map((r: Json) => r.nodeID))).toEqual(new Set(['node-1', 'node-2', 'node-3']));

    const written = await fio(fioArgs(uri));
    expect(fioProblems(written, { expectJobs: 1 })).toEqual([]);

    // Fault: SIGKILL the replica process on node-2 (not the engine's node), found through its instance manager.
    const victim = attached.replicas.find((r: Json) => r.nodeID === 'node-2');
    const im = new InstanceManagerClient(ready.nodes.find((n) => n.name === 'node-2')!.instanceManager);
    let victimPid: number;
    try {
      const inst = (await im.list()).find(
        (i) => i.type === 'replica' && i.volumeName === VOL && i.name === victim.name && i.state === 'running',
      );
      expect(inst, `no running replica ${victim.name} on node-2`).toBeDefined();
      victimPid = inst!.pid;
    } finally {
      im.close();
    }
    expect(pidAlive(victimPid)).toBe(true);
    const beforeKill = sub.seen.length;
    const killedAt = Date.now();
    process.kill(victimPid, 'SIGKILL');
    const degradedAt = await sub
      .waitSeen('degraded', (e) => e.robustness === 'degraded', beforeKill, 30_000)
      .catch((err: Error) => {
        throw new Error(`${err.message}\n${upLog()}`);
      });
    const healedAt = await sub
      .waitSeen('healthy again', (e) => e.robustness === 'healthy', degradedAt, 120_000)
      .catch((err: Error) => {
        throw new Error(`${err.message}\n${upLog()}`);
      });
    const healMs = sub.seen[healedAt]!.at - killedAt;
    expect(sub.seen[healedAt]).toMatchObject({ state: 'attached', endpoint: uri });
    const healed = await volumeQuery();
    expect(healed).toMatchObject({ state: 'attached', robustness: 'healthy', endpoint: uri });
    const running = healed.replicas.filter((r: Json) => r.currentState === 'running');
    expect(new Set(running.map((r: Json) => r.nodeID))).toEqual(new Set(['node-1', 'node-2', 'node-3']));
    const reused = running.some((r: Json) => r.name === victim.name);

    const verified = await fio(fioArgs(uri, ['--verify_only', '--verify_fatal=1']));
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.jobs[0]?.read.io_bytes).toBeGreaterThan(0);

    // Snapshot a known pattern, overwrite it, detach, revert, attach: the snapshot's pattern is back.
    const shaA = await pattern(uri, 0xa5);
    await mutate(
      'createSnapshot',
      `mutation { createSnapshot(volume: "${VOL}", name: "snap-a") { __typename ... on Snapshot { name } ${ERR} } }`,
      'Snapshot',
    );
    const snapReady = await waitFor(async () => {
      const s = (await gql(`{ snapshots(volume: "${VOL}") { name readyToUse } }`)).snapshots as Json[];
      return s.some((x) => x.name === 'snap-a' && x.readyToUse);
    }, 30_000);
    expect(snapReady, upLog()).toBe(true);
    const shaB = await pattern(uri, 0x5a);
    expect(shaB).not.toBe(shaA);

    const beforeDetach = sub.seen.length;
    await mutate('detachVolume', `mutation { detachVolume(name: "${VOL}") { __typename ${ERR} } }`);
    await sub.waitSeen('detached', (e) => e.state === 'detached' && e.endpoint === '', beforeDetach, 60_000);
    const revert = await mutate(
      'revertSnapshot',
      `mutation { revertSnapshot(volume: "${VOL}", name: "snap-a") { __typename ... on Volume { revertRequestedTo } ${ERR} } }`,
    );
    expect(revert.revertRequestedTo).toBe('snap-a');
    const reverted = await waitFor(
      async () => (await gql(`{ volume(name: "${VOL}") { revertRequestedTo } }`)).volume.revertRequestedTo === null,
      90_000,
    );
    expect(reverted, `revert not done\n${upLog()}`).toBe(true);
    const beforeReattach = sub.seen.length;
    await mutate('attachVolume', `mutation { attachVolume(name: "${VOL}", node: "node-1") { __typename ${ERR} } }`);
    const backAt = await sub.waitSeen(
      'attached again',
      (e) => e.state === 'attached' && e.robustness === 'healthy' && e.endpoint !== '',
      beforeReattach,
      90_000,
    );
    const uri2 = sub.seen[backAt]!.endpoint;
    expect(await pattern(uri2)).toBe(shaA);
    // The fio data written before the snapshot is in it too.
    const verified2 = await fio(fioArgs(uri2, ['--verify_only', '--verify_fatal=1']));
    expect(verified2.code, verified2.stderr).toBe(0);

    // Delete (detached first): the volume goes, and its subscription ends.
    const beforeFinalDetach = sub.seen.length;
    await mutate('detachVolume', `mutation { detachVolume(name: "${VOL}") { __typename ${ERR} } }`);
    await sub.waitSeen('detached', (e) => e.state === 'detached', beforeFinalDetach, 60_000);
    await mutate('deleteVolume', `mutation { deleteVolume(name: "${VOL}") { __typename ${ERR} } }`);
    const gone = await waitFor(async () => (await gql(`{ volume(name: "${VOL}") { name } }`)).volume === null, 60_000);
    expect(gone, `volume ${VOL} still there\n${upLog()}`).toBe(true);
    expect(await waitFor(sub.ended, 10_000, 100), 'volumeChanged did not end on delete').toBe(true);
    expect(sub.errors).toEqual([]);

    const robustness = sub.seen.map((e) => e.robustness).filter((r, i, all) => i === 0 || all[i - 1] !== r);
    console.log(
      `graphql-up: ${Date.now() - t0} ms in all; healthy again ${healMs} ms after the kill (${reused ? 'replica reused' : 'new replica'}); ` +
        `${sub.seen.length} volumeChanged values, robustness ${robustness.join(' → ')}`,
    );
  }, 180_000);
});
