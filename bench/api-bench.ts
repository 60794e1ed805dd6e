// `npm run bench:api`: the GraphQL API under a dashboard's load, and its live subscriptions (issue 5).
//
// A SQLite store file is seeded with 3 nodes (Ready, disk measured, one scheduledReplica entry per
// replica, as the node controller writes them) and N volumes (default 1,000), each attached with 3
// running replicas (one per node), a running engine (replicaModeMap RW) and an attachment with a
// satisfied ticket: what the controllers leave behind, no controller running. Three servers then run as
// child processes (bench/api-bench-server.ts, node flags as `shorthorn up`), so autocannon's client load
// does not share their event loop:
//   shorthorn  the real API (startApiServer on 127.0.0.1, anonymous admin) over that store
//   bare       a yoga server whose one field (`volumes: JSON`) returns the dashboard's JSON, captured once
//              from shorthorn, from memory: the same response bytes (checked) through the same yoga/HTTP
//   typed      a yoga server with the dashboard's types and default resolvers over that in-memory JSON:
//              what GraphQL execution of the selection costs alone (between the two above)
// The dashboard query is POSTed by autocannon (16 connections, 10 s per target), the targets interleaved
// round by round (bare, typed, shorthorn; 3 rounds). Reported per target: p50/p99/mean/max latency,
// requests/s, server CPU per request; the ratio shorthorn/bare of p50 and p99 is the median of the
// per-round ratios, against the issue's target (≤ 2×). `--in-process-rounds` (default 1) repeats the
// rounds with the three servers inside the bench process, beside autocannon, for comparison.
//
// Then subscriptions: S SSE subscribers (default 100, fetch with accept: text/event-stream) all on one
// volume's `volumeChanged`, so every change fans out to all of them; the server child writes K status
// changes (default 50, 50 ms apart) with store.updateStatus, each carrying its write time in
// status.lastDegradedAt (ms, same machine clock), and every delivery's latency is its arrival time minus
// that. Reported: deliveries (and losses) and p50/p99/max latency, against p99 ≤ 100 ms.
//
//   npm run bench:api -- [--volumes 1000] [--duration 10] [--rounds 3] [--connections 16] [--warmup 2]
//                        [--subscribers 100] [--changes 50] [--spacing 50] [--in-process-rounds 1]
//                        [--cpu-prof DIR] [--out FILE.md] [--dir DIR]
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatTable } from '../cli/table.js';
import { engineNameOf, FINALIZER, VOLUME_LABEL } from '../controllers/labels.js';
import type { Condition } from '../model/meta.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { node as nodeFixture } from '../test/helpers/reconcile-fixtures.js';
import { BARE_QUERY, type StartedTarget, startTarget, type TargetKind } from './api-bench-server.js';
import { formatProfile, summariseProfile, type TimeWindow } from './cpu-profile.js';
import { median } from './report.js';
import { runBench } from './run-bench.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const NODES = 3;
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
/** As bin/shorthorn.js (`shorthorn up`) runs the manager. */
const SERVER_NODE_FLAGS = ['--single-threaded-gc', '--no-incremental-marking'];
const TARGETS: TargetKind[] = ['bare', 'typed', 'shorthorn'];

const DASHBOARD =
  '{ volumes { name state robustness size replicas { name mode currentState node { name disks { name storageAvailable } } } engine { currentState endpoint replicas { name mode } } } }';
const SUBSCRIPTION = (volume: string) =>
  `subscription { volumeChanged(name: "${volume}") { name robustness lastDegradedAt } }`;

interface Options {
  volumes: number;
  duration: number;
  rounds: number;
  connections: number;
  warmup: number;
  subscribers: number;
  changes: number;
  spacing: number;
  inProcessRounds: number;
  cpuProf: string | null;
  out: string | null;
  dir: string;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      volumes: { type: 'string', default: '1000' },
      duration: { type: 'string', default: '10' },
      rounds: { type: 'string', default: '3' },
      connections: { type: 'string', default: '16' },
      warmup: { type: 'string', default: '2' },
      subscribers: { type: 'string', default: '100' },
      changes: { type: 'string', default: '50' },
      spacing: { type: 'string', default: '50' },
      'in-process-rounds': { type: 'string', default: '1' },
      'cpu-prof': { type: 'string' },
      out: { type: 'string' },
      dir: { type: 'string', default: process.env['BENCH_DIR'] ?? tmpdir() },
    },
  });
  const int = (name: string, text: string, min: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: a whole number ≥ ${min}, got "${text}"`);
    return n;
  };
  return {
    volumes: int('volumes', values.volumes!, 1),
    duration: int('duration', values.duration!, 1),
    rounds: int('rounds', values.rounds!, 1),
    connections: int('connections', values.connections!, 1),
    warmup: int('warmup', values.warmup!, 0),
    subscribers: int('subscribers', values.subscribers!, 1),
    changes: int('changes', values.changes!, 1),
    spacing: int('spacing', values.spacing!, 2),
    inProcessRounds: int('in-process-rounds', values['in-process-rounds']!, 0),
    cpuProf: values['cpu-prof'] ?? null,
    out: values.out ?? null,
    dir: values.dir!,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const volName = (i: number, n: number) => `vol-${String(i).padStart(Math.max(4, String(n - 1).length), '0')}`;

// ---- the store: what the controllers leave behind ---------------------------------------------------------

function cond(type: string, status: 'True' | 'False', reason = ''): Condition {
  return { type, status, reason, message: '', lastProbeTime: '', lastTransitionTime: '2026-11-30T08:00:00.000Z' };
}

/** Longhorn-style replica name: volume, `-r-`, 8 hex digits. */
function replicaName(vol: string, j: number): string {
  return `${vol}-r-${createHash('sha1').update(`${vol}/${j}`).digest('hex').slice(0, 8)}`;
}

async function seedStore(path: string, n: number): Promise<{ bytes: number }> {
  const store = openSqliteStore(path, { synchronous: 'NORMAL' }); // seeding only; the server opens it FULL
  try {
    const sizes = [1, 2, 5, 10, 20, 50].map((g) => g * GiB);
    const sizeOf = (i: number) => sizes[i % sizes.length]!;
    const nodeNames = Array.from({ length: NODES }, (_, k) => `node-${k + 1}`);
    // Nodes as the node controller writes them: Ready, disk-0 measured, every replica on it scheduled.
    for (const [k, name] of nodeNames.entries()) {
      const item = nodeFixture(name, { zone: k === 2 ? 'zone-b' : 'zone-a' });
      if (item.kind !== 'Node') throw new Error('node fixture');
      const disk = item.obj.status!.diskStatus['disk-0']!;
      const scheduled: Record<string, number> = {};
      let total = 0;
      for (let i = 0; i < n; i++) {
        scheduled[replicaName(volName(i, n), k)] = sizeOf(i);
        total += sizeOf(i);
      }
      disk.scheduledReplica = scheduled;
      disk.storageMaximum = 4 * 1024 * GiB;
      disk.storageScheduled = total;
      disk.storageAvailable = disk.storageMaximum - Math.round(total * 0.4) - k * 7 * GiB;
      await store.create('Node', item.obj);
    }
    for (let i = 0; i < n; i++) {
      const vol = volName(i, n);
      const size = sizeOf(i);
      const owner = nodeNames[i % NODES]!;
      const endpoint = `nbd://127.0.0.1:${10809 + (i % 200)}/${vol}`;
      const created = await store.create('Volume', {
        metadata: { name: vol, finalizers: [FINALIZER], labels: { app: `app-${i % 20}`, tier: i % 3 ? 'web' : 'db' } },
        spec: {
          size,
          numberOfReplicas: NODES,
          frontend: 'nbd',
          dataLocality: 'disabled',
          staleReplicaTimeout: 2880,
          nodeSelector: [],
          diskSelector: [],
          replicaAutoBalance: 'ignored',
          replicaSoftAntiAffinity: 'ignored',
          replicaZoneSoftAntiAffinity: 'ignored',
          replicaDiskSoftAntiAffinity: 'ignored',
          unmapMarkSnapChainRemoved: 'ignored',
          nodeID: owner,
          disableFrontend: false,
          snapshotMaxCount: 0,
          fromBackup: '',
          standby: false,
        },
        status: {
          ownerID: 'manager',
          state: 'attached',
          robustness: 'healthy',
          currentNodeID: owner,
          endpoint,
          currentSize: size,
          actualSize: Math.round(size * 0.37),
          conditions: [
            cond('Scheduled', 'True'),
            cond('Restore', 'False'),
            cond('TooManySnapshots', 'False'),
            cond('Revert', 'False', 'NoRevert'),
          ],
          lastDegradedAt: '',
          lastAutoSalvagedAt: '',
          frontendDisabled: false,
          expansionRequired: false,
          restoreRequired: false,
          restoreInitiated: false,
          isStandby: false,
          lastRestoredBackup: '',
          restoreProgress: 0,
          lastBackup: '',
          lastBackupAt: '',
        },
      });
      const ownerReferences = [{ kind: 'Volume', name: vol, uid: created.metadata.uid, controller: true }];
      const labels = { [VOLUME_LABEL]: vol };
      const engineName = engineNameOf(vol);
      const replicas = nodeNames.map((nodeID, k) => ({ name: replicaName(vol, k), nodeID, port: 20000 + i * 3 + k }));
      const addresses = Object.fromEntries(replicas.map((r) => [r.name, `tcp://127.0.0.1:${r.port}`]));
      for (const r of replicas) {
        await store.create('Replica', {
          metadata: { name: r.name, labels, finalizers: [FINALIZER], ownerReferences },
          spec: {
            volumeName: vol,
            volumeSize: size,
            nodeID: r.nodeID,
            desireState: 'running',
            salvageRequested: false,
            engineName,
            diskID: `${r.nodeID}-disk-0-uuid`,
            diskPath: `/data/${r.nodeID}/disk-0`,
            dataDirectoryName: r.name,
            hardNodeAffinity: '',
            active: true,
            rebuildRetryCount: 0,
            evictionRequested: false,
            healthyAt: '2026-11-30T08:01:00.000Z',
            lastHealthyAt: '2026-11-30T08:01:00.000Z',
            failedAt: '',
            lastFailedAt: '',
          },
          status: {
            ownerID: 'manager',
            instanceManagerName: `im-${r.nodeID}`,
            currentState: 'running',
            ip: '127.0.0.1',
            port: r.port,
            started: true,
            errorMsg: '',
            conditions: [],
          },
        });
      }
      await store.create('Engine', {
        metadata: { name: engineName, labels, finalizers: [FINALIZER], ownerReferences },
        spec: {
          volumeName: vol,
          volumeSize: size,
          nodeID: owner,
          desireState: 'running',
          salvageRequested: false,
          frontend: 'nbd',
          replicaAddressMap: addresses,
          disableFrontend: false,
          unmapMarkSnapChainRemovedEnabled: false,
          replicaTimeout: 8,
          requestedBackupRestore: '',
          requestedBackupRestoreURL: '',
        },
        status: {
          ownerID: 'manager',
          instanceManagerName: `im-${owner}`,
          currentState: 'running',
          ip: '127.0.0.1',
          port: 10000 + i,
          started: true,
          errorMsg: '',
          conditions: [],
          currentSize: size,
          currentReplicaAddressMap: addresses,
          replicaModeMap: Object.fromEntries(replicas.map((r) => [r.name, 'RW' as const])),
          endpoint,
          rebuildStatus: {},
          snapshots: {},
          snapshotsError: '',
          salvageExecuted: false,
          lastRestoredBackup: '',
          restoreStatus: { state: 'idle', backupName: '', progress: 0, error: '' },
        },
      });
      const ticketId = `shorthorn-api-${owner}`;
      await store.create('VolumeAttachment', {
        metadata: { name: vol, labels, ownerReferences },
        spec: {
          volume: vol,
          attachmentTickets: {
            [ticketId]: {
              id: ticketId,
              type: 'shorthorn-api',
              nodeID: owner,
              parameters: { disableFrontend: false },
              generation: 0,
            },
          },
        },
        status: { attachmentTicketStatuses: { [ticketId]: { id: ticketId, satisfied: true, conditions: [] } } },
      });
    }
  } finally {
    await store.close();
  }
  return { bytes: statSync(path).size };
}

// ---- server children ----------------------------------------------------------------------------------------

interface Stats {
  hrtimeUs: number;
  cpu: NodeJS.CpuUsage;
  mem: NodeJS.MemoryUsage;
}

interface Server {
  kind: TargetKind;
  url: string;
  /** CPU, memory and clock of the process serving (the bench's own when in-process). */
  stats(): Promise<Stats>;
  changes(volume: string, count: number, spacingMs: number): Promise<string[]>;
  close(): Promise<void>;
}

const children = new Set<ChildProcess>();

async function startChild(kind: TargetKind, args: string[], profDir: string | null): Promise<Server> {
  const nodeArgs = [...SERVER_NODE_FLAGS];
  if (profDir) {
    mkdirSync(join(profDir, kind), { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${join(profDir, kind)}`);
  }
  const proc = spawn(
    process.execPath,
    [...nodeArgs, join(REPO, 'bin/run-ts.js'), join(REPO, 'bench/api-bench-server.ts'), '--target', kind, ...args],
    { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  children.add(proc);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  void exited.then(() => children.delete(proc));
  const waiting = new Map<number, { resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let onReady: ((m: Record<string, unknown>) => void) | undefined;
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(line) as Record<string, unknown>;
    } catch {
      process.stderr.write(`[${kind}] ${line}\n`);
      return;
    }
    if (m['ready']) onReady?.(m);
    const w = waiting.get(m['id'] as number);
    if (!w) return;
    waiting.delete(m['id'] as number);
    if (m['error']) w.reject(new Error(`${kind} server: ${String(m['error'])}`));
    else w.resolve(m);
  });
  void exited.then(() => {
    for (const w of waiting.values()) w.reject(new Error(`${kind} server exited`));
    waiting.clear();
  });
  const ready = await Promise.race([
    new Promise<Record<string, unknown>>((resolve) => {
      onReady = resolve;
    }),
    exited.then(() => {
      throw new Error(`${kind} server exited before it was ready (exit code ${proc.exitCode})`);
    }),
  ]);
  const send = (cmd: Record<string, unknown>): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      proc.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  return {
    kind,
    url: ready['url'] as string,
    stats: async () => (await send({ cmd: 'stats' })) as unknown as Stats,
    changes: async (volume, count, spacingMs) =>
      (await send({ cmd: 'changes', volume, count, spacingMs }))['written'] as string[],
    close: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.stdin!.write(`${JSON.stringify({ cmd: 'exit' })}\n`);
      const timedOut = await Promise.race([exited.then(() => false), sleep(10_000).then(() => true)]);
      if (timedOut) {
        proc.kill('SIGKILL');
        await exited;
      }
    },
  };
}

function inProcess(kind: TargetKind, t: StartedTarget): Server {
  return {
    kind,
    url: t.url,
    stats: async () => ({
      hrtimeUs: Number(process.hrtime.bigint() / 1000n),
      cpu: process.cpuUsage(),
      mem: process.memoryUsage(),
    }),
    changes: async (volume, count, spacingMs) => {
      if (!t.changes) throw new Error(`${kind}: no store`);
      return t.changes(volume, count, spacingMs);
    },
    close: () => t.close(),
  };
}

// ---- the dashboard under load ----------------------------------------------------------------------------------

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  latency: { p50: number; p99: number; average: number; max: number; totalCount: number };
  throughput: { average: number };
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const queryOf = (kind: TargetKind) => (kind === 'bare' ? BARE_QUERY : DASHBOARD);

function load(url: string, kind: TargetKind, connections: number, seconds: number): Promise<AutocannonResult> {
  return autocannon({
    url,
    connections,
    duration: seconds,
    // autocannon's default (10 s) would cut off and hide the slowest responses: count them instead.
    timeout: 120,
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query: queryOf(kind) }),
  });
}

async function post(url: string, query: string): Promise<string> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return text;
}

interface Run {
  mode: 'child' | 'in-process';
  round: number;
  kind: TargetKind;
  rps: number;
  p50: number;
  p99: number;
  mean: number;
  max: number;
  requests: number;
  bad: number;
  cpuMsPerReq: number;
  window: TimeWindow;
}

async function measure(
  mode: Run['mode'],
  round: number,
  s: Server,
  o: Options,
  log: (line?: string) => void,
): Promise<Run> {
  const a = await s.stats();
  const r = await load(s.url, s.kind, o.connections, o.duration);
  const b = await s.stats();
  const ok = r['2xx'];
  const cpuMs = (b.cpu.user - a.cpu.user + b.cpu.system - a.cpu.system) / 1000;
  const run: Run = {
    mode,
    round,
    kind: s.kind,
    rps: ok / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    mean: r.latency.average,
    max: r.latency.max,
    requests: ok,
    bad: r.non2xx + r.errors + r.timeouts,
    cpuMsPerReq: ok ? cpuMs / ok : Number.NaN,
    window: { fromUs: a.hrtimeUs, toUs: b.hrtimeUs },
  };
  log(
    `  ${mode} round ${round} ${s.kind.padEnd(9)} ${run.rps.toFixed(1)} req/s, p50 ${run.p50} ms, p99 ${run.p99} ms, mean ${run.mean.toFixed(1)} ms` +
      (run.bad ? `, ${run.bad} non-2xx/errors/timeouts` : ''),
  );
  return run;
}

async function rounds(
  mode: Run['mode'],
  n: number,
  servers: Server[],
  o: Options,
  progress: (line?: string) => void,
): Promise<Run[]> {
  if (o.warmup > 0) for (const s of servers) await load(s.url, s.kind, o.connections, o.warmup);
  const runs: Run[] = [];
  for (let round = 1; round <= n; round++)
    for (const s of servers) runs.push(await measure(mode, round, s, o, progress));
  return runs;
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const times = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');

/** Median over rounds of f(kind) / f(base), each ratio within one round. */
function ratio(runs: Run[], kind: TargetKind, base: TargetKind, f: (r: Run) => number): { med: number; all: number[] } {
  const all: number[] = [];
  for (const r of runs.filter((x) => x.kind === kind)) {
    const b = runs.find((x) => x.kind === base && x.round === r.round);
    if (b) all.push(f(r) / f(b));
  }
  return { med: median(all), all };
}

function summaryTable(runs: Run[]): string {
  const of = (k: TargetKind) => runs.filter((r) => r.kind === k);
  const med = (k: TargetKind, f: (r: Run) => number) => median(of(k).map(f));
  return formatTable(
    [
      'target',
      'req/s',
      'p50 ms',
      'p99 ms',
      'mean ms',
      'max ms',
      'ms/req (1/rate)',
      'cpu ms/req',
      'p50 ×bare',
      'p99 ×bare',
    ],
    TARGETS.filter((k) => of(k).length > 0).map((k) => [
      k,
      f1(med(k, (r) => r.rps)),
      f1(med(k, (r) => r.p50)),
      f1(med(k, (r) => r.p99)),
      f1(med(k, (r) => r.mean)),
      f1(med(k, (r) => r.max)),
      f2(med(k, (r) => 1000 / r.rps)),
      f2(med(k, (r) => r.cpuMsPerReq)),
      times(ratio(runs, k, 'bare', (r) => r.p50).med),
      times(ratio(runs, k, 'bare', (r) => r.p99).med),
    ]),
  );
}

function roundsTable(runs: Run[]): string {
  return formatTable(
    ['round', 'target', 'req/s', 'p50 ms', 'p99 ms', 'mean ms', 'max ms', 'requests', 'non-2xx/err', 'cpu ms/req'],
    runs.map((r) => [
      r.round,
      r.kind,
      f1(r.rps),
      r.p50,
      r.p99,
      f1(r.mean),
      r.max,
      r.requests,
      r.bad,
      f2(r.cpuMsPerReq),
    ]),
  );
}

// ---- subscriptions over SSE ----------------------------------------------------------------------------------

interface Subscriber {
  /** lastDegradedAt → arrival (Date.now()) of each event; the first (current value) under `initial`. */
  arrivals: Map<string, number>;
  events: number;
  duplicates: number;
  initial: Promise<void>;
  ended: Promise<void>;
  error?: Error;
  abort(): void;
}

function subscribe(url: string, volume: string): Subscriber {
  const ac = new AbortController();
  let gotInitial!: () => void;
  let failInitial!: (e: Error) => void;
  const s: Subscriber = {
    arrivals: new Map(),
    events: 0,
    duplicates: 0,
    initial: new Promise<void>((resolve, reject) => {
      gotInitial = resolve;
      failInitial = reject;
    }),
    ended: Promise.resolve(),
    abort: () => ac.abort(),
  };
  s.ended = (async () => {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ query: SUBSCRIPTION(volume) }),
        signal: ac.signal,
      });
      if (!res.ok || !res.body) throw new Error(`subscribe: HTTP ${res.status}: ${await res.text()}`);
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        const now = Date.now();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        for (let cut = buf.indexOf('\n\n'); cut >= 0; cut = buf.indexOf('\n\n')) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).trimStart())
            .join('\n');
          if (!data) continue; // keep-alive comment, or `event: complete`
          const msg = JSON.parse(data) as {
            data?: { volumeChanged?: { lastDegradedAt: string } };
            errors?: { message: string }[];
          };
          if (msg.errors?.length) throw new Error(`subscription error: ${msg.errors[0]!.message}`);
          const at = msg.data?.volumeChanged?.lastDegradedAt;
          if (at === undefined) continue;
          s.events++;
          if (s.events === 1) {
            gotInitial();
            continue;
          }
          if (s.arrivals.has(at)) s.duplicates++;
          else s.arrivals.set(at, now);
        }
      }
    } catch (err) {
      if (!ac.signal.aborted) {
        s.error = err instanceof Error ? err : new Error(String(err));
        failInitial(s.error);
      }
    }
  })();
  return s;
}

interface SubscriptionResult {
  volume: string;
  subscribers: number;
  subscribeMs: number;
  changes: number;
  expected: number;
  delivered: number;
  lost: number;
  duplicates: number;
  unexpected: number;
  errors: number;
  latencies: number[];
  /** per change: the latency of its slowest subscriber */
  slowest: number[];
  serverCpuMs: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function subscriptions(s: Server, o: Options, volume: string): Promise<SubscriptionResult> {
  const t0 = performance.now();
  const subs = Array.from({ length: o.subscribers }, () => subscribe(s.url, volume));
  try {
    await Promise.race([
      Promise.all(subs.map((x) => x.initial)),
      sleep(30_000).then(() => {
        throw new Error(`not all ${o.subscribers} subscribers got the current value within 30 s`);
      }),
    ]);
    const subscribeMs = performance.now() - t0;
    await sleep(200);
    const a = await s.stats();
    const written = await s.changes(volume, o.changes, o.spacing);
    // Wait for the last change to reach everybody (or 5 s).
    const last = written.at(-1)!;
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && subs.some((x) => !x.arrivals.has(last) && !x.error)) await sleep(10);
    await sleep(100);
    const b = await s.stats();
    const writtenSet = new Set(written);
    const latencies: number[] = [];
    const slowest: number[] = [];
    let delivered = 0;
    for (const at of written) {
      const sent = Date.parse(at);
      let worst = Number.NaN;
      for (const x of subs) {
        const got = x.arrivals.get(at);
        if (got === undefined) continue;
        delivered++;
        latencies.push(got - sent);
        worst = Number.isNaN(worst) ? got - sent : Math.max(worst, got - sent);
      }
      slowest.push(worst);
    }
    latencies.sort((p, q) => p - q);
    return {
      volume,
      subscribers: o.subscribers,
      subscribeMs,
      changes: written.length,
      expected: written.length * o.subscribers,
      delivered,
      lost: written.length * o.subscribers - delivered,
      duplicates: subs.reduce((n, x) => n + x.duplicates, 0),
      unexpected: subs.reduce((n, x) => n + [...x.arrivals.keys()].filter((k) => !writtenSet.has(k)).length, 0),
      errors: subs.filter((x) => x.error).length,
      latencies,
      slowest,
      serverCpuMs: (b.cpu.user - a.cpu.user + b.cpu.system - a.cpu.system) / 1000,
    };
  } finally {
    for (const x of subs) x.abort();
    await Promise.all(subs.map((x) => x.ended));
  }
}

// ---- main ------------------------------------------------------------------------------------------------------

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
}

let workDir = '';
const servers: Server[] = [];

async function cleanup(): Promise<void> {
  for (const s of servers.splice(0)) await s.close().catch(() => {});
  for (const c of children) c.kill('SIGKILL');
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  workDir = '';
}

async function main(o: Options): Promise<void> {
  mkdirSync(o.dir, { recursive: true });
  workDir = mkdtempSync(join(o.dir, 'shorthorn-api-bench-'));
  const dbPath = join(workDir, 'shorthorn.db');
  const docPath = join(workDir, 'dashboard.json');
  const logPath = join(workDir, 'api.log');
  const profDir = o.cpuProf;
  const started = new Date();
  const lines: string[] = [];
  const log = (line = '') => {
    lines.push(line);
    process.stdout.write(`${line}\n`);
  };
  const progress = (line = '') => process.stderr.write(`${line}\n`);

  progress(`api bench: seeding ${o.volumes} volumes in ${dbPath}`);
  const t0 = performance.now();
  const { bytes: dbBytes } = await seedStore(dbPath, o.volumes);
  const seedSeconds = (performance.now() - t0) / 1000;

  // The real server first: its answer to the dashboard query is the document the others serve.
  const shorthorn = await startChild('shorthorn', ['--db', dbPath, '--log', logPath], profDir);
  servers.push(shorthorn);
  const body = await post(shorthorn.url, DASHBOARD);
  const parsed = JSON.parse(body) as { data?: { volumes: unknown[] }; errors?: unknown[] };
  if (parsed.errors || parsed.data?.volumes.length !== o.volumes)
    throw new Error(`dashboard query: ${body.slice(0, 500)}`);
  writeFileSync(docPath, JSON.stringify(parsed.data.volumes));
  const bare = await startChild('bare', ['--doc', docPath], profDir);
  servers.push(bare);
  const typed = await startChild('typed', ['--doc', docPath], profDir);
  servers.push(typed);
  const bareBody = await post(bare.url, BARE_QUERY);
  const typedBody = await post(typed.url, DASHBOARD);
  if (bareBody !== body) throw new Error(`bare server's body differs (${bareBody.length} vs ${body.length} bytes)`);
  const typedSame = typedBody === body;

  const byKind = new Map(servers.map((s) => [s.kind, s]));
  const order = TARGETS.map((k) => byKind.get(k)!);
  progress(`dashboard body ${body.length} bytes; ${o.rounds} rounds of ${o.duration} s per target`);
  const runs = await rounds('child', o.rounds, order, o, progress);
  const mem = new Map<TargetKind, Stats>();
  for (const s of order) mem.set(s.kind, await s.stats());

  const subVolume = volName(Math.min(42, o.volumes - 1), o.volumes);
  progress(`subscriptions: ${o.subscribers} on ${subVolume}, ${o.changes} changes ${o.spacing} ms apart`);
  const sub = await subscriptions(shorthorn, o, subVolume);

  for (const s of servers.splice(0)) await s.close();

  // The same rounds with the servers in this process, beside autocannon.
  let inRuns: Run[] = [];
  if (o.inProcessRounds > 0) {
    const local: Server[] = [];
    try {
      local.push(inProcess('bare', await startTarget('bare', { doc: docPath })));
      local.push(inProcess('typed', await startTarget('typed', { doc: docPath })));
      local.push(inProcess('shorthorn', await startTarget('shorthorn', { db: dbPath, log: logPath })));
      servers.push(...local);
      inRuns = await rounds('in-process', o.inProcessRounds, local, o, progress);
    } finally {
      for (const s of servers.splice(0)) await s.close().catch(() => {});
    }
  }

  // ---- report ----
  const p50 = ratio(runs, 'shorthorn', 'bare', (r) => r.p50);
  const p99 = ratio(runs, 'shorthorn', 'bare', (r) => r.p99);
  const verdict = (x: number, limit: number) => (x <= limit ? 'PASS' : 'MISS');
  const dirty = sh('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no'])
    ? ' + uncommitted changes'
    : '';
  log(
    `# GraphQL API benchmark: dashboard query over ${o.volumes} volumes × ${NODES} replicas, ${o.connections} connections; ${o.subscribers} SSE subscribers`,
  );
  log(`command: npm run bench:api -- ${process.argv.slice(2).join(' ')}`.trimEnd());
  log(
    `date: ${started.toISOString()}; commit ${sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'])}${dirty}; node ${process.version}; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'})`,
  );
  log(
    `store: ${o.volumes} volumes (attached, 3 running replicas, running engine, attachment), ${NODES} nodes; SQLite ${(dbBytes / MiB).toFixed(1)} MiB, seeded in ${seedSeconds.toFixed(1)} s`,
  );
  log(
    `dashboard response ${(body.length / 1024).toFixed(1)} KiB; bare body identical: yes; typed body identical: ${typedSame ? 'yes' : 'NO'}`,
  );
  log(`query: ${DASHBOARD}`);
  log(
    `servers: child processes (node ${SERVER_NODE_FLAGS.join(' ')}), autocannon in the bench process; ${o.rounds} rounds × ${o.duration} s per target, interleaved (bare, typed, shorthorn), after ${o.warmup} s warm-up each`,
  );
  log();
  log('## dashboard query, servers in child processes (median over rounds; ratios: median of per-round ratios)');
  log();
  log(summaryTable(runs));
  log();
  log(roundsTable(runs));
  log();
  log(
    `shorthorn/bare p50 ${times(p50.med)} (rounds: ${p50.all.map(times).join(', ')}): ${verdict(p50.med, 2)} (target ≤ 2×)`,
  );
  log(
    `shorthorn/bare p99 ${times(p99.med)} (rounds: ${p99.all.map(times).join(', ')}): ${verdict(p99.med, 2)} (target ≤ 2×)`,
  );
  log(
    `server RSS after the rounds: ${TARGETS.map((k) => `${k} ${(mem.get(k)!.mem.rss / MiB).toFixed(0)} MiB`).join(', ')}`,
  );
  if (inRuns.length > 0) {
    const ip50 = ratio(inRuns, 'shorthorn', 'bare', (r) => r.p50);
    const ip99 = ratio(inRuns, 'shorthorn', 'bare', (r) => r.p99);
    log();
    log(
      `## the same, servers inside the bench process beside autocannon (${o.inProcessRounds} round${o.inProcessRounds > 1 ? 's' : ''}; cpu ms/req includes autocannon)`,
    );
    log();
    log(summaryTable(inRuns));
    log();
    log(`in-process shorthorn/bare p50 ${times(ip50.med)}, p99 ${times(ip99.med)}`);
  }
  log();
  log(
    `## subscriptions: ${sub.subscribers} SSE subscribers to volumeChanged(name: "${sub.volume}") (one volume: every change reaches all of them)`,
  );
  log();
  const lat = sub.latencies;
  const slow = [...sub.slowest].filter(Number.isFinite).sort((a, b) => a - b);
  log(
    `${sub.changes} status changes (store.updateStatus in the server process, ${o.spacing} ms apart); all ${sub.subscribers} subscribed (current value received) in ${sub.subscribeMs.toFixed(0)} ms`,
  );
  log(
    `deliveries ${sub.delivered} of ${sub.expected} (lost ${sub.lost}, duplicated ${sub.duplicates}, unexpected ${sub.unexpected}, subscribers failed ${sub.errors}); server CPU ${sub.serverCpuMs.toFixed(0)} ms (${(sub.serverCpuMs / Math.max(1, sub.delivered)).toFixed(2)} ms per delivery)`,
  );
  log();
  log(
    formatTable(
      ['latency write → subscriber', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'mean ms'],
      [
        [
          'every delivery',
          percentile(lat, 50),
          percentile(lat, 90),
          percentile(lat, 99),
          lat.at(-1) ?? '–',
          f1(lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length)),
        ],
        [
          'slowest subscriber per change',
          percentile(slow, 50),
          percentile(slow, 90),
          percentile(slow, 99),
          slow.at(-1) ?? '–',
          f1(slow.reduce((a, b) => a + b, 0) / Math.max(1, slow.length)),
        ],
      ],
    ),
  );
  log();
  log(
    `change-to-subscriber p99 ${percentile(lat, 99)} ms: ${sub.lost === 0 && percentile(lat, 99) <= 100 ? 'PASS' : 'MISS'} (target ≤ 100 ms, no losses)`,
  );

  if (profDir) {
    log();
    log('## CPU profiles of the server children (self time inside their measured rounds only)');
    for (const k of TARGETS) {
      const dir = join(profDir, k);
      const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
      if (!file) {
        log(`${k}: no profile in ${dir}`);
        continue;
      }
      const windows = runs.filter((r) => r.kind === k).map((r) => r.window);
      writeFileSync(join(profDir, `${k}-windows.json`), JSON.stringify(windows));
      log();
      log(
        formatProfile(
          `${k} (${join(dir, file)})`,
          summariseProfile(join(dir, file), windows, k === 'shorthorn' ? 30 : 12),
        ),
      );
    }
  }
  if (o.out) writeFileSync(o.out, `${lines.join('\n')}\n`);
}

const opts = options();
await runBench('api', () => main(opts), cleanup);
