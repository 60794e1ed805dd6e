// What `shorthorn up` runs (cli/up-command.ts declares the command). Loaded only when `up` runs: the
// store, the controllers and the GraphQL schema take over a second to import, which every replica and
// engine process (the same `shorthorn` binary) would otherwise pay at its start.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ApiError } from '../controllers/api-errors.js';
import type { Manager } from '../controllers/manager.js';
import { startManager } from '../controllers/manager.js';
import { InstanceManagerClient } from '../dataplane/instance-manager/instance-manager-client.js';
import { parseVolumeSize } from '../dataplane/util/size.js';
import { isConditionTrue } from '../model/conditions.js';
import { hasApiTokens } from '../resolvers/tokens.js';
import { type ApiServer, isLoopback, startApiServer } from '../schema/server.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import {
  type EmbeddedNode,
  registerNode,
  seedAllInOneSettings,
  startOrAdoptNode,
  stopEngines,
  stopNode,
} from './embedded-nodes.js';
import { closeOnSignals, createLogger, printReady } from './logger.js';

import { nodePorts, type UpOpts } from './up-command.js';

/** The Nodes `names` Ready and Schedulable (their instance managers answer, their disks are measured). */
async function waitForSchedulableNodes(manager: Manager, names: string[], deadline: number): Promise<void> {
  for (;;) {
    const notReady = names.filter((name) => {
      const n = manager.ctx.informers.Node.get(name);
      return (
        !n || !isConditionTrue(n.status.conditions, 'Ready') || !isConditionTrue(n.status.conditions, 'Schedulable')
      );
    });
    if (notReady.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(
        `nodes not ready after 120 s: ${notReady.map((name) => `${name}: ${JSON.stringify(manager.ctx.informers.Node.get(name)?.status.conditions)}`).join('; ')}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Until the GraphQL API lands, `up --volume` is how a person gets a volume: created once, attached to
 * node-1 every time; resolves with its NBD endpoint once attached.
 */
async function ensureAttachedVolume(
  manager: Manager,
  nodes: EmbeddedNode[],
  name: string,
  spec: { size: number; numberOfReplicas: number },
): Promise<string> {
  const node = nodes[0]!;
  const deadline = Date.now() + 120_000;
  if (!(await manager.ctx.store.get('Volume', name))) {
    // The scheduler places replicas only on Ready nodes with schedulable disks, and the node controller
    // has just started measuring them: creating at once is refused as "nodes are unavailable".
    await waitForSchedulableNodes(
      manager,
      nodes.map((n) => n.name),
      deadline,
    );
    try {
      await manager.api.createVolume({ name, ...spec });
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'Conflict')) throw err;
    }
  }
  while (Date.now() < deadline) {
    try {
      await manager.api.attachVolume(name, node.name);
      break;
    } catch (err) {
      // The volume controller creates the attachment object right after the volume.
      if (!(err instanceof ApiError && err.code === 'InvalidState')) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const im = new InstanceManagerClient(node.address);
  try {
    for (;;) {
      const v = manager.ctx.informers.Volume.get(name);
      // The status may still be the previous run's: after a Ctrl-C it says attached, with the endpoint
      // of an engine that was stopped. Only an engine the instance manager runs there serves it.
      if (v?.status.state === 'attached' && v.status.endpoint && (await engineServes(im, name, v.status.endpoint)))
        return v.status.endpoint;
      if (Date.now() > deadline)
        throw new Error(`volume ${name} not attached after 120 s: ${JSON.stringify(v?.status)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    im.close();
  }
}

async function engineServes(im: InstanceManagerClient, volume: string, endpoint: string): Promise<boolean> {
  const instances = await im.list().catch(() => []);
  return instances.some(
    (i) => i.type === 'engine' && i.volumeName === volume && i.state === 'running' && i.endpoint === endpoint,
  );
}

export async function runUp(opts: UpOpts): Promise<void> {
  const logger = createLogger('up');
  const dataDir = resolve(opts.dataDir);
  const base = Number(opts.port);
  const count = Number(opts.nodes);
  // Every flag is checked before anything starts: a bad one must not leave instance managers behind.
  if (!Number.isInteger(count) || count < 1 || count > 20) throw new Error(`--nodes must be 1…20, got ${opts.nodes}`);
  if (!Number.isInteger(base) || base < 1024 || base + 1000 * count + 999 > 65535)
    throw new Error(`--port ${opts.port} leaves no room for ${count} nodes' ports`);
  let size: number;
  try {
    size = parseVolumeSize(opts.size);
  } catch (err) {
    throw new Error(`--size: ${(err as Error).message}`);
  }
  const numberOfReplicas = opts.replicas === undefined ? Math.min(3, count) : Number(opts.replicas);
  if (!Number.isInteger(numberOfReplicas) || numberOfReplicas < 1)
    throw new Error(`--replicas must be a positive integer, got ${opts.replicas}`);
  mkdirSync(dataDir, { recursive: true });
  const store = openSqliteStore(join(dataDir, 'shorthorn.db'));
  if (!isLoopback(opts.listen) && !(await hasApiTokens(store))) {
    await store.close();
    throw new Error(
      `--listen ${opts.listen} is not a loopback address and the store has no API token: ` +
        `create one first (shorthorn token create --role admin --data-dir ${opts.dataDir})`,
    );
  }
  const nodes: EmbeddedNode[] = [];
  let manager: Manager | undefined;
  let api: ApiServer | undefined;
  // The start-up step in flight (a node starting, the manager starting): a Ctrl-C waits for it, so
  // what it starts is stopped too.
  let step: Promise<unknown> = Promise.resolve();
  const track = <T>(p: Promise<T>): Promise<T> => {
    step = p;
    return p;
  };
  let stopping: Promise<void> | undefined;
  // In order: the controllers (nothing restarts what is being stopped), the engines on every node
  // (so no replica goes away under a running engine), then each instance manager (SIGTERM: its
  // engines, then its replicas), then the store.
  const shutdown = () =>
    (stopping ??= (async () => {
      await step.catch(() => {});
      await api?.close();
      await manager?.stop();
      for (const n of nodes)
        await stopEngines(n).catch((err: unknown) => logger.warn({ err, node: n.name }, 'stopping engines'));
      for (const n of [...nodes].reverse()) await stopNode(n);
      await store.close();
    })());
  // Installed first: a Ctrl-C during start-up (a volume can take a while to attach) stops what
  // started so far instead of leaving the detached instance managers running.
  closeOnSignals(logger, shutdown);
  let endpoint: string | undefined;
  try {
    for (let i = 1; i <= count && !stopping; i++) {
      const node = await track(
        startOrAdoptNode({ dataDir, name: `node-${i}`, ...nodePorts(base, i) }).then((n) => {
          nodes.push(n);
          return n;
        }),
      );
      if (stopping) return;
      await track(registerNode(store, node, 30));
    }
    if (stopping) return;
    await track(seedAllInOneSettings(store));
    const started = await track(
      startManager({ store, managerID: 'manager', logger }).then((m) => {
        manager = m;
        return m;
      }),
    );
    if (stopping) return;
    await track(
      startApiServer({ host: opts.listen, port: base, store, api: started.api, logger }).then((s) => {
        api = s;
        return s;
      }),
    );
    if (opts.volume && !stopping)
      endpoint = await ensureAttachedVolume(started, nodes, opts.volume, { size, numberOfReplicas });
  } catch (err) {
    if (stopping) return; // a signal is shutting down; it exits when done
    await shutdown();
    throw err;
  }
  if (stopping) return;
  printReady({
    role: 'up',
    dataDir,
    api: api?.url,
    store: join(dataDir, 'shorthorn.db'),
    nodes: nodes.map((n) => ({ name: n.name, instanceManager: n.address, pid: n.pid, adopted: !n.process })),
    ...(opts.volume ? { volume: opts.volume, endpoint } : {}),
    pid: process.pid,
  });
}
