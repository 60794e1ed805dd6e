// The volume's snapshot chain as the engine drives it across replicas (reference §2.4–§2.5, §1.5–§1.6,
// §2.8): create with I/O held so every replica cuts at the same write, remove, purge, revert (frontend
// down), expand, and hash with a comparison across replicas. A replica that fails an operation the
// others did becomes ERR, as it would for a failed write; a request that is wrong for every replica
// (unknown name, limit reached) is refused up front and fails no one.
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { statusError } from '../grpc/status-error.js';
import { unary } from '../grpc/unary.js';
import type { ReplicaChecksum, SnapshotInfo } from '../proto/gen/engine.js';
import type { Replica as ReplicaInfo } from '../proto/gen/replica.js';
import { goTimestamp } from '../replica/store/disk-meta.js';
import { isHeadDiskName, snapshotDiskName, snapshotNameOfDisk } from '../replica/store/disk-names.js';
import { checkSnapshotName, MAX_SNAPSHOTS } from '../replica/store/replica.js';
import type { Engine } from './engine.js';
import type { ReplicaBackend } from './replica-backend.js';

/** How the head shows up in a snapshot tree (Longhorn's name for it). */
export const HEAD_NAME = 'volume-head';
const CONTROL_DEADLINE_MS = 60_000;
/** Purge and hash read or rewrite whole files. */
const LONG_DEADLINE_MS = 24 * 3600 * 1000;

export class VolumeSnapshots {
  constructor(
    private readonly engine: Engine,
    private readonly log: Logger,
  ) {}

  async create(name: string, labels: Record<string, string>): Promise<{ name: string; pauseUs: number }> {
    const snapshot = name === '' ? randomUUID() : name;
    this.checkName(snapshot);
    this.checkNotRebuilding('take a snapshot');
    const info = await this.reference();
    if (info.disks[snapshotDiskName(snapshot)])
      throw statusError(status.ALREADY_EXISTS, `snapshot ${snapshot} already exists`);
    const count = Object.keys(info.disks).filter((d) => snapshotNameOfDisk(d) !== null).length;
    if (count >= MAX_SNAPSHOTS) {
      throw statusError(
        status.RESOURCE_EXHAUSTED,
        `volume ${this.engine.volume} has ${count} snapshots (removed ones count until purged), the most is ${MAX_SNAPSHOTS}: delete and purge some first`,
      );
    }
    const req = { name: snapshot, userCreated: true, created: goTimestamp(), labels };
    const started = performance.now();
    await this.engine.paused(() =>
      this.onEach('snapshot', (b) => unary(b.control.replicaSnapshot, b.control, req, CONTROL_DEADLINE_MS)),
    );
    const pauseUs = Math.round((performance.now() - started) * 1000);
    this.log.info({ snapshot, pauseUs }, 'snapshot created');
    return { name: snapshot, pauseUs };
  }

  /** The snapshot tree as one RW replica has it (they all have the same one). */
  async list(): Promise<SnapshotInfo[]> {
    const info = await this.reference();
    const display = (disk: string): string => (disk === '' ? '' : (snapshotNameOfDisk(disk) ?? HEAD_NAME));
    return Object.values(info.disks)
      .filter((d) => d.name === info.head || !isHeadDiskName(d.name))
      .map((d) => ({
        name: display(d.name),
        parent: display(d.parent),
        children: d.children.map(display),
        removed: d.removed,
        userCreated: d.userCreated,
        created: d.created,
        size: d.size,
        labels: d.labels,
      }))
      .sort((a, b) => a.created.localeCompare(b.created) || a.name.localeCompare(b.name));
  }

  /** Marks a snapshot removed on every replica; purge() frees its space. */
  async remove(name: string): Promise<void> {
    this.checkNotRebuilding('remove a snapshot');
    await this.existing(name);
    await this.onEach('remove snapshot', (b) =>
      unary(b.control.diskMarkAsRemoved, b.control, { name }, CONTROL_DEADLINE_MS),
    );
    this.log.info({ snapshot: name }, 'snapshot marked removed');
  }

  /** Every replica folds its removed and system snapshots away; the volume keeps serving. */
  async purge(): Promise<{ address: string; actions: number; error: string }[]> {
    this.checkNotRebuilding('purge snapshots');
    await this.engine.backups.checkNoBackup('purge');
    const targets = this.engine.healthyReplicas();
    const results = await Promise.allSettled(
      targets.map((b) => unary(b.control.snapshotPurge, b.control, {}, LONG_DEADLINE_MS)),
    );
    return results.map((r, i) => {
      const b = targets[i]!;
      if (r.status === 'fulfilled') return { address: b.address, actions: r.value.actions, error: '' };
      // A refusal (a backup started meanwhile, another purge) changed nothing: the replica is fine.
      const refused = (r.reason as { code?: unknown }).code === status.FAILED_PRECONDITION;
      if (!refused) this.engine.markFailed(b, r.reason, 'purge');
      return { address: b.address, actions: 0, error: messageOf(r.reason) };
    });
  }

  /** Every replica goes back to `name`; the client must not be connected (its cache would lie). */
  async revert(name: string): Promise<void> {
    if (this.engine.frontendActive) {
      throw statusError(
        status.FAILED_PRECONDITION,
        `volume ${this.engine.volume} is serving its frontend; stop it first (engine-ctl frontend stop) so no client sees its data change underneath`,
      );
    }
    this.checkNotRebuilding('revert');
    if (this.engine.restore.inProgress) {
      throw statusError(
        status.FAILED_PRECONDITION,
        `volume ${this.engine.volume} is restoring backup ${this.engine.restore.status().backupName}; revert after it ended`,
      );
    }
    await this.engine.backups.checkNoBackup('revert');
    const disk = await this.existing(name);
    if (disk.removed)
      throw statusError(status.FAILED_PRECONDITION, `snapshot ${name} is removed; it cannot be reverted to`);
    const req = { name, created: goTimestamp() };
    await this.engine.paused(() =>
      this.onEach('revert', (b) => unary(b.control.replicaRevert, b.control, req, CONTROL_DEADLINE_MS)),
    );
    this.log.info({ snapshot: name }, 'volume reverted');
  }

  /** Grows every replica with I/O held; the next NBD connection sees the new size. */
  async expand(size: number): Promise<void> {
    const current = this.engine.size;
    if (!Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
      throw statusError(status.INVALID_ARGUMENT, `size must be a positive multiple of 4096 bytes, got ${size}`);
    }
    if (size < current) {
      throw statusError(
        status.INVALID_ARGUMENT,
        `volume ${this.engine.volume} is ${current} bytes; shrinking to ${size} is not supported`,
      );
    }
    if (size === current) return;
    this.checkNotRebuilding('expand');
    await this.engine.paused(async () => {
      await this.onEach('expand', (b) => unary(b.control.replicaExpand, b.control, { size }, CONTROL_DEADLINE_MS));
      this.engine.grow(size);
    });
    this.log.info({ from: current, to: size }, 'volume expanded');
  }

  /**
   * CRC64 of the snapshot on every RW replica, compared: the value most replicas agree on is taken as
   * right, and a replica that differs from it (or whose file changed on its own) is the odd one out.
   */
  async hash(name: string, rehash: boolean): Promise<{ replicas: ReplicaChecksum[]; consistent: boolean }> {
    await this.existing(name);
    const targets = this.engine.rwReplicas();
    const results = await Promise.allSettled(
      targets.map((b) => unary(b.control.snapshotHash, b.control, { name, rehash }, LONG_DEADLINE_MS)),
    );
    const replicas: ReplicaChecksum[] = results.map((r, i) => ({
      address: targets[i]!.address,
      checksum: r.status === 'fulfilled' ? r.value.checksum : '',
      silentlyCorrupted: r.status === 'fulfilled' && r.value.silentlyCorrupted,
      error: r.status === 'rejected' ? messageOf(r.reason) : '',
      oddOneOut: false,
    }));
    const votes = new Map<string, number>();
    for (const r of replicas) if (r.checksum !== '') votes.set(r.checksum, (votes.get(r.checksum) ?? 0) + 1);
    const ranked = [...votes].sort((a, b) => b[1] - a[1]);
    const majority = ranked.length > 0 && (ranked.length === 1 || ranked[0]![1] > ranked[1]![1]) ? ranked[0]![0] : null;
    for (const r of replicas)
      r.oddOneOut = r.silentlyCorrupted || (majority !== null && r.checksum !== '' && r.checksum !== majority);
    const consistent = replicas.every((r) => r.error === '' && !r.oddOneOut) && votes.size === 1;
    if (!consistent) this.log.warn({ snapshot: name, replicas }, 'snapshot differs across replicas');
    return { replicas, consistent };
  }

  private checkName(name: string): void {
    try {
      checkSnapshotName(name);
    } catch (err) {
      throw statusError(status.INVALID_ARGUMENT, messageOf(err));
    }
  }

  private checkNotRebuilding(what: string): void {
    if (this.engine.rebuilding) {
      throw statusError(
        status.FAILED_PRECONDITION,
        `a replica of volume ${this.engine.volume} is rebuilding; ${what} after it finished`,
      );
    }
  }

  private async reference(): Promise<ReplicaInfo> {
    const rw = this.engine.rwReplicas()[0];
    if (rw === undefined)
      throw statusError(status.FAILED_PRECONDITION, `volume ${this.engine.volume} has no RW replica`);
    return rw.info();
  }

  private async existing(name: string): Promise<ReplicaInfo['disks'][string]> {
    const info = await this.reference();
    const disk = info.disks[snapshotDiskName(name)];
    if (disk === undefined)
      throw statusError(status.NOT_FOUND, `snapshot ${name} does not exist in volume ${this.engine.volume}`);
    return disk;
  }

  /** Runs `op` on every healthy replica in parallel; those that fail become ERR; fails if all did. */
  private async onEach(what: string, op: (b: ReplicaBackend) => Promise<unknown>): Promise<void> {
    const targets = this.engine.healthyReplicas();
    const results = await Promise.allSettled(targets.map(op));
    const failures: string[] = [];
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        failures.push(`${targets[i]!.address}: ${messageOf(r.reason)}`);
        this.engine.markFailed(targets[i]!, r.reason, what);
      }
    });
    if (this.engine.rwReplicas().length === 0) {
      throw statusError(status.INTERNAL, `${what} failed on every RW replica: ${failures.join('; ')}`);
    }
  }
}

function messageOf(err: unknown): string {
  if (err && typeof err === 'object' && 'details' in err && typeof err.details === 'string' && err.details)
    return err.details;
  return err instanceof Error ? err.message : String(err);
}
