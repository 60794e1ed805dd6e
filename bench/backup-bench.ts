// `npm run bench:backup`: how fast a snapshot is backed up, to a local directory (file://) and to an S3
// server (moto_server), beside the plain tools moving the same bytes: `tar | lz4 -1` into a file, and
// `aws s3 cp` of the uncompressed file; and how long an incremental backup of a 5 % change takes
// against the full one.
//
// Everything is the real thing: one replica process and an engine on 127.0.0.1 (a backup reads one
// replica, the one the engine picks; more replicas would only sit idle), a 1 GiB volume with 512 MiB of
// partly compressible data written through NBD by fio into every other 2 MiB block, a snapshot, and
// backups through the engine's gRPC BackupCreate, timed from the call until BackupStatus says complete.
// The data blocks are copied once (outside the timing) into one plain 512 MiB file: the peers' input.
// Each full backup goes to a fresh directory / bucket prefix, so it is full. Rounds are interleaved;
// medians are reported. The page cache is dropped before every timed run (cold, like bench:rebuild)
// unless --warm.
//
//   npm run bench:backup -- [--rounds 3] [--size 1Gi] [--concurrency 2] [--settle 10] [--warm]
//                           [--targets file,s3] [--dir DIR] [--out FILE.md] [--cpu-prof DIR]
// --concurrency: the engine request's concurrency field (the backup-concurrent-limit setting, default 2).
// --settle: before each timed run wait up to N s for < 0.25 cores busy outside the benchmark.
// --cpu-prof DIR: the replica runs under node --cpu-prof; its self time inside the full backups is
// summarised at the end (bench/cpu-profile.ts).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { credentials } from '@grpc/grpc-js';
import { type ShorthornProcess, startShorthorn } from '../cli/child-process.js';
import { formatTable } from '../cli/table.js';
import { unary } from '../dataplane/grpc/unary.js';
import { ControllerServiceClient, type EngineBackupJob } from '../dataplane/proto/gen/engine.js';
import { formatSize, parseVolumeSize } from '../dataplane/util/size.js';
import { type MotoServer, startMoto } from '../test/helpers/moto.js';
import { freePorts } from '../test/helpers/ports.js';
import { formatProfile, summariseProfile, type TimeWindow } from './cpu-profile.js';
import { clockTicksPerSecond, machineBusySeconds, processCpuSeconds, waitForQuiet } from './proc-cpu.js';
import { runBench } from './run-bench.js';

const MiB = 1024 * 1024;
/** Longhorn's backup block: the unit of change tracking, upload and dedup. */
const BLOCK = 2 * MiB;
const VOLUME = 'benchvol';
const BUCKET = 'shorthorn-bench';
const KEYS = { AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench-secret' };
const LZ4 = '/usr/bin/lz4';
const TARGETS = ['file', 's3'] as const;

function options() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string' },
      size: { type: 'string' },
      concurrency: { type: 'string' },
      settle: { type: 'string' },
      warm: { type: 'boolean', default: false },
      dir: { type: 'string' },
      out: { type: 'string' },
      'cpu-prof': { type: 'string' },
      targets: { type: 'string' },
    },
  });
  const env = (k: string) => process.env[`BENCH_${k.toUpperCase().replaceAll('-', '_')}`];
  const num = (k: 'rounds' | 'concurrency' | 'settle', def: number, min: number) => {
    const v = Number(values[k] ?? env(k) ?? def);
    if (!(Number.isFinite(v) && v >= min)) throw new Error(`--${k} must be a number ≥ ${min}`);
    return v;
  };
  const size = parseVolumeSize(values.size ?? env('size') ?? '1Gi');
  if (size % (2 * BLOCK) !== 0) throw new Error('--size must be a multiple of 4 MiB');
  const cpuProf = values['cpu-prof'] ?? env('cpu-prof');
  const picked = (values.targets ?? env('targets') ?? TARGETS.join(',')).split(',').map((t) => t.trim());
  for (const t of picked) if (!(TARGETS as readonly string[]).includes(t)) throw new Error(`--targets: unknown ${t}`);
  return {
    rounds: Math.floor(num('rounds', 3, 1)),
    size,
    concurrency: Math.floor(num('concurrency', 2, 1)),
    settle: num('settle', 10, 0),
    warm: values.warm ?? false,
    dir: values.dir ?? env('dir') ?? tmpdir(),
    out: values.out ?? env('out'),
    cpuProf: cpuProf ? resolve(cpuProf) : undefined,
    targets: TARGETS.filter((t) => picked.includes(t)),
  };
}
type Options = ReturnType<typeof options>;

// ---- processes: every one by PID, on every exit path ----

const shorthorns: ShorthornProcess[] = [];
const children = new Set<ChildProcess>();
let moto: MotoServer | undefined;
let workDir = '';
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    // SIGTERM first: --cpu-prof writes its profile on a clean exit.
    await Promise.all(shorthorns.splice(0).map((p) => p.stop(15_000).catch(() => p.kill9())));
    await moto?.stop().catch(() => undefined);
    moto = undefined;
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  })();
  return cleaning;
}

/** Runs a command to its end; rejects with its stderr on a non-zero exit. Returns wall seconds. */
function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv, timeoutMs = 10 * 60_000): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    children.add(child);
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-8192);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      children.delete(child);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      if (code === 0) resolvePromise((performance.now() - t0) / 1000);
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${code ?? signal}\n${stderr}`));
    });
  });
}

function onPath(name: string, install: string): string {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  throw new Error(`${name} is not on PATH (${install})`);
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return '?';
  }
}

let keepCache = false;
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

// ---- CPU accounting ----

/** CPU seconds of this process and of its reaped children (the peers' tar, lz4, aws run under us). */
function selfAndChildrenCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14-17: utime stime cutime cstime
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / clockTicksPerSecond();
}

interface Meter {
  stop(): { seconds: number; cpu: Record<string, number>; otherCores: number; window: TimeWindow };
}

/** Wall time, CPU seconds of each named process, and cores busy outside them (and us) meanwhile. */
function meter(pids: Record<string, number | undefined>): Meter {
  const cpuNow = () => {
    const out: Record<string, number> = {};
    for (const [k, pid] of Object.entries(pids)) out[k] = (pid && processCpuSeconds(pid)) || 0;
    return out;
  };
  const before = cpuNow();
  const self0 = selfAndChildrenCpu();
  const machine0 = machineBusySeconds();
  const t0 = performance.now();
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  return {
    stop() {
      const seconds = (performance.now() - t0) / 1000;
      const toUs = Number(process.hrtime.bigint() / 1000n);
      const after = cpuNow();
      const cpu: Record<string, number> = {};
      let ours = selfAndChildrenCpu() - self0;
      for (const k of Object.keys(after)) {
        cpu[k] = after[k]! - before[k]!;
        ours += cpu[k];
      }
      const otherCores = Math.max(0, (machineBusySeconds() - machine0 - ours) / seconds);
      return { seconds, cpu, otherCores, window: { fromUs, toUs } };
    },
  };
}

// ---- the volume ----

interface Volume {
  replica: ShorthornProcess;
  engine: ShorthornProcess;
  client: ControllerServiceClient;
  uri: string;
}

async function startVolume(o: Options): Promise<Volume> {
  const replicaPort = await freePorts(2);
  const [enginePort, nbdPort] = [await freePorts(1), await freePorts(1)];
  const profile = o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${join(o.cpuProf, 'replica')}`] : [];
  if (o.cpuProf) rmSync(join(o.cpuProf, 'replica'), { recursive: true, force: true });
  const replica = await startShorthorn(
    [
      'replica',
      '--dir',
      join(workDir, 'replica'),
      '--size',
      String(o.size),
      '--listen',
      `127.0.0.1:${replicaPort}`,
      '--volume',
      VOLUME,
    ],
    { nodeArgs: profile },
  );
  shorthorns.push(replica);
  const engine = await startShorthorn([
    'engine',
    '--volume',
    VOLUME,
    '--size',
    String(o.size),
    '--replica',
    `tcp://127.0.0.1:${replicaPort}`,
    '--listen',
    `127.0.0.1:${enginePort}`,
    '--frontend',
    'nbd',
    '--nbd-listen',
    `127.0.0.1:${nbdPort}`,
  ]);
  shorthorns.push(engine);
  const client = new ControllerServiceClient(`127.0.0.1:${enginePort}`, credentials.createInsecure());
  return { replica, engine, client, uri: `nbd://127.0.0.1:${nbdPort}/${VOLUME}` };
}

/**
 * fio through NBD: 2 MiB writes, each followed by a skip of `skip` bytes (fio's rw=write:<skip>), over
 * the whole volume; buffers half compressible (fio mixes random and fixed bytes per 4 KiB chunk), fresh
 * for every write, from seed `seed`.
 */
async function fioWrite(v: Volume, size: number, skip: number, seed: number): Promise<void> {
  await run('fio', [
    '--name=backup-data',
    '--ioengine=nbd',
    `--uri=${v.uri}`,
    `--rw=write:${skip}`,
    `--bs=${BLOCK}`,
    `--size=${size}`,
    '--iodepth=8',
    '--buffer_compress_percentage=50',
    '--buffer_compress_chunk=4096',
    '--refill_buffers',
    `--randseed=${seed}`,
    '--output-format=terse',
  ]);
}

/**
 * The snapshot's data as the backup reads it, one plain file: nbdcopy the volume out, keep the 2 MiB
 * blocks that hold anything. Returns how many blocks that is.
 */
async function exportData(v: Volume, size: number, dataFile: string): Promise<number> {
  const image = join(workDir, 'export.img');
  await run('nbdcopy', [v.uri, image]);
  const input = openSync(image, 'r');
  const output = openSync(dataFile, 'w');
  const buf = Buffer.alloc(BLOCK);
  let blocks = 0;
  try {
    for (let off = 0; off < size; off += BLOCK) {
      const n = readSync(input, buf, 0, BLOCK, off);
      if (n !== BLOCK) throw new Error(`short read of the exported image at ${off}`);
      if (buf.some((b) => b !== 0)) {
        writeSync(output, buf, 0, BLOCK, blocks * BLOCK);
        blocks++;
      }
    }
  } finally {
    closeSync(input);
    closeSync(output);
    rmSync(image);
  }
  return blocks;
}

interface BackupRun {
  job: EngineBackupJob;
  seconds: number;
  replicaCpu: number;
  engineCpu: number;
  motoCpu: number;
  otherCores: number;
  window: TimeWindow;
}

async function backup(
  v: Volume,
  o: Options,
  snapshot: string,
  name: string,
  targetUrl: string,
  credential: Record<string, string>,
): Promise<BackupRun> {
  const m = meter({ replica: v.replica.pid, engine: v.engine.pid, moto: moto?.pid });
  const c = v.client;
  const started = await unary(c.backupCreate, c, {
    backupName: name,
    snapshotName: snapshot,
    volumeName: '',
    volumeSize: 0,
    targetUrl,
    credential,
    labels: {},
    mode: '',
    compression: '',
    concurrency: o.concurrency,
    blockSize: 0,
    volumeLabels: {},
  });
  let job = started;
  const deadline = Date.now() + 10 * 60_000;
  while (job.state === 'in_progress') {
    if (Date.now() > deadline) throw new Error(`backup ${name} still running after 10 min`);
    await new Promise((r) => setTimeout(r, 20));
    job = await unary(c.backupStatus, c, { backupName: name, replicaAddress: started.replicaAddress });
  }
  const r = m.stop();
  if (job.state !== 'complete') {
    throw new Error(`backup ${name} to ${targetUrl}: ${job.state}: ${job.error}\n${v.replica.logs().slice(-3000)}`);
  }
  return {
    job,
    seconds: r.seconds,
    replicaCpu: r.cpu['replica']!,
    engineCpu: r.cpu['engine']!,
    motoCpu: r.cpu['moto']!,
    otherCores: r.otherCores,
    window: r.window,
  };
}

interface PeerRun {
  seconds: number;
  /** lz4 peer: `sync -d` of its output after it (the backup's file driver fsyncs every block). */
  syncSeconds: number;
  otherCores: number;
  outBytes: number;
}

// ---- statistics ----

/** Bytes as MiB with one decimal: compressed sizes are not round numbers. */
function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const REPO = fileURLToPath(new URL('..', import.meta.url));

async function main(o: Options): Promise<void> {
  const startedAt = new Date();
  for (const tool of ['fio', 'nbdcopy', 'tar']) onPath(tool, 'apt-get install it');
  accessSync(LZ4, constants.X_OK);
  const aws = onPath('aws', 'the aws CLI: pip install awscli into the python on PATH (pyenv)');
  mkdirSync(o.dir, { recursive: true });
  workDir = mkdtempSync(join(o.dir, 'shorthorn-backup-bench-'));
  keepCache = o.warm;
  const cold = dropCaches();

  const lines: string[] = [];
  const log = (line = '') => {
    lines.push(line);
    process.stdout.write(`${line}\n`);
  };
  const note = (line: string) => process.stderr.write(`${line}\n`);
  const host = [
    `${sh('nproc', [])} CPUs (${cpus()[0]?.model ?? '?'}), ${sh('uname', ['-sr'])}, ${Math.round(
      Number(sh('awk', ['/MemTotal/ {print $2}', '/proc/meminfo'])) / 2 ** 20,
    )} GiB RAM; work dir on ${sh('df', ['--output=fstype,source', workDir]).split('\n')[1]?.trim() ?? '?'}`,
    `node ${process.version}, ${sh(LZ4, ['--version']).replace(/^\*+ | \*+$/g, '')}, ${sh(aws, ['--version'])}, moto ${sh('python3', ['-c', 'import moto; print(moto.__version__)'])}`,
    `shorthorn commit ${sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'])}${
      sh('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no', '--', 'dataplane']) !== ''
        ? ' + uncommitted dataplane changes'
        : ''
    }`,
  ];

  moto = await startMoto({ bucket: BUCKET });
  const motoEndpoint = moto.endpoint;
  const s3Credential = { ...KEYS, AWS_ENDPOINTS: motoEndpoint };
  const awsEnv = {
    ...KEYS,
    AWS_DEFAULT_REGION: 'us-east-1',
    // No user config: the CLI's defaults (8 MiB multipart chunks, 10 requests at once).
    AWS_CONFIG_FILE: join(workDir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(workDir, 'no-aws-credentials'),
  };
  const v = await startVolume(o);

  // Data: every other 2 MiB block, so half the volume's blocks hold data.
  let t0 = performance.now();
  await fioWrite(v, o.size, BLOCK, 1);
  note(`wrote ${formatSize(o.size / 2)} through NBD in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await unary(v.client.snapshotCreate, v.client, { name: 'base', labels: {} });
  const dataFile = join(workDir, 'data.img');
  t0 = performance.now();
  const dataBlocks = await exportData(v, o.size, dataFile);
  const dataBytes = dataBlocks * BLOCK;
  note(`exported ${dataBlocks} data blocks in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (dataBlocks !== o.size / BLOCK / 2)
    throw new Error(`expected ${o.size / BLOCK / 2} data blocks, found ${dataBlocks}`);
  const lz4Size = Number(execFileSync('sh', ['-c', `${LZ4} -1 -c '${dataFile}' | wc -c`], { encoding: 'utf8' }).trim());
  // The change: 2 MiB written, 36 MiB skipped, over the volume — blocks 0, 19, 38 … (data and holes alike).
  const changeSkip = 18 * BLOCK;
  const changedBlocks = Math.ceil(o.size / (BLOCK + changeSkip));

  log(
    `# backup benchmark: ${formatSize(o.size)} volume, ${formatSize(dataBytes)} of data in ${dataBlocks} of its ${o.size / BLOCK} 2 MiB blocks (every other one); lz4 -1 makes it ${((100 * lz4Size) / dataBytes).toFixed(0)} %`,
  );
  log(
    `# 1 replica + engine on 127.0.0.1 (a backup reads one replica); concurrency ${o.concurrency}; page cache ${cold ? 'dropped before each timed run (cold)' : 'NOT dropped (warm)'}; ${o.rounds} interleaved rounds, medians`,
  );
  for (const l of host) log(`# ${l}`);

  const servers = () => [v.replica.pid, v.engine.pid, ...(moto?.pid ? [moto.pid] : [])];
  const settle = async () => {
    if (o.settle > 0) await waitForQuiet(servers(), o.settle);
    dropCaches();
  };

  type TargetKind = (typeof TARGETS)[number];
  interface Sample {
    full: BackupRun;
    peer: PeerRun;
    incr: BackupRun;
  }
  const samples: Record<TargetKind, Sample[]> = { file: [], s3: [] };
  const windows: TimeWindow[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    const fileTarget = join(workDir, `target-${round}`);
    mkdirSync(fileTarget);
    const urls: Record<TargetKind, string> = {
      file: `file://${fileTarget}`,
      s3: `s3://${BUCKET}@us-east-1/round-${round}/`,
    };
    const creds: Record<TargetKind, Record<string, string>> = { file: {}, s3: s3Credential };
    const partial: Partial<Record<TargetKind, { full: BackupRun; peer: PeerRun }>> = {};
    for (const t of o.targets) {
      // (a)/(c) full backup of `base` to a fresh directory / bucket prefix
      await settle();
      const full = await backup(v, o, 'base', `full-${t}-${round}`, urls[t], creds[t]);
      windows.push(full.window);
      note(describe(`r${round} full → ${t}`, full, dataBytes));
      if (full.job.isIncremental || full.job.blocksUploaded !== dataBlocks) {
        throw new Error(`full backup to ${t} was not full: ${JSON.stringify(full.job)}`);
      }
      await settle();
      let peer: PeerRun;
      if (t === 'file') {
        // (b) tar | lz4 -1 of the same bytes into the same file system
        const out = join(workDir, `peer-${round}.tar.lz4`);
        const m = meter({});
        await run('bash', ['-o', 'pipefail', '-c', `tar -cf - -C '${workDir}' data.img | ${LZ4} -1 -q -c > '${out}'`]);
        const r = m.stop();
        const syncSeconds = await run('sync', ['-d', out]);
        peer = { seconds: r.seconds, syncSeconds, otherCores: r.otherCores, outBytes: statSync(out).size };
        rmSync(out);
        note(
          `r${round} tar | lz4 -1: ${peer.seconds.toFixed(2)} s (+ sync -d ${syncSeconds.toFixed(2)} s), other ${peer.otherCores.toFixed(2)} cores`,
        );
      } else {
        // (d) aws s3 cp of the same bytes, uncompressed
        const m = meter({ moto: moto.pid });
        await run(
          aws,
          [
            '--endpoint-url',
            motoEndpoint,
            's3',
            'cp',
            '--only-show-errors',
            dataFile,
            `s3://${BUCKET}/peer-${round}/data.img`,
          ],
          awsEnv,
        );
        const r = m.stop();
        peer = { seconds: r.seconds, syncSeconds: 0, otherCores: r.otherCores, outBytes: dataBytes };
        note(
          `r${round} aws s3 cp: ${peer.seconds.toFixed(2)} s, moto ${r.cpu['moto']!.toFixed(1)} CPU s, other ${peer.otherCores.toFixed(2)} cores`,
        );
      }
      partial[t] = { full, peer };
    }

    // (e) ~5 % of the volume changes (new bytes at the same blocks every round, so each round's change
    // since `base` is the same size); incremental backups on top of this round's full ones.
    await fioWrite(v, o.size, changeSkip, 1000 + round);
    const snap = `change-${round}`;
    await unary(v.client.snapshotCreate, v.client, { name: snap, labels: {} });
    for (const t of o.targets) {
      await settle();
      const incr = await backup(v, o, snap, `incr-${t}-${round}`, urls[t], creds[t]);
      note(describe(`r${round} incremental → ${t}`, incr, changedBlocks * BLOCK));
      if (!incr.job.isIncremental || incr.job.blocksUploaded !== changedBlocks) {
        throw new Error(
          `incremental backup to ${t} uploaded ${incr.job.blocksUploaded} blocks, expected ${changedBlocks}: ${JSON.stringify(incr.job)}`,
        );
      }
      samples[t].push({ ...partial[t]!, incr });
    }
    // Free the space and moto's memory before the next round (outside any timing).
    rmSync(fileTarget, { recursive: true, force: true });
    await moto.reset();
  }

  // Stop the servers (SIGTERM: the replica's profile gets written).
  await Promise.all(shorthorns.splice(0).map((p) => p.stop(15_000).catch(() => p.kill9())));
  v.client.close();

  const mibps = (bytes: number, s: number) => (bytes / MiB / s).toFixed(0);
  const rows: string[][] = [];
  const verdicts: string[] = [];
  const info: string[] = [];
  for (const t of o.targets) {
    const runs = samples[t];
    const med = (f: (r: Sample) => number) => median(runs.map(f));
    const fullS = med((r) => r.full.seconds);
    const peerS = med((r) => r.peer.seconds);
    const incrS = med((r) => r.incr.seconds);
    const ratio = med((r) => r.peer.seconds / r.full.seconds);
    const incrRatio = med((r) => r.incr.seconds / r.full.seconds);
    const first = runs[0]!;
    rows.push([
      t === 'file' ? 'file:// (local dir)' : 's3:// (moto_server)',
      fullS.toFixed(2),
      mibps(dataBytes, fullS),
      t === 'file' ? 'tar|lz4 -1' : 'aws s3 cp',
      peerS.toFixed(2),
      mibps(dataBytes, peerS),
      ratio.toFixed(2),
      incrS.toFixed(2),
      incrRatio.toFixed(2),
      med((r) => r.full.replicaCpu).toFixed(1),
      t === 's3' ? med((r) => r.full.motoCpu).toFixed(1) : '-',
      `${first.full.job.blocksUploaded}/${first.incr.job.blocksUploaded}`,
      mib(first.full.job.bytesUploaded),
      runs.map((r) => r.full.seconds.toFixed(2)).join(' '),
      runs.map((r) => r.incr.seconds.toFixed(2)).join(' '),
      med((r) => Math.max(r.full.otherCores, r.peer.otherCores, r.incr.otherCores)).toFixed(2),
    ]);
    const peerName = t === 'file' ? '`tar | lz4 -1` into a file' : '`aws s3 cp` of the uncompressed bytes';
    verdicts.push(
      `- ${ratio >= 0.5 ? 'PASS' : 'MISS'} full backup to ${t === 'file' ? 'a local directory' : 'moto_server'}: ${mibps(dataBytes, fullS)} MiB/s, ${ratio.toFixed(2)}× the throughput of ${peerName} (target ≥ 0.5×)` +
        (t === 'file'
          ? `; ${med((r) => (r.peer.seconds + r.peer.syncSeconds) / r.full.seconds).toFixed(2)}× the same made durable (+ sync -d; the file driver fsyncs every block)`
          : ''),
    );
    verdicts.push(
      `- ${incrRatio <= 0.15 ? 'PASS' : 'MISS'} incremental backup of a ${((100 * changedBlocks * BLOCK) / o.size).toFixed(1)} % change (${changedBlocks} blocks) to ${t}: ${incrS.toFixed(2)} s = ${(100 * incrRatio).toFixed(0)} % of the full backup's time (target ≤ 15 %)`,
    );
    info.push(
      `- info ${t}: engine CPU ${med((r) => r.full.engineCpu).toFixed(2)} s` +
        (t === 'file'
          ? `; tar | lz4 -1 wrote ${mib(first.peer.outBytes)}, its sync -d took ${med((r) => r.peer.syncSeconds).toFixed(2)} s more`
          : ''),
    );
  }
  log('');
  log(
    formatTable(
      [
        'target',
        'full s',
        'full MiB/s',
        'peer',
        'peer s',
        'peer MiB/s',
        '×peer',
        'incr s',
        'incr/full',
        'replica cpu s',
        'moto cpu s',
        'blocks full/incr',
        'uploaded',
        'full s per round',
        'incr s per round',
        'other cores',
      ],
      rows,
    ),
  );
  log('');
  for (const l of verdicts) log(l);
  for (const l of info) log(l);
  log(
    `- info: MiB/s counts the ${formatSize(dataBytes)} of data read, not the compressed bytes written; ${((Date.now() - startedAt.getTime()) / 60_000).toFixed(1)} min; "other cores" = cores busy outside the benchmark's processes during a run (median of each round's worst), up to ${o.settle} s wait for < 0.25 before each`,
  );

  if (o.cpuProf) {
    const dir = join(o.cpuProf, 'replica');
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    log('');
    if (file) {
      writeFileSync(join(o.cpuProf, 'replica-windows.json'), JSON.stringify(windows));
      log(
        formatProfile(
          `replica during the full backups (${join(dir, file)})`,
          summariseProfile(join(dir, file), windows, 20),
        ),
      );
    } else {
      log(`no .cpuprofile in ${dir}`);
    }
  }
  if (o.out) writeFileSync(o.out, `${lines.join('\n')}\n`);
}

function describe(what: string, b: BackupRun, bytes: number): string {
  return `${what}: ${b.seconds.toFixed(2)} s (${(bytes / MiB / b.seconds).toFixed(0)} MiB/s), ${b.job.blocksUploaded} blocks, ${mib(b.job.bytesUploaded)} uploaded; CPU s replica ${b.replicaCpu.toFixed(2)} engine ${b.engineCpu.toFixed(2)}${moto ? ` moto ${b.motoCpu.toFixed(2)}` : ''}; other ${b.otherCores.toFixed(2)} cores`;
}

let opts: Options;
try {
  opts = options();
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(2);
}
await runBench('backup', () => main(opts), cleanup);
