// `npm run bench`: fio (nbd engine) against a local file (libaio, O_DIRECT), nbdkit's file plugin and
// Shorthorn volumes with 1 and 3 replicas, all in one run, pre-filled alike, interleaved round by round.
// Reports IOPS, bandwidth, mean/p99 completion latency and CPU µs per I/O of every server process (from
// /proc), ratios to nbdkit and to the local file (median of per-round ratios), and the targets.
//
//   npm run bench -- [--seconds 20] [--rounds 3] [--size 1Gi] [--only randread-qd32,...]
//                    [--targets local,nbdkit,shorthorn-1,shorthorn-3] [--out FILE.md] [--json FILE]
//                    [--dir DIR] [--cpu-prof DIR] [--settle 30]
// --settle: before each run wait up to N s for < 0.25 cores busy outside the benchmark (0 = don't wait).
// --cpu-prof DIR: engine and replicas run under node --cpu-prof; their self time inside the fio windows
// is summarised at the end (bench/cpu-profile.ts).
// Each flag also reads from BENCH_<FLAG> (BENCH_SECONDS=5 …). See bench/RESULTS.md.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatSize, parseVolumeSize } from '../dataplane/util/size.js';
import { formatProfile, summariseProfile, type TimeWindow } from './cpu-profile.js';
import { type FioResult, runFio, WORKLOADS, type Workload } from './fio-run.js';
import { waitForQuiet } from './proc-cpu.js';
import {
  checkTargets,
  cpuTable,
  infoLines,
  mainTable,
  markdownTable,
  Results,
  runsTable,
  serverCpuPerIo,
  textTable,
} from './report.js';
import {
  type BenchTarget,
  type Cleanup,
  makeRandomFile,
  prefill,
  startLocal,
  startNbdkit,
  startShorthornVolume,
  TARGET_NAMES,
  type TargetName,
} from './targets.js';

const USAGE = `usage: npm run bench -- [--seconds N] [--rounds N] [--size SIZE] [--ramp N] [--settle MAXSEC] [--only W1,W2]
       [--targets local,nbdkit,shorthorn-1,shorthorn-3] [--out FILE.md] [--json FILE] [--dir DIR] [--cpu-prof DIR]
workloads: ${WORKLOADS.map((w) => w.name).join(', ')}`;

function options() {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      rounds: { type: 'string' },
      size: { type: 'string' },
      ramp: { type: 'string' },
      settle: { type: 'string' },
      only: { type: 'string' },
      targets: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
      dir: { type: 'string' },
      'cpu-prof': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const env = (k: string) => process.env[`BENCH_${k.toUpperCase().replaceAll('-', '_')}`];
  const get = (k: keyof typeof values) => (values[k] as string | undefined) ?? env(k);
  const positive = (k: keyof typeof values, def: number) => {
    const v = Number(get(k) ?? def);
    if (!(Number.isInteger(v) && v > 0)) throw new Error(`--${k} must be a positive integer\n${USAGE}`);
    return v;
  };
  const nonNegative = (k: keyof typeof values, def: number) => {
    const v = Number(get(k) ?? def);
    if (!(v >= 0)) throw new Error(`--${k} must be a number ≥ 0\n${USAGE}`);
    return v;
  };
  const list = <T extends string>(k: keyof typeof values, all: readonly T[]): T[] => {
    const text = get(k);
    if (!text) return [...all];
    const picked = text.split(',').map((s) => s.trim()) as T[];
    for (const p of picked) if (!all.includes(p)) throw new Error(`--${k}: unknown "${p}"; one of ${all.join(', ')}`);
    return all.filter((a) => picked.includes(a));
  };
  const workloadNames = list(
    'only',
    WORKLOADS.map((w) => w.name),
  );
  const cpuProf = get('cpu-prof');
  return {
    seconds: positive('seconds', 20),
    rounds: positive('rounds', 3),
    ramp: positive('ramp', 2),
    settle: nonNegative('settle', 30),
    size: parseVolumeSize(get('size') ?? '1Gi'),
    workloads: WORKLOADS.filter((w) => workloadNames.includes(w.name)),
    targets: list('targets', TARGET_NAMES),
    out: get('out'),
    json: get('json'),
    dir: get('dir') ?? tmpdir(),
    cpuProf: cpuProf ? resolve(cpuProf) : undefined,
  };
}

type Options = ReturnType<typeof options>;

// ---- cleanup: every process by PID, the work directory, on any exit path ----

const cleanup: Cleanup = { children: new Set(), shorthorn: [] };
let workDir: string | undefined;
let cleaning: Promise<void> | undefined;

function cleanAll(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanup.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    // SIGTERM first: the engine flushes its replicas and --cpu-prof writes its profile on a clean exit.
    await Promise.all(cleanup.shorthorn.map((p) => p.stop(15_000).catch(() => p.kill9())));
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  })();
  return cleaning;
}

function onSignal(signal: NodeJS.Signals, code: number) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping fio, nbdkit and the shorthorn processes…`);
    void cleanAll().finally(() => process.exit(code));
  });
}

process.on('exit', () => {
  // Last resort (an exception escaped the async cleanup): kill what is left, synchronously.
  for (const c of cleanup.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const p of cleanup.shorthorn)
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

// ---- the machine, for the record ----

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
}

const REPO = fileURLToPath(new URL('..', import.meta.url));

function machine(dir: string): string[] {
  return [
    `${sh('nproc', [])} CPUs (${cpus()[0]?.model ?? '?'}), ${sh('uname', ['-sr'])}, ${Math.round(
      Number(sh('awk', ['/MemTotal/ {print $2}', '/proc/meminfo'])) / 2 ** 20,
    )} GiB RAM`,
    `node ${process.version}, ${sh('fio', ['--version'])}, ${sh('nbdkit', ['--version'])}, ${sh('nbdcopy', ['--version']).split('\n')[0]}`,
    `shorthorn commit ${sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'])}${
      sh('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no']) ? ' + uncommitted changes' : ''
    }`,
    `work dir ${dir} on ${sh('df', ['--output=fstype,source', dir]).split('\n')[1]?.trim() ?? '?'}`,
  ];
}

// ---- main ----

function describeRun(w: Workload, t: TargetName, r: FioResult, servers: string[]): string {
  const cpu = [...servers, 'fio'].map((n) => `${n} ${(r.cpuUsPerIo.get(n) ?? Number.NaN).toFixed(1)}`).join(' ');
  const other = `other ${r.otherCores.toFixed(2)} cores busy`;
  return `${w.name.padEnd(14)} ${t.padEnd(11)} ${String(Math.round(r.iops)).padStart(7)} IOPS ${(r.bandwidth / 2 ** 20).toFixed(1).padStart(7)} MiB/s  mean ${r.clatMeanUs.toFixed(0).padStart(5)} µs  p99 ${r.clatP99Us.toFixed(0).padStart(6)} µs  | CPU µs/IO: ${cpu} | ${other}`;
}

async function main(o: Options): Promise<void> {
  const started = new Date();
  mkdirSync(o.dir, { recursive: true });
  workDir = mkdtempSync(join(o.dir, 'shorthorn-bench-'));
  const host = machine(workDir);
  console.log(`shorthorn benchmark: ${o.workloads.map((w) => w.name).join(', ')} on ${o.targets.join(', ')}`);
  console.log(`${o.rounds} round(s) × ${o.seconds} s (+${o.ramp} s ramp) per run, ${formatSize(o.size)} per target`);
  for (const l of host) console.log(l);

  // --cpu-prof DIR: every engine and replica runs under `node --cpu-prof`, one directory per process.
  const profileArgs = (label: string): string[] => {
    if (!o.cpuProf) return [];
    const dir = join(o.cpuProf, label);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  };

  const targets: BenchTarget[] = [];
  for (const name of o.targets) {
    if (name === 'local') targets.push(await startLocal(workDir, o.size));
    else if (name === 'nbdkit') targets.push(await startNbdkit(workDir, o.size, cleanup));
    else {
      const replicas = name === 'shorthorn-1' ? 1 : 3;
      targets.push(
        await startShorthornVolume({ replicas, size: o.size, dir: workDir, cleanup, nodeArgs: profileArgs }),
      );
    }
  }
  for (const t of targets) console.log(`  ${t.name}: ${t.description}`);

  // Pre-fill: the same random bytes into every target, through NBD for the servers, so reads hit data.
  const source = join(workDir, 'prefill-source.img');
  await makeRandomFile(source, o.size, cleanup);
  const prefillLines: string[] = [];
  for (const t of targets) {
    const dest = t.fio.kind === 'nbd' ? t.fio.uri : t.fio.path;
    const s = await prefill(source, dest, cleanup);
    const line = `pre-fill ${t.name}: nbdcopy --flush of ${formatSize(o.size)} random data in ${s.toFixed(1)} s (${(o.size / 2 ** 20 / s).toFixed(0)} MiB/s)`;
    prefillLines.push(line);
    console.log(line);
  }
  rmSync(source);

  const res = new Results();
  const total = o.rounds * o.workloads.length * targets.length;
  const allPids = targets.flatMap((t) => [...t.pids.values()]);
  let n = 0;
  for (let round = 1; round <= o.rounds; round++) {
    for (const w of o.workloads) {
      for (const t of targets) {
        n++;
        // A shared machine: let other programs' bursts pass first (the run records what remained).
        if (o.settle > 0) await waitForQuiet(allPids, o.settle);
        const result = await runFio(w, t.fio, {
          seconds: o.seconds,
          rampSeconds: o.ramp,
          jsonPath: join(workDir, 'fio.json'),
          pids: t.pids,
          children: cleanup.children,
        }).catch((err: Error) => {
          throw new Error(`${t.name} ${w.name} round ${round}: ${err.message}\n${t.logs()}`);
        });
        const servers = [...t.pids.keys()];
        res.add({ round, workload: w, target: t.name, result, servers });
        console.log(`[${n}/${total} r${round}] ${describeRun(w, t.name, result, servers)}`);
      }
    }
  }

  // Stop the servers (SIGTERM: profiles get written), then report.
  await cleanAll();

  const main = mainTable(res, o.workloads, o.targets);
  const cpu = cpuTable(res, o.workloads, o.targets);
  const checks = checkTargets(res);
  const info = infoLines(res);
  const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
  console.log(`\n== medians over ${o.rounds} round(s); ratios = median of per-round ratios ==`);
  console.log(textTable(main));
  console.log('\n== CPU per I/O by process (from /proc utime+stime; cores used = CPU s per wall s) ==');
  console.log(textTable(cpu));
  console.log('\n== targets (IOPS targets at QD32; latency targets at QD1, 1 replica) ==');
  for (const c of checks) console.log(`${c.verdict.padEnd(4)}  ${c.line}`);
  if (info.length) {
    console.log('\n== info ==');
    for (const l of info) console.log(l);
  }

  const profiles: string[] = [];
  if (o.cpuProf) {
    for (const t of targets) {
      if (!t.name.startsWith('shorthorn')) continue;
      const windows: TimeWindow[] = res.runs.filter((r) => r.target === t.name).map((r) => r.result.window);
      writeFileSync(join(o.cpuProf, `${t.name}-windows.json`), JSON.stringify(windows));
      for (const role of t.pids.keys()) {
        const dir = join(o.cpuProf, `${t.name}-${role}`);
        const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
        if (!file) {
          profiles.push(`${t.name} ${role}: no .cpuprofile in ${dir}`);
          continue;
        }
        profiles.push(
          formatProfile(`${t.name} ${role} (${join(dir, file)})`, summariseProfile(join(dir, file), windows, 15)),
        );
      }
    }
    console.log('\n== CPU profiles (self time, inside the fio measurement windows only) ==');
    console.log(profiles.join('\n\n'));
  }

  if (o.json) {
    writeFileSync(
      o.json,
      JSON.stringify(
        res.runs.map((r) => ({
          round: r.round,
          workload: r.workload.name,
          target: r.target,
          ...r.result,
          cores: Object.fromEntries(r.result.cores),
          cpuUsPerIo: Object.fromEntries(r.result.cpuUsPerIo),
          serverCpuUsPerIo: serverCpuPerIo(r),
        })),
        null,
        2,
      ),
    );
  }

  if (o.out) {
    const md = [
      `## Run of ${started.toISOString()}`,
      '',
      `Command: \`${command}\` (${o.rounds} round(s) × ${o.seconds} s + ${o.ramp} s ramp per run, ${formatSize(o.size)} per target, up to ${o.settle} s wait for a quiet machine before each run, took ${((Date.now() - started.getTime()) / 60_000).toFixed(1)} min)`,
      '',
      ...host.map((l) => `- ${l}`),
      ...targets.map((t) => `- ${t.name}: ${t.description}`),
      ...prefillLines.map((l) => `- ${l}`),
      '- workloads: 4 KiB randread/randwrite at iodepth 32 and 1, 1 MiB sequential write at iodepth 8; one fio job, one NBD connection',
      '',
      '### Results (medians over rounds; ratios are the median of per-round ratios)',
      '',
      markdownTable(main),
      '',
      '### CPU per I/O by process',
      '',
      markdownTable(cpu),
      '',
      '### Targets',
      '',
      ...checks.map((c) => `- **${c.verdict}** ${c.line}`),
      ...(info.length ? ['', 'Info:', '', ...info.map((l) => `- ${l}`)] : []),
      '',
      '### Every run',
      '',
      markdownTable(runsTable(res)),
      ...(profiles.length ? ['', '### CPU profiles', '', ...profiles.flatMap((p) => [p, ''])] : []),
      '',
    ].join('\n');
    writeFileSync(o.out, md);
    console.log(`\nwrote ${o.out}`);
  }
}

onSignal('SIGINT', 130);
onSignal('SIGTERM', 143);
let opts: Options;
try {
  opts = options();
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
main(opts).then(
  () => cleanAll(),
  async (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    await cleanAll();
    process.exit(1);
  },
);
