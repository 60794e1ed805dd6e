// A whole control plane for a test, as `shorthorn up` runs it: N instance-manager processes (real
// nodes' stand-ins, each in its own process group), the SQLite store in a temp dir, and the manager
// (controllers) in the test process so the test can stop and restart it like a manager upgrade.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  type EmbeddedNode,
  registerNode,
  seedAllInOneSettings,
  startOrAdoptNode,
  stopNode,
} from '../../cli/embedded-nodes.js';
import { nodePorts } from '../../cli/up-command.js';
import { type Manager, startManager } from '../../controllers/manager.js';
import { getCondition } from '../../model/conditions.js';
import type { Volume } from '../../model/volume.js';
import { openSqliteStore, type SqliteStore } from '../../store/sqlite-store.js';
import { waitFor } from './volume-tools.js';

export interface TestControlPlane {
  dataDir: string;
  store: SqliteStore;
  nodes: EmbeddedNode[];
  manager: Manager;
  /** Where the manager logs (pino JSON), for failure messages. */
  logFile: string;
  restartManager(): Promise<void>;
  /** kill -9 of a node's whole process group: the instance manager and every process it runs. */
  killNode(name: string): Promise<void>;
  volume(name: string): Promise<Volume>;
  waitVolume(name: string, check: (v: Volume) => boolean, timeoutMs?: number): Promise<Volume>;
  stop(): Promise<void>;
}

/**
 * Node ports (instance manager base+i, instances base+1000i…) stay below Linux's ephemeral range
 * (32768–60999): a port there may be the local end of a client connection — or of its TIME_WAIT, 60 s
 * after a test full of short connections (S3, NBD) — and then cannot be listened on.
 */
const BASE_MIN = 10000;
const BASE_MAX = 26000;
let nextBase = BASE_MIN + Math.floor(Math.random() * 16) * 1000;

export async function startControlPlane(opts: { nodes: number }): Promise<TestControlPlane> {
  const dataDir = mkdtempSync(join(tmpdir(), 'shorthorn-cp-'));
  const nodes: EmbeddedNode[] = [];
  // A port of the range can be taken between runs (another program, or a client connection's
  // ephemeral port): stop what started and try the next range, a few times.
  for (let attempt = 1; nodes.length < opts.nodes; attempt++) {
    const base = nextBase;
    nextBase += 1000 * (opts.nodes + 1);
    if (nextBase + 1000 * (opts.nodes + 1) > BASE_MAX + 5000) nextBase = BASE_MIN;
    try {
      for (let i = 1; i <= opts.nodes; i++) {
        const node = await startOrAdoptNode({ dataDir, name: `node-${i}`, ...nodePorts(base, i) });
        nodes.push(node);
      }
    } catch (err) {
      await Promise.all(nodes.map((n) => stopNode(n, 5000)));
      nodes.length = 0;
      if (attempt >= 3) {
        rmSync(dataDir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  const logFile = join(dataDir, 'manager.log');
  const logger = pino({ level: 'debug' }, pino.destination({ dest: logFile, sync: true }));
  const store = openSqliteStore(join(dataDir, 'shorthorn.db'));
  for (const node of nodes) await registerNode(store, node, 0);
  // As `shorthorn up`: the nodes share this machine's disk, which may be more than 75 % full.
  await seedAllInOneSettings(store);
  let manager = await startManager({ store, managerID: 'manager', logger });
  // Ready = every node's instance manager answers and its disk is measured: what a test starts from.
  await waitFor(async () => {
    const { items } = await store.list('Node');
    return (
      items.length === opts.nodes &&
      items.every(
        (n) =>
          getCondition(n.status.conditions, 'Ready').status === 'True' &&
          Object.values(n.status.diskStatus).every((d) => getCondition(d.conditions, 'Schedulable').status === 'True'),
      )
    );
  }, 30_000);
  const cp: TestControlPlane = {
    dataDir,
    store,
    nodes,
    get manager() {
      return manager;
    },
    logFile,
    async restartManager() {
      await manager.stop();
      manager = await startManager({ store, managerID: 'manager', logger });
    },
    async killNode(name) {
      const n = nodes.find((x) => x.name === name);
      if (!n) throw new Error(`no node ${name}`);
      process.kill(-n.pid, 'SIGKILL');
      await n.process?.exited;
    },
    async volume(name) {
      const v = await store.get('Volume', name);
      if (!v) throw new Error(`volume ${name} not found`);
      return v;
    },
    async waitVolume(name, check, timeoutMs = 60_000) {
      let last: Volume | undefined;
      try {
        await waitFor(async () => {
          last = await store.get('Volume', name);
          return !!last && check(last);
        }, timeoutMs);
      } catch (err) {
        throw new Error(
          `volume ${name} did not reach the expected state; last status: ${JSON.stringify(last?.status)}`,
          {
            cause: err,
          },
        );
      }
      return last!;
    },
    async stop() {
      await manager.stop().catch(() => {});
      for (const n of nodes) {
        try {
          process.kill(-n.pid, 'SIGKILL');
        } catch {
          // already gone
        }
        await stopNode(n, 1000).catch(() => {});
      }
      await store.close().catch(() => {});
      logger.flush();
      if (!process.env['SHORTHORN_KEEP_TEST_DIRS']) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return cp;
}
