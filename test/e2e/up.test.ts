// `shorthorn up` as a person runs it, with real processes: the embedded store, the controllers and N
// instance-manager processes, a volume attached to node-1 and served over NBD. Ctrl-C (SIGINT) stops
// everything in order and exits 0, and the next `up` brings the data back; a SIGKILLed `up` leaves
// the instance managers and the volume's I/O running, and the next `up` adopts them with the same
// endpoint; bad flags fail at once and start nothing.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ShorthornProcess, startShorthorn } from '../../cli/child-process.js';
import { openSqliteStore } from '../../store/sqlite-store.js';
import { requireTool } from '../helpers/tools.js';
import { MiB, PYTHON, python, sleep, waitFor } from '../helpers/volume-tools.js';

interface ReadyNode {
  name: string;
  instanceManager: string;
  pid: number;
  adopted: boolean;
}

interface UpReady {
  ready: true;
  endpoint?: string;
  nodes: ReadyNode[];
  pid: number;
}

/** Everything one test started, for afterEach: its `up` processes, every node pid seen, its temp dir. */
interface Run {
  root: string;
  dataDir: string;
  /** In the environment of `up` and so of every process under it (instance managers, engines, replicas). */
  tag: string;
  ups: ShorthornProcess[];
  nodePids: Set<number>;
}

let current: Run | undefined;

function newRun(): Run {
  const root = mkdtempSync(join(tmpdir(), 'shorthorn-up-'));
  current = { root, dataDir: join(root, 'data'), tag: randomUUID(), ups: [], nodePids: new Set() };
  return current;
}

function tryListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/**
 * A base port with base … base+3000 inside 30000…49999, a different thousand each call, whose ports
 * `up --nodes 2` binds itself are free: base (the API), base+1 and base+2 (instance managers), and the
 * start of each node's instance range (the instance managers probe the rest of it themselves).
 */
let nextThousand = Math.floor(Math.random() * 17);
async function basePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 30000 + nextThousand * 1000 + Math.floor(Math.random() * 900);
    nextThousand = (nextThousand + 4) % 17;
    const ports = [base, base + 1, base + 2, base + 3];
    for (let i = 1; i <= 2; i++) for (let j = 0; j < 16; j++) ports.push(base + 1000 * i + j);
    let ok = true;
    for (const port of ports) {
      ok = await tryListen(port);
      if (!ok) break;
    }
    if (ok) return base;
  }
  throw new Error('no free base port for up');
}

function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Live processes of this run: the `shorthorn engine`/`shorthorn replica`/`shorthorn instance-manager`
 * processes whose command line mentions the data dir, and any process carrying the run's tag in its
 * environment (an engine's command line names no directory).
 */
function runProcesses(run: Run): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let argv: string[];
    let environ = '';
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      continue;
    }
    try {
      environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    } catch {
      // another user's process: the command line is all we can see
    }
    const cmdline = argv.join(' ');
    const shorthorn = argv.some((a) => a.endsWith('shorthorn.js'));
    const mentionsDir = shorthorn && cmdline.includes(run.dataDir);
    const tagged = environ.includes(`SHORTHORN_UP_TEST_TAG=${run.tag}`);
    if ((mentionsDir || tagged) && pidAlive(pid)) found.push({ pid, cmdline });
  }
  return found;
}

function instanceProcesses(run: Run) {
  return runProcesses(run).filter((p) => / (engine|replica) /.test(` ${p.cmdline} `));
}

function killGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // gone already, or not a group leader
    }
  }
}

afterEach(async () => {
  const run = current;
  current = undefined;
  if (!run) return;
  for (const up of run.ups) killGroup(up.pid);
  for (const pid of run.nodePids) killGroup(pid);
  // Whatever is left (an engine whose instance manager was already gone): by PID, found by tag / dir.
  for (let i = 0; i < 3; i++) {
    const left = runProcesses(run);
    if (left.length === 0) break;
    for (const p of left) killGroup(p.pid);
    await sleep(200);
  }
  await Promise.all(run.ups.map((u) => u.exited));
  if (!process.env['SHORTHORN_KEEP_TEST_DIRS']) rmSync(run.root, { recursive: true, force: true });
});

function upArgs(run: Run, port: number, extra: string[] = []): string[] {
  return ['up', '--data-dir', run.dataDir, '--port', String(port), ...extra];
}

async function startUp(run: Run, args: string[]): Promise<{ up: ShorthornProcess; ready: UpReady }> {
  const up = await startShorthorn(args, {
    ownProcessGroup: true,
    timeoutMs: 150_000,
    env: { SHORTHORN_UP_TEST_TAG: run.tag },
  });
  run.ups.push(up);
  const ready = up.ready as unknown as UpReady;
  for (const n of ready.nodes ?? []) run.nodePids.add(n.pid);
  return { up, ready };
}

/** SIGINT to `up` alone; resolves with its exit code (fails after `ms`). */
async function interrupt(up: ShorthornProcess, ms = 60_000): Promise<number | null> {
  process.kill(up.pid, 'SIGINT');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), ms);
  });
  const code = await Promise.race([up.exited, timeout]);
  clearTimeout(timer);
  if (code === 'timeout') throw new Error(`up did not exit within ${ms} ms of SIGINT\n${up.logs().slice(-8000)}`);
  return code;
}

const WRITE_SCRIPT = `import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
data = open(sys.argv[2], 'rb').read()
off = int(sys.argv[3])
for i in range(0, len(data), 1 << 20):
    h.pwrite(data[i:i + (1 << 20)], off + i)
h.flush()
h.shutdown()`;

const SHA_SCRIPT = `import nbd, sys, hashlib
h = nbd.NBD()
h.connect_uri(sys.argv[1])
off, length = int(sys.argv[2]), int(sys.argv[3])
m = hashlib.sha256()
for i in range(0, length, 1 << 20):
    m.update(h.pread(min(1 << 20, length - i), off + i))
print(m.hexdigest())
h.shutdown()`;

/**
 * Writes then reads back a few 4 KiB blocks every 50 ms for ~seconds; exits non-zero on any error or
 * mismatch (a reconnect is a failure too: the endpoint must stay up).
 */
const IO_LOOP_SCRIPT = `import nbd, sys, os, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
base, seconds = int(sys.argv[2]), float(sys.argv[3])
end = time.time() + seconds
rounds = 0
while time.time() < end:
    for b in range(4):
        off = base + ((rounds * 4 + b) % 256) * 4096
        buf = os.urandom(4096)
        h.pwrite(buf, off)
        if h.pread(4096, off) != buf:
            sys.exit(f"mismatch at {off} in round {rounds}")
    h.flush()
    rounds += 1
    time.sleep(0.05)
print(rounds)
h.shutdown()`;

async function nbdWrite(uri: string, file: string, offset: number): Promise<void> {
  const r = await python(WRITE_SCRIPT, [uri, file, String(offset)], 60_000);
  if (r.code !== 0) throw new Error(`writing to ${uri} failed:\n${r.stderr}`);
}

async function nbdSha256(uri: string, offset: number, length: number): Promise<string> {
  const r = await python(SHA_SCRIPT, [uri, String(offset), String(length)], 60_000);
  if (r.code !== 0) throw new Error(`reading ${uri} failed:\n${r.stderr}`);
  return r.stdout.trim();
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function expectEndpoint(ready: UpReady, volume: string): string {
  expect(ready.endpoint).toMatch(new RegExp(`^nbd://127\\.0\\.0\\.1:\\d+/${volume}$`));
  return ready.endpoint!;
}

/** After `up` exited: no node process and no engine/replica of this data dir may be left. */
async function expectEverythingStopped(run: Run, nodePids: number[]): Promise<void> {
  // The exit code came after the instance managers were awaited; allow a moment for reaping only.
  await waitFor(() => nodePids.every((p) => !pidAlive(p)) && runProcesses(run).length === 0, 5_000, 100);
  expect(nodePids.filter(pidAlive)).toEqual([]);
  expect(instanceProcesses(run)).toEqual([]);
  expect(runProcesses(run)).toEqual([]);
}

/** The volume's replicas as the store holds them once `up` has exited: name, node, failedAt. */
async function storedReplicas(run: Run, volume: string) {
  const store = openSqliteStore(join(run.dataDir, 'shorthorn.db'));
  try {
    return (await store.list('Replica')).items
      .filter((r) => r.spec.volumeName === volume)
      .map((r) => ({ node: r.spec.nodeID, failedAt: r.spec.failedAt }))
      .sort((a, b) => a.node.localeCompare(b.node));
  } finally {
    await store.close();
  }
}

const VOLUME_ARGS = ['--volume', 'v1', '--size', '64Mi', '--replicas', '2'];

describe('shorthorn up', () => {
  it('serves a volume over NBD, stops everything in order on SIGINT (exit 0), and brings the data back on the next up', async () => {
    requireTool(PYTHON);
    const run = newRun();
    const args = upArgs(run, await basePort(), ['--nodes', '2', ...VOLUME_ARGS]);
    const first = await startUp(run, args);
    expect(first.ready.nodes.map((n) => [n.name, n.adopted])).toEqual([
      ['node-1', false],
      ['node-2', false],
    ]);
    const uri = expectEndpoint(first.ready, 'v1');

    const payload = join(run.root, 'payload.bin');
    writeFileSync(payload, randomBytes(8 * MiB));
    const expected = sha256File(payload);
    await nbdWrite(uri, payload, 0);
    expect(await nbdSha256(uri, 0, 8 * MiB)).toBe(expected);

    // The volume's processes run before the stop, so "none after" means something.
    expect(instanceProcesses(run).length).toBeGreaterThanOrEqual(3);
    const code = await interrupt(first.up);
    expect(code, first.up.logs().slice(-8000)).toBe(0);
    await expectEverythingStopped(
      run,
      first.ready.nodes.map((n) => n.pid),
    );
    // In order: the engine stopped before any replica, so no replica was failed by the stop.
    const healthy = [
      { node: 'node-1', failedAt: '' },
      { node: 'node-2', failedAt: '' },
    ];
    expect(await storedReplicas(run, 'v1')).toEqual(healthy);

    const second = await startUp(run, args);
    expect(second.ready.nodes.map((n) => n.adopted)).toEqual([false, false]);
    const uri2 = expectEndpoint(second.ready, 'v1');
    expect(await nbdSha256(uri2, 0, 8 * MiB)).toBe(expected);
    expect(await interrupt(second.up), second.up.logs().slice(-8000)).toBe(0);
    await expectEverythingStopped(
      run,
      second.ready.nodes.map((n) => n.pid),
    );
    expect(await storedReplicas(run, 'v1')).toEqual(healthy);
  }, 300_000);

  it('a SIGKILLed up leaves the volume serving I/O; the next up adopts every node with the same endpoint', async () => {
    requireTool(PYTHON);
    const run = newRun();
    const args = upArgs(run, await basePort(), ['--nodes', '2', ...VOLUME_ARGS]);
    const first = await startUp(run, args);
    const uri = expectEndpoint(first.ready, 'v1');
    const payload = join(run.root, 'payload.bin');
    writeFileSync(payload, randomBytes(4 * MiB));
    const expected = sha256File(payload);
    await nbdWrite(uri, payload, 0);

    // I/O at 16 MiB… while `up` (and only `up`: not its nodes' process groups) is SIGKILLed.
    const io = python(IO_LOOP_SCRIPT, [uri, String(16 * MiB), '3'], 30_000);
    await sleep(500);
    process.kill(first.up.pid, 'SIGKILL');
    await first.up.exited;
    const ioResult = await io;
    expect(ioResult.code, `I/O failed while up was killed:\n${ioResult.stderr}`).toBe(0);
    expect(Number(ioResult.stdout.trim())).toBeGreaterThan(10);
    // The nodes and the volume outlived `up`.
    expect(first.ready.nodes.map((n) => n.pid).filter(pidAlive)).toEqual(first.ready.nodes.map((n) => n.pid));
    const whole = await nbdSha256(uri, 0, 64 * MiB);

    const second = await startUp(run, args);
    expect(second.ready.nodes.map((n) => [n.name, n.adopted, n.pid])).toEqual(
      first.ready.nodes.map((n) => [n.name, true, n.pid]),
    );
    expect(second.ready.endpoint).toBe(uri);
    expect(await nbdSha256(uri, 0, 4 * MiB)).toBe(expected);
    expect(await nbdSha256(uri, 0, 64 * MiB)).toBe(whole);

    // Adopted nodes are stopped on SIGINT too.
    expect(await interrupt(second.up), second.up.logs().slice(-8000)).toBe(0);
    await expectEverythingStopped(
      run,
      second.ready.nodes.map((n) => n.pid),
    );
  }, 300_000);

  it.each([
    [['--nodes', '0'], /--nodes must be 1…20, got 0/],
    [['--port', '80'], /--port 80/],
    [['--volume', 'v1', '--size', '12x'], /--size: invalid size "12x"/],
    [['--volume', 'v1', '--replicas', 'two'], /--replicas must be a positive integer, got two/],
  ])(
    'refuses %j with a clear error, a non-zero exit and no process left',
    async (flags, message) => {
      const run = newRun();
      const port = flags.includes('--port') ? [] : ['--port', String(await basePort())];
      const args = ['up', '--data-dir', run.dataDir, ...port, ...flags];
      const err = await startShorthorn(args, {
        ownProcessGroup: true,
        timeoutMs: 30_000,
        env: { SHORTHORN_UP_TEST_TAG: run.tag },
      }).then(
        (up) => {
          run.ups.push(up);
          return undefined;
        },
        (e: unknown) => e as Error,
      );
      expect(err, 'up started with a bad flag').toBeInstanceOf(Error);
      expect(err!.message).toMatch(/exited \(1\) before ready/);
      expect(err!.message).toMatch(message);
      expect(runProcesses(run)).toEqual([]);
    },
    60_000,
  );

  it('a SIGINT during start-up stops what already started and exits 0', async () => {
    const run = newRun();
    const starting = startShorthorn(upArgs(run, await basePort(), ['--nodes', '2', ...VOLUME_ARGS]), {
      ownProcessGroup: true,
      timeoutMs: 150_000,
      env: { SHORTHORN_UP_TEST_TAG: run.tag },
    }).then(
      (up) => {
        run.ups.push(up);
        return up;
      },
      (e: unknown) => e as Error,
    );
    // `up` itself carries the tag: found by it, as startShorthorn gives no PID before the ready line.
    const upPid = () =>
      runProcesses(run).find((p) => / up /.test(` ${p.cmdline} `) && p.cmdline.includes(run.dataDir))?.pid;
    const pidFile = join(run.dataDir, 'nodes', 'node-1', 'instance-manager.json');
    expect(await waitFor(() => upPid() !== undefined && existsSync(pidFile), 30_000, 20)).toBe(true);
    const nodePid = (JSON.parse(readFileSync(pidFile, 'utf8')) as { pid: number }).pid;
    run.nodePids.add(nodePid);
    process.kill(upPid()!, 'SIGINT');
    const result = await starting;
    expect(result, 'up printed a ready line after SIGINT').toBeInstanceOf(Error);
    expect((result as Error).message).toMatch(/exited \(0\) before ready/);
    await waitFor(() => runProcesses(run).length === 0, 5_000, 100);
    expect(pidAlive(nodePid)).toBe(false);
    expect(runProcesses(run)).toEqual([]);
  }, 120_000);
});
