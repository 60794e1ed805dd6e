// A replica that stops answering (SIGSTOP: the process is alive, its sockets open, but silent) must
// become ERR after the I/O timeout, and the write that was waiting on it must still succeed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVolume, type TestVolume } from '../helpers/cluster.js';
import { runOk } from '../helpers/tools.js';

const NBDSH = '/usr/bin/nbdsh';

async function replicas(vol: TestVolume): Promise<{ address: string; mode: string }[]> {
  const { stdout } = await runOk(process.execPath, [
    'bin/shorthorn.js',
    'engine-ctl',
    '--engine',
    `127.0.0.1:${vol.enginePort}`,
    '-o',
    'json',
    'replicas',
  ]);
  return JSON.parse(stdout);
}

describe('engine I/O timeout', () => {
  let vol: TestVolume;
  beforeAll(async () => {
    vol = await startVolume({ size: 64 * 2 ** 20, replicas: 3, engineArgs: ['--io-timeout', '1'] });
  });
  afterAll(async () => {
    for (const r of vol?.replicas ?? []) r.proc.child.kill('SIGCONT');
    await vol?.destroy();
  });

  it('marks a silent replica ERR and completes the write on the others', async () => {
    const stalled = vol.replicas[1]!;
    stalled.proc.child.kill('SIGSTOP');
    const started = Date.now();
    // One write + flush through a real NBD client; it must succeed although replica 1 never answers.
    await runOk(NBDSH, [
      '-u',
      vol.uri,
      '-c',
      'h.pwrite(b"\\xab" * 65536, 1048576); h.flush(); assert h.pread(65536, 1048576) == b"\\xab" * 65536',
    ]);
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(900);
    const list = await replicas(vol);
    expect(list.find((r) => r.address === stalled.address)?.mode).toBe('ERR');
    expect(list.filter((r) => r.mode === 'RW')).toHaveLength(2);
    stalled.proc.child.kill('SIGCONT');
    // Still alive: ERR is the engine's verdict, the process itself is fine.
    expect(stalled.proc.child.exitCode).toBeNull();
  });
});
