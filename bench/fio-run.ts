// One fio run (JSON output) against one target, with /proc CPU samples of the server processes and of
// fio itself taken inside fio's measured window, so ramp-up, connect and teardown are not counted.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { type CpuSample, coresUsed, MACHINE, sampleCpu } from './proc-cpu.js';

export interface Workload {
  name: string;
  rw: 'randread' | 'randwrite' | 'write';
  bs: number;
  iodepth: number;
}

export const WORKLOADS: Workload[] = [
  { name: 'randread-qd32', rw: 'randread', bs: 4096, iodepth: 32 },
  { name: 'randread-qd1', rw: 'randread', bs: 4096, iodepth: 1 },
  { name: 'randwrite-qd32', rw: 'randwrite', bs: 4096, iodepth: 32 },
  { name: 'randwrite-qd1', rw: 'randwrite', bs: 4096, iodepth: 1 },
  { name: 'seqwrite-1m', rw: 'write', bs: 1 << 20, iodepth: 8 },
];

/** Where fio sends I/O: an NBD URI (fio's nbd engine) or a local file (libaio, O_DIRECT). */
export type FioTarget = { kind: 'nbd'; uri: string } | { kind: 'file'; path: string; size: number };

export interface FioResult {
  iops: number;
  /** bytes per second */
  bandwidth: number;
  /** completion latency (fio's clat), µs */
  clatMeanUs: number;
  clatP99Us: number;
  totalIos: number;
  /** CPU cores used by each named process (and `fio`) inside the measured window. */
  cores: Map<string, number>;
  /**
   * Cores busy on the machine outside the measured processes and fio (other programs, idle targets):
   * the noise indicator of a run on a shared machine.
   */
  otherCores: number;
  /** CPU µs per completed I/O for each named process (and `fio`). */
  cpuUsPerIo: Map<string, number>;
  /** process.hrtime µs of the CPU window, to cut CPU profiles to the same span. */
  window: { fromUs: number; toUs: number };
}

export interface FioOptions {
  seconds: number;
  rampSeconds: number;
  /** output file for fio's JSON */
  jsonPath: string;
  /** server processes to measure (name → PID) */
  pids: Map<string, number>;
  /** every child spawned is registered here so that an interrupt can kill it by PID */
  children: Set<ChildProcess>;
}

export function fioArgs(w: Workload, target: FioTarget, o: { seconds: number; rampSeconds: number; jsonPath: string }) {
  const args = [
    `--name=${w.name}`,
    `--rw=${w.rw}`,
    `--bs=${w.bs}`,
    `--iodepth=${w.iodepth}`,
    '--numjobs=1',
    // The job as a thread of the fio process we spawn (not a forked child), so /proc/PID/stat covers it.
    '--thread',
    '--time_based',
    `--runtime=${o.seconds}`,
    `--ramp_time=${o.rampSeconds}`,
    // Same offsets sequence on every target (randrepeat defaults to on); no random map to keep fio cheap.
    '--norandommap',
    '--output-format=json',
    `--output=${o.jsonPath}`,
  ];
  if (target.kind === 'nbd') args.push('--ioengine=nbd', `--uri=${target.uri}`);
  else args.push('--ioengine=libaio', '--direct=1', `--filename=${target.path}`, `--size=${target.size}`);
  return args;
}

/** Run fio once; CPU is sampled from 0.3 s after the ramp until 0.3 s before the end of the run. */
export async function runFio(w: Workload, target: FioTarget, o: FioOptions): Promise<FioResult> {
  const args = fioArgs(w, target, o);
  rmSync(o.jsonPath, { force: true });
  const child = spawn('fio', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  o.children.add(child);
  let stderr = '';
  let stdout = '';
  child.stdout!.on('data', (c: Buffer) => (stdout = (stdout + c.toString()).slice(-16384)));
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-16384)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const pids = new Map(o.pids);
  pids.set('fio', child.pid!);

  const margin = Math.min(300, (o.seconds * 1000) / 10);
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const startedAt = Date.now();
  const samples: Promise<[CpuSample, CpuSample]> = (async () => {
    await wait(o.rampSeconds * 1000 + margin);
    const a = sampleCpu(pids);
    await wait(startedAt + (o.rampSeconds + o.seconds) * 1000 - margin - Date.now());
    const b = sampleCpu(pids);
    return [a, b];
  })();
  const killTimer = setTimeout(() => child.kill('SIGKILL'), (o.rampSeconds + o.seconds + 120) * 1000);
  const code = await exited;
  clearTimeout(killTimer);
  o.children.delete(child);
  if (code !== 0) throw new Error(`fio ${args.join(' ')} exited ${code}\n${stdout}\n${stderr}`);
  const [a, b] = await samples;
  if (b.cpu.get('fio') === undefined) {
    throw new Error(`fio ${w.name} ended before its CPU window closed (did it connect late?)\n${stderr}`);
  }

  const text = readFileSync(o.jsonPath, 'utf8');
  // fio's nbd engine prints "fio: connected to NBD server" before the JSON on some versions.
  const json = JSON.parse(text.slice(text.indexOf('{'))) as FioJson;
  const job = json.jobs[0];
  if (!job) throw new Error(`fio ${w.name}: no job in output`);
  if (job.error) throw new Error(`fio ${w.name}: job error ${job.error}\n${stderr}`);
  const side = w.rw === 'randread' ? job.read : job.write;
  const iops = side.iops;
  if (!(iops > 0)) throw new Error(`fio ${w.name}: no I/O completed\n${stderr}`);
  const cores = coresUsed(a, b);
  const machine = cores.get(MACHINE) ?? Number.NaN;
  cores.delete(MACHINE);
  let ours = 0;
  for (const c of cores.values()) ours += c;
  const cpuUsPerIo = new Map<string, number>();
  for (const [name, c] of cores) cpuUsPerIo.set(name, (c * 1e6) / iops);
  return {
    iops,
    bandwidth: side.bw_bytes,
    clatMeanUs: side.clat_ns.mean / 1000,
    clatP99Us: (side.clat_ns.percentile?.['99.000000'] ?? Number.NaN) / 1000,
    totalIos: side.total_ios,
    cores,
    otherCores: machine - ours,
    cpuUsPerIo,
    window: { fromUs: a.atUs, toUs: b.atUs },
  };
}

interface FioJson {
  jobs: {
    error: number;
    read: FioSide;
    write: FioSide;
  }[];
}

interface FioSide {
  iops: number;
  bw_bytes: number;
  total_ios: number;
  clat_ns: { mean: number; percentile?: Record<string, number> };
}
