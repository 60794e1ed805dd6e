// libnbd's and qemu's own tools against a real 3-replica volume: what nbdinfo sees, a 64 MiB random
// file through nbdcopy in and out, qemu-img compare, and the same data after an engine restart.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startVolume, type TestVolume } from '../helpers/cluster.js';
import { requireTool, run, runOk } from '../helpers/tools.js';
import {
  deadProcesses,
  expectedModes,
  MiB,
  replicaModes,
  volumeLogs,
  writeRandomFile,
} from '../helpers/volume-tools.js';

const NBDINFO = '/usr/bin/nbdinfo';
const NBDCOPY = '/usr/bin/nbdcopy';
const QEMU_IMG = '/usr/bin/qemu-img';
const CMP = '/usr/bin/cmp';

const SIZE = 96 * MiB;
const DATA = 64 * MiB;

describe('nbdinfo, nbdcopy and qemu-img against a 3-replica volume', () => {
  let vol: TestVolume | undefined;
  let dir = '';
  let input = '';

  beforeAll(async () => {
    for (const t of [NBDINFO, NBDCOPY, QEMU_IMG, CMP]) requireTool(t);
    dir = mkdtempSync(join(tmpdir(), 'shorthorn-nbdtools-'));
    input = join(dir, 'in.bin');
    writeRandomFile(input, DATA);
    vol = await startVolume({ size: SIZE, replicas: 3 });
  });

  afterAll(async () => {
    await vol?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Copy the whole volume out to a fresh file and compare: first DATA bytes = input, the rest zeros. */
  async function expectVolumeHoldsInput(name: string) {
    const out = join(dir, name);
    await runOk(NBDCOPY, [vol!.uri, out], { timeoutMs: 60_000 });
    const same = await run(CMP, ['-n', String(DATA), input, out]);
    expect(same.code, `${same.stdout}${same.stderr}`).toBe(0);
    const zeros = await run(CMP, ['-i', `${DATA}:0`, '-n', String(SIZE - DATA), out, '/dev/zero']);
    expect(zeros.code, `tail of the volume is not zero: ${zeros.stdout}${zeros.stderr}`).toBe(0);
    rmSync(out, { force: true });
  }

  test('nbdinfo --json shows the exact size, the flags and base:allocation', async () => {
    const r = await runOk(NBDINFO, ['--json', vol!.uri], { timeoutMs: 30_000 });
    const info = JSON.parse(r.stdout) as {
      protocol: string;
      structured: boolean;
      exports: Record<string, unknown>[];
    };
    expect(info.protocol).toBe('newstyle-fixed');
    expect(info.structured).toBe(true);
    expect(info.exports).toHaveLength(1);
    const e = info.exports[0]!;
    expect({
      name: e['export-name'],
      size: e['export-size'],
      read_only: e['is_read_only'],
      can_flush: e['can_flush'],
      can_fua: e['can_fua'],
      can_trim: e['can_trim'],
      can_zero: e['can_zero'],
      can_multi_conn: e['can_multi_conn'],
    }).toEqual({
      name: vol!.name,
      size: SIZE,
      read_only: false,
      can_flush: true,
      can_fua: true,
      can_trim: true,
      can_zero: true,
      can_multi_conn: true,
    });
    expect(e['contexts']).toContain('base:allocation');
  });

  test('nbdinfo --map on a fresh volume reports it all as a hole reading zeros', async () => {
    const r = await runOk(NBDINFO, ['--map', '--json', vol!.uri], { timeoutMs: 30_000 });
    const map = JSON.parse(r.stdout) as { offset: number; length: number; type: number }[];
    expect(map.reduce((n, e) => n + e.length, 0)).toBe(SIZE);
    // type bit 0 = hole, bit 1 = zero
    expect(map.every((e) => e.type === 3)).toBe(true);
  });

  test('nbdcopy a 64 MiB random file in and out again, byte for byte', async () => {
    await runOk(NBDCOPY, ['--flush', input, vol!.uri], { timeoutMs: 60_000 });
    await expectVolumeHoldsInput('out1.bin');
  });

  test('nbdinfo --map now reports data where the file went', async () => {
    const r = await runOk(NBDINFO, ['--map', '--json', vol!.uri], { timeoutMs: 30_000 });
    const map = JSON.parse(r.stdout) as { offset: number; length: number; type: number }[];
    expect(map.reduce((n, e) => n + e.length, 0)).toBe(SIZE);
    const dataBytes = map.filter((e) => (e.type & 1) === 0).reduce((n, e) => n + e.length, 0);
    // random data cannot be a hole; the untouched tail may be reported either way
    expect(dataBytes).toBeGreaterThanOrEqual(DATA);
    for (const e of map) if (e.offset < DATA) expect(e.type & 1, JSON.stringify(e)).toBe(0);
  });

  test('qemu-img compare: the file and the volume are identical', async () => {
    const r = await run(QEMU_IMG, ['compare', '-f', 'raw', '-F', 'raw', input, vol!.uri], { timeoutMs: 60_000 });
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('Images are identical');
  });

  test('qemu-img compare notices a difference (the check can fail)', async () => {
    const other = join(dir, 'other.bin');
    writeRandomFile(other, MiB);
    const r = await run(QEMU_IMG, ['compare', '-f', 'raw', '-F', 'raw', other, vol!.uri], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    rmSync(other, { force: true });
  });

  test('after SIGTERM and a new engine on the same replicas the data reads back', async () => {
    const v = vol!;
    const code = await v.engine.stop(15_000);
    expect(code, `engine did not shut down cleanly:\n${v.engine.logs().slice(-4000)}`).toBe(0);
    await v.startEngine();
    expect(await replicaModes(v)).toEqual(expectedModes(v, ['RW', 'RW', 'RW']));
    await expectVolumeHoldsInput('out2.bin');
    const r = await run(QEMU_IMG, ['compare', '-f', 'raw', '-F', 'raw', input, v.uri], { timeoutMs: 60_000 });
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    expect(deadProcesses(v), volumeLogs(v)).toEqual([]);
  });
});
