// Snapshot controller: Snapshot resources mirror the engine's chain (one per snapshot the engine
// reports, system ones included) and drive it: `createSnapshot: true` takes it on the engine, deleting
// the resource removes it from the chain and purges. Revert and purge requests on a volume
// (spec.revertRequested, spec.purgeRequestedAt) are carried out here too, on the volume controller's
// passes (it is woken by the volume, its engine and its attachment — what these steps wait on).
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { unary } from '../dataplane/grpc/unary.js';
import { setCondition } from '../model/conditions.js';
import type { Engine } from '../model/engine.js';
import { VolumeConditionType } from '../model/volume.js';
import type { ControllerContext } from './context.js';
import { engineNameOf, FINALIZER, ownedByVolume } from './labels.js';
import { Controller, type ReconcileResult } from './runtime/controller.js';
import { patchSpec, patchStatus, removeFinalizer } from './write.js';

const CALL_MS = 30_000;

function engineClient(ctx: ControllerContext, e: Engine | undefined) {
  if (e?.status.currentState !== 'running' || !e.status.port) return undefined;
  return ctx.clients.engine(`${e.status.ip}:${e.status.port}`);
}

/** Key: `<volume>` to mirror the chain, `<volume>/<snapshot>` for one resource. */
export function snapshotController(ctx: ControllerContext): Controller {
  const log = ctx.log.child({ controller: 'snapshot' });
  return new Controller({
    name: 'snapshot',
    logger: log,
    reconcile: async (key) => {
      const [volName, snapName] = key.split('/') as [string, string | undefined];
      const engine = ctx.informers.Engine.get(engineNameOf(volName));
      if (snapName === undefined) return mirror(ctx, volName, engine);
      const snap = ctx.informers.Snapshot.get(snapName);
      if (!snap) return;
      const client = engineClient(ctx, engine);
      const inChain = engine?.status.snapshots[snapName];
      if (snap.metadata.deletionTimestamp) {
        const vol = ctx.informers.Volume.get(volName);
        if (inChain && client && !vol?.metadata.deletionTimestamp) {
          await unary(client.snapshotRemove, client, { name: snapName }, CALL_MS);
          await unary(client.snapshotPurge, client, {}, CALL_MS);
        } else if (inChain && vol && !vol.metadata.deletionTimestamp) {
          await patchStatus(ctx.store, 'Snapshot', snap, (s) => {
            s.error = `volume ${volName} is detached; the snapshot is removed when it is attached again`;
          });
          return { requeueAfterMs: 10_000 };
        }
        await removeFinalizer(ctx.store, 'Snapshot', snap, FINALIZER);
        return;
      }
      if (snap.spec.createSnapshot && !inChain && !snap.status.creationTime) {
        if (!client) {
          await patchStatus(ctx.store, 'Snapshot', snap, (s) => {
            s.error = `volume ${volName} is not attached; attach it to take the snapshot`;
          });
          return { requeueAfterMs: 5000 };
        }
        await unary(client.snapshotCreate, client, { name: snapName, labels: snap.spec.labels }, CALL_MS);
        ctx.events.normal(snap, 'Created', `snapshot ${snapName} of ${volName} taken`);
      }
      if (inChain) {
        await patchStatus(ctx.store, 'Snapshot', snap, (s) => {
          s.ownerID = ctx.managerID;
          s.parent = inChain.parent;
          s.children = inChain.children.filter((c) => c !== 'volume-head');
          s.markRemoved = inChain.removed;
          s.userCreated = inChain.userCreated;
          s.creationTime = inChain.created;
          s.size = inChain.size;
          s.labels = inChain.labels;
          s.readyToUse = !inChain.removed;
          s.error = '';
        });
      }
    },
  });
}

/** One Snapshot resource per snapshot in the engine's chain; resources of purged snapshots go. */
async function mirror(ctx: ControllerContext, volName: string, engine: Engine | undefined) {
  const vol = ctx.informers.Volume.get(volName);
  if (!vol || vol.metadata.deletionTimestamp || !engine || engine.status.currentState !== 'running') return;
  const chain = engine.status.snapshots;
  const mine = ctx.informers.Snapshot.list().filter((s) => s.spec.volume === volName);
  for (const name of Object.keys(chain)) {
    if (name === 'volume-head' || mine.some((s) => s.metadata.name === name)) continue;
    await ctx.store
      .create('Snapshot', {
        metadata: ownedByVolume(name, vol),
        spec: { volume: volName, createSnapshot: false, labels: chain[name]!.labels },
      })
      .catch((err: unknown) => {
        // Engine snapshot names are free-form (UUIDs, user names); one the store refuses is skipped.
        ctx.log.debug({ err, snapshot: name }, 'snapshot not mirrored');
      });
  }
  for (const s of mine) {
    const created = s.status.creationTime !== '';
    if (created && !chain[s.metadata.name] && !s.metadata.deletionTimestamp) {
      // Purged from the chain (by this controller or by the engine itself, e.g. system snapshots).
      await ctx.store.delete('Snapshot', s.metadata.name);
    }
  }
}

/** The VolumeAttachment ticket a revert attaches the volume with (frontend disabled). */
export const REVERT_TICKET_ID = 'snapshot-controller-revert';

/**
 * One step of a requested revert, level-based: runs only once the volume is attached for the revert
 * (the volume controller added the ticket, the attachment controller honours only it, the engine runs
 * with the frontend hidden). Stops the NBD frontend, reverts, records the outcome in the Revert
 * condition and clears the request; the volume controller then drops the ticket and the volume
 * detaches. A failure that can pass (a rebuild under way, an engine restarting) is retried; one that
 * cannot (the snapshot is not in the chain) ends the request with the reason in the condition.
 */
export async function reconcileRevert(ctx: ControllerContext, volName: string): Promise<ReconcileResult | undefined> {
  let vol = ctx.informers.Volume.get(volName);
  const req = vol?.spec.revertRequested;
  if (!vol || !req || vol.metadata.deletionTimestamp) return;
  const engine = ctx.informers.Engine.get(engineNameOf(volName));
  const client = engineClient(ctx, engine);
  if (vol.status.state !== 'attached' || !vol.spec.disableFrontend || !client) {
    // No ticket: the volume controller found no node that holds a healthy replica and is up.
    if (!ctx.informers.VolumeAttachment.get(volName)?.spec.attachmentTickets[REVERT_TICKET_ID]) {
      await patchStatus(ctx.store, 'Volume', vol, (s) => {
        s.conditions = setCondition(
          s.conditions,
          VolumeConditionType.Revert,
          'False',
          'RevertWaiting',
          `no node that holds a healthy replica of ${volName} is up; the revert to ${req.snapshot} waits for one`,
        );
      });
    }
    return;
  }
  let outcome: { ok: boolean; reason: string; message: string; final: boolean };
  try {
    await unary(client.volumeFrontendShutdown, client, {}, CALL_MS);
    await unary(client.snapshotRevert, client, { name: req.snapshot }, CALL_MS);
    outcome = { ok: true, reason: 'Reverted', message: `reverted to snapshot ${req.snapshot}`, final: true };
  } catch (err) {
    const code = (err as Partial<ServiceError>).code;
    const detail = (err as Partial<ServiceError>).details || (err as Error).message;
    const final =
      code === grpcStatus.NOT_FOUND ||
      code === grpcStatus.INVALID_ARGUMENT ||
      (code === grpcStatus.FAILED_PRECONDITION && /removed/.test(detail));
    outcome = {
      ok: false,
      reason: 'RevertFailed',
      message: `revert to snapshot ${req.snapshot}: ${detail}${final ? '' : ' (retrying)'}`,
      final,
    };
  }
  vol = await patchStatus(ctx.store, 'Volume', vol, (s) => {
    s.conditions = setCondition(
      s.conditions,
      VolumeConditionType.Revert,
      outcome.ok ? 'True' : 'False',
      outcome.reason,
      outcome.message,
    );
  });
  if (outcome.ok) ctx.events.normal(vol, 'Reverted', `volume ${volName} ${outcome.message}`);
  else ctx.events.warning(vol, 'RevertFailed', outcome.message);
  if (!outcome.final) return { requeueAfterMs: 5000 };
  await patchSpec(ctx.store, 'Volume', vol, (s) => {
    delete s.revertRequested;
  });
  return;
}

/** One step of a requested purge: on the engine of an attached volume; outcome in the Purge condition. */
export async function reconcilePurge(ctx: ControllerContext, volName: string): Promise<ReconcileResult | undefined> {
  let vol = ctx.informers.Volume.get(volName);
  if (!vol?.spec.purgeRequestedAt || vol.metadata.deletionTimestamp) return;
  const client = engineClient(ctx, ctx.informers.Engine.get(engineNameOf(volName)));
  if (vol.status.state !== 'attached' || !client) return;
  let message: string;
  let ok = true;
  try {
    await unary(client.snapshotPurge, client, {}, CALL_MS);
    message = 'snapshots purged';
  } catch (err) {
    ok = false;
    message = `purge: ${(err as Partial<ServiceError>).details || (err as Error).message} (retrying)`;
  }
  vol = await patchStatus(ctx.store, 'Volume', vol, (s) => {
    s.conditions = setCondition(
      s.conditions,
      VolumeConditionType.Purge,
      ok ? 'True' : 'False',
      ok ? 'Purged' : 'PurgeFailed',
      message,
    );
  });
  if (!ok) {
    ctx.events.warning(vol, 'PurgeFailed', message);
    return { requeueAfterMs: 5000 };
  }
  await patchSpec(ctx.store, 'Volume', vol, (s) => {
    delete s.purgeRequestedAt;
  });
  return;
}
