// `shorthorn engine-ctl` against a running engine: the replica set can be inspected and changed while
// the volume serves, and the engine refuses what would lose data.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReplicaProcess, startReplica, startVolume, type TestVolume } from '../helpers/cluster.js';
import { run, runOk } from '../helpers/tools.js';
import { MiB, python } from '../helpers/volume-tools.js';

function ctl(vol: TestVolume, ...args: string[]) {
  return run(process.execPath, ['bin/shorthorn.js', 'engine-ctl', '--engine', `127.0.0.1:${vol.enginePort}`, ...args]);
}

async function ctlJson<T>(vol: TestVolume, ...args: string[]): Promise<T> {
  const r = await ctl(vol, '-o', 'json', ...args);
  if (r.code !== 0) throw new Error(`engine-ctl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

type Row = { address: string; mode: string; error: string };

describe('engine-ctl', () => {
  let vol: TestVolume;
  let extra: ReplicaProcess | undefined;
  beforeAll(async () => {
    vol = await startVolume({ size: 32 * MiB, replicas: 2 });
    await python(
      `import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nh.pwrite(b"\\x5a" * 1048576, 0)\nh.flush()\nh.shutdown()`,
      [vol.uri],
    ).then((r) => expect(r.code, r.stderr).toBe(0));
  });
  afterAll(async () => {
    await extra?.proc.stop().catch(() => extra?.proc.kill9());
    await vol?.destroy();
  });

  it('lists replicas as a table for people and as JSON for scripts', async () => {
    const table = await runOk(process.execPath, [
      'bin/shorthorn.js',
      'engine-ctl',
      '--engine',
      `127.0.0.1:${vol.enginePort}`,
      'replicas',
    ]);
    expect(table.stdout.split('\n')[0]).toMatch(/^ADDRESS\s+MODE\s+REVISION\s+ERROR/);
    const rows = await ctlJson<Row[]>(vol, 'replicas');
    expect(rows.map((r) => r.mode)).toEqual(['RW', 'RW']);
    const volume = await ctlJson<{ name: string; size: number; endpoint: string }>(vol, 'volume');
    expect(volume).toMatchObject({ name: vol.name, size: 32 * MiB, endpoint: vol.uri });
  });

  it('refuses to remove the last RW replica, removes another and adds it back RW (it missed nothing)', async () => {
    const [a, b] = vol.replicas;
    await ctlJson(vol, 'rm', b!.address);
    expect((await ctlJson<Row[]>(vol, 'replicas')).map((r) => r.address)).toEqual([a!.address]);
    const refused = await ctl(vol, 'rm', a!.address);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/last RW replica/);
    const added = await ctlJson<Row>(vol, 'add', b!.address);
    expect(added.mode).toBe('RW');
  });

  it('adds an empty replica as WO, rebuilds it online (--wait), and it then serves reads as RW', async () => {
    extra = await startReplica(join(vol.root, 'fresh'), 32 * MiB);
    const done = await ctlJson<{ state: string; mode: string; bytesTotal: number; bytesTransferred: number }>(
      vol,
      'add',
      extra.address,
      '--wait',
    );
    expect(done).toMatchObject({ state: 'complete', mode: 'RW' });
    // The 1 MiB written before it joined came over the wire (holes did not).
    expect(done.bytesTransferred).toBeGreaterThanOrEqual(MiB);
    expect(done.bytesTransferred).toBeLessThan(2 * MiB);
    // Every replica now serves reads (round-robin): all return the data written before the rebuild.
    const reads = await python(
      `import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nfor i in range(12):\n    assert h.pread(65536, i * 65536) == b"\\x5a" * 65536, i\nh.shutdown()`,
      [vol.uri],
    );
    expect(reads.code, reads.stderr).toBe(0);
    const down = await ctlJson<Row>(vol, 'mode', extra.address, 'ERR');
    expect(down.mode).toBe('ERR');
    const back = await ctl(vol, 'mode', extra.address, 'RW');
    expect(back.stderr).toMatch(/remove it and add it again/);
    await ctlJson(vol, 'rm', extra.address);
  });

  it('refuses a replica that belongs to another volume, naming both', async () => {
    const stranger = await startReplica(join(vol.root, 'stranger'), 32 * MiB, undefined, 'other-volume');
    try {
      const r = await ctl(vol, 'add', stranger.address);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/belongs to volume other-volume, not vol/);
      expect((await ctlJson<Row[]>(vol, 'replicas')).map((x) => x.address)).not.toContain(stranger.address);
    } finally {
      await stranger.proc.stop();
    }
  });

  it('reports I/O metrics over the last second', async () => {
    const load = python(
      `import nbd, sys, time\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nend = time.time() + 2.5\nwhile time.time() < end:\n    h.pread(65536, 0)\n    h.pwrite(b"\\x01" * 4096, 1048576)\nh.shutdown()`,
      [vol.uri],
    );
    await new Promise((r) => setTimeout(r, 1800));
    const m = await ctlJson<{ readIops: number; writeIops: number; readThroughput: number; readLatency: number }>(
      vol,
      'metrics',
    );
    expect((await load).code).toBe(0);
    expect(m.readIops).toBeGreaterThan(0);
    expect(m.writeIops).toBeGreaterThan(0);
    expect(m.readThroughput).toBe(m.readIops * 65536);
    expect(m.readLatency).toBeGreaterThan(0);
  });

  it('rejects a malformed address with a clear message', async () => {
    const r = await ctl(vol, 'add', '127.0.0.1:1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/tcp:\/\/HOST:PORT/);
  });
});
