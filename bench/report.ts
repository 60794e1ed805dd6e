// Turns the runs of a benchmark into tables (median over rounds; ratios taken within a round, then the
// median), per-process CPU cost, and the PASS/MISS lines for the issue's targets.
import type { FioResult, Workload } from './fio-run.js';
import type { TargetName } from './targets.js';

export interface RunRecord {
  round: number;
  workload: Workload;
  target: TargetName;
  result: FioResult;
  /** names of the server processes (engine, replica0, … or nbdkit) */
  servers: string[];
}

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** CPU µs per I/O summed over the server processes (engine + replicas, or nbdkit); NaN for the local file. */
export function serverCpuPerIo(r: RunRecord): number {
  if (r.servers.length === 0) return Number.NaN;
  let sum = 0;
  for (const s of r.servers) sum += r.result.cpuUsPerIo.get(s) ?? Number.NaN;
  return sum;
}

export class Results {
  readonly runs: RunRecord[] = [];

  add(r: RunRecord): void {
    this.runs.push(r);
  }

  of(workload: string, target: TargetName): RunRecord[] {
    return this.runs.filter((r) => r.workload.name === workload && r.target === target);
  }

  /** Median over rounds of a figure of one target. */
  med(workload: string, target: TargetName, f: (r: RunRecord) => number): number {
    return median(this.of(workload, target).map(f));
  }

  /** Median over rounds of f(target)/f(base), both from the same round. */
  ratio(workload: string, target: TargetName, base: TargetName, f: (r: RunRecord) => number): number {
    return this.perRound(workload, target, base, (a, b) => f(a) / f(b));
  }

  /** Median over rounds of f(target) − f(base), both from the same round. */
  delta(workload: string, target: TargetName, base: TargetName, f: (r: RunRecord) => number): number {
    return this.perRound(workload, target, base, (a, b) => f(a) - f(b));
  }

  private perRound(workload: string, target: TargetName, base: TargetName, g: (a: RunRecord, b: RunRecord) => number) {
    const values: number[] = [];
    for (const a of this.of(workload, target)) {
      const b = this.of(workload, base).find((x) => x.round === a.round);
      if (b) values.push(g(a, b));
    }
    return median(values);
  }
}

const fmt = {
  int: (v: number) => (Number.isFinite(v) ? String(Math.round(v)) : '–'),
  num: (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '–'),
  us: (v: number) => (Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v.toFixed(1)) : '–'),
  ratio: (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '–'),
  signed: (v: number) => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toFixed(0)}` : '–'),
};

export interface Table {
  headers: string[];
  rows: string[][];
}

export function mainTable(res: Results, workloads: Workload[], targets: TargetName[]): Table {
  const headers = [
    'workload',
    'target',
    'IOPS',
    'MiB/s',
    'mean µs',
    'p99 µs',
    'IOPS ×nbdkit',
    'IOPS ×local',
    'Δmean µs vs nbdkit',
    'server CPU µs/IO',
    'CPU ×nbdkit',
    'fio CPU µs/IO',
  ];
  const rows: string[][] = [];
  for (const w of workloads) {
    for (const t of targets) {
      if (res.of(w.name, t).length === 0) continue;
      const iops = (r: RunRecord) => r.result.iops;
      const isBase = t === 'nbdkit' || t === 'local';
      rows.push([
        w.name,
        t,
        fmt.int(res.med(w.name, t, iops)),
        fmt.num(res.med(w.name, t, (r) => r.result.bandwidth / 2 ** 20)),
        fmt.us(res.med(w.name, t, (r) => r.result.clatMeanUs)),
        fmt.us(res.med(w.name, t, (r) => r.result.clatP99Us)),
        t === 'nbdkit' ? '1' : fmt.ratio(res.ratio(w.name, t, 'nbdkit', iops)),
        t === 'local' ? '1' : fmt.ratio(res.ratio(w.name, t, 'local', iops)),
        isBase ? '' : fmt.signed(res.delta(w.name, t, 'nbdkit', (r) => r.result.clatMeanUs)),
        fmt.us(res.med(w.name, t, serverCpuPerIo)),
        isBase ? '' : fmt.ratio(res.ratio(w.name, t, 'nbdkit', serverCpuPerIo)),
        fmt.us(res.med(w.name, t, (r) => r.result.cpuUsPerIo.get('fio') ?? Number.NaN)),
      ]);
    }
  }
  return { headers, rows };
}

/** CPU per I/O and cores used, process by process (medians over rounds). */
export function cpuTable(res: Results, workloads: Workload[], targets: TargetName[]): Table {
  const headers = ['workload', 'target', 'process', 'CPU µs/IO', 'cores used'];
  const rows: string[][] = [];
  for (const w of workloads) {
    for (const t of targets) {
      const runs = res.of(w.name, t);
      if (runs.length === 0) continue;
      const names = [...runs[0]!.servers, 'fio'];
      for (const n of names) {
        rows.push([
          w.name,
          t,
          n,
          fmt.us(res.med(w.name, t, (r) => r.result.cpuUsPerIo.get(n) ?? Number.NaN)),
          fmt.num(
            res.med(w.name, t, (r) => r.result.cores.get(n) ?? Number.NaN),
            2,
          ),
        ]);
      }
      if (runs[0]!.servers.length > 1) {
        rows.push([
          w.name,
          t,
          'engine+replicas',
          fmt.us(res.med(w.name, t, serverCpuPerIo)),
          fmt.num(
            res.med(w.name, t, (r) => r.servers.reduce((s, n) => s + (r.result.cores.get(n) ?? Number.NaN), 0)),
            2,
          ),
        ]);
      }
    }
  }
  return { headers, rows };
}

/** Every run, for the record (ratios per round are visible here). */
export function runsTable(res: Results): Table {
  const headers = ['round', 'workload', 'target', 'IOPS', 'mean µs', 'p99 µs', 'server CPU µs/IO', 'other cores busy'];
  const rows = res.runs.map((r) => [
    String(r.round),
    r.workload.name,
    r.target,
    fmt.int(r.result.iops),
    fmt.us(r.result.clatMeanUs),
    fmt.us(r.result.clatP99Us),
    fmt.us(serverCpuPerIo(r)),
    fmt.num(r.result.otherCores, 2),
  ]);
  return { headers, rows };
}

export interface TargetCheck {
  line: string;
  verdict: 'PASS' | 'MISS' | 'n/a';
}

/**
 * The issue's targets. The IOPS targets are read at QD32 (throughput); QD1 is the latency target, where
 * an IOPS ratio is only 1/latency again. QD1 IOPS ratios and 3-replica QD1 latency are printed as info.
 */
export function checkTargets(res: Results): TargetCheck[] {
  const iops = (r: RunRecord) => r.result.iops;
  const lat = (r: RunRecord) => r.result.clatMeanUs;
  const out: TargetCheck[] = [];
  const verdict = (v: number, ok: (v: number) => boolean) => (Number.isFinite(v) ? (ok(v) ? 'PASS' : 'MISS') : 'n/a');
  const ratioTarget = (t: TargetName, w: string, min: number, what: string) => {
    const v = res.ratio(w, t, 'nbdkit', iops);
    out.push({
      verdict: verdict(v, (x) => x >= min),
      line: `${t} ${w}: ${fmt.ratio(v)} nbdkit IOPS (target ≥ ${min}×) ${what}`,
    });
  };
  ratioTarget('shorthorn-3', 'randread-qd32', 0.6, '');
  ratioTarget('shorthorn-3', 'randwrite-qd32', 0.3, '');
  {
    const v = res.ratio('randwrite-qd32', 'shorthorn-3', 'nbdkit', serverCpuPerIo);
    const sh = res.med('randwrite-qd32', 'shorthorn-3', serverCpuPerIo);
    const nk = res.med('randwrite-qd32', 'nbdkit', serverCpuPerIo);
    out.push({
      verdict: verdict(v, (x) => x <= 4),
      line: `shorthorn-3 randwrite-qd32: CPU per write engine+replicas ${fmt.us(sh)} µs vs nbdkit ${fmt.us(nk)} µs = ${fmt.ratio(v)} (target ≤ 4×)`,
    });
  }
  ratioTarget('shorthorn-1', 'randread-qd32', 0.5, '');
  ratioTarget('shorthorn-1', 'randwrite-qd32', 0.5, '');
  for (const w of ['randread-qd1', 'randwrite-qd1']) {
    const d = res.delta(w, 'shorthorn-1', 'nbdkit', lat);
    out.push({
      verdict: verdict(d, (x) => x <= 150),
      line: `shorthorn-1 ${w}: mean latency ${fmt.us(res.med(w, 'shorthorn-1', lat))} µs vs nbdkit ${fmt.us(res.med(w, 'nbdkit', lat))} µs, Δ ${fmt.signed(d)} µs (target ≤ +150 µs)`,
    });
  }
  return out.map((c) => ({ ...c, line: c.line.trimEnd() }));
}

export function infoLines(res: Results): string[] {
  const iops = (r: RunRecord) => r.result.iops;
  const lat = (r: RunRecord) => r.result.clatMeanUs;
  const lines: string[] = [];
  for (const t of ['shorthorn-1', 'shorthorn-3'] as const) {
    for (const w of ['randread-qd1', 'randwrite-qd1']) {
      const v = res.ratio(w, t, 'nbdkit', iops);
      const d = res.delta(w, t, 'nbdkit', lat);
      if (Number.isFinite(v)) lines.push(`${t} ${w}: ${fmt.ratio(v)} nbdkit IOPS, mean latency Δ ${fmt.signed(d)} µs`);
    }
    const s = res.ratio('seqwrite-1m', t, 'nbdkit', (r) => r.result.bandwidth);
    if (Number.isFinite(s)) lines.push(`${t} seqwrite-1m: ${fmt.ratio(s)} nbdkit bandwidth`);
  }
  return lines;
}

const LEFT = new Set(['workload', 'target', 'process']);

/** A markdown table with padded columns (the layout `biome format` gives), right-aligned numbers. */
export function markdownTable(t: Table): string {
  const esc = (s: string) => s.replaceAll('|', '\\|');
  const cells = [t.headers, ...t.rows].map((r) => r.map(esc));
  const widths = t.headers.map((_, i) => Math.max(3, ...cells.map((r) => (r[i] ?? '').length)));
  const left = t.headers.map((h) => LEFT.has(h));
  const line = (r: string[]) =>
    `| ${r.map((c, j) => (left[j] ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join(' | ')} |`;
  const rule = `| ${widths.map((w, j) => (left[j] ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`;
  return [line(cells[0]!), rule, ...cells.slice(1).map(line)].join('\n');
}

export function textTable(t: Table): string {
  const cells = [t.headers, ...t.rows];
  const widths = t.headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, j) => (LEFT.has(t.headers[j]!) ? c.padEnd(widths[j]!) : c.padStart(widths[j]!)))
      .join('  ')
      .trimEnd();
  return [line(t.headers), widths.map((w) => '-'.repeat(w)).join('  '), ...t.rows.map(line)].join('\n');
}
