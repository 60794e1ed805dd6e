// Faults with real processes: SIGKILL replicas mid-I/O (fio verifies every block it wrote, so an
// acknowledged write that got lost fails the test), SIGKILL the engine after a flush, and a replica
// dying while the volume is idle.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { startVolume, type TestVolume } from '../helpers/cluster.js';
import { requireTool, run, runOk, startTool } from '../helpers/tools.js';
import {
  deadProcesses,
  engineReplicas,
  expectedModes,
  FIO,
  fioProblems,
  MiB,
  PYTHON,
  parseFioJson,
  python,
  replicaModes,
  sleep,
  startSoloEngine,
  volumeLogs,
  volumeSha256,
  waitFor,
  writeRandomFile,
} from '../helpers/volume-tools.js';

const NBDCOPY = '/usr/bin/nbdcopy';
const CMP = '/usr/bin/cmp';
const SIZE = 128 * MiB;

/** fio write + verify (verify_backlog checks blocks while writing), time-bounded so a kill lands mid-run. */
function startFio(uri: string, runtimeSec: number) {
  return startTool(FIO, [
    '--output-format=json',
    '--verify_state_save=0',
    '--ioengine=nbd',
    `--uri=${uri}`,
    '--name=fault',
    '--rw=randwrite',
    '--bs=64k',
    '--size=64M',
    '--iodepth=8',
    '--time_based',
    `--runtime=${runtimeSec}`,
    '--verify=crc32c',
    '--verify_backlog=128',
    '--verify_fatal=1',
    '--randrepeat=0',
    '--name=fault4k',
    '--rw=randwrite',
    '--bs=4k',
    '--offset=64M',
    '--size=16M',
    '--iodepth=8',
    '--time_based',
    `--runtime=${runtimeSec}`,
    '--verify=crc32c',
    '--verify_backlog=256',
    '--verify_fatal=1',
    '--randrepeat=0',
  ]);
}

async function finishFio(f: ReturnType<typeof startTool>, timeoutMs: number) {
  const code = await Promise.race([f.exited, sleep(timeoutMs).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    await f.kill();
    throw new Error(`fio still running after ${timeoutMs} ms: ${f.output().stderr}`);
  }
  // startTool's `exited` follows the 'exit' event, which can come before the last stdout chunk: wait for
  // the pipes to close so the JSON document is complete
  await Promise.all(
    [f.child.stdout, f.child.stderr].map(
      (s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.once('close', () => resolve()))),
    ),
  );
  const { stdout, stderr } = f.output();
  let jobs: ReturnType<typeof parseFioJson>['jobs'] = [];
  try {
    jobs = parseFioJson(stdout).jobs;
  } catch {}
  return { code, stdout, stderr, jobs };
}

describe('faults', () => {
  const volumes: TestVolume[] = [];
  const tools: ReturnType<typeof startTool>[] = [];
  let dir = '';

  beforeAll(() => {
    for (const t of [FIO, NBDCOPY, CMP, PYTHON]) requireTool(t);
    dir = mkdtempSync(join(tmpdir(), 'shorthorn-faults-'));
  });

  afterEach(async () => {
    await Promise.all(tools.splice(0).map((t) => t.kill()));
    await Promise.all(volumes.splice(0).map((v) => v.destroy()));
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function volume(replicas: number) {
    const v = await startVolume({ size: SIZE, replicas });
    volumes.push(v);
    return v;
  }

  test('(a) SIGKILL one replica during fio write+verify: fio sees no error, the replica is ERR', async () => {
    const v = await volume(3);
    const f = startFio(v.uri, 12);
    tools.push(f);
    await sleep(4000);
    expect(f.child.exitCode, `fio ended before the kill: ${JSON.stringify(f.output())}`).toBe(null);
    await v.replicas[1]!.proc.kill9();
    const r = await finishFio(f, 60_000);
    expect(fioProblems(r, { expectJobs: 2 }), volumeLogs(v)).toEqual([]);
    expect(await replicaModes(v)).toEqual(expectedModes(v, ['RW', 'ERR', 'RW']));
    const err = (await engineReplicas(v)).find((x) => x.address === v.replicas[1]!.address)!;
    expect(err.error, 'an ERR replica carries the reason').not.toBe('');
    expect(deadProcesses(v)).toEqual(['replica 1 (exit SIGKILL)']);

    // the two survivors hold the same bytes: stop the engine, read each replica through an engine of its own
    expect(await v.engine.stop(15_000), v.engine.logs().slice(-4000)).toBe(0);
    const hashes: string[] = [];
    for (const i of [0, 2]) {
      const solo = await startSoloEngine(v, i);
      try {
        hashes.push(await volumeSha256(solo.uri));
      } finally {
        await solo.engine.stop(15_000);
      }
    }
    expect(hashes[0], 'replicas 0 and 2 diverged').toBe(hashes[1]);
  });

  test('(b) kill all but one replica during I/O: reads and writes go on', async () => {
    const v = await volume(3);
    const f = startFio(v.uri, 12);
    tools.push(f);
    await sleep(3000);
    expect(f.child.exitCode, `fio ended before the kills: ${JSON.stringify(f.output())}`).toBe(null);
    await v.replicas[0]!.proc.kill9();
    await sleep(2000);
    expect(f.child.exitCode, `fio ended before the second kill: ${JSON.stringify(f.output())}`).toBe(null);
    await v.replicas[2]!.proc.kill9();
    const r = await finishFio(f, 60_000);
    expect(fioProblems(r, { expectJobs: 2 }), volumeLogs(v)).toEqual([]);
    expect(await replicaModes(v)).toEqual(expectedModes(v, ['ERR', 'RW', 'ERR']));

    // new data in and out through the one replica left
    const input = join(dir, 'b-in.bin');
    const output = join(dir, 'b-out.bin');
    writeRandomFile(input, 32 * MiB);
    await runOk(NBDCOPY, ['--flush', input, v.uri], { timeoutMs: 60_000 });
    await runOk(NBDCOPY, [v.uri, output], { timeoutMs: 60_000 });
    const same = await run(CMP, ['-n', String(32 * MiB), input, output]);
    expect(same.code, `${same.stdout}${same.stderr}`).toBe(0);
    expect(deadProcesses(v)).toEqual(['replica 0 (exit SIGKILL)', 'replica 2 (exit SIGKILL)']);
  });

  test('(c) flushed data survives SIGKILL of the engine; a new engine serves it from the same replicas', async () => {
    const v = await volume(3);
    // three patterns at unaligned and aligned offsets, then flush; print nothing unless it worked
    const write = `
import nbd, sys, hashlib
h = nbd.NBD()
h.connect_uri(sys.argv[1])
for i, off in enumerate([0, 4096 * 1000 + 512, 100 * 1024 * 1024 - 3]):
    h.pwrite(hashlib.sha256(str(i).encode()).digest() * (65536 // 32 * (i + 1)), off)
h.pwrite(b'\\xab' * 1048576, 64 * 1024 * 1024, nbd.CMD_FLAG_FUA)
h.flush()
print('written')
`;
    const w = await python(write, [v.uri]);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout.trim()).toBe('written');

    await v.engine.kill9();
    await v.startEngine();
    expect(await replicaModes(v)).toEqual(expectedModes(v, ['RW', 'RW', 'RW']));

    const read = `
import nbd, sys, hashlib
h = nbd.NBD()
h.connect_uri(sys.argv[1])
bad = []
for i, off in enumerate([0, 4096 * 1000 + 512, 100 * 1024 * 1024 - 3]):
    want = hashlib.sha256(str(i).encode()).digest() * (65536 // 32 * (i + 1))
    if h.pread(len(want), off) != want: bad.append(off)
if h.pread(1048576, 64 * 1024 * 1024) != b'\\xab' * 1048576: bad.append('fua')
if h.pread(4096, 50 * 1024 * 1024) != bytes(4096): bad.append('zero region')
print('bad', bad)
`;
    // read it three times so the round-robin reads hit every replica
    for (let i = 0; i < 3; i++) {
      const r = await python(read, [v.uri]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('bad []');
    }
    expect(deadProcesses(v), volumeLogs(v)).toEqual([]);
  });

  test('(d) a replica killed while the volume is idle is marked ERR within a few seconds', async () => {
    const v = await volume(3);
    expect(await replicaModes(v)).toEqual(expectedModes(v, ['RW', 'RW', 'RW']));
    const killedAt = Date.now();
    await v.replicas[2]!.proc.kill9();
    let last: Record<string, string> = {};
    const marked = await waitFor(
      async () => {
        last = await replicaModes(v);
        return last[v.replicas[2]!.address] === 'ERR';
      },
      10_000,
      200,
    );
    expect(marked, `not ERR ${Date.now() - killedAt} ms after the kill: ${JSON.stringify(last)}`).toBe(true);
    expect(await replicaModes(v)).toEqual(expectedModes(v, ['RW', 'RW', 'ERR']));
    // and the volume still serves
    const r = await python(
      `
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b'x' * 65536, 0)
h.flush()
print(h.pread(65536, 0) == b'x' * 65536)
`,
      [v.uri],
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('True');
  });
});
