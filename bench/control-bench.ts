// `npm run bench:control`: the control plane at scale (issue 4). N small volumes are created through the
// VolumeApi of an in-process manager on the embedded SQLite store, with 3 real instance-manager processes
// as nodes, and timed until every one is reconciled: state `detached`, Scheduled condition True, and all
// its replicas placed on a node. Reported: wall time (create phase and settle phase apart), store
// operations per volume (by operation, and writes by kind), the manager's RSS/heap and CPU time, the
// SQLite file size; then the same for deleting them all, until no Volume, Replica or Engine remains.
//
// Store operations are counted by store/counting-store.ts around the SqliteStore the manager (and its
// VolumeApi) uses; the benchmark's own polling reads the informer caches and the bare store, uncounted.
// Reconciles are counted per controller by wrapping Controller.prototype.runOne in this process only
// (instrumentation: the controllers' code is unchanged), to show fan-out that costs CPU but no writes.
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Logger, pino } from 'pino';
import { type EmbeddedNode, registerNode, startOrAdoptNode, stopNode } from '../cli/embedded-nodes.js';
import { formatTable } from '../cli/table.js';
import { type Manager, startManager } from '../controllers/manager.js';
import { Controller } from '../controllers/runtime/controller.js';
import { formatSize, parseVolumeSize } from '../dataplane/util/size.js';
import { getCondition } from '../model/conditions.js';
import type { Kind, KindMap } from '../model/kinds.js';
import { CountingStore } from '../store/counting-store.js';
import { openSqliteStore, type SqliteStore } from '../store/sqlite-store.js';
import type { CreateInput, LabelSelector, ListResult, Store, Watch, WatchOptions } from '../store/store.js';
import { freePorts } from '../test/helpers/ports.js';
import { runBench } from './run-bench.js';

const NODES = 3;
const MiB = 1024 * 1024;
const OPS = ['get', 'list', 'watch', 'create', 'update', 'updateStatus', 'delete'] as const;
const WRITES = new Set<string>(['create', 'update', 'updateStatus', 'delete']);

interface Options {
  volumes: number;
  replicas: number;
  size: number;
  concurrency: number;
  out: string | null;
  dir: string;
  /** Quiet time watched after the volumes settle: store writes then mean a loop. */
  idleSeconds: number;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      volumes: { type: 'string', default: '1000' },
      replicas: { type: 'string', default: '3' },
      size: { type: 'string', default: '16Mi' },
      concurrency: { type: 'string', default: '16' },
      out: { type: 'string' },
      dir: { type: 'string', default: process.env['BENCH_DIR'] ?? tmpdir() },
      'idle-seconds': { type: 'string', default: '5' },
    },
  });
  const int = (name: string, text: string, min: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: a whole number ≥ ${min}, got "${text}"`);
    return n;
  };
  const replicas = int('replicas', values.replicas!, 1);
  if (replicas > NODES) throw new Error(`--replicas: at most ${NODES} (one per node, hard anti-affinity)`);
  return {
    volumes: int('volumes', values.volumes!, 1),
    replicas,
    size: parseVolumeSize(values.size!),
    concurrency: int('concurrency', values.concurrency!, 1),
    out: values.out ?? null,
    dir: values.dir!,
    idleSeconds: int('idle-seconds', values['idle-seconds']!, 0),
  };
}

/** Counts `op kind` pairs (CountingStore counts per operation only): which kind the writes go to. */
class KindCountingStore implements Store {
  private calls = new Map<string, number>();

  constructor(private readonly inner: Store) {}

  snapshot(): Map<string, number> {
    return new Map(this.calls);
  }

  private count(op: string, kind: Kind): void {
    const key = `${op} ${kind}`;
    this.calls.set(key, (this.calls.get(key) ?? 0) + 1);
  }

  get<K extends Kind>(kind: K, name: string): Promise<KindMap[K] | undefined> {
    this.count('get', kind);
    return this.inner.get(kind, name);
  }

  list<K extends Kind>(kind: K, opts?: { labelSelector?: LabelSelector }): Promise<ListResult<K>> {
    this.count('list', kind);
    return this.inner.list(kind, opts);
  }

  watch<K extends Kind>(kind: K, opts: WatchOptions<K>): Watch {
    this.count('watch', kind);
    return this.inner.watch(kind, opts);
  }

  create<K extends Kind>(kind: K, obj: CreateInput<K>): Promise<KindMap[K]> {
    this.count('create', kind);
    return this.inner.create(kind, obj);
  }

  update<K extends Kind>(kind: K, obj: KindMap[K]): Promise<KindMap[K]> {
    this.count('update', kind);
    return this.inner.update(kind, obj);
  }

  updateStatus<K extends Kind>(kind: K, obj: KindMap[K]): Promise<KindMap[K]> {
    this.count('updateStatus', kind);
    return this.inner.updateStatus(kind, obj);
  }

  delete<K extends Kind>(kind: K, name: string, opts?: { resourceVersion?: string }): Promise<KindMap[K]> {
    this.count('delete', kind);
    return this.inner.delete(kind, name, opts);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Reconciles run and time spent in them, per controller name (`reconciles` table). */
const reconciles = new Map<string, { runs: number; ms: number }>();

function countReconciles(): void {
  const proto = Controller.prototype as unknown as { runOne(this: Controller, key: string): Promise<void> };
  const runOne = proto.runOne;
  proto.runOne = async function (this: Controller, key: string) {
    const t0 = performance.now();
    try {
      await runOne.call(this, key);
    } finally {
      const r = reconciles.get(this.name) ?? { runs: 0, ms: 0 };
      r.runs += 1;
      r.ms += performance.now() - t0;
      reconciles.set(this.name, r);
    }
  };
}

/** What is measured at a phase boundary. */
interface Mark {
  at: number;
  counts: Record<string, number>;
  byKind: Map<string, number>;
  reconciles: Map<string, { runs: number; ms: number }>;
  cpu: NodeJS.CpuUsage;
  mem: NodeJS.MemoryUsage;
}

interface Phase {
  name: string;
  seconds: number;
  counts: Record<string, number>;
  byKind: Map<string, number>;
  reconciles: Map<string, { runs: number; ms: number }>;
  cpuSeconds: number;
}

let sqlite: SqliteStore | undefined;
let counting: CountingStore | undefined;
let byKind: KindCountingStore | undefined;
let manager: Manager | undefined;
let logger: Logger | undefined;
const nodes: EmbeddedNode[] = [];
let workDir = '';

async function cleanup(): Promise<void> {
  await manager?.stop().catch(() => {});
  manager = undefined;
  for (const n of nodes.splice(0)) {
    try {
      process.kill(-n.pid, 'SIGKILL'); // the instance manager's whole process group
    } catch {
      // already gone
    }
    await stopNode(n, 1000).catch(() => {});
  }
  await sqlite?.close().catch(() => {});
  sqlite = undefined;
  logger?.flush();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  workDir = '';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function mark(): Mark {
  return {
    at: performance.now(),
    counts: counting!.counts(),
    byKind: byKind!.snapshot(),
    reconciles: new Map([...reconciles].map(([k, v]) => [k, { ...v }])),
    cpu: process.cpuUsage(),
    mem: process.memoryUsage(),
  };
}

function storeWrites(): number {
  const c = counting!.counts();
  return (c['create'] ?? 0) + (c['update'] ?? 0) + (c['updateStatus'] ?? 0) + (c['delete'] ?? 0);
}

/**
 * Waits until the store has seen no write for `quietMs` and returns the mark of the last write: the
 * controllers have finished, not just reached the state the caller looks for (statuses of replicas
 * and engines keep settling after the volumes look done).
 */
async function quiesce(quietMs = 1000, timeoutMs = 300_000): Promise<Mark> {
  let last = storeWrites();
  let lastMark = mark();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await sleep(100);
    const now = storeWrites();
    if (now !== last) {
      last = now;
      lastMark = mark();
    } else if (performance.now() - lastMark.at >= quietMs) {
      return lastMark;
    }
    if (Date.now() > deadline) throw new Error(`store still written to after ${timeoutMs} ms`);
  }
}

function phase(name: string, a: Mark, b: Mark): Phase {
  const counts: Record<string, number> = {};
  for (const op of OPS) counts[op] = (b.counts[op] ?? 0) - (a.counts[op] ?? 0);
  const kinds = new Map<string, number>();
  for (const [k, v] of b.byKind) {
    const d = v - (a.byKind.get(k) ?? 0);
    if (d > 0) kinds.set(k, d);
  }
  const runs = new Map<string, { runs: number; ms: number }>();
  for (const [k, v] of b.reconciles) {
    const before = a.reconciles.get(k) ?? { runs: 0, ms: 0 };
    runs.set(k, { runs: v.runs - before.runs, ms: v.ms - before.ms });
  }
  const cpuSeconds = (b.cpu.user - a.cpu.user + b.cpu.system - a.cpu.system) / 1e6;
  return { name, seconds: (b.at - a.at) / 1000, counts, byKind: kinds, reconciles: runs, cpuSeconds };
}

const writesOf = (counts: Record<string, number>) =>
  Object.entries(counts).reduce((n, [op, c]) => n + (WRITES.has(op) ? c : 0), 0);
const totalOf = (counts: Record<string, number>) => Object.values(counts).reduce((n, c) => n + c, 0);

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Runs `fn` over 0..n-1 with at most `limit` calls in flight; the first failure stops it. */
async function pool(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

/** Polls `check` (cheap: informer caches) every 100 ms; prints progress every 5 s. */
async function until(what: string, check: () => { done: number; total: number }, timeoutMs: number): Promise<void> {
  const t0 = performance.now();
  let lastReport = t0;
  for (;;) {
    const { done, total } = check();
    if (done >= total) return;
    const now = performance.now();
    if (now - t0 > timeoutMs) throw new Error(`${what}: ${done} of ${total} after ${(timeoutMs / 1000).toFixed(0)} s`);
    if (now - lastReport >= 5000) {
      process.stderr.write(`  ${what}: ${done}/${total} after ${((now - t0) / 1000).toFixed(0)} s\n`);
      lastReport = now;
    }
    await sleep(100);
  }
}

const volName = (i: number) => `bench-${String(i).padStart(5, '0')}`;

async function main(o: Options): Promise<void> {
  mkdirSync(o.dir, { recursive: true });
  workDir = mkdtempSync(join(o.dir, 'shorthorn-control-bench-'));
  const dbPath = join(workDir, 'shorthorn.db');
  const logFile = join(workDir, 'manager.log');
  logger = pino({ level: 'warn' }, pino.destination({ dest: logFile, sync: true }));
  sqlite = openSqliteStore(dbPath); // synchronous FULL, the default
  byKind = new KindCountingStore(sqlite);
  counting = new CountingStore(byKind);
  const started = new Date();
  process.stderr.write(`control bench: ${o.volumes} volumes × ${o.replicas} replicas, work dir ${workDir}\n`);

  for (let i = 1; i <= NODES; i++) {
    const imPort = await freePorts(1);
    const range = await freePorts(200); // no instance runs (the volumes stay detached); any range will do
    const node = await startOrAdoptNode({
      dataDir: workDir,
      name: `node-${i}`,
      imPort,
      portRange: `${range}-${range + 199}`,
    });
    nodes.push(node);
    await registerNode(sqlite, node, 0);
  }
  countReconciles();
  manager = await startManager({ store: counting, managerID: 'manager', logger });
  const inf = manager.ctx.informers;
  await until(
    'nodes Ready',
    () => ({
      done: inf.Node.list(
        (n) =>
          getCondition(n.status.conditions, 'Ready').status === 'True' &&
          Object.values(n.status.diskStatus).length > 0 &&
          Object.values(n.status.diskStatus).every((d) => getCondition(d.conditions, 'Schedulable').status === 'True'),
      ).length,
      total: NODES,
    }),
    30_000,
  );
  await sleep(1000); // let the start-up writes (node status, events) drain before the first mark
  const settleTimeout = 120_000 + 1000 * o.volumes;

  // Create, then settle.
  const m0 = mark();
  await pool(o.volumes, o.concurrency, async (i) => {
    await manager!.api.createVolume({ name: volName(i), size: o.size, numberOfReplicas: o.replicas });
  });
  const m1 = mark();
  const reconciled = () => {
    const placed = new Map<string, number>();
    for (const r of inf.Replica.list()) {
      if (r.spec.nodeID && !r.metadata.deletionTimestamp)
        placed.set(r.spec.volumeName, (placed.get(r.spec.volumeName) ?? 0) + 1);
    }
    const done = inf.Volume.list(
      (v) =>
        v.status.state === 'detached' &&
        getCondition(v.status.conditions, 'Scheduled').status === 'True' &&
        (placed.get(v.metadata.name) ?? 0) >= v.spec.numberOfReplicas,
    ).length;
    return { done, total: o.volumes };
  };
  await until('reconciled', reconciled, settleTimeout);
  const m2 = await quiesce();
  // The same, from the store itself (the informers could lag): every volume, engine and replica there.
  const [vols, reps, engs] = [
    (await sqlite.list('Volume')).items,
    (await sqlite.list('Replica')).items,
    (await sqlite.list('Engine')).items,
  ];
  const badVols = vols.filter((v) => v.status.state !== 'detached');
  if (
    vols.length !== o.volumes ||
    badVols.length > 0 ||
    reps.filter((r) => r.spec.nodeID).length !== o.volumes * o.replicas
  )
    throw new Error(
      `store disagrees: ${vols.length} volumes (${badVols.length} not detached), ${reps.length} replicas, ${engs.length} engines`,
    );
  const perNode = new Map<string, number>();
  for (const r of reps) perNode.set(r.spec.nodeID, (perNode.get(r.spec.nodeID) ?? 0) + 1);
  const dbAfterCreate = { db: fileSize(dbPath), wal: fileSize(`${dbPath}-wal`) };
  const nodeJson = JSON.stringify(await sqlite.get('Node', 'node-1')).length;

  // Idle: nothing left to do, so a store write now is a loop (or a periodic requeue that writes).
  await sleep(o.idleSeconds * 1000);
  const m3 = mark();

  // Delete, until no Volume, Replica or Engine remains.
  await pool(o.volumes, o.concurrency, async (i) => {
    await manager!.api.deleteVolume(volName(i));
  });
  const m4 = mark();
  await until(
    'deleted',
    () => {
      const left = inf.Volume.list().length + inf.Replica.list().length + inf.Engine.list().length;
      return { done: o.volumes * (2 + o.replicas) - left, total: o.volumes * (2 + o.replicas) };
    },
    settleTimeout,
  );
  const m5 = await quiesce();
  const leftInStore = (await Promise.all((['Volume', 'Replica', 'Engine'] as const).map((k) => sqlite!.list(k)))).map(
    (r) => r.items.length,
  );
  if (leftInStore.some((n) => n > 0)) throw new Error(`store still holds volumes/replicas/engines: ${leftInStore}`);
  const dbAfterDelete = { db: fileSize(dbPath), wal: fileSize(`${dbPath}-wal`) };
  const events = (await sqlite.list('Event')).items.length;

  const phases = [
    phase('create', m0, m1),
    phase('settle', m1, m2),
    phase('create+settle', m0, m2),
    phase(`idle ${o.idleSeconds} s`, m2, m3),
    phase('delete', m3, m4),
    phase('teardown', m4, m5),
    phase('delete+teardown', m3, m5),
  ];

  // Report.
  const lines: string[] = [];
  const log = (line = '') => {
    lines.push(line);
    process.stdout.write(`${line}\n`);
  };
  const n = o.volumes;
  const f1 = (x: number) => x.toFixed(1);
  const f2 = (x: number) => x.toFixed(2);
  const mib = (x: number) => `${(x / MiB).toFixed(1)} MiB`;
  log(
    `# control-plane benchmark: ${n} volumes × ${o.replicas} replicas of ${formatSize(o.size)} on ${NODES} nodes, API concurrency ${o.concurrency}`,
  );
  log(`command: npm run bench:control -- ${process.argv.slice(2).join(' ')}`.trimEnd());
  log(`date: ${started.toISOString()}; node ${process.version}; SQLite synchronous FULL (WAL)`);
  log();
  log(
    formatTable(
      ['phase', 'wall s', 'volumes/s', 'cpu s', 'store ops', 'ops/vol', 'writes', 'writes/vol'],
      phases.map((p) => [
        p.name,
        f2(p.seconds),
        p.name.startsWith('idle') ? '-' : f1(n / p.seconds),
        f2(p.cpuSeconds),
        totalOf(p.counts),
        f2(totalOf(p.counts) / n),
        writesOf(p.counts),
        f2(writesOf(p.counts) / n),
      ]),
    ),
  );
  log();
  const shown = phases.filter((p) => ['create+settle', `idle ${o.idleSeconds} s`, 'delete+teardown'].includes(p.name));
  log(
    formatTable(
      ['store op', ...shown.flatMap((p) => [p.name, 'per vol'])],
      OPS.map((op) => [op, ...shown.flatMap((p) => [String(p.counts[op] ?? 0), f2((p.counts[op] ?? 0) / n)])]),
    ),
  );
  log();
  const keys = [...new Set(shown.flatMap((p) => [...p.byKind.keys()]))]
    .filter((k) => WRITES.has(k.split(' ')[0]!) || shown.some((p) => (p.byKind.get(k) ?? 0) >= n))
    .sort();
  log(
    formatTable(
      ['op kind', ...shown.flatMap((p) => [p.name, 'per vol'])],
      keys.map((k) => [k, ...shown.flatMap((p) => [String(p.byKind.get(k) ?? 0), f2((p.byKind.get(k) ?? 0) / n)])]),
    ),
  );
  log();
  const ctls = [...new Set(shown.flatMap((p) => [...p.reconciles.keys()]))].sort();
  log(
    formatTable(
      ['reconciles', ...shown.flatMap((p) => [p.name, 'per vol', 'busy s'])],
      ctls.map((c) => [
        c,
        ...shown.flatMap((p) => {
          const r = p.reconciles.get(c) ?? { runs: 0, ms: 0 };
          return [String(r.runs), f2(r.runs / n), f2(r.ms / 1000)];
        }),
      ]),
    ),
  );
  log();
  const memRow = (label: string, m: Mark) => [
    label,
    mib(m.mem.rss),
    mib(m.mem.heapUsed),
    mib(m.mem.heapTotal),
    mib(m.mem.external),
  ];
  log(
    formatTable(
      ['manager memory', 'rss', 'heap used', 'heap total', 'external'],
      [memRow('before create', m0), memRow('reconciled', m2), memRow('after teardown', m5)],
    ),
  );
  log(`peak RSS (maxRSS) ${mib(process.resourceUsage().maxRSS * 1024)}`);
  log(
    `SQLite: reconciled ${mib(dbAfterCreate.db)} + WAL ${mib(dbAfterCreate.wal)}; after teardown ${mib(dbAfterDelete.db)} + WAL ${mib(dbAfterDelete.wal)}; ${events} Event resources left`,
  );
  log(`Node resource node-1 when reconciled: ${(nodeJson / 1024).toFixed(1)} KiB of JSON`);
  log(
    `replicas per node: ${[...perNode.entries()]
      .sort()
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  if (o.out) writeFileSync(o.out, `${lines.join('\n')}\n`);
}

const opts = options();
await runBench('control', () => main(opts), cleanup);
