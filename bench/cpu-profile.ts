// Summarise a V8 .cpuprofile (node --cpu-prof): self time per function (name + script:line), optionally
// only for samples inside given time windows (process.hrtime µs, the profile's own clock), so the start-up
// and the pre-fill of a benchmark process do not count.
//
//   node bin/run-ts.js bench/cpu-profile.ts FILE.cpuprofile [--windows windows.json] [--top 25]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
    hitCount?: number;
    children?: number[];
  }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface TimeWindow {
  fromUs: number;
  toUs: number;
}

export interface ProfileEntry {
  name: string;
  selfMs: number;
  /** share of the non-idle samples in the windows */
  share: number;
}

export interface ProfileSummary {
  /** wall time covered by the windows (or the whole profile) */
  wallMs: number;
  /** sampled time not spent idle */
  busyMs: number;
  top: ProfileEntry[];
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Where a function is. tsx hands V8 each .ts module as one line, so for our code the line is always 1:
 * named functions go by name and file, anonymous ones get the column to keep closures apart.
 */
function location(frame: { functionName: string; url: string; lineNumber: number; columnNumber: number }): string {
  if (!frame.url) return '';
  let u = frame.url.startsWith('file://') ? fileURLToPath(frame.url) : frame.url;
  if (u.startsWith(ROOT)) u = u.slice(ROOT.length);
  u = u.replace(/^.*node_modules\//, '~/');
  if (frame.lineNumber > 0) return `${u}:${frame.lineNumber + 1}`;
  return frame.functionName ? u : `${u}@${frame.columnNumber}`;
}

export function summariseProfile(path: string, windows?: TimeWindow[], top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const meanDelta = p.timeDeltas.length ? (p.endTime - p.startTime) / p.timeDeltas.length : 0;
  const self = new Map<string, number>();
  let t = p.startTime;
  let busy = 0;
  const inside = (ts: number) => !windows || windows.some((w) => ts >= w.fromUs && ts < w.toUs);
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (!inside(t)) continue;
    // A sample stands for the interval up to the next one.
    const weight = p.timeDeltas[i + 1] ?? meanDelta;
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    const fn = node.callFrame.functionName || '(anonymous)';
    if (fn === '(idle)') continue;
    const loc = location(node.callFrame);
    let key = loc ? `${fn} ${loc}` : fn;
    // A native binding (writev, writeBuffer…) says little alone: name the JS function that called it.
    if (!loc && !fn.startsWith('(')) {
      const caller = byId.get(parent.get(node.id) ?? -1)?.callFrame;
      if (caller) key += ` ← ${caller.functionName || '(anonymous)'} ${location(caller)}`.trimEnd();
    }
    self.set(key, (self.get(key) ?? 0) + weight);
    busy += weight;
  }
  const wallUs = windows
    ? windows.reduce((s, w) => s + Math.max(0, Math.min(w.toUs, p.endTime) - Math.max(w.fromUs, p.startTime)), 0)
    : p.endTime - p.startTime;
  const entries = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  return {
    wallMs: wallUs / 1000,
    busyMs: busy / 1000,
    top: entries.map(([name, us]) => ({ name, selfMs: us / 1000, share: busy ? us / busy : 0 })),
  };
}

export function formatProfile(title: string, s: ProfileSummary): string {
  const lines = [
    `${title}: ${s.busyMs.toFixed(0)} ms of main-thread JS/GC/native samples in ${s.wallMs.toFixed(0)} ms of wall time (${((100 * s.busyMs) / Math.max(1, s.wallMs)).toFixed(0)}% of a core)`,
    '| self ms | share | function |',
    '|---:|---:|---|',
    ...s.top.map((e) => `| ${e.selfMs.toFixed(0)} | ${(100 * e.share).toFixed(1)}% | \`${e.name}\` |`),
  ];
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const file = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
  if (!file) {
    console.error('usage: run-ts.js bench/cpu-profile.ts FILE.cpuprofile [--windows windows.json] [--top N]');
    process.exit(2);
  }
  const wi = args.indexOf('--windows');
  const ti = args.indexOf('--top');
  const windows = wi >= 0 ? (JSON.parse(readFileSync(args[wi + 1]!, 'utf8')) as TimeWindow[]) : undefined;
  console.log(formatProfile(file, summariseProfile(file, windows, ti >= 0 ? Number(args[ti + 1]) : 25)));
}
