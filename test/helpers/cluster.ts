// Real shorthorn processes for integration tests: N replica processes and an engine on 127.0.0.1,
// in a temp dir, stopped (by PID, SIGKILL if need be) and removed by `destroy()` even when a test fails.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ShorthornProcess, startShorthorn } from '../../cli/child-process.js';
import { freePorts } from './ports.js';

export interface ReplicaProcess {
  proc: ShorthornProcess;
  dir: string;
  port: number;
  address: string;
}

export interface TestVolume {
  name: string;
  size: number;
  root: string;
  replicas: ReplicaProcess[];
  engine: ShorthornProcess;
  enginePort: number;
  /** nbd://127.0.0.1:PORT/NAME */
  uri: string;
  nbdPort: number;
  startReplica(index: number): Promise<ReplicaProcess>;
  startEngine(extraArgs?: string[]): Promise<ShorthornProcess>;
  destroy(): Promise<void>;
}

export async function startReplica(dir: string, size: number, port?: number, volume?: string): Promise<ReplicaProcess> {
  const p = port ?? (await freePorts(2));
  const identity = volume === undefined ? [] : ['--volume', volume];
  const proc = await startShorthorn([
    'replica',
    '--dir',
    dir,
    '--size',
    String(size),
    '--listen',
    `127.0.0.1:${p}`,
    ...identity,
  ]);
  return { proc, dir, port: p, address: `tcp://127.0.0.1:${p}` };
}

export async function startVolume(opts: {
  name?: string;
  size: number;
  replicas: number;
  engineArgs?: string[];
}): Promise<TestVolume> {
  const root = mkdtempSync(join(tmpdir(), 'shorthorn-test-'));
  const name = opts.name ?? 'vol';
  const all: ShorthornProcess[] = [];
  const vol: TestVolume = {
    name,
    size: opts.size,
    root,
    replicas: [],
    engine: undefined as unknown as ShorthornProcess,
    enginePort: 0,
    nbdPort: 0,
    uri: '',
    async startReplica(i) {
      const prev = vol.replicas[i];
      const r = await startReplica(prev?.dir ?? join(root, `r${i}`), opts.size, prev?.port, name);
      all.push(r.proc);
      vol.replicas[i] = r;
      return r;
    },
    async startEngine(extraArgs = []) {
      vol.enginePort ||= await freePorts(1);
      vol.nbdPort ||= await freePorts(1);
      const engine = await startShorthorn([
        'engine',
        '--volume',
        name,
        '--size',
        String(opts.size),
        ...vol.replicas.flatMap((r) => ['--replica', r.address]),
        '--listen',
        `127.0.0.1:${vol.enginePort}`,
        '--frontend',
        'nbd',
        '--nbd-listen',
        `127.0.0.1:${vol.nbdPort}`,
        ...(opts.engineArgs ?? []),
        ...extraArgs,
      ]);
      all.push(engine);
      vol.engine = engine;
      vol.uri = `nbd://127.0.0.1:${vol.nbdPort}/${name}`;
      return engine;
    },
    async destroy() {
      await Promise.all(all.map((p) => p.stop(5000).catch(() => p.kill9())));
      rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 0; i < opts.replicas; i++) await vol.startReplica(i);
    await vol.startEngine();
  } catch (err) {
    await vol.destroy();
    throw err;
  }
  return vol;
}
