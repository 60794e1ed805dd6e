// The control plane end to end on 4 simulated nodes, driven through the controllers' own API
// (VolumeApi): real instance-manager processes, real engines and replicas, real fio over the NBD
// endpoint the volume reports. A node is lost (its instance manager's process group SIGKILLed), the
// volume degrades and rebuilds a replacement on the fourth node while fio keeps verifying; the manager
// restarts under fio; then detach and delete leave no process and no directory behind.
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiError } from '../../controllers/api-errors.js';
import { InstanceManagerClient } from '../../dataplane/instance-manager/instance-manager-client.js';
import { getCondition } from '../../model/conditions.js';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { startTool } from '../helpers/tools.js';
import { FIO, fio, MiB, python, sleep, waitFor } from '../helpers/volume-tools.js';

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

function managerLog(): string {
  if (!cp) return '';
  const lines = readFileSync(cp.logFile, 'utf8').split('\n');
  return lines
    .filter((l) => /"level":(40|50)/.test(l))
    .slice(-40)
    .join('\n');
}

/** fio writes with verify headers over [offset, offset+size); the same args + --verify_only check them. */
function fioArgs(uri: string, offset: string, extra: string[] = []): string[] {
  return [
    '--ioengine=nbd',
    `--uri=${uri}`,
    '--name=cp',
    '--rw=randwrite',
    '--bs=4k',
    `--offset=${offset}`,
    '--size=16M',
    '--iodepth=4',
    '--verify=crc32c',
    '--randseed=777',
    ...extra,
  ];
}

async function replicasOf(volume: string) {
  return (await cp!.store.list('Replica')).items.filter((r) => r.spec.volumeName === volume);
}

describe('control plane on shorthorn up --nodes 4', () => {
  it('places 3 replicas on 3 nodes, attaches, rebuilds elsewhere after a node loss under fio, survives a manager restart, detaches and deletes cleanly', async () => {
    cp = await startControlPlane({ nodes: 4 });
    const api = () => cp!.manager.api;
    await api().updateSetting('replica-replenishment-wait-interval', '2');
    await api().createVolume({ name: 'vol1', size: 64 * MiB, numberOfReplicas: 3 });
    await waitFor(async () => (await replicasOf('vol1')).filter((r) => r.spec.nodeID).length === 3, 30_000);
    const placed = await replicasOf('vol1');
    const replicaNodes = [...new Set(placed.map((r) => r.spec.nodeID))].sort();
    expect(replicaNodes).toHaveLength(3);
    const freeNode = cp.nodes.map((n) => n.name).find((n) => !replicaNodes.includes(n))!;
    const [engineNode, victim] = replicaNodes as [string, string];
    await cp.waitVolume('vol1', (v) => v.status.state === 'detached');

    await api().attachVolume('vol1', engineNode);
    const attached = await cp.waitVolume(
      'vol1',
      (v) => v.status.state === 'attached' && v.status.robustness === 'healthy' && v.status.endpoint !== '',
      60_000,
    );
    const uri = attached.status.endpoint;
    expect(uri).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\/vol1$/);

    // Phase 1: fio writes while a replica's node goes down and a replacement is rebuilt.
    const load = startTool(FIO, [
      '--output-format=json',
      '--verify_state_save=0',
      ...fioArgs(uri, '0', ['--do_verify=0', '--rate_iops=400']),
    ]);
    await sleep(1500);
    await cp.killNode(victim);
    await cp.waitVolume('vol1', (v) => v.status.robustness === 'degraded', 30_000);
    const healed = await cp
      .waitVolume('vol1', (v) => v.status.robustness === 'healthy', 120_000)
      .catch((err) => {
        throw new Error(`${(err as Error).message}\n${managerLog()}`);
      });
    expect(healed.status.state).toBe('attached');
    const after = await replicasOf('vol1');
    const healthyNodes = after.filter((r) => !r.spec.failedAt).map((r) => r.spec.nodeID);
    expect(healthyNodes.sort()).toEqual([engineNode, replicaNodes[2], freeNode].sort());
    const lost = after.find((r) => r.spec.nodeID === victim)!;
    expect(lost.spec.failedAt).not.toBe('');
    expect(await load.exited, load.output().stderr).toBe(0);

    // Phase 2: the manager (controllers) restarts while fio writes: no I/O error.
    const load2 = startTool(FIO, [
      '--output-format=json',
      '--verify_state_save=0',
      ...fioArgs(uri, '32M', ['--do_verify=0', '--rate_iops=800']),
    ]);
    await sleep(1000);
    await cp.restartManager();
    expect(await load2.exited, load2.output().stderr).toBe(0);
    const still = await cp.volume('vol1');
    expect(still.status).toMatchObject({ state: 'attached', robustness: 'healthy', endpoint: uri });

    for (const offset of ['0', '32M']) {
      const verify = await fio(fioArgs(uri, offset, ['--verify_only', '--verify_fatal=1']));
      expect(verify.code, verify.stderr).toBe(0);
      expect(verify.jobs[0]?.read.io_bytes).toBeGreaterThan(0);
    }
    const reasons = (await cp.store.list('Event')).items
      .filter((e) => e.spec.involvedObject.name === 'vol1')
      .map((e) => e.spec.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Attached', 'Degraded', 'Healthy', 'ReplicaCreated']));

    // Detach, delete: no process of vol1 on any live node, no replica directory left on them.
    await api().detachVolume('vol1');
    await cp.waitVolume('vol1', (v) => v.status.state === 'detached' && v.status.endpoint === '', 60_000);
    await api().deleteVolume('vol1');
    await waitFor(async () => (await cp!.store.get('Volume', 'vol1')) === undefined, 60_000);
    expect(await replicasOf('vol1')).toEqual([]);
    for (const n of cp.nodes.filter((x) => x.name !== victim)) {
      const client = new InstanceManagerClient(n.address);
      try {
        expect((await client.list()).filter((i) => i.volumeName === 'vol1')).toEqual([]);
      } finally {
        client.close();
      }
      const dir = join(n.diskPath, 'replicas');
      expect(existsSync(dir) ? readdirSync(dir).filter((d) => d.startsWith('vol1-')) : []).toEqual([]);
    }
  });

  it('refuses bad input with a typed error and creates nothing', async () => {
    cp = await startControlPlane({ nodes: 2 });
    const api = cp.manager.api;
    const expectError = async (p: Promise<unknown>, code: string, field?: string, text?: RegExp) => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).code).toBe(code);
      if (field) expect((err as ApiError).field).toBe(field);
      if (text) expect((err as ApiError).message).toMatch(text);
    };
    await expectError(api.createVolume({ name: 'v0', size: 0 }), 'ValidationError', 'size', /greater than 0/);
    await expectError(api.createVolume({ name: 'v1', size: 4097 }), 'ValidationError', 'size', /multiple of 4096/);
    await expectError(api.createVolume({ name: 'Bad_Name', size: 4096 }), 'ValidationError', 'name');
    await expectError(
      api.createVolume({ name: 'v3', size: MiB, numberOfReplicas: 3 }),
      'InsufficientCapacity',
      undefined,
      /3 replicas.*2/,
    );
    expect((await cp.store.list('Volume')).items).toEqual([]);
    expect((await cp.store.list('Replica')).items).toEqual([]);

    await api.createVolume({ name: 'ok', size: MiB, numberOfReplicas: 2 });
    await cp.waitVolume('ok', (v) => v.status.state === 'detached');
    await expectError(api.attachVolume('ok', 'node-9'), 'NotFound', undefined, /node "node-9"/);
    await expectError(api.attachVolume('nope', 'node-1'), 'NotFound', undefined, /volume "nope"/);
    await expectError(api.createVolume({ name: 'ok', size: MiB, numberOfReplicas: 1 }), 'Conflict');
    await expectError(api.expandVolume('ok', MiB / 2), 'ValidationError', 'size', /shrink/);
    await expectError(api.expandVolume('ok', 2 * MiB), 'InvalidState', undefined, /attach it to expand/);
    await expectError(api.updateSetting('default-replica-count', 'three'), 'ValidationError', 'value');
    const va = await cp.store.get('VolumeAttachment', 'ok');
    expect(va?.spec.attachmentTickets).toEqual({});
  });

  it('a disk path that vanishes turns the disk and node conditions False with a clear message, and back', async () => {
    cp = await startControlPlane({ nodes: 1 });
    const node = cp.nodes[0]!;
    const ready = await waitFor(async () => {
      const n = await cp!.store.get('Node', node.name);
      return getCondition(n?.status.diskStatus['disk-0']?.conditions ?? [], 'Ready').status === 'True';
    }, 30_000).then(() => true);
    expect(ready).toBe(true);
    renameSync(node.diskPath, `${node.diskPath}.gone`);
    await waitFor(async () => {
      const n = await cp!.store.get('Node', node.name);
      return getCondition(n?.status.conditions ?? [], 'Schedulable').status === 'False';
    }, 30_000);
    const n = (await cp.store.get('Node', node.name))!;
    const disk = getCondition(n.status.diskStatus['disk-0']!.conditions, 'Ready');
    expect(disk).toMatchObject({ status: 'False', reason: 'DiskNotReady' });
    expect(disk.message).toContain(`disk path ${node.diskPath} does not exist`);
    expect(getCondition(n.status.conditions, 'Schedulable').message).toContain('no disk of node node-1 is ready');
    // A volume cannot be placed there now, and says why.
    await expect(cp.manager.api.createVolume({ name: 'nowhere', size: MiB, numberOfReplicas: 1 })).rejects.toThrow(
      /node-1/,
    );
    renameSync(`${node.diskPath}.gone`, node.diskPath);
    await waitFor(async () => {
      const m = await cp!.store.get('Node', node.name);
      return getCondition(m?.status.conditions ?? [], 'Schedulable').status === 'True';
    }, 30_000);
  });

  it('snapshots and purge, online expansion, and auto-salvage when every replica dies', async () => {
    cp = await startControlPlane({ nodes: 2 });
    const api = cp.manager.api;
    await api.createVolume({ name: 'vol2', size: 32 * MiB, numberOfReplicas: 2 });
    await waitFor(async () => (await replicasOf('vol2')).filter((r) => r.spec.nodeID).length === 2, 30_000);
    await api.attachVolume('vol2', 'node-1');
    const v = await cp.waitVolume('vol2', (x) => x.status.robustness === 'healthy' && x.status.endpoint !== '', 60_000);
    const nbd = (script: string, args: string[] = []) =>
      python(`import nbd, sys, hashlib\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\n${script}`, [
        v.status.endpoint,
        ...args,
      ]);
    const write = await nbd(
      'h.pwrite(bytes([7]) * (4 << 20), 0)\nh.flush()\nprint(hashlib.sha256(h.pread(4 << 20, 0)).hexdigest())',
    );
    expect(write.code, write.stderr).toBe(0);
    const sum = write.stdout.trim();

    // A snapshot taken through the control plane shows up as a resource with the engine's data…
    await api.createSnapshot('vol2', 'before-upgrade', { reason: 'test' });
    await waitFor(async () => (await cp!.store.get('Snapshot', 'before-upgrade'))?.status.readyToUse === true, 30_000);
    const snap = (await cp.store.get('Snapshot', 'before-upgrade'))!;
    expect(snap.status).toMatchObject({ userCreated: true, markRemoved: false, labels: { reason: 'test' } });
    expect(snap.status.creationTime).not.toBe('');
    // …and deleting it removes it from the engine's chain (remove + purge).
    await api.deleteSnapshot('before-upgrade');
    await waitFor(async () => (await cp!.store.get('Snapshot', 'before-upgrade')) === undefined, 30_000);
    await waitFor(async () => {
      const e = await cp!.store.get('Engine', 'vol2-e-0');
      return !!e && !e.status.snapshots['before-upgrade'];
    }, 30_000);

    // Online expansion: a new NBD connection sees the new size; shrinking is refused.
    await api.expandVolume('vol2', 48 * MiB);
    await cp.waitVolume('vol2', (x) => x.status.currentSize === 48 * MiB, 30_000);
    const size = await nbd('print(h.get_size())');
    expect(Number(size.stdout.trim()), size.stderr).toBe(48 * MiB);

    // Every replica SIGKILLed: faulted, then auto-salvage brings the volume back with its data.
    for (const n of cp.nodes) {
      const client = new InstanceManagerClient(n.address);
      try {
        for (const i of await client.list())
          if (i.type === 'replica' && i.volumeName === 'vol2') process.kill(i.pid, 'SIGKILL');
      } finally {
        client.close();
      }
    }
    await waitFor(
      async () => (await cp!.store.list('Event')).items.some((e) => e.spec.reason === 'AutoSalvaged'),
      60_000,
    );
    const back = await cp.waitVolume(
      'vol2',
      (x) => x.status.state === 'attached' && x.status.robustness === 'healthy' && x.status.endpoint !== '',
      90_000,
    );
    expect(back.status.lastAutoSalvagedAt).not.toBe('');
    const after = await python(
      'import nbd, sys, hashlib\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nprint(hashlib.sha256(h.pread(4 << 20, 0)).hexdigest())',
      [back.status.endpoint],
    );
    expect(after.stdout.trim(), `${after.stderr}\n${managerLog()}`).toBe(sum);
  });
});
