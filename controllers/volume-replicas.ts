// The volume controller's replica bookkeeping, Longhorn's ReconcileEngineReplicaState /
// replenishReplicas / cleanupReplicas: failure and health timestamps from what the engine reports,
// reuse of a failed replica (delta rebuild) before a new one, the replenishment wait, and cleanup
// that never deletes the last copy of data.
import type { Engine } from '../model/engine.js';
import { nowIso } from '../model/meta.js';
import type { Replica } from '../model/replica.js';
import type { Volume } from '../model/volume.js';
import type { ControllerContext } from './context.js';
import { newReplicaName, ownedByVolume } from './labels.js';
import { type Placement, scheduleReplicas, schedulingSettingsFrom } from './scheduler/replica-scheduler.js';
import { patchSpec } from './write.js';

export const MAX_REBUILD_RETRIES = 5;

/** Not failed, not being deleted: it holds (or is getting) the volume's data. */
export function isActive(r: Replica): boolean {
  return !r.spec.failedAt && r.spec.active && !r.metadata.deletionTimestamp;
}

/** Active and staying: counts toward numberOfReplicas (one being evicted is replaced, then removed). */
export function isUsable(r: Replica): boolean {
  return !r.spec.failedAt && r.spec.active && !r.spec.evictionRequested && !r.metadata.deletionTimestamp;
}

export async function markFailed(ctx: ControllerContext, r: Replica, why: string): Promise<Replica> {
  const now = nowIso();
  ctx.events.warning(r, 'Failed', `replica ${r.metadata.name} on ${r.spec.nodeID || 'no node'} failed: ${why}`);
  return patchSpec(ctx.store, 'Replica', r, (s) => {
    s.failedAt = now;
    s.lastFailedAt = now;
    s.desireState = 'stopped';
  });
}

/** Failure and health timestamps from the engine's replica modes and the replicas' process states. */
export async function syncReplicaHealth(
  ctx: ControllerContext,
  engineRunning: Engine | undefined,
  replicas: Replica[],
): Promise<Replica[]> {
  const out: Replica[] = [];
  for (let r of replicas) {
    if (!r.spec.failedAt && !r.metadata.deletionTimestamp) {
      const mode = engineRunning?.status.replicaModeMap[r.metadata.name];
      if (mode === 'ERR') {
        r = await markFailed(ctx, r, 'the engine marked it ERR (I/O error, timeout or stale data)');
      } else if (r.spec.desireState === 'running' && r.status.currentState === 'error') {
        r = await markFailed(ctx, r, `its process failed: ${r.status.errorMsg || 'unknown error'}`);
      } else if (r.spec.desireState === 'running' && r.status.currentState === 'unknown' && engineRunning && !mode) {
        // Its node is down and the engine runs without it: a failure to replace or wait for. (One the
        // engine still serves is fine whatever its instance manager says; the engine sees its I/O.)
        r = await markFailed(ctx, r, r.status.errorMsg || 'its node is not reachable');
      } else if (mode === 'RW' && (!r.spec.healthyAt || r.spec.lastHealthyAt < r.spec.lastFailedAt)) {
        const now = nowIso();
        const firstTime = !r.spec.healthyAt;
        r = await patchSpec(ctx.store, 'Replica', r, (s) => {
          if (!s.healthyAt) s.healthyAt = now;
          s.lastHealthyAt = now;
          s.rebuildRetryCount = 0;
        });
        if (firstTime) ctx.events.normal(r, 'Healthy', `replica ${r.metadata.name} on ${r.spec.nodeID} is RW`);
      }
    }
    out.push(r);
  }
  return out;
}

function nodeReadyForReplica(ctx: ControllerContext, r: Replica): boolean {
  const im = ctx.informers.InstanceManager.list().find((i) => i.spec.nodeID === r.spec.nodeID);
  const node = ctx.informers.Node.get(r.spec.nodeID);
  if (im?.status.currentState !== 'running' || !node || !node.spec.allowScheduling || node.spec.evictionRequested)
    return false;
  const disk = Object.values(node.status.diskStatus).find((d) => d.diskUUID === r.spec.diskID);
  return !!disk && disk.conditions.some((c) => c.type === 'Ready' && c.status === 'True');
}

/** A failed replica that still holds data and may come back: worth waiting for, or reusing now. */
function reusable(r: Replica): boolean {
  return (
    !!r.spec.failedAt &&
    !!r.spec.lastHealthyAt &&
    !r.metadata.deletionTimestamp &&
    r.spec.rebuildRetryCount < MAX_REBUILD_RETRIES
  );
}

/**
 * Replicas on a node or disk whose eviction was requested are flagged (and unflagged when the request
 * is withdrawn): a flagged replica no longer counts, so a replacement is built elsewhere, and it is
 * removed once the replacement is healthy.
 */
export async function markEvictions(ctx: ControllerContext, vol: Volume, replicas: Replica[]): Promise<Replica[]> {
  const out: Replica[] = [];
  for (let r of replicas) {
    if (isActive(r) && r.spec.nodeID) {
      const node = ctx.informers.Node.get(r.spec.nodeID);
      const disk = node && Object.entries(node.status.diskStatus).find(([, d]) => d.diskUUID === r.spec.diskID);
      const evict = !!node && (node.spec.evictionRequested || !!(disk && node.spec.disks[disk[0]]?.evictionRequested));
      if (evict !== r.spec.evictionRequested) {
        r = await patchSpec(ctx.store, 'Replica', r, (s) => {
          s.evictionRequested = evict;
        });
        if (evict)
          ctx.events.normal(
            vol,
            'EvictionRequested',
            `replica ${r.metadata.name} on ${r.spec.nodeID} will be moved off its node`,
          );
      }
    }
    out.push(r);
  }
  return out;
}

export interface ReplenishResult {
  /** Why a missing replica could not be placed, for the Scheduled condition. */
  unschedulable?: string;
  requeueAfterMs?: number;
}

/**
 * Brings the number of usable replicas up to spec.numberOfReplicas: at creation all at once; later
 * (attached, engine running, nothing rebuilding) one at a time, reusing a failed replica whose node is
 * back before building a new one, and waiting `replica-replenishment-wait-interval` for one that may
 * come back.
 */
export async function replenish(
  ctx: ControllerContext,
  vol: Volume,
  replicas: Replica[],
  engine: Engine | undefined,
): Promise<ReplenishResult> {
  const usable = replicas.filter(isUsable);
  const missing = vol.spec.numberOfReplicas - usable.length;
  if (missing <= 0) return {};
  const input = () => ({
    volume: vol,
    replicas,
    nodes: ctx.informers.Node.list(),
    settings: schedulingSettingsFrom(ctx.settings.all()),
  });
  // Not placing now: still say whether the missing ones could be placed, for the Scheduled condition.
  const notNow = (): ReplenishResult => ({ unschedulable: scheduleReplicas(missing, input()).reason });
  const creating = replicas.length === 0;
  if (!creating) {
    const running = engine?.status.currentState === 'running' && engine.spec.desireState === 'running';
    if (!running || ctx.settings.int('concurrent-replica-rebuild-per-node-limit') === 0) return notNow();
    // One rebuild at a time per volume: every usable replica must already be RW in the engine. With
    // none usable the volume is faulted, not degraded: there is nothing to rebuild from (salvage's case).
    const modes = engine.status.replicaModeMap;
    if (usable.length === 0 || usable.some((r) => modes[r.metadata.name] !== 'RW')) return notNow();
    // Longhorn's hasEngineStatusSynced: a replica that just failed stays in the engine (ERR) until the
    // engine controller drops it; reusing it before would put it straight back in ERR.
    const inEngine = (r: Replica) => r.metadata.name in modes || r.metadata.name in engine.spec.replicaAddressMap;
    if (replicas.some((r) => r.spec.failedAt && inEngine(r))) return notNow();
    const candidates = replicas
      .filter((r) => reusable(r))
      .sort((a, b) => b.spec.failedAt.localeCompare(a.spec.failedAt));
    const back = candidates.find((r) => nodeReadyForReplica(ctx, r));
    if (back) {
      await patchSpec(ctx.store, 'Replica', back, (s) => {
        s.failedAt = '';
        s.healthyAt = '';
        s.rebuildRetryCount += 1;
        s.desireState = 'running';
      });
      ctx.events.normal(
        vol,
        'ReplicaReused',
        `reusing failed replica ${back.metadata.name} on ${back.spec.nodeID}: only what changed is copied`,
      );
      return {};
    }
    if (candidates.length > 0) {
      const waitMs = ctx.settings.int('replica-replenishment-wait-interval') * 1000;
      const since = Date.parse(vol.status.lastDegradedAt || nowIso());
      const left = since + waitMs - Date.now();
      if (left > 0) return { ...notNow(), requeueAfterMs: Math.min(left + 50, 60_000) };
    }
  }
  const count = creating ? vol.spec.numberOfReplicas : 1;
  const { placements, reason } = scheduleReplicas(count, input());
  for (const p of placements) await createReplica(ctx, vol, p);
  if (placements.length > 0 && !creating) {
    ctx.events.normal(vol, 'ReplicaCreated', `new replica on ${placements[0]!.nodeID} to replace a failed one`);
  }
  return reason ? { unschedulable: reason, requeueAfterMs: 10_000 } : {};
}

async function createReplica(ctx: ControllerContext, vol: Volume, p: Placement): Promise<Replica> {
  const name = newReplicaName(vol.metadata.name);
  return ctx.store.create('Replica', {
    metadata: ownedByVolume(name, vol),
    spec: {
      volumeName: vol.metadata.name,
      volumeSize: vol.spec.size,
      nodeID: p.nodeID,
      desireState: 'stopped',
      salvageRequested: false,
      engineName: '',
      diskID: p.diskID,
      diskPath: p.diskPath,
      dataDirectoryName: name,
      hardNodeAffinity: '',
      active: true,
      rebuildRetryCount: 0,
      evictionRequested: false,
      healthyAt: '',
      lastHealthyAt: '',
      failedAt: '',
      lastFailedAt: '',
    },
  });
}

/**
 * Deletes failed replicas past staleReplicaTimeout or out of retries, and healthy ones beyond
 * numberOfReplicas — never the last replica that holds the volume's data.
 */
export async function cleanupReplicas(ctx: ControllerContext, vol: Volume, replicas: Replica[]): Promise<void> {
  const safe = replicas.filter((r) => isActive(r) && r.spec.healthyAt && r.spec.lastHealthyAt >= r.spec.lastFailedAt);
  const staleMs = vol.spec.staleReplicaTimeout * 60_000;
  for (const r of replicas) {
    if (!r.spec.failedAt || r.metadata.deletionTimestamp) continue;
    const stale = Date.now() - Date.parse(r.spec.failedAt) > staleMs || r.spec.rebuildRetryCount >= MAX_REBUILD_RETRIES;
    const neverHealthy = !r.spec.lastHealthyAt;
    if ((stale || neverHealthy) && safe.length > 0) {
      await ctx.store.delete('Replica', r.metadata.name);
      ctx.events.normal(
        vol,
        'ReplicaRemoved',
        `failed replica ${r.metadata.name} removed (${neverHealthy ? 'it never held data' : 'stale'})`,
      );
    }
  }
  const healthy = replicas.filter((r) => isUsable(r) && r.spec.healthyAt);
  // An evicted replica goes once enough others are healthy without it (its replacement rebuilt).
  const evicted = replicas.find((r) => isActive(r) && r.spec.evictionRequested);
  if (evicted && healthy.length >= vol.spec.numberOfReplicas) {
    await ctx.store.delete('Replica', evicted.metadata.name);
    ctx.events.normal(
      vol,
      'ReplicaEvicted',
      `replica ${evicted.metadata.name} removed from ${evicted.spec.nodeID}: eviction requested, ${healthy.length} healthy replicas elsewhere`,
    );
    return;
  }
  if (healthy.length > vol.spec.numberOfReplicas && healthy.length === replicas.filter(isUsable).length) {
    const extra = [...healthy].sort((a, b) => Number(b.spec.evictionRequested) - Number(a.spec.evictionRequested))[0]!;
    await ctx.store.delete('Replica', extra.metadata.name);
    ctx.events.normal(
      vol,
      'ReplicaRemoved',
      `replica ${extra.metadata.name} removed: the volume has more than ${vol.spec.numberOfReplicas}`,
    );
  }
}
