// `shorthorn up`: the all-in-one on one machine — the embedded store (SQLite under --data-dir), the
// controllers, and N simulated nodes, each an instance manager on 127.0.0.1 with its own disk
// directory. Ctrl-C stops it all in order; running it again on the same data dir brings every volume
// back as it was, attached ones re-attached. If `up` itself dies, the instance managers and their
// volumes keep running and the next `up` adopts them.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ApiError } from '../controllers/api-errors.js';
import type { Manager } from '../controllers/manager.js';
import { startManager } from '../controllers/manager.js';
import { parseVolumeSize } from '../dataplane/util/size.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { type EmbeddedNode, registerNode, startOrAdoptNode, stopNode } from './embedded-nodes.js';
import { closeOnSignals, createLogger, printReady } from './logger.js';

/**
 * Until the GraphQL API lands, `up --volume` is how a person gets a volume: created once, attached to
 * node-1 every time; resolves with its NBD endpoint once attached.
 */
async function ensureAttachedVolume(
  manager: Manager,
  name: string,
  spec: { size: number; numberOfReplicas: number },
): Promise<string> {
  try {
    await manager.api.createVolume({ name, ...spec });
  } catch (err) {
    if (!(err instanceof ApiError && err.code === 'Conflict')) throw err;
  }
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    try {
      await manager.api.attachVolume(name, 'node-1');
      break;
    } catch (err) {
      // The volume controller creates the attachment object right after the volume.
      if (!(err instanceof ApiError && err.code === 'InvalidState')) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  for (;;) {
    const v = manager.ctx.informers.Volume.get(name);
    if (v?.status.state === 'attached' && v.status.endpoint) return v.status.endpoint;
    if (Date.now() > deadline) throw new Error(`volume ${name} not attached after 120 s: ${JSON.stringify(v?.status)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface UpOpts {
  dataDir: string;
  port: string;
  nodes: string;
  volume?: string;
  size: string;
  replicas?: string;
}

/** Ports: the API on --port; node i's instance manager on port+i, its instances on port+1000·i … +999. */
export function nodePorts(base: number, i: number): { imPort: number; portRange: string } {
  return { imPort: base + i, portRange: `${base + 1000 * i}-${base + 1000 * i + 999}` };
}

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('run Shorthorn on this machine: store, controllers and N simulated nodes')
    .option('--data-dir <dir>', 'store, node disks and logs', './data')
    .option('--port <port>', 'API port; node instance managers use the ports right above it', '9500')
    .option('--nodes <n>', 'simulated nodes (instance managers), each with its own disk directory', '1')
    .option('--volume <name>', 'also create this volume (if missing) and attach it to node-1; prints its NBD endpoint')
    .option('--size <size>', 'size of --volume when it is created', '1Gi')
    .option('--replicas <n>', 'replicas of --volume when it is created (default: min(3, nodes))')
    .action(async (opts: UpOpts) => {
      const logger = createLogger('up');
      const dataDir = resolve(opts.dataDir);
      const base = Number(opts.port);
      const count = Number(opts.nodes);
      if (!Number.isInteger(count) || count < 1 || count > 20)
        throw new Error(`--nodes must be 1…20, got ${opts.nodes}`);
      if (!Number.isInteger(base) || base < 1024 || base + 1000 * count + 999 > 65535)
        throw new Error(`--port ${opts.port} leaves no room for ${count} nodes' ports`);
      mkdirSync(dataDir, { recursive: true });
      const store = openSqliteStore(join(dataDir, 'shorthorn.db'));
      const nodes: EmbeddedNode[] = [];
      try {
        for (let i = 1; i <= count; i++) {
          const node = await startOrAdoptNode({ dataDir, name: `node-${i}`, ...nodePorts(base, i), logStderr: true });
          nodes.push(node);
          await registerNode(store, node, 30);
        }
      } catch (err) {
        for (const n of nodes) await stopNode(n);
        await store.close();
        throw err;
      }
      const manager = await startManager({ store, managerID: 'manager', logger });
      let endpoint: string | undefined;
      if (opts.volume) {
        endpoint = await ensureAttachedVolume(manager, opts.volume, {
          size: parseVolumeSize(opts.size),
          numberOfReplicas: opts.replicas ? Number(opts.replicas) : Math.min(3, count),
        }).catch(async (err: unknown) => {
          await manager.stop();
          for (const n of nodes) await stopNode(n);
          await store.close();
          throw err;
        });
      }
      closeOnSignals(logger, async () => {
        await manager.stop();
        for (const n of [...nodes].reverse()) await stopNode(n);
        await store.close();
      });
      printReady({
        role: 'up',
        dataDir,
        store: join(dataDir, 'shorthorn.db'),
        nodes: nodes.map((n) => ({ name: n.name, instanceManager: n.address, pid: n.pid, adopted: !n.process })),
        ...(opts.volume ? { volume: opts.volume, endpoint } : {}),
        pid: process.pid,
      });
    });
}
