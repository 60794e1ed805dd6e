// Volume controller, in Longhorn's syncVolume order: deletion path → children (attachment, engine,
// replicas) → replica health → replenish and cleanup → attach/detach state machine → robustness and
// conditions in status. Engine and replica controllers do the process work; this one decides.

import { setCondition } from '../model/conditions.js';
import type { Engine } from '../model/engine.js';
import { nowIso } from '../model/meta.js';
import type { Replica } from '../model/replica.js';
import { type Volume, VolumeConditionType, type VolumeRobustness, type VolumeState } from '../model/volume.js';
import { syncRestore } from './backup/volume-restore.js';
import type { ControllerContext } from './context.js';
import { syncInternalTicket } from './internal-tickets.js';
import { engineNameOf, FINALIZER, ownedByVolume } from './labels.js';
import { Controller, type ReconcileResult } from './runtime/controller.js';
import { REVERT_TICKET_ID, reconcilePurge, reconcileRevert } from './snapshot-controller.js';
import { cleanupReplicas, isActive, markEvictions, replenish, syncReplicaHealth } from './volume-replicas.js';
import { addFinalizer, patchSpec, patchStatus, removeFinalizer } from './write.js';

/** Longhorn's AutoSalvageTimeLimit: replicas that failed within this of the last failure are candidates. */
const SALVAGE_WINDOW_MS = 60_000;
const SALVAGE_PAUSE_MS = 30_000;

export function volumeController(ctx: ControllerContext): Controller {
  const log = ctx.log.child({ controller: 'volume' });
  return new Controller({ name: 'volume', logger: log, reconcile: (name) => reconcileVolume(ctx, name) });
}

/** One sync of volume `name` (exported for single-pass controller tests). */
export async function reconcileVolume(ctx: ControllerContext, name: string): Promise<ReconcileResult | undefined> {
  let vol = ctx.informers.Volume.get(name);
  if (!vol) return;
  const replicasOf = () => ctx.informers.Replica.list().filter((r) => r.spec.volumeName === name);
  if (vol.metadata.deletionTimestamp) {
    await teardown(ctx, vol, replicasOf());
    return;
  }
  vol = await addFinalizer(ctx.store, 'Volume', vol, FINALIZER);
  await ensureAttachment(ctx, vol);
  await syncRevertTicket(ctx, vol, replicasOf());
  const engine = await ensureEngine(ctx, vol);
  const engineUp = engine.status.currentState === 'running' && engine.spec.desireState === 'running';
  let replicas = await syncReplicaHealth(ctx, engineUp ? engine : undefined, replicasOf());
  replicas = await markEvictions(ctx, vol, replicas);

  const salvaged = await autoSalvage(ctx, vol, engine, replicas);
  if (salvaged) return { requeueAfterMs: 200 };
  const rep = await replenish(ctx, vol, replicas, engine);
  // As replenish left them: a failed replica it just reused is no longer a failed one to clean up.
  await cleanupReplicas(ctx, vol, replicasOf());
  replicas = replicasOf();
  const { state, requeueAfterMs } = await attachDetach(ctx, vol, engine, replicas);
  await writeStatus(ctx, vol, engine, replicas, state, rep.unschedulable);
  const restoreMs = await syncRestore(ctx, ctx.informers.Volume.get(name) ?? vol, engine, replicas);
  const revert = await reconcileRevert(ctx, name);
  const purge = await reconcilePurge(ctx, name);
  const next = [requeueAfterMs, rep.requeueAfterMs, revert?.requeueAfterMs, purge?.requeueAfterMs, restoreMs].filter(
    (x): x is number => x !== undefined,
  );
  return next.length ? { requeueAfterMs: Math.min(...next) } : undefined;
}

async function teardown(ctx: ControllerContext, vol: Volume, replicas: Replica[]) {
  vol = await patchStatus(ctx.store, 'Volume', vol, (s) => {
    s.state = 'deleting';
  });
  // Engine first, so no process writes to a replica that is going away.
  const engine = ctx.informers.Engine.get(engineNameOf(vol.metadata.name));
  if (engine) {
    if (!engine.metadata.deletionTimestamp) await ctx.store.delete('Engine', engine.metadata.name);
    return;
  }
  if (replicas.length > 0) {
    for (const r of replicas) if (!r.metadata.deletionTimestamp) await ctx.store.delete('Replica', r.metadata.name);
    return;
  }
  for (const s of ctx.informers.Snapshot.list().filter((x) => x.spec.volume === vol.metadata.name)) {
    if (!s.metadata.deletionTimestamp) await ctx.store.delete('Snapshot', s.metadata.name);
  }
  if (ctx.informers.VolumeAttachment.get(vol.metadata.name))
    await ctx.store.delete('VolumeAttachment', vol.metadata.name).catch(() => {});
  await removeFinalizer(ctx.store, 'Volume', vol, FINALIZER);
  ctx.events.normal(vol, 'Deleted', `volume ${vol.metadata.name} deleted: processes stopped, replica data removed`);
}

async function ensureAttachment(ctx: ControllerContext, vol: Volume) {
  if (ctx.informers.VolumeAttachment.get(vol.metadata.name)) return;
  await ctx.store
    .create('VolumeAttachment', {
      metadata: ownedByVolume(vol.metadata.name, vol, { finalizer: false }),
      spec: { volume: vol.metadata.name, attachmentTickets: {} },
    })
    .catch((err: unknown) => {
      if ((err as { code?: string }).code !== 'AlreadyExists') throw err;
    });
}

/**
 * A requested revert attaches the volume with the frontend disabled on a node that holds a healthy
 * replica (the ticket stays where it is while that node still qualifies); no request, no ticket.
 */
async function syncRevertTicket(ctx: ControllerContext, vol: Volume, replicas: Replica[]) {
  await syncInternalTicket(
    ctx,
    vol,
    replicas,
    { id: REVERT_TICKET_ID, type: 'snapshot-controller', needsData: true },
    !!vol.spec.revertRequested,
  );
}

async function ensureEngine(ctx: ControllerContext, vol: Volume): Promise<Engine> {
  const name = engineNameOf(vol.metadata.name);
  const existing = ctx.informers.Engine.get(name);
  if (existing) return existing;
  return ctx.store.create('Engine', {
    metadata: ownedByVolume(name, vol),
    spec: {
      volumeName: vol.metadata.name,
      volumeSize: vol.spec.size,
      nodeID: '',
      desireState: 'stopped',
      salvageRequested: false,
      frontend: 'nbd',
      replicaAddressMap: {},
      disableFrontend: false,
      unmapMarkSnapChainRemovedEnabled: false,
      replicaTimeout: ctx.settings.int('engine-replica-timeout'),
      requestedBackupRestore: '',
      requestedBackupRestoreURL: '',
    },
  });
}

function replicaAddress(r: Replica): string {
  return `tcp://${r.status.ip}:${r.status.port}`;
}

/**
 * Every replica failed while the volume runs (or ran): start again from those that failed last, within
 * a minute of each other (Longhorn's auto-salvage). The engine is restarted with them and picks the
 * best by revision counter; the rest are rebuilt.
 */
async function autoSalvage(ctx: ControllerContext, vol: Volume, engine: Engine, replicas: Replica[]): Promise<boolean> {
  if (replicas.length === 0 || !vol.spec.nodeID) return false;
  const engineUp = engine.status.currentState === 'running' && engine.spec.desireState === 'running';
  const rw = replicas.some((r) => isActive(r) && engine.status.replicaModeMap[r.metadata.name] === 'RW');
  // Faulted: every replica failed, or the engine runs with no RW replica left (e.g. one was being
  // reused for a rebuild when the last good one died: nothing to rebuild from any more).
  if (!(!replicas.some(isActive) || (engineUp && !rw))) return false;
  if (!ctx.settings.bool('auto-salvage')) return false;
  // Not in a loop: replicas that fail again right after a salvage get a pause before the next one.
  if (vol.status.lastAutoSalvagedAt && Date.now() - Date.parse(vol.status.lastAutoSalvagedAt) < SALVAGE_PAUSE_MS)
    return false;
  const failedAt = (r: Replica) => Date.parse(r.spec.lastFailedAt);
  const withData = replicas.filter((r) => r.spec.lastHealthyAt && r.spec.lastFailedAt && !r.metadata.deletionTimestamp);
  if (withData.length === 0) return false;
  const last = Math.max(...withData.map(failedAt));
  const candidates = withData.filter((r) => {
    const im = ctx.informers.InstanceManager.list().find((i) => i.spec.nodeID === r.spec.nodeID);
    return last - failedAt(r) <= SALVAGE_WINDOW_MS && im?.status.currentState === 'running';
  });
  if (candidates.length === 0) return false;
  // The engine restarts on the salvaged replicas: stop it first so it starts with a clean set.
  if (engine.spec.desireState === 'running') {
    await patchSpec(ctx.store, 'Engine', engine, (s) => {
      s.desireState = 'stopped';
    });
  }
  for (const r of candidates) {
    await patchSpec(ctx.store, 'Replica', r, (s) => {
      s.failedAt = '';
    });
  }
  // Anything else (a half-rebuilt newcomer) must not start with the engine as if it held the data.
  for (const r of replicas.filter((x) => isActive(x) && !candidates.includes(x))) {
    await patchSpec(ctx.store, 'Replica', r, (s) => {
      s.failedAt = nowIso();
      s.lastFailedAt = s.failedAt;
      s.desireState = 'stopped';
    });
  }
  await patchStatus(ctx.store, 'Volume', vol, (s) => {
    s.lastAutoSalvagedAt = nowIso();
  });
  ctx.events.warning(
    vol,
    'AutoSalvaged',
    `every replica of ${vol.metadata.name} failed; restarting from ${candidates.map((r) => r.metadata.name).join(', ')}`,
  );
  return true;
}

async function attachDetach(
  ctx: ControllerContext,
  vol: Volume,
  engine: Engine,
  replicas: Replica[],
): Promise<{ state: VolumeState; requeueAfterMs?: number }> {
  const want = vol.spec.nodeID;
  const cur = vol.status.currentNodeID;
  // Replicas being evicted keep serving until their replacement is healthy: they stay in the engine.
  const usable = replicas.filter((r) => isActive(r) && r.spec.nodeID);
  if (want && (!cur || cur === want)) {
    for (const r of usable) {
      if (r.spec.desireState !== 'running') {
        await patchSpec(ctx.store, 'Replica', r, (s) => {
          s.desireState = 'running';
        });
      }
    }
    const running = usable.filter((r) => r.status.currentState === 'running');
    const engineWanted = engine.spec.desireState === 'running' && engine.spec.nodeID === want;
    if (!engineWanted) {
      if (engine.status.currentState !== 'stopped') return { state: 'attaching', requeueAfterMs: 500 };
      // Wait for every replica that can still start; those that cannot are failed by syncReplicaHealth.
      const starting = usable.some((r) => r.status.currentState !== 'running' && r.status.currentState !== 'unknown');
      if (running.length === 0 || starting) return { state: 'attaching', requeueAfterMs: 500 };
      await patchSpec(ctx.store, 'Engine', engine, (s) => {
        s.nodeID = want;
        s.desireState = 'running';
        s.volumeSize = vol.spec.size;
        s.disableFrontend = vol.spec.disableFrontend;
        s.replicaTimeout = ctx.settings.int('engine-replica-timeout');
        s.unmapMarkSnapChainRemovedEnabled =
          vol.spec.unmapMarkSnapChainRemoved === 'enabled' ||
          (vol.spec.unmapMarkSnapChainRemoved === 'ignored' &&
            ctx.settings.bool('remove-snapshots-during-filesystem-trim'));
        s.replicaAddressMap = Object.fromEntries(running.map((r) => [r.metadata.name, replicaAddress(r)]));
      });
      return { state: 'attaching', requeueAfterMs: 500 };
    }
    if (engine.status.currentState === 'error') {
      ctx.events.warning(
        vol,
        'DetachedUnexpectedly',
        `engine of ${vol.metadata.name} failed: ${engine.status.errorMsg}; restarting it`,
      );
      await patchSpec(ctx.store, 'Engine', engine, (s) => {
        s.desireState = 'stopped';
      });
      return { state: 'attaching', requeueAfterMs: 500 };
    }
    // Keep the engine's replica set in step: failed ones out, newly running ones in (rebuilt). A
    // replica the engine still serves keeps its entry even when its instance manager cannot be
    // reached: the engine's view of I/O is the truth, a lost control stream is not a failure.
    await patchSpec(ctx.store, 'Engine', engine, (s) => {
      s.volumeSize = Math.max(s.volumeSize, vol.spec.size);
      const next: Record<string, string> = {};
      for (const r of usable) {
        const name = r.metadata.name;
        const existing = s.replicaAddressMap[name];
        const mode = engine.status.replicaModeMap[name];
        if (existing && (mode === 'RW' || mode === 'WO')) next[name] = existing;
        else if (r.status.currentState === 'running') next[name] = replicaAddress(r);
      }
      s.replicaAddressMap = next;
    });
    // The engine grew its replicas (online expansion): they restart with the new size from now on.
    for (const r of usable) {
      if (engine.status.currentSize > r.spec.volumeSize && engine.status.replicaModeMap[r.metadata.name] === 'RW') {
        await patchSpec(ctx.store, 'Replica', r, (s) => {
          s.volumeSize = engine.status.currentSize;
        });
      }
    }
    if (engine.status.currentState === 'running') {
      if (vol.status.state !== 'attached')
        ctx.events.normal(vol, 'Attached', `volume ${vol.metadata.name} attached to ${want}`);
      return { state: 'attached' };
    }
    return { state: vol.status.state === 'attached' ? 'attached' : 'attaching', requeueAfterMs: 1000 };
  }
  // Detach (or move): engine first, then the replicas.
  if (engine.spec.desireState !== 'stopped') {
    await patchSpec(ctx.store, 'Engine', engine, (s) => {
      s.desireState = 'stopped';
    });
  }
  if (engine.status.currentState !== 'stopped')
    return { state: cur ? 'detaching' : stateWhenIdle(vol, replicas), requeueAfterMs: 500 };
  let waiting = false;
  for (const r of replicas) {
    if (r.spec.desireState !== 'stopped') {
      await patchSpec(ctx.store, 'Replica', r, (s) => {
        s.desireState = 'stopped';
      });
    }
    if (r.status.currentState !== 'stopped' && r.status.currentState !== 'unknown') waiting = true;
  }
  if (waiting) return { state: cur ? 'detaching' : stateWhenIdle(vol, replicas), requeueAfterMs: 500 };
  if (cur) ctx.events.normal(vol, 'Detached', `volume ${vol.metadata.name} detached from ${cur}`);
  return { state: stateWhenIdle(vol, replicas) };
}

function stateWhenIdle(vol: Volume, replicas: Replica[]): VolumeState {
  return replicas.some((r) => r.spec.nodeID) || vol.status.state !== 'creating' ? 'detached' : 'creating';
}

async function writeStatus(
  ctx: ControllerContext,
  vol: Volume,
  engine: Engine,
  replicas: Replica[],
  state: VolumeState,
  unschedulable: string | undefined,
) {
  const attached = state === 'attached';
  const rw = replicas.filter((r) => isActive(r) && engine.status.replicaModeMap[r.metadata.name] === 'RW').length;
  let robustness: VolumeRobustness;
  if (attached) robustness = rw >= vol.spec.numberOfReplicas ? 'healthy' : rw > 0 ? 'degraded' : 'faulted';
  else robustness = replicas.length > 0 && !replicas.some(isActive) ? 'faulted' : 'unknown';
  const before = vol.status.robustness;
  if (before !== robustness && (attached || robustness === 'faulted')) {
    const msg = `volume ${vol.metadata.name} is ${robustness}: ${rw} of ${vol.spec.numberOfReplicas} replicas RW`;
    if (robustness === 'healthy') ctx.events.normal(vol, 'Healthy', msg);
    else ctx.events.warning(vol, robustness === 'degraded' ? 'Degraded' : 'Faulted', msg);
  }
  const userSnapshots = Object.values(engine.status.snapshots).filter((s) => s.name !== 'volume-head' && !s.removed);
  const threshold = ctx.settings.int('snapshot-count-warning-threshold');
  await patchStatus(ctx.store, 'Volume', vol, (s) => {
    s.ownerID = ctx.managerID;
    s.state = state;
    s.robustness = robustness;
    s.currentNodeID = attached ? vol.spec.nodeID : state === 'detached' || state === 'creating' ? '' : s.currentNodeID;
    s.endpoint = attached && !vol.spec.disableFrontend ? engine.status.endpoint : '';
    s.frontendDisabled = vol.spec.disableFrontend;
    s.currentSize = attached ? engine.status.currentSize || vol.spec.size : vol.spec.size;
    s.expansionRequired = attached && engine.status.currentSize > 0 && engine.status.currentSize < vol.spec.size;
    s.actualSize = Object.values(engine.status.snapshots).reduce((n, x) => n + x.size, 0) || s.actualSize;
    if (robustness === 'degraded' && before !== 'degraded') s.lastDegradedAt = nowIso();
    s.conditions = unschedulable
      ? setCondition(s.conditions, VolumeConditionType.Scheduled, 'False', 'ReplicaSchedulingFailure', unschedulable)
      : setCondition(s.conditions, VolumeConditionType.Scheduled, 'True');
    s.conditions =
      userSnapshots.length > threshold
        ? setCondition(
            s.conditions,
            VolumeConditionType.TooManySnapshots,
            'True',
            'TooManySnapshots',
            `${userSnapshots.length} snapshots, more than the warning threshold ${threshold}; purge some`,
          )
        : setCondition(s.conditions, VolumeConditionType.TooManySnapshots, 'False');
  });
}
