// CPU time of a process from /proc/PID/stat: utime + stime (fields 14 and 15, in clock ticks), which
// cover every thread of the process (the libuv thread pool included), not its reaped children.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let clockTicks: number | undefined;

/** `getconf CLK_TCK` (100 on Linux almost everywhere); read once. */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    const out = execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim();
    clockTicks = Number(out);
    if (!(clockTicks > 0)) throw new Error(`getconf CLK_TCK printed "${out}"`);
  }
  return clockTicks;
}

/** CPU seconds (user + system) the process has used so far; undefined once it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 (comm) is in parentheses and may hold spaces: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field N is rest[N - 3].
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  return (utime + stime) / clockTicksPerSecond();
}

/** Busy CPU seconds of the whole machine (all CPUs) from /proc/stat: everything but idle and iowait. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is already in user)
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / clockTicksPerSecond();
}

/** Key of the whole-machine figure in samples and in `coresUsed`. */
export const MACHINE = '(machine)';

export interface CpuSample {
  /** process.hrtime in µs (the clock V8's CPU profiles use too). */
  atUs: number;
  cpu: Map<string, number | undefined>;
}

/** One reading of every named process, and of the machine, at the same instant. */
export function sampleCpu(pids: Map<string, number>): CpuSample {
  const cpu = new Map<string, number | undefined>();
  for (const [name, pid] of pids) cpu.set(name, processCpuSeconds(pid));
  cpu.set(MACHINE, machineBusySeconds());
  return { atUs: Number(process.hrtime.bigint() / 1000n), cpu };
}

/** CPU cores each process used between two samples (1.0 = one core busy all the time). */
export function coresUsed(a: CpuSample, b: CpuSample): Map<string, number> {
  const seconds = (b.atUs - a.atUs) / 1e6;
  const out = new Map<string, number>();
  for (const [name, before] of a.cpu) {
    const after = b.cpu.get(name);
    if (before === undefined || after === undefined || seconds <= 0) continue;
    out.set(name, (after - before) / seconds);
  }
  return out;
}

/**
 * Wait (up to `maxSeconds`) until the machine is quiet: less than `threshold` cores busy outside `ours`
 * (our idle servers and this process) over one second. Returns the last reading, in cores.
 */
export async function waitForQuiet(ours: number[], maxSeconds: number, threshold = 0.25): Promise<number> {
  const pids = new Map([...ours, process.pid].map((pid, i) => [String(i), pid]));
  const deadline = Date.now() + maxSeconds * 1000;
  for (;;) {
    const a = sampleCpu(pids);
    await new Promise((r) => setTimeout(r, 1000));
    const cores = coresUsed(a, sampleCpu(pids));
    let other = cores.get(MACHINE) ?? 0;
    for (const [k, c] of cores) if (k !== MACHINE) other -= c;
    if (other < threshold || Date.now() >= deadline) return other;
  }
}
