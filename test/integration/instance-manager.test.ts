// `shorthorn instance-manager` as a real process, driven through InstanceManagerClient: it starts real
// replica and engine processes, reports their failures, survives its own SIGKILL without touching
// volume I/O (the next one adopts the processes), and takes them down with it when its whole process
// group dies (the node going down) or when it is stopped cleanly.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ShorthornProcess, startShorthorn } from '../../cli/child-process.js';
import { unary } from '../../dataplane/grpc/unary.js';
import {
  type InstanceCreateSpec,
  type InstanceInfo,
  InstanceManagerClient,
} from '../../dataplane/instance-manager/instance-manager-client.js';
import { processAlive, processStartTime } from '../../dataplane/instance-manager/proc-info.js';
import { InstanceServiceClient, type InstanceType } from '../../dataplane/proto/gen/instance.js';
import { freePorts } from '../helpers/ports.js';
import { MiB, python, sleep, waitFor } from '../helpers/volume-tools.js';

const SIZE = 32 * MiB;

interface Manager {
  proc: ShorthornProcess;
  client: InstanceManagerClient;
  dataDir: string;
  address: string;
}

const root = mkdtempSync(join(tmpdir(), 'shorthorn-im-test-'));
// Every process a test saw (instance managers and instances), PID → start time, killed in afterAll.
const seen = new Map<number, string>();
const clients: InstanceManagerClient[] = [];
const managers: ShorthornProcess[] = [];

function track(...instances: InstanceInfo[]): void {
  for (const i of instances) if (i.pid && !seen.has(i.pid)) seen.set(i.pid, processStartTime(i.pid));
}

async function startManager(dataDir: string, portRange: string, listenPort?: number): Promise<Manager> {
  const port = listenPort ?? (await freePorts(1));
  const address = `127.0.0.1:${port}`;
  // Its own process group, as on a node: the test can kill the group (the node going down) or it alone.
  const proc = await startShorthorn(
    ['instance-manager', '--node', 'node-1', '--listen', address, '--data-dir', dataDir, '--port-range', portRange],
    { ownProcessGroup: true },
  );
  seen.set(proc.pid, processStartTime(proc.pid));
  managers.push(proc);
  const client = new InstanceManagerClient(address);
  clients.push(client);
  return { proc, client, dataDir, address };
}

async function portRange(count: number): Promise<string> {
  const base = await freePorts(count);
  return `${base}-${base + count - 1}`;
}

function replica(name: string, dir: string, volume = 'vol'): InstanceCreateSpec {
  return { name, type: 'replica', volumeName: volume, volumeSize: SIZE, dataDir: dir };
}

async function create(m: Manager, spec: InstanceCreateSpec): Promise<InstanceInfo> {
  const info = await m.client.create(spec);
  track(info);
  return info;
}

/** Write a block at `offset` through the engine's NBD endpoint and read it back. */
function nbdWriteRead(uri: string, offset: number, byte: number) {
  return python(
    `import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\noff = int(sys.argv[2])\ndata = bytes([int(sys.argv[3])]) * 65536\nh.pwrite(data, off)\nh.flush()\nassert h.pread(65536, off) == data\nh.shutdown()`,
    [uri, String(offset), String(byte)],
  );
}

function nbdRead(uri: string, offset: number, byte: number) {
  return python(
    `import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nassert h.pread(65536, int(sys.argv[2])) == bytes([int(sys.argv[3])]) * 65536\nh.shutdown()`,
    [uri, String(offset), String(byte)],
  );
}

function pidGone(pid: number): boolean {
  return !processAlive(pid, seen.get(pid) ?? processStartTime(pid));
}

function grpcCode(err: unknown): number | undefined {
  return (err as Partial<ServiceError>).code;
}

afterAll(async () => {
  for (const c of clients) c.close();
  // A live manager's group also holds any instance whose create never answered (so was never seen).
  for (const p of managers) {
    if (processAlive(p.pid, seen.get(p.pid) ?? '')) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  // By PID and start time (never a PID that now names another process), SIGKILL, bounded wait.
  for (const [pid, startTime] of seen) {
    if (processAlive(pid, startTime)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
  }
  await waitFor(() => [...seen].every(([pid, st]) => !processAlive(pid, st)), 5000, 100);
  rmSync(root, { recursive: true, force: true });
});

describe('instance manager: replicas and an engine', () => {
  let m: Manager;
  let range: string;
  const lists: InstanceInfo[][] = [];
  let watch: { stop(): void } | undefined;
  let r1: InstanceInfo;
  let r2: InstanceInfo;
  let e1: InstanceInfo;

  beforeAll(async () => {
    range = await portRange(20);
    m = await startManager(join(root, 'im-a'), range);
    watch = m.client.watch(
      (l) => lists.push(l),
      () => {},
    );
  });
  afterAll(() => watch?.stop());

  it('starts two replicas and an engine whose NBD endpoint serves data; watch reports every state', async () => {
    r1 = await create(m, replica('r1', join(root, 'r1')));
    r2 = await create(m, replica('r2', join(root, 'r2')));
    e1 = await create(m, {
      name: 'e1',
      type: 'engine',
      volumeName: 'vol',
      volumeSize: SIZE,
      replicaAddresses: [r1.endpoint, r2.endpoint],
    });
    for (const i of [r1, r2, e1]) expect(i, i.errorMsg).toMatchObject({ state: 'running' });
    expect(r1.endpoint).toBe(`tcp://127.0.0.1:${r1.port}`);
    expect(e1.endpoint).toBe(`nbd://127.0.0.1:${e1.port + 1}/vol`);
    // Pairs of ports, none shared.
    expect(new Set([r1.port, r1.port + 1, r2.port, r2.port + 1, e1.port, e1.port + 1]).size).toBe(6);

    for (let i = 0; i < 4; i++) {
      const w = await nbdWriteRead(e1.endpoint, i * MiB, 0x30 + i);
      expect(w.code, w.stderr).toBe(0);
    }

    expect((await m.client.list()).map((i) => i.name)).toEqual(['r1', 'r2', 'e1']);
    const e1States = lists.map((l) => l.find((i) => i.name === 'e1')?.state).filter(Boolean);
    expect(e1States).toContain('starting');
    expect(e1States.at(-1)).toBe('running');
    expect(await m.client.logs('e1')).toMatch(/"ready":true/);
    expect(await m.client.info()).toMatchObject({ node: 'node-1', pid: m.proc.pid, dataDir: m.dataDir });
    // Idempotent: creating a running instance again returns it, same process.
    expect((await m.client.create(replica('r1', join(root, 'r1')))).pid).toBe(r1.pid);
    expect(await m.client.get('nope')).toBeUndefined();
    expect(grpcCode(await m.client.delete('nope').catch((e: unknown) => e))).toBe(status.NOT_FOUND);
  });

  it('reports an instance that exits before it is ready as ERROR, with its last log lines', async () => {
    const notADir = join(root, 'not-a-dir');
    writeFileSync(notADir, 'a file where the replica directory should be\n');
    const failed = await create(m, replica('broken', notADir));
    expect(failed.state).toBe('error');
    expect(failed.errorMsg).toMatch(/exited with code 1 before it was ready; last log lines:\n/);
    expect(failed.errorMsg).toMatch(/not-a-dir/);
    expect(await m.client.delete('broken')).toMatchObject({ state: 'stopped' });
  });

  it('refuses bad specs with INVALID_ARGUMENT and a clear message, and starts nothing', async () => {
    const before = await m.client.list();
    const raw = new InstanceServiceClient(m.address, credentials.createInsecure());
    const unknownType = () =>
      unary(raw.instanceCreate, raw, {
        name: 'x1',
        type: 99 as InstanceType,
        volumeName: 'vol',
        volumeSize: SIZE,
        dataDir: join(root, 'x1'),
        replicaAddresses: [],
        ioTimeoutSeconds: 0,
        unmapMarkSnapChainRemoved: false,
      });
    const cases: [() => Promise<unknown>, RegExp][] = [
      [unknownType, /type must be ENGINE or REPLICA, got "type 99"/],
      [
        () => m.client.create({ name: 'x2', type: 'replica', volumeName: 'vol', volumeSize: SIZE }),
        /data_dir is required/,
      ],
      [() => m.client.create({ ...replica('x3', join(root, 'x3')), volumeSize: 0 }), /volume_size must be a positive/],
      [() => m.client.create(replica('../x4', join(root, 'x4'))), /name "\.\.\/x4" must be/],
      [
        () =>
          m.client.create({
            name: 'x5',
            type: 'engine',
            volumeName: 'vol',
            volumeSize: SIZE,
            replicaAddresses: ['h:5'],
          }),
        /expected tcp:\/\/HOST:PORT/,
      ],
    ];
    for (const [call, message] of cases) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(grpcCode(err), String(err)).toBe(status.INVALID_ARGUMENT);
      expect((err as Error).message).toMatch(message);
    }
    raw.close();
    expect(await m.client.list()).toEqual(before);
    for (const n of ['x1', 'x2', 'x3', 'x5']) expect(existsSync(join(m.dataDir, 'logs', `${n}.log`))).toBe(false);
    expect(existsSync(join(root, 'x1'))).toBe(false);
  });

  it('reports a replica that was SIGKILLed as ERROR, and a create replaces it on the same ports', async () => {
    const changes = lists.length;
    process.kill(r2.pid, 'SIGKILL');
    expect(await waitFor(async () => (await m.client.get('r2'))?.state === 'error', 10_000)).toBe(true);
    expect((await m.client.get('r2'))!.errorMsg).toMatch(/killed by SIGKILL/);
    expect(lists.slice(changes).some((l) => l.find((i) => i.name === 'r2')?.state === 'error')).toBe(true);
    const again = await create(m, replica('r2', join(root, 'r2')));
    expect(again).toMatchObject({ state: 'running', port: r2.port });
    expect(again.pid).not.toBe(r2.pid);
    r2 = again;
  });

  it('keeps NBD serving while the instance manager is SIGKILLed; the next one adopts and can delete', async () => {
    // A client doing I/O across the whole gap.
    const load = python(
      `import nbd, sys, time\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nend = time.time() + 4\ni = 0\nwhile time.time() < end:\n    off = 8388608 + (i % 64) * 4096\n    data = bytes([i % 256]) * 4096\n    h.pwrite(data, off)\n    assert h.pread(4096, off) == data\n    i += 1\nh.flush()\nh.shutdown()\nprint(i)`,
      [e1.endpoint],
    );
    await sleep(500);
    await m.proc.kill9();
    const during = await nbdWriteRead(e1.endpoint, 4 * MiB, 0x77);
    expect(during.code, during.stderr).toBe(0);
    const loaded = await load;
    expect(loaded.code, loaded.stderr).toBe(0);
    expect(Number(loaded.stdout)).toBeGreaterThan(0);
    for (const i of [r1, r2, e1]) expect(pidGone(i.pid), i.name).toBe(false);
    const stateFile = JSON.parse(readFileSync(join(m.dataDir, 'instances.json'), 'utf8')) as {
      instances: { name: string; pid: number; startTime: string }[];
    };
    expect(stateFile.instances.map((i) => [i.name, i.pid])).toEqual([
      ['r1', r1.pid],
      ['r2', r2.pid],
      ['e1', e1.pid],
    ]);

    const next = await startManager(m.dataDir, range);
    const adopted = await next.client.list();
    expect(adopted.map((i) => [i.name, i.state, i.pid])).toEqual([
      ['r1', 'running', r1.pid],
      ['r2', 'running', r2.pid],
      ['e1', 'running', e1.pid],
    ]);
    const read = await nbdRead(e1.endpoint, 4 * MiB, 0x77);
    expect(read.code, read.stderr).toBe(0);
    // Its ports stay taken: a new instance gets another pair.
    const r3 = await create(next, replica('r3', join(root, 'r3')));
    expect([r1.port, r2.port, e1.port]).not.toContain(r3.port);

    // Delete works on adopted processes too (they are not its children).
    const stopped = await next.client.delete('e1');
    expect(stopped).toMatchObject({ name: 'e1', state: 'stopped' });
    expect(pidGone(e1.pid)).toBe(true);
    // An adopted process that dies is noticed by polling.
    process.kill(r1.pid, 'SIGKILL');
    expect(await waitFor(async () => (await next.client.get('r1'))?.state === 'error', 5000)).toBe(true);
    expect((await next.client.get('r1'))!.errorMsg).toMatch(/exited/);
    for (const n of ['r1', 'r2', 'r3']) await next.client.delete(n, { cleanupDataDir: true });
    for (const n of ['r1', 'r2', 'r3']) expect(existsSync(join(root, n)), n).toBe(false);
    expect(await next.client.list()).toEqual([]);
    expect(await next.proc.stop()).toBe(0);
  });
});

describe('instance manager: ports, delete, stop', () => {
  it('names why it cannot listen: a port another process holds gives EADDRINUSE', async () => {
    const port = await freePorts(1);
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(port, '127.0.0.1', r));
    try {
      const failed = await startManager(join(root, 'busy'), await portRange(4), port).catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(Error);
      expect((failed as Error).message).toMatch(/cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE: the port is taken/);
    } finally {
      holder.close();
    }
  });

  it('reuses ports only after a delete; delete with cleanup removes the data dir', async () => {
    // Room for exactly two instances.
    const m = await startManager(join(root, 'im-b'), await portRange(4));
    const a = await create(m, replica('a', join(root, 'a')));
    const b = await create(m, replica('b', join(root, 'b')));
    const full = await m.client.create(replica('c', join(root, 'c'))).catch((e: unknown) => e);
    expect(grpcCode(full)).toBe(status.RESOURCE_EXHAUSTED);
    expect((full as Error).message).toMatch(/no two consecutive free ports/);
    expect((await m.client.list()).map((i) => i.name)).toEqual(['a', 'b']);
    // An instance in ERROR keeps its ports until it is deleted.
    process.kill(a.pid, 'SIGKILL');
    expect(await waitFor(async () => (await m.client.get('a'))?.state === 'error', 10_000)).toBe(true);
    expect(grpcCode(await m.client.create(replica('c', join(root, 'c'))).catch((e: unknown) => e))).toBe(
      status.RESOURCE_EXHAUSTED,
    );
    expect(existsSync(join(root, 'a', 'volume.meta'))).toBe(true);
    expect(await m.client.delete('a', { cleanupDataDir: true })).toMatchObject({ state: 'stopped' });
    expect(existsSync(join(root, 'a'))).toBe(false);
    expect(await m.client.get('a')).toBeUndefined();
    const c = await create(m, replica('c', join(root, 'c')));
    expect(c).toMatchObject({ state: 'running', port: a.port });

    // SIGTERM: every instance stopped, then exit 0; the state file lists nothing.
    expect(await m.proc.stop()).toBe(0);
    expect(pidGone(b.pid) && pidGone(c.pid)).toBe(true);
    expect(JSON.parse(readFileSync(join(m.dataDir, 'instances.json'), 'utf8'))).toEqual({ version: 1, instances: [] });
  });

  it('takes its instances down when its whole process group is killed; the next one reports them ERROR', async () => {
    const range = await portRange(6);
    const m = await startManager(join(root, 'im-c'), range);
    const r = await create(m, replica('r', join(root, 'rc')));
    // kill -9 -PGID: the instance manager and every instance it started (same group) at once.
    process.kill(-m.proc.pid, 'SIGKILL');
    await m.proc.exited;
    expect(await waitFor(() => pidGone(r.pid), 5000, 100)).toBe(true);

    const next = await startManager(m.dataDir, range);
    const after = await next.client.get('r');
    expect(after).toMatchObject({ state: 'error', pid: r.pid });
    expect(after!.errorMsg).toMatch(/exited while the instance manager was down/);
    // The control plane recreates it: same name, same ports, data dir kept.
    const again = await create(next, replica('r', join(root, 'rc')));
    expect(again).toMatchObject({ state: 'running', port: r.port });
    expect(await next.proc.stop()).toBe(0);
    expect(pidGone(again.pid)).toBe(true);
  });
});
