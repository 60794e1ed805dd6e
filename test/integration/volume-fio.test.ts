// fio's nbd engine with crc32c verification over a real 3-replica volume: random and sequential
// writes at 4 KiB, 64 KiB and 1 MiB, each job on its own NBD connection, every block read back.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startVolume, type TestVolume } from '../helpers/cluster.js';
import { requireTool } from '../helpers/tools.js';
import { deadProcesses, expectedModes, FIO, fio, fioProblems, MiB, replicaModes } from '../helpers/volume-tools.js';

const SIZE = 256 * MiB;

/** Three concurrent jobs on disjoint regions: 4 KiB in [0,32M), 64 KiB in [32M,96M), 1 MiB in [96M,224M). */
function jobs(rw: 'randwrite' | 'write'): string[] {
  return [
    '--name=bs4k',
    '--bs=4k',
    '--offset=0',
    '--size=16M',
    `--rw=${rw}`,
    '--name=bs64k',
    '--bs=64k',
    '--offset=32M',
    '--size=64M',
    `--rw=${rw}`,
    '--name=bs1m',
    '--bs=1m',
    '--offset=96M',
    '--size=128M',
    `--rw=${rw}`,
  ];
}

describe('fio over NBD with crc32c verify, 3 replicas', () => {
  let vol: TestVolume | undefined;

  beforeAll(async () => {
    requireTool(FIO);
    vol = await startVolume({ size: SIZE, replicas: 3 });
  });

  afterAll(async () => {
    await vol?.destroy();
  });

  const global = (v: TestVolume) => [
    '--ioengine=nbd',
    `--uri=${v.uri}`,
    '--iodepth=16',
    '--verify=crc32c',
    '--verify_fatal=1',
    '--runtime=60',
    '--randrepeat=0',
  ];

  test('random write + verify at 4 KiB, 64 KiB and 1 MiB', async () => {
    const v = vol!;
    const r = await fio([...global(v), ...jobs('randwrite')], 90_000);
    expect(fioProblems(r, { expectJobs: 3 })).toEqual([]);
    const bytes = Object.fromEntries(r.jobs.map((j) => [j.jobname, [j.write.io_bytes, j.read.io_bytes]]));
    // the jobs are size-bounded: every byte written once and read back once
    expect(bytes).toEqual({ bs4k: [16 * MiB, 16 * MiB], bs64k: [64 * MiB, 64 * MiB], bs1m: [128 * MiB, 128 * MiB] });
  });

  test('sequential write + verify at 4 KiB, 64 KiB and 1 MiB', async () => {
    const v = vol!;
    const r = await fio([...global(v), ...jobs('write')], 90_000);
    expect(fioProblems(r, { expectJobs: 3 })).toEqual([]);
    const bytes = Object.fromEntries(r.jobs.map((j) => [j.jobname, [j.write.io_bytes, j.read.io_bytes]]));
    expect(bytes).toEqual({ bs4k: [16 * MiB, 16 * MiB], bs64k: [64 * MiB, 64 * MiB], bs1m: [128 * MiB, 128 * MiB] });
  });

  test('mixed block sizes (bsrange 4k-1m) random read/write with verify', async () => {
    const v = vol!;
    const r = await fio(
      [
        ...global(v),
        '--name=bsrange',
        '--rw=randwrite',
        '--bsrange=4k-1m',
        '--bs_unaligned=0',
        '--offset=0',
        '--size=64M',
      ],
      90_000,
    );
    expect(fioProblems(r, { expectJobs: 1 })).toEqual([]);
  });

  test('after the load every process runs and all replicas are RW', async () => {
    const v = vol!;
    expect(deadProcesses(v)).toEqual([]);
    expect(await replicaModes(v)).toEqual(expectedModes(v, ['RW', 'RW', 'RW']));
  });
});
