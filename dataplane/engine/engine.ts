// The engine serves one volume: every write goes to all RW and WO replicas in parallel and is
// acknowledged once all have answered; reads go to one RW replica (round-robin, failing over). A
// replica that errors or stays silent past the I/O timeout becomes ERR and leaves the set; the
// volume stays up while one RW replica remains (reference/longhorn-engine.md §2.1–§2.2).
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { type BlockDevice, BlockDeviceError, type DeviceReadCallback, type Extent } from '../block-device.js';
import { unary } from '../grpc/unary.js';
import { VolumeBackups } from './backups.js';
import { IoGate } from './io-gate.js';
import { IoMetrics } from './io-metrics.js';
import { RangeLock } from './range-lock.js';
import { ReadRotation } from './read-rotation.js';
import { ReplicaRebuilder } from './rebuild.js';
import { ReplicaBackend, type ReplicaMode } from './replica-backend.js';
import { VolumeRestore } from './restore.js';
import { VolumeSnapshots } from './snapshots.js';

export interface EngineOptions {
  volume: string;
  size: number;
  logger: Logger;
  /** A replica silent this long with I/O in flight becomes ERR (Longhorn's engine-replica-timeout). */
  ioTimeoutMs?: number;
  /** Idle replicas are pinged this often so a dead one is found before the next I/O needs it. */
  pingIntervalMs?: number;
  /** Data-port connections per replica. */
  dataConnections?: number;
  /**
   * Trims also free snapshot space (Longhorn's unmap-mark-snap-chain-removed): every replica marks the
   * snapshots right under its head removed and punches them too. Pushed to each replica as it connects.
   */
  unmapMarkSnapChainRemoved?: boolean;
}

/** Salvage ranking, best first: revision counter, then allocated head bytes, then head mtime. */
function salvageOrder(a: ReplicaBackend, b: ReplicaBackend): number {
  const x = a.openedAt;
  const y = b.openedAt;
  return y.revisionCounter - x.revisionCounter || y.headFileSize - x.headFileSize || y.headMtimeUs - x.headMtimeUs;
}

export interface ReplicaStatus {
  address: string;
  mode: ReplicaMode;
  error: string;
}

const MAX_IO = 32 * 1024 * 1024;
/** Replicas complete partial writes per 4 KiB block (their BlockIndex granularity). */
const BLOCK = 4096;

function isAligned(offset: number, length: number): boolean {
  return offset % BLOCK === 0 && length % BLOCK === 0;
}
/** Trim and write-zeroes carry no payload: NBD lets them span up to 4 GiB (mkfs discards whole disks). */
const NO_PAYLOAD_MAX = 2 ** 32 - 1;

export class Engine extends EventEmitter implements BlockDevice {
  readonly volume: string;
  readonly metrics = new IoMetrics();
  /** Set by whoever runs the frontend: revert needs it down (no client may see the data change). */
  frontendActive = false;
  private volumeSize: number;
  private readonly log: Logger;
  private readonly ioTimeoutMs: number;
  private readonly pingIntervalMs: number;
  private readonly dataConnections: number;
  private readonly unmapMarkSnapChainRemoved: boolean;
  private backends: ReplicaBackend[] = [];
  /** Replicas that could not even be reached, listed as ERR so a person sees them. */
  private readonly unreachable = new Map<string, string>();
  private writers: ReplicaBackend[] = [];
  /** Some writer is WO; kept with the sets because every write asks. */
  private hasWriteOnly = false;
  private readers: ReplicaBackend[] = [];
  private nextReader = 0;
  private readonly readRotation = new ReadRotation();
  readonly snapshots: VolumeSnapshots;
  readonly rebuilder: ReplicaRebuilder;
  readonly backups: VolumeBackups;
  readonly restore: VolumeRestore;
  private readonly gate = new IoGate();
  private readonly ranges = new RangeLock();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(opts: EngineOptions) {
    super();
    this.volume = opts.volume;
    this.volumeSize = opts.size;
    this.log = opts.logger.child({ volume: opts.volume });
    this.ioTimeoutMs = opts.ioTimeoutMs ?? 8000;
    this.pingIntervalMs = opts.pingIntervalMs ?? 2000;
    this.dataConnections = opts.dataConnections ?? 2;
    this.unmapMarkSnapChainRemoved = opts.unmapMarkSnapChainRemoved ?? false;
    this.snapshots = new VolumeSnapshots(this, this.log);
    // A rebuild leaves system snapshots behind; they are purged as soon as it is done.
    this.rebuilder = new ReplicaRebuilder(this, this.log, () => this.snapshots.purge());
    this.restore = new VolumeRestore(this, this.log);
    this.backups = new VolumeBackups(this, this.log, () =>
      this.restore.inProgress ? `it is restoring backup ${this.restore.status().backupName}` : null,
    );
  }

  /**
   * Open every replica. Those that cannot be reached, or that missed writes, start as ERR. Fails only
   * if no replica is usable.
   *
   * Which replicas missed writes: one whose revision counter is below the highest did. When every
   * replica was found dirty on disk (everything crashed, so counters are only those of the last
   * flush and equal counters do not prove equal data), salvage: the best one alone — highest counter,
   * then most head data, then newest head — serves, and the rest are marked ERR to be rebuilt from it.
   */
  async start(addresses: string[]): Promise<void> {
    // --size is what the volume was created with; replicas that are larger were expanded since.
    const results = await Promise.allSettled(addresses.map((a) => this.connect(a, (s) => s >= this.size)));
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') this.backends.push(r.value);
      else this.noteUnreachable(addresses[i]!, r.reason);
    });
    const size = Math.max(this.volumeSize, ...this.backends.map((b) => b.openedAt.size));
    for (const b of this.backends) {
      if (b.openedAt.size < size)
        this.fail(b, new Error(`size ${b.openedAt.size} < ${size}: it missed an expansion`), 'start');
    }
    this.volumeSize = size;
    // A replica whose rebuild never finished holds an incomplete chain, whatever its counter says.
    const complete = this.backends.filter((b) => b.mode !== 'ERR' && !b.openedAt.rebuilding);
    for (const b of this.backends) {
      if (b.mode === 'ERR' || !b.openedAt.rebuilding) continue;
      if (complete.length > 0) {
        this.fail(b, new Error('its rebuild did not finish; rebuild it again'), 'start');
      } else {
        // Nothing better exists (Longhorn resets the stale flag of a lone replica the same way).
        this.log.warn({ replica: b.address }, 'using a replica whose rebuild did not finish: no other is left');
        await unary(b.control.rebuildingSet, b.control, { rebuilding: false }, 10_000).catch(() => {});
      }
    }
    const candidates = this.backends.filter((b) => b.mode !== 'ERR');
    const crashedAll = candidates.length > 1 && candidates.every((b) => !b.foundOpen && b.openedAt.openedDirty);
    if (crashedAll) {
      const ranked = [...candidates].sort(salvageOrder);
      const best = ranked[0]!;
      this.log.warn(
        { best: best.address, revisionCounter: best.openedAt.revisionCounter },
        'every replica was left dirty: salvaging from the best one',
      );
      for (const b of ranked.slice(1)) {
        this.fail(b, new Error(`salvage: ${best.address} was chosen; rebuild from it`), 'start');
        // Equal counters would let it rejoin RW unrebuilt; the Rebuilding flag in its meta says otherwise.
        await unary(b.control.rebuildingSet, b.control, { rebuilding: true }, 10_000).catch((err) =>
          this.log.warn({ err, replica: b.address }, 'could not flag the salvaged-away replica for rebuild'),
        );
      }
    } else {
      const newest = Math.max(...candidates.map((b) => b.openedAt.revisionCounter));
      for (const b of candidates) {
        if (b.openedAt.revisionCounter < newest) {
          this.fail(b, new Error(`stale: revision counter ${b.openedAt.revisionCounter} < ${newest}`), 'start');
        }
      }
    }
    this.refreshSets();
    if (this.readers.length === 0) {
      await this.shutdown();
      throw new Error(`volume ${this.volume}: no usable replica among ${addresses.join(', ')}`);
    }
    this.timer = setInterval(() => this.watchReplicas(), 500);
    this.timer.unref();
    this.log.info({ replicas: this.list() }, 'engine started');
  }

  /**
   * Salvage in place, for a volume whose replicas all became ERR while the engine stayed up (their
   * processes crashed and came back, say): reconnect every replica that answers, keep the best one
   * (the same ranking as at start) as the only RW replica, and flag the others for rebuild. Refused
   * while any replica is still RW: there is nothing to salvage then.
   */
  async salvage(): Promise<ReplicaStatus[]> {
    if (this.readers.length > 0) {
      throw new Error(
        `volume ${this.volume} still has an RW replica; salvage is for a volume whose replicas all failed`,
      );
    }
    const addresses = [...this.backends.map((b) => b.address), ...this.unreachable.keys()];
    return this.gate.exclusive(async () => {
      const old = this.backends;
      this.backends = [];
      this.refreshSets();
      await Promise.allSettled(old.map((b) => b.shutdown(false)));
      this.unreachable.clear();
      const results = await Promise.allSettled(addresses.map((a) => this.connect(a, (s) => s >= this.size)));
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') this.backends.push(r.value);
        else this.noteUnreachable(addresses[i]!, r.reason);
      });
      const candidates = this.backends.filter((b) => b.openedAt.size >= this.size);
      if (candidates.length === 0)
        throw new Error(`volume ${this.volume}: no replica answered; nothing to salvage from`);
      const ranked = [...candidates].sort(salvageOrder);
      const best = ranked[0]!;
      for (const b of this.backends) {
        if (b === best) continue;
        this.fail(b, new Error(`salvage: ${best.address} was chosen; rebuild from it`), 'salvage');
        await unary(b.control.rebuildingSet, b.control, { rebuilding: true }, 10_000).catch(() => {});
      }
      if (best.openedAt.rebuilding)
        await unary(best.control.rebuildingSet, best.control, { rebuilding: false }, 10_000);
      this.refreshSets();
      this.log.warn({ best: best.address, revisionCounter: best.openedAt.revisionCounter }, 'volume salvaged');
      this.emit('replicas', this.list());
      return this.list();
    });
  }

  list(): ReplicaStatus[] {
    const known = this.backends.map((b) => ({ address: b.address, mode: b.mode, error: b.error }));
    const gone = [...this.unreachable].map(([address, error]) => ({ address, mode: 'ERR' as const, error }));
    return [...known, ...gone];
  }

  find(address: string): ReplicaBackend | undefined {
    return this.backends.find((b) => b.address === address);
  }

  get size(): number {
    return this.volumeSize;
  }

  /** After every replica grew (expansion): new requests and new NBD connections see the new size. */
  grow(size: number): void {
    if (size < this.volumeSize) throw new Error(`the volume cannot shrink from ${this.volumeSize} to ${size}`);
    this.volumeSize = size;
    this.emit('resized', size);
  }

  /** Replicas that take writes (RW and WO), in a stable order. */
  healthyReplicas(): ReplicaBackend[] {
    return [...this.writers];
  }

  /** Replicas that hold the whole volume and serve reads. */
  rwReplicas(): ReplicaBackend[] {
    return [...this.readers];
  }

  /** A replica is being rebuilt (WO): the chain must not change under its copy. */
  get rebuilding(): boolean {
    return this.hasWriteOnly;
  }

  /** Runs `fn` with volume I/O drained and held (snapshots, expansion, joining a replica). */
  paused<T>(fn: () => Promise<T>): Promise<T> {
    return this.gate.exclusive(fn);
  }

  /** Marks a replica ERR for a failed control operation (snapshot, purge …), as a failed write would. */
  markFailed(b: ReplicaBackend, err: unknown, what: string): void {
    this.fail(b, err, what);
  }

  /** Adds a connected replica to the sets in `mode`; call inside paused() so no write misses it. */
  join(b: ReplicaBackend, mode: 'RW' | 'WO'): void {
    b.mode = mode;
    this.unreachable.delete(b.address);
    this.backends.push(b);
    this.refreshSets();
    this.emit('replicas', this.list());
  }

  /** Promotes a rebuilt replica; call inside paused(). */
  promote(b: ReplicaBackend): void {
    if (b.mode !== 'WO') throw new Error(`replica ${b.address} is ${b.mode}, not WO`);
    b.mode = 'RW';
    this.refreshSets();
    this.log.info({ replica: b.address }, 'replica rebuilt: now RW');
    this.emit('replicas', this.list());
  }

  /** Connects (and opens) a replica without adding it to the volume yet. */
  connectReplica(address: string): Promise<ReplicaBackend> {
    if (this.find(address))
      return Promise.reject(new Error(`replica ${address} is already part of volume ${this.volume}`));
    return this.connect(address);
  }

  /** Remove a replica from the volume; the last RW replica of a serving volume stays. */
  async removeReplica(address: string): Promise<void> {
    if (this.unreachable.delete(address)) return;
    const b = this.find(address);
    if (!b) throw new Error(`replica ${address} is not part of volume ${this.volume}`);
    if (b.mode === 'RW' && this.readers.length === 1) {
      throw new Error(`replica ${address} is the last RW replica of volume ${this.volume}; add another first`);
    }
    await this.gate.exclusive(async () => {
      this.backends = this.backends.filter((x) => x !== b);
      this.refreshSets();
    });
    await b.shutdown(b.mode !== 'ERR').catch((err) => this.log.warn({ err, replica: address }, 'replica close failed'));
    this.log.info({ replica: address }, 'replica removed');
    this.emit('replicas', this.list());
  }

  /** ERR is always allowed; WO → RW only when the replica provably holds every write (equal counters). */
  async setReplicaMode(address: string, mode: ReplicaMode): Promise<ReplicaStatus> {
    const b = this.find(address);
    if (!b) throw new Error(`replica ${address} is not part of volume ${this.volume}`);
    if (mode === b.mode) return { address, mode, error: b.error };
    if (mode === 'ERR') {
      this.fail(b, new Error('set to ERR on request'), 'update');
    } else if (b.mode === 'ERR') {
      throw new Error(`replica ${address} is ERR; remove it and add it again`);
    } else if (mode === 'RW') {
      if (this.rebuilder.progress(address)?.state === 'in_progress') {
        throw new Error(`replica ${address} is being rebuilt; it turns RW by itself when the copy is verified`);
      }
      await this.gate.exclusive(async () => {
        const source = this.readers[0];
        const [mine, theirs] = await Promise.all([b.info(), source?.info()]);
        if (theirs && mine.revisionCounter !== theirs.revisionCounter) {
          throw new Error(
            `replica ${address} is behind (revision counter ${mine.revisionCounter} < ${theirs.revisionCounter}); rebuild it`,
          );
        }
        b.mode = 'RW';
        this.refreshSets();
      });
    } else {
      throw new Error(`replica ${address} cannot go from ${b.mode} to ${mode}`);
    }
    this.emit('replicas', this.list());
    return { address, mode: b.mode, error: b.error };
  }

  // ---- BlockDevice -------------------------------------------------------------------------------

  /** readView() with the bytes copied out: one read path, one failover loop. */
  read(offset: number, length: number): Promise<Buffer> {
    return new Promise((resolve, reject) =>
      this.readView(offset, length, (err, view) => (err === null ? resolve(Buffer.from(view!)) : reject(err))),
    );
  }

  /**
   * read() for the NBD hot path: no promise, no copy. `done` gets a view that is valid only while it
   * runs (see ReplicaDataClient.readView); it must not throw (what it throws is logged and dropped).
   */
  readView(offset: number, length: number, done: DeviceReadCallback): void {
    try {
      this.checkRange(offset, length);
    } catch (err) {
      done(err as Error, null);
      return;
    }
    const wait = this.gate.enter();
    if (wait) {
      // Paused for a snapshot or a replica change: take the ordinary path (it waits, then copies).
      wait.then(
        () => this.readViewFrom(offset, length, performance.now(), done),
        (err: Error) => this.deliver(done, err, null),
      );
      return;
    }
    this.readViewFrom(offset, length, performance.now(), done);
  }

  /** One attempt of readView, on the next RW replica; a failure marks it ERR and tries the next. Holds the gate. */
  private readViewFrom(offset: number, length: number, started: number, done: DeviceReadCallback): void {
    const readers = this.readers;
    if (readers.length === 0) {
      this.gate.exit();
      this.deliver(done, new BlockDeviceError(`volume ${this.volume}: no RW replica left to read from`), null);
      return;
    }
    const b = this.readRotation.pick(readers);
    b.data.readView(offset, length, (err, view) => {
      if (err !== null) {
        this.fail(b, err, 'read');
        this.readViewFrom(offset, length, started, done);
        return;
      }
      this.metrics.record('read', length, performance.now() - started);
      this.gate.exit();
      this.deliver(done, null, view);
    });
  }

  private deliver(done: DeviceReadCallback, err: Error | null, view: Buffer | null): void {
    try {
      done(err, view);
    } catch (bug) {
      this.log.error({ err: bug }, 'read callback threw; ignored');
    }
  }

  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    this.checkRange(offset, data.length);
    const started = performance.now();
    if (this.rebuilding && !isAligned(offset, data.length)) {
      await this.widenedWrite(offset, data, fua);
    } else {
      await this.exclusiveRange(offset, data.length, 'write', (b) =>
        fua ? b.data.writeFua(offset, data) : b.data.write(offset, data),
      );
    }
    this.metrics.record('write', data.length, performance.now() - started);
  }

  /**
   * While a replica rebuilds, its lower layers are still arriving, so it cannot complete a partial
   * block itself (Longhorn's writeInWOMode): the engine reads the whole edge blocks from an RW replica,
   * patches them and sends whole blocks to everyone, holding the widened range against other writes.
   */
  private async widenedWrite(offset: number, data: Buffer, fua: boolean): Promise<void> {
    const start = offset - (offset % BLOCK);
    const end = Math.ceil((offset + data.length) / BLOCK) * BLOCK;
    const wait = this.gate.enter();
    if (wait) await wait;
    const held = this.ranges.tryAcquire(start, end) ?? (await this.ranges.acquire(start, end));
    try {
      const whole = Buffer.alloc(end - start);
      const head = await this.readFromRw(start, BLOCK);
      head.copy(whole, 0);
      if (end - BLOCK > start) (await this.readFromRw(end - BLOCK, BLOCK)).copy(whole, end - BLOCK - start);
      data.copy(whole, offset - start);
      await this.fanOut(this.writers, 'write', (b) =>
        fua ? b.data.writeFua(start, whole) : b.data.write(start, whole),
      );
    } finally {
      held.release();
      this.gate.exit();
    }
  }

  /** A read from the RW replicas, failing over, without taking the gate (the caller holds it). */
  private async readFromRw(offset: number, length: number): Promise<Buffer> {
    for (;;) {
      const readers = this.readers;
      if (readers.length === 0) throw new BlockDeviceError(`volume ${this.volume}: no RW replica left to read from`);
      const b = readers[this.nextReader++ % readers.length]!;
      try {
        return await b.data.read(offset, length);
      } catch (err) {
        this.fail(b, err, 'read');
      }
    }
  }

  async writeZeroes(offset: number, length: number, fua: boolean): Promise<void> {
    this.checkRange(offset, length, NO_PAYLOAD_MAX);
    if (this.rebuilding && !isAligned(offset, length)) {
      // Partial edge blocks become whole-block writes (see widenedWrite); the aligned middle stays a
      // write-zeroes, which a rebuilding replica turns into explicit zeros.
      const first = Math.min(Math.ceil(offset / BLOCK) * BLOCK, offset + length);
      const last = Math.max(Math.floor((offset + length) / BLOCK) * BLOCK, first);
      if (first > offset) await this.widenedWrite(offset, Buffer.alloc(first - offset), false);
      if (last > first)
        await this.exclusiveRange(first, last - first, 'write-zeroes', (b) => b.data.writeZeroes(first, last - first));
      if (offset + length > last) await this.widenedWrite(last, Buffer.alloc(offset + length - last), false);
    } else {
      await this.exclusiveRange(offset, length, 'write-zeroes', (b) => b.data.writeZeroes(offset, length));
    }
    if (fua) await this.flush();
  }

  async trim(offset: number, length: number): Promise<void> {
    this.checkRange(offset, length, NO_PAYLOAD_MAX);
    // While a replica rebuilds, trims are dropped (Longhorn does the same): punching snapshot space
    // under a copy in progress would be unsafe, and a trim promises no content anyway.
    if (this.rebuilding) return;
    await this.exclusiveRange(offset, length, 'trim', (b) => b.data.unmap(offset, length));
  }

  async flush(): Promise<void> {
    const wait = this.gate.enter();
    if (wait) await wait;
    try {
      await this.fanOut(this.writers, 'flush', (b) => b.data.flush());
    } finally {
      this.gate.exit();
    }
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    // A status query moves no data, so only the volume bounds apply (nbdinfo --map asks for it all).
    this.checkRange(offset, length, Number.MAX_SAFE_INTEGER);
    const wait = this.gate.enter();
    if (wait) await wait;
    try {
      for (;;) {
        const readers = this.readers;
        if (readers.length === 0) throw new BlockDeviceError(`volume ${this.volume}: no RW replica left`);
        const b = readers[this.nextReader++ % readers.length]!;
        try {
          return await b.data.blockStatus(offset, length);
        } catch (err) {
          this.fail(b, err, 'block-status');
        }
      }
    } finally {
      this.gate.exit();
    }
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  /** Flush and close every healthy replica cleanly, then drop all connections. */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.restore.stop('the engine shut down during the restore');
    const healthy = this.backends.filter((b) => b.mode !== 'ERR');
    await Promise.allSettled(healthy.map((b) => b.data.flush()));
    await Promise.allSettled(
      this.backends.map((b) =>
        b.shutdown(b.mode !== 'ERR').catch((err) => this.log.warn({ err, replica: b.address }, 'close failed')),
      ),
    );
    this.log.info('engine stopped');
  }

  // ---- internals ---------------------------------------------------------------------------------

  private async connect(address: string, acceptSize?: (replicaSize: number) => boolean): Promise<ReplicaBackend> {
    const b = await ReplicaBackend.connect(this.volume, address, this.size, this.dataConnections, acceptSize);
    try {
      // Every replica follows the engine's setting, whatever it was told before (Longhorn does the same).
      await unary(b.control.unmapMarkChainRemovedSet, b.control, { enabled: this.unmapMarkSnapChainRemoved }, 10_000);
    } catch (err) {
      await b.shutdown(false).catch(() => {});
      throw new Error(`replica ${address}: cannot set its unmap mode: ${(err as Error).message}`, { cause: err });
    }
    b.data.on('failed', (err: Error) => this.fail(b, err, 'connection'));
    return b;
  }

  private noteUnreachable(address: string, reason: unknown): void {
    const message = reason instanceof Error ? reason.message : String(reason);
    this.unreachable.set(address, message);
    this.log.warn({ replica: address, reason: message }, 'replica unusable at start');
  }

  private checkRange(offset: number, length: number, maxLength = MAX_IO): void {
    if (offset < 0 || length < 0 || offset + length > this.volumeSize) {
      throw new BlockDeviceError(`range ${offset}+${length} is outside the volume (size ${this.volumeSize})`, 'EINVAL');
    }
    if (length > maxLength) throw new BlockDeviceError(`request of ${length} bytes exceeds ${maxLength}`, 'EOVERFLOW');
  }

  /** Run a mutating op on every writer with no overlapping mutation in flight (see RangeLock). */
  private async exclusiveRange(
    offset: number,
    length: number,
    what: string,
    op: (b: ReplicaBackend) => Promise<unknown>,
  ): Promise<void> {
    const wait = this.gate.enter();
    if (wait) await wait;
    const held =
      this.ranges.tryAcquire(offset, offset + length) ?? (await this.ranges.acquire(offset, offset + length));
    try {
      await this.fanOut(this.writers, what, op);
    } finally {
      held.release();
      this.gate.exit();
    }
  }

  /**
   * Send one op to every target in parallel; resolve when all answered and at least one RW replica
   * succeeded. Failing replicas become ERR; the caller sees an error only if no RW replica took it.
   */
  private fanOut(targets: ReplicaBackend[], what: string, op: (b: ReplicaBackend) => Promise<unknown>): Promise<void> {
    return new Promise((resolve, reject) => {
      let pending = targets.length;
      let rwDone = 0;
      if (pending === 0) {
        reject(new BlockDeviceError(`volume ${this.volume}: no healthy replica for ${what}`));
        return;
      }
      const settle = () => {
        if (--pending > 0) return;
        if (rwDone > 0) resolve();
        else reject(new BlockDeviceError(`volume ${this.volume}: ${what} failed on every RW replica`));
      };
      for (const b of targets) {
        op(b).then(
          () => {
            if (b.mode === 'RW') rwDone++;
            settle();
          },
          (err: unknown) => {
            this.fail(b, err, what);
            settle();
          },
        );
      }
    });
  }

  /** Mark a replica ERR: out of the read/write sets, its in-flight requests failed. Never undone. */
  private fail(b: ReplicaBackend, err: unknown, what: string): void {
    if (b.mode === 'ERR') return;
    const message = err instanceof Error ? err.message : String(err);
    b.mode = 'ERR';
    b.error = `${what}: ${message}`;
    this.refreshSets();
    b.data.fail(new Error(`replica ${b.address} is ERR: ${b.error}`));
    this.log.warn({ replica: b.address, reason: b.error }, 'replica marked ERR');
    this.emit('replicas', this.list());
    // Persist the survivors' revision counters now, so that after a crash of everything the ERR
    // replica is recognisably behind and cannot be mistaken for a current one.
    if (!this.stopped && this.writers.length > 0) this.flush().catch(() => {});
  }

  private refreshSets(): void {
    this.writers = this.backends.filter((b) => b.mode !== 'ERR');
    this.readers = this.backends.filter((b) => b.mode === 'RW');
    this.hasWriteOnly = this.writers.length > this.readers.length;
  }

  /** Runs every 500 ms: I/O timeout for silent replicas, pings for idle ones. */
  private watchReplicas(): void {
    const now = performance.now();
    for (const b of this.writers) {
      if (b.data.inFlight === 0) {
        b.idleAt = now;
        if (now - b.lastPingAt >= this.pingIntervalMs) {
          b.lastPingAt = now;
          b.data.ping().catch((err) => this.fail(b, err, 'ping'));
        }
        continue;
      }
      // The last RW replica gets twice the time: failing it would fail the volume (Longhorn does the same).
      const limit = this.readers.length === 1 && b.mode === 'RW' ? 2 * this.ioTimeoutMs : this.ioTimeoutMs;
      const silentFor = now - Math.max(b.idleAt, b.data.lastReceivedAt);
      if (silentFor > limit) this.fail(b, new Error(`no answer for ${Math.round(silentFor)} ms`), 'I/O timeout');
    }
  }
}
