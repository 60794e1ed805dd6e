// The engine and replica processes put every thread under SCHED_BATCH unless told not to
// (dataplane/util/cpu-scheduling.ts). Checked on real processes through /proc: field 41 of
// /proc/PID/task/TID/stat is the policy (0 SCHED_OTHER, 3 SCHED_BATCH).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ShorthornProcess, startShorthorn } from '../../cli/child-process.js';
import { freePorts } from '../helpers/ports.js';

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;
const root = mkdtempSync(join(tmpdir(), 'shorthorn-sched-'));
const procs: ShorthornProcess[] = [];

afterAll(async () => {
  await Promise.allSettled(procs.map((p) => p.stop()));
  rmSync(root, { recursive: true, force: true });
});

/** The scheduling policy of each thread of `pid`. */
function policies(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[41 - 3]);
  });
}

async function replica(name: string, extra: string[] = []): Promise<{ proc: ShorthornProcess; port: number }> {
  const port = await freePorts(2);
  const proc = await startShorthorn([
    'replica',
    '--dir',
    join(root, name),
    '--size',
    '4Mi',
    '--listen',
    `127.0.0.1:${port}`,
    ...extra,
  ]);
  procs.push(proc);
  return { proc, port };
}

describe('CPU scheduling of the data-plane processes', () => {
  it('runs every thread of a replica and of an engine as SCHED_BATCH by default', async () => {
    const r = await replica('batch');
    const nbdPort = await freePorts(1);
    const grpcPort = await freePorts(1);
    const engine = await startShorthorn([
      'engine',
      '--volume',
      'v',
      '--size',
      '4Mi',
      '--replica',
      `tcp://127.0.0.1:${r.port}`,
      '--listen',
      `127.0.0.1:${grpcPort}`,
      '--nbd-listen',
      `127.0.0.1:${nbdPort}`,
    ]);
    procs.push(engine);
    for (const pid of [r.proc.pid, engine.pid]) {
      const seen = policies(pid);
      expect(seen.length).toBeGreaterThan(1);
      expect(new Set(seen)).toEqual(new Set([SCHED_BATCH]));
    }
  });

  it('--no-batch-scheduling leaves the normal policy', async () => {
    const r = await replica('normal', ['--no-batch-scheduling']);
    expect(new Set(policies(r.proc.pid))).toEqual(new Set([SCHED_OTHER]));
  });
});
