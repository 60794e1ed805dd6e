// The systems under test: a local file (fio libaio, O_DIRECT), nbdkit's file plugin on an equal file, and
// Shorthorn volumes with 1 and 3 replicas. Every process is started here, registered for cleanup by PID,
// and pre-filled from the same random file with nbdcopy.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { type ShorthornProcess, startShorthorn } from '../cli/child-process.js';
import { freePorts } from '../test/helpers/ports.js';
import type { FioTarget } from './fio-run.js';

export const TARGET_NAMES = ['local', 'nbdkit', 'shorthorn-1', 'shorthorn-3'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export interface BenchTarget {
  name: TargetName;
  fio: FioTarget;
  /** server processes whose CPU is measured: name → PID (none for the local file) */
  pids: Map<string, number>;
  /** one line for the report: how it was started */
  description: string;
  /** the last log lines of the server processes, for a failed run's message */
  logs(): string;
}

/** What has to be killed and removed on exit, whatever the exit path. */
export interface Cleanup {
  children: Set<ChildProcess>;
  shorthorn: ShorthornProcess[];
}

export function run(cmd: string, args: string[], cleanup: Cleanup, timeoutMs = 30 * 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 },
      (err, out, errOut) => {
        cleanup.children.delete(child);
        if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${errOut}`));
        else resolve(out);
      },
    );
    cleanup.children.add(child);
  });
}

/** Write the pre-fill source: `size` bytes of random data (the same for every target). */
export async function makeRandomFile(path: string, size: number, cleanup: Cleanup): Promise<void> {
  await run('sh', ['-c', `head -c ${size} /dev/urandom > '${path}'`], cleanup);
}

export async function prefill(source: string, destination: string, cleanup: Cleanup): Promise<number> {
  const t0 = Date.now();
  await run('nbdcopy', ['--flush', source, destination], cleanup);
  return (Date.now() - t0) / 1000;
}

function sparseFile(path: string, size: number): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  closeSync(fd);
}

export async function startLocal(dir: string, size: number): Promise<BenchTarget> {
  const path = join(dir, 'local.img');
  sparseFile(path, size);
  return {
    name: 'local',
    fio: { kind: 'file', path, size },
    pids: new Map(),
    logs: () => '',
    description: `fio ioengine=libaio direct=1 on ${path} (${dir} filesystem)`,
  };
}

export async function startNbdkit(dir: string, size: number, cleanup: Cleanup): Promise<BenchTarget> {
  const path = join(dir, 'nbdkit.img');
  sparseFile(path, size);
  const port = await freePorts(1);
  const args = ['--exit-with-parent', '-f', '-i', '127.0.0.1', '-p', String(port), 'file', path];
  const child = spawn('nbdkit', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  cleanup.children.add(child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-8192)));
  child.on('exit', () => cleanup.children.delete(child));
  const uri = `nbd://127.0.0.1:${port}/`;
  // nbdkit -f has no ready line: poll until nbdinfo can connect.
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`nbdkit ${args.join(' ')} exited ${child.exitCode}\n${stderr}`);
    try {
      await run('nbdinfo', ['--size', uri], cleanup, 5000);
      break;
    } catch (err) {
      if (i > 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const threads = await threadInfo();
  return {
    name: 'nbdkit',
    fio: { kind: 'nbd', uri },
    pids: new Map([['nbdkit', child.pid!]]),
    logs: () => `nbdkit stderr:\n${stderr}`,
    description: `nbdkit ${args.join(' ')} (${threads})`,
  };
}

async function threadInfo(): Promise<string> {
  const out = await new Promise<string>((resolve) =>
    execFile('nbdkit', ['file', '--dump-plugin'], (_e, stdout) => resolve(stdout ?? '')),
  );
  const model = /^thread_model=(.*)$/m.exec(out)?.[1] ?? 'unknown';
  return `thread model ${model}, default 16 worker threads`;
}

export interface ShorthornOptions {
  replicas: number;
  size: number;
  dir: string;
  cleanup: Cleanup;
  /** extra node flags for the engine and replica processes, by label (e.g. --cpu-prof …) */
  nodeArgs?: (label: string) => string[];
}

export async function startShorthornVolume(o: ShorthornOptions): Promise<BenchTarget> {
  const name = `bench${o.replicas}`;
  const target: TargetName = o.replicas === 1 ? 'shorthorn-1' : 'shorthorn-3';
  const pids = new Map<string, number>();
  const procs = new Map<string, ShorthornProcess>();
  const addresses: string[] = [];
  for (let i = 0; i < o.replicas; i++) {
    const dir = join(o.dir, `${name}-r${i}`);
    mkdirSync(dir, { recursive: true });
    const port = await freePorts(2);
    const role = `replica${i}`;
    const proc = await startShorthorn(
      ['replica', '--dir', dir, '--size', String(o.size), '--listen', `127.0.0.1:${port}`],
      { timeoutMs: 60_000, nodeArgs: o.nodeArgs?.(`${target}-${role}`) },
    );
    o.cleanup.shorthorn.push(proc);
    pids.set(role, proc.pid);
    procs.set(role, proc);
    addresses.push(`tcp://127.0.0.1:${port}`);
  }
  const grpcPort = await freePorts(1);
  const nbdPort = await freePorts(1);
  const args = [
    'engine',
    '--volume',
    name,
    '--size',
    String(o.size),
    ...addresses.flatMap((a) => ['--replica', a]),
    '--listen',
    `127.0.0.1:${grpcPort}`,
    '--frontend',
    'nbd',
    '--nbd-listen',
    `127.0.0.1:${nbdPort}`,
  ];
  const engine = await startShorthorn(args, { timeoutMs: 60_000, nodeArgs: o.nodeArgs?.(`${target}-engine`) });
  o.cleanup.shorthorn.push(engine);
  // The engine first, so tables list it before the replicas.
  const ordered = new Map([['engine', engine.pid], ...pids]);
  return {
    name: target,
    fio: { kind: 'nbd', uri: `nbd://127.0.0.1:${nbdPort}/${name}` },
    pids: ordered,
    logs: () =>
      [['engine', engine] as const, ...procs]
        .map(([role, p]) => `--- ${role} (pid ${p.pid}) log tail:\n${p.logs().split('\n').slice(-15).join('\n')}`)
        .join('\n'),
    description: `shorthorn ${args.join(' ')} + ${o.replicas} × shorthorn replica --dir … --size ${o.size}`,
  };
}
