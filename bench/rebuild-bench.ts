// `npm run bench:rebuild`: how fast a replica is rebuilt, beside `cp --sparse=always` of the same layer
// file, for a half-full volume laid out contiguously and fragmented into alternating 4 KiB data/hole
// runs; and how long snapshot creation holds the I/O of a volume under a random-write load.
//
// Each rebuild is the real thing: a source replica process holding the data in its head, an engine on
// it, and a fresh target replica added through ControllerService.ReplicaCreate; the time runs from the
// call until the engine reports the replica RW. Page cache is dropped before each measured copy (when
// /proc/sys/vm/drop_caches is writable) so both sides start cold, as a rebuild after a failure does.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { credentials } from '@grpc/grpc-js';
import { type ShorthornProcess, startShorthorn } from '../cli/child-process.js';
import { formatTable } from '../cli/table.js';
import { unary } from '../dataplane/grpc/unary.js';
import { ControllerServiceClient } from '../dataplane/proto/gen/engine.js';
import { Replica } from '../dataplane/replica/store/replica.js';
import { readVolumeMeta } from '../dataplane/replica/store/volume-meta.js';
import { formatSize, parseSize } from '../dataplane/util/size.js';
import { freePorts } from '../test/helpers/ports.js';
import { runBench } from './run-bench.js';

const MiB = 1024 * 1024;
const BLOCK = 4096;

interface Options {
  size: number;
  dir: string;
  snapshotSeconds: number;
  rounds: number;
  layouts: ('contiguous' | 'fragmented')[];
  /** Only the rebuild part. */
  skipSnapshots: boolean;
  out: string | null;
  /** Keep the page cache (to see the software's own limit rather than the disk's). */
  warm: boolean;
  /** Write V8 CPU profiles of the replicas here. */
  cpuProf: string | null;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: process.env['BENCH_SIZE'] ?? '2Gi' },
      dir: { type: 'string', default: process.env['BENCH_DIR'] ?? tmpdir() },
      'snapshot-seconds': { type: 'string', default: process.env['BENCH_SNAPSHOT_SECONDS'] ?? '15' },
      rounds: { type: 'string', default: process.env['BENCH_ROUNDS'] ?? '3' },
      layouts: { type: 'string', default: 'contiguous,fragmented' },
      'skip-snapshots': { type: 'boolean', default: false },
      out: { type: 'string' },
      warm: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
    },
  });
  return {
    size: parseSize(values.size!),
    dir: values.dir!,
    snapshotSeconds: Number(values['snapshot-seconds']),
    rounds: Math.max(1, Number(values.rounds)),
    layouts: values.layouts!.split(',').map((l) => {
      if (l !== 'contiguous' && l !== 'fragmented') throw new Error(`--layouts: unknown layout ${l}`);
      return l;
    }),
    skipSnapshots: values['skip-snapshots'] ?? false,
    out: values.out ?? null,
    warm: values.warm ?? false,
    cpuProf: values['cpu-prof'] ?? null,
  };
}

const processes: ShorthornProcess[] = [];
let workDir = '';

async function cleanup(): Promise<void> {
  await Promise.all(processes.splice(0).map((p) => p.stop(5000).catch(() => p.kill9())));
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

let keepCache = false;
let profileDir: string | null = null;
const nodeArgs = (name: string) =>
  profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, name)}`] } : {};

function dropCaches(): boolean {
  if (keepCache) return false;
  try {
    execFileSync('sync');
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    return true;
  } catch {
    return false;
  }
}

/** A replica directory whose head holds half of `size` as data: one run, or alternating 4 KiB blocks. */
function buildSource(dir: string, size: number, layout: 'contiguous' | 'fragmented'): void {
  Replica.create(dir, size);
  const head = join(dir, 'volume-head-000.img');
  const fd = openSync(head, 'r+');
  const pool = randomBytes(8 * MiB);
  try {
    if (layout === 'contiguous') {
      for (let off = 0; off < size / 2; off += 4 * MiB)
        writeSync(fd, pool, ((off / MiB) % 4) * MiB, Math.min(4 * MiB, size / 2 - off), off);
    } else {
      for (let b = 0; b < size / BLOCK; b += 2)
        writeSync(fd, pool, (b * 131) % (pool.length - BLOCK), BLOCK, b * BLOCK);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function timeCommand(cmd: string, args: string[]): number {
  const t0 = performance.now();
  execFileSync(cmd, args, { stdio: 'inherit' });
  return (performance.now() - t0) / 1000;
}

interface RebuildResult {
  /** Until the engine reports the new replica RW. */
  seconds: number;
  /** Until the copy is on disk too: the replica's volume.meta says Rebuilding=false. */
  durableSeconds: number;
  transferred: number;
  total: number;
}

async function rebuild(dir: string, size: number, label: string): Promise<RebuildResult> {
  const [srcPort, dstPort, enginePort, nbdPort] = [
    await freePorts(2),
    await freePorts(2),
    await freePorts(1),
    await freePorts(1),
  ];
  const source = await startShorthorn(
    ['replica', '--dir', join(dir, `${label}-src`), '--listen', `127.0.0.1:${srcPort}`],
    nodeArgs(`${label}-source`),
  );
  processes.push(source);
  const engine = await startShorthorn([
    'engine',
    '--volume',
    label,
    '--size',
    String(size),
    '--replica',
    `tcp://127.0.0.1:${srcPort}`,
    '--listen',
    `127.0.0.1:${enginePort}`,
    '--nbd-listen',
    `127.0.0.1:${nbdPort}`,
  ]);
  processes.push(engine);
  const target = await startShorthorn(
    ['replica', '--dir', join(dir, `${label}-dst`), '--size', String(size), '--listen', `127.0.0.1:${dstPort}`],
    nodeArgs(`${label}-target`),
  );
  processes.push(target);
  const c = new ControllerServiceClient(`127.0.0.1:${enginePort}`, credentials.createInsecure());
  try {
    dropCaches();
    const address = `tcp://127.0.0.1:${dstPort}`;
    const t0 = performance.now();
    await unary(c.replicaCreate, c, { address }, 120_000);
    const joined = (performance.now() - t0) / 1000;
    for (;;) {
      const p = await unary(c.replicaRebuildStatus, c, { address });
      if (p.state === 'complete') {
        const seconds = (performance.now() - t0) / 1000;
        const durableSeconds = await untilOnDisk(join(dir, `${label}-dst`), t0);
        await settlePurge(c);
        process.stderr.write(
          `${label}: joined WO after ${joined.toFixed(2)} s, RW after ${seconds.toFixed(2)} s\n${target
            .logs()
            .split('\n')
            .filter((l) => l.includes('rebuild'))
            .join('\n')}\n`,
        );
        return { seconds, durableSeconds, transferred: p.bytesTransferred, total: p.bytesTotal };
      }
      if (p.state === 'idle') throw new Error(`the replica joined ${p.mode} without a rebuild`);
      if (p.state === 'error') throw new Error(`rebuild failed: ${p.error}\n${engine.logs().slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } finally {
    c.close();
    await Promise.all([source, engine, target].map((p) => p.stop(10_000).catch(() => p.kill9())));
    processes.splice(0);
  }
}

/** Seconds from t0 until the rebuilt replica's volume.meta says its copy is on disk (Rebuilding=false). */
async function untilOnDisk(replicaDir: string, t0: number): Promise<number> {
  const deadline = Date.now() + 120_000;
  while (readVolumeMeta(replicaDir)?.rebuilding !== false) {
    if (Date.now() > deadline) throw new Error(`${replicaDir}: volume.meta still says Rebuilding after 120 s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return (performance.now() - t0) / 1000;
}

/**
 * The engine purges the rebuild's system snapshot in the background once the replica is RW; the
 * snapshot files are compared only after that purge ran on both replicas (one stopped mid-purge and the
 * other not would differ by file, though not by content). A purge is refused while another runs.
 */
async function settlePurge(c: ControllerServiceClient): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const reply = await unary(c.snapshotPurge, c, {}, 60_000).catch((err: Error) => ({ error: err }));
    // The background purge starts as the replica turns RW: once ours is refused nowhere, it has ended.
    if (!('error' in reply) && reply.replicas.every((r) => r.error === '')) return;
    if (Date.now() > deadline) throw new Error(`the purge after the rebuild did not settle: ${JSON.stringify(reply)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Every snapshot file of the source arrived byte for byte. */
function verifyCopy(dir: string, label: string): void {
  const src = join(dir, `${label}-src`);
  const snaps = readdirSync(src).filter((f) => f.startsWith('volume-snap-') && f.endsWith('.img'));
  if (snaps.length === 0) throw new Error(`no snapshot file in ${src}`);
  for (const snap of snaps) {
    try {
      execFileSync('cmp', [join(src, snap), join(dir, `${label}-dst`, snap)], { stdio: 'pipe' });
    } catch (err) {
      const out = (err as { stdout?: Buffer; stderr?: Buffer }).stdout?.toString() ?? '';
      const listing = (d: string) => readdirSync(d).sort().join(' ');
      throw new Error(
        `${snap} differs between source and rebuilt replica: ${out.trim()} ${(err as Error).message}\n` +
          `source: ${listing(src)}\nrebuilt: ${listing(join(dir, `${label}-dst`))}`,
      );
    }
  }
}

function largestLayer(dir: string): string {
  const layers = readdirSync(dir)
    .filter((f) => f.endsWith('.img'))
    .map((f) => ({ path: join(dir, f), bytes: statSync(join(dir, f)).blocks }));
  return layers.sort((a, b) => b.bytes - a.bytes)[0]!.path;
}

async function snapshotPauses(dir: string, seconds: number): Promise<number[]> {
  const size = 1024 * MiB;
  const ports = [await freePorts(2), await freePorts(2), await freePorts(2)];
  const [enginePort, nbdPort] = [await freePorts(1), await freePorts(1)];
  for (const [i, port] of ports.entries()) {
    processes.push(
      await startShorthorn([
        'replica',
        '--dir',
        join(dir, `snap-r${i}`),
        '--size',
        String(size),
        '--listen',
        `127.0.0.1:${port}`,
      ]),
    );
  }
  processes.push(
    await startShorthorn([
      'engine',
      '--volume',
      'snap',
      '--size',
      String(size),
      ...ports.flatMap((p) => ['--replica', `tcp://127.0.0.1:${p}`]),
      '--listen',
      `127.0.0.1:${enginePort}`,
      '--nbd-listen',
      `127.0.0.1:${nbdPort}`,
    ]),
  );
  const fio = spawn(
    'fio',
    [
      '--ioengine=nbd',
      `--uri=nbd://127.0.0.1:${nbdPort}/snap`,
      '--name=load',
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=32',
      '--size=512M',
      '--time_based',
      `--runtime=${seconds + 2}`,
    ],
    { stdio: 'ignore' },
  );
  const c = new ControllerServiceClient(`127.0.0.1:${enginePort}`, credentials.createInsecure());
  const pauses: number[] = [];
  try {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const end = performance.now() + seconds * 1000;
    for (let i = 0; performance.now() < end && i < 200; i++) {
      const r = await unary(c.snapshotCreate, c, { name: `pause-${i}`, labels: {} });
      pauses.push(r.pauseUs / 1000);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    c.close();
    fio.kill('SIGKILL');
    await Promise.all(processes.splice(0).map((p) => p.stop(10_000).catch(() => p.kill9())));
  }
  return pauses;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(o: Options): Promise<void> {
  mkdirSync(o.dir, { recursive: true });
  workDir = mkdtempSync(join(o.dir, 'shorthorn-rebuild-bench-'));
  keepCache = o.warm;
  profileDir = o.cpuProf;
  const cold = dropCaches();
  const lines: string[] = [];
  const log = (line: string) => {
    lines.push(line);
    process.stdout.write(`${line}\n`);
  };
  log(
    `# rebuild benchmark: ${formatSize(o.size)} volume, half full; page cache ${cold ? 'dropped before each copy (cold)' : 'NOT dropped (warm)'}`,
  );
  const rows: string[][] = [];
  const results: Record<string, { cp: number; durableCp: number; rebuild: RebuildResult }> = {};
  for (const layout of o.layouts) {
    const src = join(workDir, `${layout}-src`);
    const t0 = performance.now();
    buildSource(src, o.size, layout);
    process.stderr.write(`built ${layout} source in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    const data = statSync(largestLayer(src)).blocks * 512;
    const copy = join(workDir, `${layout}-cp.img`);
    const rounds: { cp: number; durableCp: number; rebuild: RebuildResult }[] = [];
    // Interleaved rounds, medians reported: these machines are noisy.
    for (let round = 0; round < o.rounds; round++) {
      // Each rebuild turns the source's head into a system snapshot: the data lives in the largest file.
      const head = largestLayer(src);
      dropCaches();
      const cp = timeCommand('cp', ['--sparse=always', head, copy]);
      rmSync(copy);
      dropCaches();
      // A rebuild must leave its copy on disk; this is the copy that does the same.
      const durableCp = timeCommand('sh', ['-c', `cp --sparse=always '${head}' '${copy}' && sync -d '${copy}'`]);
      rmSync(copy);
      const rebuilt = await rebuild(workDir, o.size, layout);
      verifyCopy(workDir, layout);
      rmSync(join(workDir, `${layout}-dst`), { recursive: true, force: true });
      rounds.push({ cp, durableCp, rebuild: rebuilt });
    }
    const med = (f: (r: (typeof rounds)[number]) => number) => median(rounds.map(f));
    const r = {
      cp: med((x) => x.cp),
      durableCp: med((x) => x.durableCp),
      rebuild: {
        ...rounds[0]!.rebuild,
        seconds: med((x) => x.rebuild.seconds),
        durableSeconds: med((x) => x.rebuild.durableSeconds),
      },
    };
    results[layout] = r;
    rows.push([
      layout,
      formatSize(data),
      r.cp.toFixed(2),
      r.durableCp.toFixed(2),
      r.rebuild.seconds.toFixed(2),
      r.rebuild.durableSeconds.toFixed(2),
      (data / MiB / r.rebuild.seconds).toFixed(0),
      (r.cp / r.rebuild.seconds).toFixed(2),
      (r.durableCp / r.rebuild.durableSeconds).toFixed(2),
      formatSize(r.rebuild.transferred),
      rounds.map((x) => x.rebuild.seconds.toFixed(2)).join(' '),
    ]);
  }
  log('');
  log(
    formatTable(
      [
        'layout',
        'data',
        'cp s',
        'cp+sync s',
        'rebuild s',
        'on disk s',
        'rebuild MiB/s',
        '×cp',
        '×cp+sync',
        'sent',
        'rebuild s per round',
      ],
      rows,
    ),
  );
  const contiguous = results['contiguous'];
  const fragmented = results['fragmented'];
  log('');
  if (contiguous) {
    const speed = contiguous.cp / contiguous.rebuild.seconds;
    const durableSpeed = contiguous.durableCp / contiguous.rebuild.durableSeconds;
    log(
      `- ${speed >= 0.7 ? 'PASS' : 'MISS'} contiguous rebuild throughput ${speed.toFixed(2)}× cp --sparse=always (target ≥ 0.7×); copy on disk after ${contiguous.rebuild.durableSeconds.toFixed(2)} s, ${durableSpeed.toFixed(2)}× cp + sync -d`,
    );
  }
  if (contiguous && fragmented) {
    const fragRatio = fragmented.rebuild.seconds / contiguous.rebuild.seconds;
    log(
      `- ${fragRatio <= 3 ? 'PASS' : 'MISS'} fragmented rebuild takes ${fragRatio.toFixed(2)}× the contiguous time (target ≤ 3×)`,
    );
  }
  if (o.skipSnapshots) {
    if (o.out) writeFileSync(o.out, `${lines.join('\n')}\n`);
    return;
  }

  const pauses = await snapshotPauses(workDir, o.snapshotSeconds);
  const p99 = percentile(pauses, 99);
  log(
    `- ${p99 <= 50 ? 'PASS' : 'MISS'} snapshot under fio randwrite QD32 (3 replicas, ${pauses.length} snapshots): pause p50 ${percentile(pauses, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...pauses).toFixed(1)} ms (target p99 ≤ 50 ms)`,
  );
  if (o.out) writeFileSync(o.out, `${lines.join('\n')}\n`);
}

const opts = options();
await runBench('rebuild', () => main(opts), cleanup);
