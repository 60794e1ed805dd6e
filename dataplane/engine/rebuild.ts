// Adding a replica to a serving volume (reference §4.1, §2.6). One that provably holds the volume joins
// RW at once. Any other — empty, or a stale one coming back — joins WO right after a system snapshot
// taken on every replica with I/O held, so from then on it receives every write into a fresh head and
// everything below is immutable; it then pulls those layers from a healthy replica (SyncService),
// and with I/O held again takes over the revision counter and becomes RW.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { unary } from '../grpc/unary.js';
import type { RebuildStatus, Replica as ReplicaInfo, SyncDisk } from '../proto/gen/replica.js';
import { goTimestamp } from '../replica/store/disk-meta.js';
import { isHeadDiskName } from '../replica/store/disk-names.js';
import type { Engine, ReplicaStatus } from './engine.js';
import type { ReplicaBackend } from './replica-backend.js';

export interface RebuildProgress {
  address: string;
  state: 'in_progress' | 'complete' | 'error';
  error: string;
  bytesDone: number;
  bytesTotal: number;
  bytesTransferred: number;
}

const POLL_MS = 50;
/** A rebuild copies whole files: allow it a day, as Longhorn does. */
const REBUILD_DEADLINE_MS = 24 * 3600 * 1000;
const CONTROL_DEADLINE_MS = 60_000;

export class ReplicaRebuilder {
  private readonly jobs = new Map<string, RebuildProgress>();

  constructor(
    private readonly engine: Engine,
    private readonly log: Logger,
    /** Runs after a rebuild completed: the purge of the system snapshots it left. */
    private readonly afterRebuild: () => Promise<unknown>,
  ) {}

  progress(address: string): RebuildProgress | undefined {
    const job = this.jobs.get(address);
    return job && { ...job };
  }

  /** Joins `address` to the volume; a rebuild, if one is needed, continues in the background. */
  async add(address: string): Promise<ReplicaStatus> {
    const engine = this.engine;
    if (this.jobs.get(address)?.state === 'in_progress') throw new Error(`replica ${address} is already being rebuilt`);
    const b = await engine.connectReplica(address);
    let mode: 'RW' | 'WO';
    try {
      mode = await engine.paused(async () => {
        const source = engine.rwReplicas()[0];
        if (source === undefined) throw new Error(`volume ${engine.volume} has no RW replica to rebuild from`);
        if (engine.rebuilding)
          throw new Error(`volume ${engine.volume} is already rebuilding a replica; one at a time`);
        const [mine, theirs] = await Promise.all([b.info(), source.info()]);
        // Joining without a copy needs proof it holds every write: not just created, not a half-done
        // rebuild, the same snapshots and the same non-zero counter (0 only says no write went through
        // an engine: data written some other way, e.g. laid down by a restore, would not count).
        const current =
          !b.createdNow &&
          !mine.rebuilding &&
          theirs.revisionCounter > 0 &&
          mine.revisionCounter === theirs.revisionCounter &&
          sameLayers(mine, theirs);
        if (current) {
          engine.join(b, 'RW');
          return 'RW';
        }
        if (mine.size < engine.size) {
          await unary(b.control.replicaExpand, b.control, { size: engine.size }, CONTROL_DEADLINE_MS);
        }
        await this.systemSnapshot(b);
        await unary(b.control.rebuildingSet, b.control, { rebuilding: true }, CONTROL_DEADLINE_MS);
        engine.join(b, 'WO');
        return 'WO';
      });
    } catch (err) {
      await b.shutdown(false).catch(() => {});
      throw err;
    }
    this.log.info({ replica: address, mode }, mode === 'RW' ? 'replica joined RW' : 'replica joined WO; rebuilding');
    if (mode === 'WO') {
      this.jobs.set(address, {
        address,
        state: 'in_progress',
        error: '',
        bytesDone: 0,
        bytesTotal: 0,
        bytesTransferred: 0,
      });
      void this.rebuild(b);
    }
    return { address, mode, error: '' };
  }

  /**
   * The same system snapshot on every healthy replica and on the newcomer (I/O is held by the caller),
   * so the layers below every head are identical by name and immutable from here on.
   */
  private async systemSnapshot(newcomer: ReplicaBackend): Promise<void> {
    const req = { name: randomUUID(), userCreated: false, created: goTimestamp(), labels: {} };
    await unary(newcomer.control.replicaSnapshot, newcomer.control, req, CONTROL_DEADLINE_MS);
    const healthy = this.engine.healthyReplicas();
    const results = await Promise.allSettled(
      healthy.map((b) => unary(b.control.replicaSnapshot, b.control, req, CONTROL_DEADLINE_MS)),
    );
    results.forEach((r, i) => {
      if (r.status === 'rejected') this.engine.markFailed(healthy[i]!, r.reason, 'rebuild snapshot');
    });
    if (this.engine.rwReplicas().length === 0) throw new Error('the rebuild snapshot failed on every RW replica');
  }

  private async rebuild(b: ReplicaBackend): Promise<void> {
    const job = this.jobs.get(b.address)!;
    try {
      const source = this.engine.rwReplicas()[0];
      if (source === undefined) throw new Error('no RW replica left to rebuild from');
      const info = await source.info();
      const disks: SyncDisk[] = Object.values(info.disks)
        .filter((d) => d.name !== info.head && !isHeadDiskName(d.name))
        .map((d) => ({
          name: d.name,
          parent: d.parent,
          removed: d.removed,
          userCreated: d.userCreated,
          created: d.created,
          labels: d.labels,
        }));
      this.log.info({ replica: b.address, from: source.address, files: disks.length }, 'rebuild started');
      await unary(
        b.control.replicaRebuild,
        b.control,
        { fromAddress: source.address, disks, headParent: info.parent },
        CONTROL_DEADLINE_MS,
      );
      const deadline = Date.now() + REBUILD_DEADLINE_MS;
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        if (b.mode === 'ERR') throw new Error(`replica failed during the rebuild: ${b.error}`);
        const st: RebuildStatus = await unary(b.control.replicaRebuildStatus, b.control, {}, CONTROL_DEADLINE_MS);
        Object.assign(job, {
          bytesDone: st.bytesDone,
          bytesTotal: st.bytesTotal,
          bytesTransferred: st.bytesTransferred,
        });
        if (st.state === 'error') throw new Error(`copying from ${source.address}: ${st.error}`);
        if (st.state === 'complete') break;
        if (Date.now() > deadline) throw new Error('the rebuild did not finish within 24 hours');
      }
      await this.engine.paused(async () => {
        if (b.mode !== 'WO') throw new Error(`replica became ${b.mode} (${b.error}) before it could be verified`);
        const rw = this.engine.rwReplicas()[0];
        if (rw === undefined) throw new Error('no RW replica left to verify against');
        const [mine, theirs] = await Promise.all([b.info(), rw.info()]);
        if (!sameLayers(mine, theirs)) {
          throw new Error(
            `after the copy its layers differ from ${rw.address}: ${describeLayers(mine)} vs ${describeLayers(theirs)}`,
          );
        }
        // No write is in flight: the counters line up exactly from here on.
        await unary(b.control.revisionCounterSet, b.control, { counter: theirs.revisionCounter }, CONTROL_DEADLINE_MS);
        await unary(b.control.rebuildingSet, b.control, { rebuilding: false }, CONTROL_DEADLINE_MS);
        this.engine.promote(b);
      });
      job.state = 'complete';
      job.bytesDone = job.bytesTotal;
      this.log.info({ ...job }, 'rebuild complete');
      this.afterRebuild().catch((err) => this.log.warn({ err }, 'purge of system snapshots after rebuild failed'));
    } catch (err) {
      job.state = 'error';
      job.error = err instanceof Error ? err.message : String(err);
      this.engine.markFailed(b, err, 'rebuild');
    }
  }
}

/** Same snapshot files with the same parents (heads aside: their names differ between replicas). */
export function sameLayers(a: ReplicaInfo, b: ReplicaInfo): boolean {
  return describeLayers(a) === describeLayers(b) && a.parent === b.parent;
}

function describeLayers(info: ReplicaInfo): string {
  return Object.values(info.disks)
    .filter((d) => d.name !== info.head && !isHeadDiskName(d.name))
    .map((d) => `${d.name}<-${d.parent}`)
    .sort()
    .join(',');
}
