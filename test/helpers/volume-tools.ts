// Shared pieces of the volume integration tests: fio with JSON output, engine-ctl as a real process,
// nbd python scripts on Debian's python3, polling, liveness of the volume's processes.
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { SHORTHORN_BIN, startShorthorn } from '../../cli/child-process.js';
import type { TestVolume } from './cluster.js';
import { freePorts } from './ports.js';
import { type RunResult, run, runOk } from './tools.js';

export const FIO = '/usr/bin/fio';
export const PYTHON = '/usr/bin/python3';
export const MiB = 1024 * 1024;

export interface FioJob {
  jobname: string;
  error: number;
  read: { io_bytes: number };
  write: { io_bytes: number };
}

export interface FioResult extends RunResult {
  jobs: FioJob[];
}

/** fio's nbd engine prints "fio: connected to NBD server" on stdout before the JSON document. */
export function parseFioJson(stdout: string): { jobs: FioJob[] } {
  const start = stdout.startsWith('{') ? 0 : stdout.indexOf('\n{') + 1;
  if (start < 0 || stdout[start] !== '{') throw new Error(`no JSON document in fio output:\n${stdout}`);
  return JSON.parse(stdout.slice(start)) as { jobs: FioJob[] };
}

/** Run fio to completion with --output-format=json (fio's own --runtime bounds it; timeoutMs is a backstop). */
export async function fio(args: string[], timeoutMs = 120_000): Promise<FioResult> {
  // verify_state_save=0: fio would otherwise leave local-*-verify.state files in the working directory
  const r = await run(FIO, ['--output-format=json', '--verify_state_save=0', ...args], { timeoutMs });
  let jobs: FioJob[] = [];
  try {
    jobs = parseFioJson(r.stdout).jobs;
  } catch {
    // leave jobs empty: expectFioClean reports the raw output
  }
  return { ...r, jobs };
}

/** fio exit code 0, every job error 0, no verify complaint, and both writes and (verify) reads happened. */
export function fioProblems(r: FioResult, opts: { expectJobs: number }): string[] {
  const problems: string[] = [];
  if (r.code !== 0) problems.push(`fio exited ${r.code}`);
  if (r.jobs.length !== opts.expectJobs) problems.push(`expected ${opts.expectJobs} fio jobs, got ${r.jobs.length}`);
  for (const j of r.jobs) {
    if (j.error !== 0) problems.push(`job ${j.jobname}: error=${j.error}`);
    if (!(j.write.io_bytes > 0)) problems.push(`job ${j.jobname}: wrote nothing`);
    if (!(j.read.io_bytes > 0)) problems.push(`job ${j.jobname}: verified (read) nothing`);
  }
  if (/verify: |verify failed|bad magic header/i.test(r.stdout + r.stderr)) problems.push('fio reported verify errors');
  if (/err=\s*[1-9]/.test(r.stdout + r.stderr)) problems.push('fio reported err != 0');
  return problems.length ? [...problems, `stdout:\n${r.stdout.slice(0, 4000)}`, `stderr:\n${r.stderr}`] : [];
}

export interface EngineReplica {
  address: string;
  mode: 'RW' | 'WO' | 'ERR' | string;
  error: string;
  revisionCounter?: number;
}

/** `shorthorn engine-ctl --engine 127.0.0.1:PORT -o json replicas` as a real process. */
export async function engineReplicas(vol: TestVolume, timeoutMs = 30_000): Promise<EngineReplica[]> {
  const r = await runOk(
    process.execPath,
    [SHORTHORN_BIN, 'engine-ctl', '--engine', `127.0.0.1:${vol.enginePort}`, '-o', 'json', 'replicas'],
    { timeoutMs },
  );
  return JSON.parse(r.stdout.trim()) as EngineReplica[];
}

/** address → mode, for readable assertions. */
export async function replicaModes(vol: TestVolume): Promise<Record<string, string>> {
  const list = await engineReplicas(vol);
  return Object.fromEntries(list.map((r) => [r.address, r.mode]));
}

export function expectedModes(vol: TestVolume, modes: string[]): Record<string, string> {
  return Object.fromEntries(vol.replicas.map((r, i) => [r.address, modes[i]!]));
}

/** Poll `check` until it returns true or the deadline passes; returns whether it succeeded. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs = 250) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run a python script with libnbd's `nbd` module (Debian's python3, never pyenv's). */
export function python(script: string, args: string[] = [], timeoutMs = 60_000): Promise<RunResult> {
  return run(PYTHON, ['-c', script, ...args], { timeoutMs });
}

/** Write `bytes` random bytes to `path` in 4 MiB pieces. */
export function writeRandomFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  try {
    for (let off = 0; off < bytes; off += 4 * MiB) writeSync(fd, randomBytes(Math.min(4 * MiB, bytes - off)));
  } finally {
    closeSync(fd);
  }
}

/** Names of the volume's processes that are no longer running (exited or killed). */
export function deadProcesses(vol: TestVolume): string[] {
  const dead: string[] = [];
  const check = (name: string, p: { child: { exitCode: number | null; signalCode: NodeJS.Signals | null } }) => {
    if (p.child.exitCode !== null || p.child.signalCode !== null)
      dead.push(`${name} (exit ${p.child.exitCode ?? p.child.signalCode})`);
  };
  check('engine', vol.engine);
  for (const [i, r] of vol.replicas.entries()) check(`replica ${i}`, r.proc);
  return dead;
}

/** Recent logs of every process of the volume, for failure messages. */
export function volumeLogs(vol: TestVolume, tail = 4000): string {
  const parts = [`engine:\n${vol.engine?.logs().slice(-tail) ?? ''}`];
  for (const [i, r] of vol.replicas.entries()) parts.push(`replica ${i}:\n${r.proc.logs().slice(-tail)}`);
  return parts.join('\n');
}

/** sha256 of the whole export, read with libnbd in 4 MiB requests (no block status involved). */
export async function volumeSha256(uri: string): Promise<string> {
  const r = await python(
    `import nbd, sys, hashlib
h = nbd.NBD()
h.connect_uri(sys.argv[1])
size = h.get_size()
m = hashlib.sha256()
for off in range(0, size, 4 << 20):
    m.update(h.pread(min(4 << 20, size - off), off))
print(m.hexdigest())`,
    [uri],
    120_000,
  );
  if (r.code !== 0) throw new Error(`reading ${uri} failed:\n${r.stderr}`);
  return r.stdout.trim();
}

/**
 * An engine of its own on just one replica of `vol` (the volume's engine must be stopped first), for
 * checking what that replica holds. The caller stops it.
 */
export async function startSoloEngine(vol: TestVolume, replicaIndex: number) {
  const [grpc, nbdPort] = [await freePorts(1), await freePorts(1)];
  const engine = await startShorthorn([
    'engine',
    '--volume',
    vol.name,
    '--size',
    String(vol.size),
    '--replica',
    vol.replicas[replicaIndex]!.address,
    '--listen',
    `127.0.0.1:${grpc}`,
    '--frontend',
    'nbd',
    '--nbd-listen',
    `127.0.0.1:${nbdPort}`,
  ]);
  return { engine, uri: `nbd://127.0.0.1:${nbdPort}/${vol.name}` };
}
