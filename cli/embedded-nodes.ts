// The simulated nodes of `shorthorn up`: for each, an instance manager process (started, or adopted
// when one from an earlier run still lives — a killed `up` must not take the volumes' I/O with it),
// a disk directory, and the Node and InstanceManager resources that describe them.
import { mkdirSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InstanceManagerClient } from '../dataplane/instance-manager/instance-manager-client.js';
import { isStoreError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { type ShorthornProcess, startShorthorn } from './child-process.js';

export interface EmbeddedNode {
  name: string;
  address: string;
  pid: number;
  /** Set when this run started the process (undefined when adopted). */
  process?: ShorthornProcess;
  diskPath: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Node `name` under `dataDir/nodes/name`: its instance manager on 127.0.0.1:imPort, instances on portRange. */
export async function startOrAdoptNode(opts: {
  dataDir: string;
  name: string;
  imPort: number;
  portRange: string;
}): Promise<EmbeddedNode> {
  const dir = resolve(opts.dataDir, 'nodes', opts.name);
  const diskPath = join(dir, 'disk-0');
  mkdirSync(join(dir, 'im'), { recursive: true });
  mkdirSync(diskPath, { recursive: true });
  const pidFile = join(dir, 'instance-manager.json');
  try {
    const prev = JSON.parse(readFileSync(pidFile, 'utf8')) as { pid: number; address: string };
    if (alive(prev.pid)) {
      const client = new InstanceManagerClient(prev.address);
      try {
        const info = await client.info();
        // That very process, for this node of this data dir: the PID may have been reused, and the
        // address may now be another data dir's instance manager.
        if (info.node === opts.name && info.pid === prev.pid && resolve(info.dataDir) === join(dir, 'im'))
          return { name: opts.name, address: prev.address, pid: prev.pid, diskPath };
      } finally {
        client.close();
      }
    }
  } catch {
    // no earlier instance manager, or it is gone: start one
  }
  const im = await startShorthorn(
    [
      'instance-manager',
      '--node',
      opts.name,
      '--listen',
      `127.0.0.1:${opts.imPort}`,
      '--data-dir',
      join(dir, 'im'),
      '--port-range',
      opts.portRange,
    ],
    // Its own process group: Ctrl-C on `up` reaches `up` only, which then stops the nodes in order.
    { ownProcessGroup: true, stderrFile: join(dir, 'instance-manager.log') },
  );
  const address = `127.0.0.1:${opts.imPort}`;
  writeFileSync(pidFile, `${JSON.stringify({ pid: im.pid, address })}\n`);
  return { name: opts.name, address, pid: im.pid, process: im, diskPath };
}

/**
 * Settings a new all-in-one store starts with. Its nodes share one machine's file system, often a big
 * shared disk well past 75 % full, where Longhorn's 25 % minimal-available floor would refuse every
 * replica (DiskPressure); 5 % still keeps replicas from filling the disk. Only a missing setting is
 * created, so an operator's later change stays.
 */
export const ALL_IN_ONE_SETTINGS: Readonly<Record<string, string>> = {
  'storage-minimal-available-percentage': '5',
};

export async function seedAllInOneSettings(store: Store): Promise<void> {
  for (const [name, value] of Object.entries(ALL_IN_ONE_SETTINGS)) {
    if (await store.get('Setting', name)) continue;
    await store.create('Setting', { metadata: { name }, spec: { value } }).catch((err: unknown) => {
      if (!isStoreError(err, 'AlreadyExists')) throw err;
    });
  }
}

/** The Node (with its default disk) and InstanceManager resources of `node`, created once. */
export async function registerNode(store: Store, node: EmbeddedNode, reservedPercent: number): Promise<void> {
  if (!(await store.get('Node', node.name))) {
    const st = statfsSync(node.diskPath);
    await store.create('Node', {
      metadata: { name: node.name },
      spec: {
        disks: {
          'disk-0': {
            diskType: 'filesystem',
            path: node.diskPath,
            allowScheduling: true,
            evictionRequested: false,
            storageReserved: Math.floor((st.blocks * st.bsize * reservedPercent) / 100),
            tags: [],
          },
        },
        allowScheduling: true,
        evictionRequested: false,
        tags: [],
      },
    });
  }
  const imName = `im-${node.name}`;
  const im = await store.get('InstanceManager', imName);
  if (!im) {
    await store.create('InstanceManager', {
      metadata: { name: imName },
      spec: { nodeID: node.name, address: node.address },
    });
  } else if (im.spec.address !== node.address) {
    im.spec.address = node.address;
    await store.update('InstanceManager', im);
  }
}

/** SIGTERM: the instance manager stops its engines, then its replicas, then exits. */
export async function stopNode(node: EmbeddedNode, graceMs = 30_000): Promise<void> {
  if (node.process) {
    await node.process.stop(graceMs);
    return;
  }
  if (!alive(node.pid)) return;
  process.kill(node.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(node.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(node.pid)) process.kill(node.pid, 'SIGKILL');
}

/**
 * Stops the engines of `node`, leaving its instance manager and replicas running: `up` does this on
 * every node before stopping any of them, so no engine loses a replica (and fails it) while it runs.
 */
export async function stopEngines(node: EmbeddedNode): Promise<void> {
  if (!alive(node.pid)) return;
  const client = new InstanceManagerClient(node.address);
  try {
    const engines = (await client.list()).filter((i) => i.type === 'engine' && i.state !== 'stopped');
    await Promise.all(engines.map((e) => client.delete(e.name)));
  } finally {
    client.close();
  }
}
