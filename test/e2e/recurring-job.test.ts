// A recurring snapshot job end to end: a real manager (with the recurring-job controller), instance
// managers, an engine and replicas. A job that snapshots every 2 s and retains 2 runs for ~12 s over
// an attached volume; then exactly two of its snapshots remain, as resources and in the engine's chain
// as not removed, the older ones having been deleted and purged, and the volume still serves I/O.
import { readFileSync } from 'node:fs';
import { credentials } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { unary } from '../../dataplane/grpc/unary.js';
import { ControllerServiceClient } from '../../dataplane/proto/gen/engine.js';
import { RECURRING_JOB_CREATED_BY_LABEL as BY } from '../../model/recurring-job.js';
import { isStoreError } from '../../store/errors.js';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { fio, MiB, sleep, waitFor } from '../helpers/volume-tools.js';

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

function managerWarnings(): string {
  if (!cp) return '';
  return readFileSync(cp.logFile, 'utf8')
    .split('\n')
    .filter((l) => /"level":(40|50)/.test(l))
    .slice(-30)
    .join('\n');
}

const JOB = 'snap-every-2s';

/**
 * The job's snapshots: live resources, and the not-removed ones in the engine's chain asked of the
 * engine itself (Engine.status is refreshed every 2 s, in phase with the job, so it can lag a run).
 */
async function jobSnapshots(volume: string) {
  const resources = (await cp!.store.list('Snapshot')).items
    .filter((s) => s.spec.volume === volume && s.spec.labels[BY] === JOB && !s.metadata.deletionTimestamp)
    .map((s) => s.metadata.name)
    .sort();
  const engine = (await cp!.store.list('Engine')).items.find((e) => e.spec.volumeName === volume);
  let chain: string[] = [];
  let inChain: string[] = [];
  if (engine?.status.port) {
    const client = new ControllerServiceClient(
      `${engine.status.ip}:${engine.status.port}`,
      credentials.createInsecure(),
    );
    try {
      const mine = (await unary(client.snapshotList, client, {}, 10_000)).snapshots.filter((s) => s.labels[BY] === JOB);
      chain = mine
        .filter((s) => !s.removed)
        .map((s) => s.name)
        .sort();
      inChain = mine.map((s) => s.name).sort();
    } finally {
      client.close();
    }
  }
  return { resources, chain, inChain };
}

const same = (a: string[], b: string[]) => JSON.stringify(a) === JSON.stringify(b);

describe('recurring jobs on a real control plane', () => {
  it('a snapshot job every 2 s with retain 2 keeps exactly two snapshots, and the volume still serves I/O', async () => {
    cp = await startControlPlane({ nodes: 2 });
    const api = cp.manager.api;
    await api.createVolume({ name: 'rj', size: 32 * MiB, numberOfReplicas: 2 });
    await cp.waitVolume('rj', (v) => v.status.state === 'detached', 30_000);
    await api.attachVolume('rj', 'node-1');
    const attached = await cp.waitVolume(
      'rj',
      (v) => v.status.state === 'attached' && v.status.robustness === 'healthy' && v.status.endpoint !== '',
      60_000,
    );
    const uri = attached.status.endpoint;

    // The volume joins the job through its label; the job is made like the API would store it.
    for (;;) {
      const v = await cp.volume('rj');
      v.metadata.labels[`recurring-job.shorthorn.io/${JOB}`] = 'enabled';
      try {
        await cp.store.update('Volume', v);
        break;
      } catch (err) {
        if (!isStoreError(err, 'Conflict')) throw err;
      }
    }
    await cp.store.create('RecurringJob', {
      metadata: { name: JOB },
      spec: {
        task: 'snapshot',
        cron: '*/2 * * * * *',
        retain: 2,
        groups: [],
        concurrency: 1,
        labels: { purpose: 'e2e' },
      },
    });

    await sleep(12_000);
    const job = await cp.store.get('RecurringJob', JOB);
    expect(job?.status.lastError, managerWarnings()).toBe('');
    expect(job?.status.executionCount).toBeGreaterThanOrEqual(4);

    // The job keeps running every 2 s: between runs (once the newest snapshot is taken and the oldest
    // deleted and purged) exactly two of its snapshots exist, the same two in the store and the chain.
    let last: Awaited<ReturnType<typeof jobSnapshots>> | undefined;
    await waitFor(
      async () => {
        last = await jobSnapshots('rj');
        return last.resources.length === 2 && same(last.resources, last.chain);
      },
      20_000,
      100,
    ).catch((err) => {
      throw new Error(`job snapshots never settled at 2: ${JSON.stringify(last)}\n${managerWarnings()}`, {
        cause: err,
      });
    });
    const snap = (await cp.store.get('Snapshot', last!.resources[0]!))!;
    expect(snap.spec.labels).toEqual({ purpose: 'e2e', [BY]: JOB });
    expect(snap.metadata.name).toMatch(new RegExp(`^${JOB}-[0-9a-f]{8}$`));

    // Stopped (deleted), the job leaves its last two snapshots; the older ones are purged from the
    // engine's chain (not only marked removed).
    await cp.store.delete('RecurringJob', JOB);
    await waitFor(async () => {
      last = await jobSnapshots('rj');
      return last.resources.length === 2 && same(last.resources, last.chain) && same(last.inChain, last.chain);
    }, 20_000).catch((err) => {
      throw new Error(`after the job: ${JSON.stringify(last)}\n${managerWarnings()}`, { cause: err });
    });

    // I/O still works: write with verify headers and read them back.
    const io = await fio([
      '--ioengine=nbd',
      `--uri=${uri}`,
      '--name=rj',
      '--rw=randwrite',
      '--bs=4k',
      '--size=8M',
      '--iodepth=4',
      '--verify=crc32c',
      '--verify_fatal=1',
    ]);
    expect(io.code, io.stderr).toBe(0);
    expect(io.jobs[0]?.write.io_bytes).toBe(8 * MiB);
    const still = await cp.volume('rj');
    expect(still.status).toMatchObject({ state: 'attached', robustness: 'healthy', endpoint: uri });
  }, 120_000);
});
