// Engine controller: runs or stops the engine process as spec.desireState says; while it runs, polls it
// (replica modes, size, snapshots, rebuild progress) into status, and makes its replica set match
// spec.replicaAddressMap: a replica in the map but not in the engine is added (the engine rebuilds
// it while the volume serves), one in the engine but not in the map is removed.
import { unary } from '../dataplane/grpc/unary.js';
import { type ControllerServiceClient, ReplicaMode as ProtoMode } from '../dataplane/proto/gen/engine.js';
import type { Engine, EngineStatus, ReplicaMode, SnapshotInfo } from '../model/engine.js';
import { engineRestoreStep } from './backup/engine-restore.js';
import type { ControllerContext } from './context.js';
import { instanceHost, lookupInstance } from './instances.js';
import { FINALIZER } from './labels.js';
import { Controller } from './runtime/controller.js';
import { addFinalizer, patchStatus, removeFinalizer } from './write.js';

export const ENGINE_POLL_MS = 2000;
const CALL_MS = 10_000;
const MODE: Record<number, ReplicaMode> = { [ProtoMode.RW]: 'RW', [ProtoMode.WO]: 'WO', [ProtoMode.ERR]: 'ERR' };

export function engineController(ctx: ControllerContext): Controller {
  const log = ctx.log.child({ controller: 'engine' });
  const lastPoll = new Map<string, { at: number; generation: number }>();
  return new Controller({
    name: 'engine',
    logger: log,
    reconcile: async (name) => {
      let e = ctx.informers.Engine.get(name);
      if (!e) return;
      const { im, imUp, instance } = lookupInstance(ctx, e.spec.nodeID, name);
      if (e.metadata.deletionTimestamp) {
        if (instance && im) await ctx.clients.instanceManager(im.spec.address).delete(name);
        await removeFinalizer(ctx.store, 'Engine', e, FINALIZER);
        return;
      }
      e = await addFinalizer(ctx.store, 'Engine', e, FINALIZER);
      if (e.spec.desireState === 'stopped' || !e.spec.nodeID) {
        if (instance && im && instance.state !== 'stopped')
          await ctx.clients.instanceManager(im.spec.address).delete(name);
        await patchStatus(ctx.store, 'Engine', e, (s) => {
          Object.assign(s, stoppedStatus(instance ? 'stopping' : 'stopped'));
        });
        return;
      }
      if (!imUp || !im) {
        await patchStatus(ctx.store, 'Engine', e, (s) => {
          s.currentState = 'unknown';
          s.errorMsg = `node ${e!.spec.nodeID}'s instance manager is not reachable`;
        });
        return { requeueAfterMs: ENGINE_POLL_MS };
      }
      if (!instance || instance.state === 'stopped') {
        if (!replicasReady(ctx, e)) return { requeueAfterMs: 500 };
        await patchStatus(ctx.store, 'Engine', e, (s) => {
          s.currentState = 'starting';
          s.errorMsg = '';
        });
        await ctx.clients.instanceManager(im.spec.address).create({
          name,
          type: 'engine',
          volumeName: e.spec.volumeName,
          volumeSize: e.spec.volumeSize,
          replicaAddresses: Object.values(e.spec.replicaAddressMap),
          ioTimeoutSeconds: e.spec.replicaTimeout,
          unmapMarkSnapChainRemoved: e.spec.unmapMarkSnapChainRemovedEnabled,
        });
        return;
      }
      if (instance.state !== 'running') {
        await patchStatus(ctx.store, 'Engine', e, (s) => {
          s.currentState = instance.state;
          s.errorMsg = instance.errorMsg;
        });
        return instance.state === 'starting' ? { requeueAfterMs: 500 } : undefined;
      }
      // Poll at most every ENGINE_POLL_MS unless the spec changed: the engine's own status write wakes
      // this controller up, and under I/O every poll finds a new head size.
      const last = lastPoll.get(name);
      if (last && last.generation === e.metadata.generation && Date.now() - last.at < ENGINE_POLL_MS) {
        return { requeueAfterMs: last.at + ENGINE_POLL_MS - Date.now() };
      }
      lastPoll.set(name, { at: Date.now(), generation: e.metadata.generation });
      const address = `${instanceHost(im)}:${instance.port}`;
      const client = ctx.clients.engine(address);
      let polled: Partial<EngineStatus>;
      try {
        polled = await syncEngine(ctx, e, client);
      } catch (err) {
        await patchStatus(ctx.store, 'Engine', e, (s) => {
          s.errorMsg = `engine at ${address} does not answer: ${(err as Error).message}`;
        });
        return { requeueAfterMs: ENGINE_POLL_MS };
      }
      try {
        Object.assign(polled, await engineRestoreStep(ctx, e, client));
      } catch (err) {
        log.warn({ err, engine: name }, 'restore step failed; retried on the next poll');
      }
      await patchStatus(ctx.store, 'Engine', e, (s) => {
        Object.assign(s, polled);
        s.ownerID = ctx.managerID;
        s.instanceManagerName = im.metadata.name;
        s.currentState = 'running';
        s.started = true;
        s.ip = instanceHost(im);
        s.port = instance.port;
        s.errorMsg = '';
      });
      return { requeueAfterMs: ENGINE_POLL_MS };
    },
  });
}

/** Every replica the engine should start with runs at the address the map says. */
function replicasReady(ctx: ControllerContext, e: Engine): boolean {
  const entries = Object.entries(e.spec.replicaAddressMap);
  if (entries.length === 0) return false;
  return entries.every(([rname, addr]) => {
    const r = ctx.informers.Replica.get(rname);
    return r?.status.currentState === 'running' && `tcp://${r.status.ip}:${r.status.port}` === addr;
  });
}

function stoppedStatus(state: 'stopped' | 'stopping'): Partial<EngineStatus> {
  return {
    currentState: state,
    started: false,
    port: 0,
    endpoint: '',
    replicaModeMap: {},
    currentReplicaAddressMap: {},
    rebuildStatus: {},
  };
}

/** One poll: make the engine's replica set match the spec, then read what it reports. */
async function syncEngine(ctx: ControllerContext, e: Engine, client: ControllerServiceClient) {
  const nameOf = new Map(Object.entries(e.spec.replicaAddressMap).map(([n, a]) => [a, n]));
  let listed = (await unary(client.replicaList, client, {}, CALL_MS)).replicas;
  let changed = false;
  for (const r of listed) {
    if (nameOf.has(r.address)) continue;
    await unary(client.replicaDelete, client, { address: r.address }, CALL_MS);
    changed = true;
  }
  const present = new Set(listed.map((r) => r.address));
  const rebuilding = listed.some((r) => r.mode === ProtoMode.WO);
  for (const [rname, address] of Object.entries(e.spec.replicaAddressMap)) {
    if (present.has(address) || rebuilding) continue;
    const r = ctx.informers.Replica.get(rname);
    if (r?.status.currentState !== 'running') continue;
    try {
      await unary(client.replicaCreate, client, { address }, CALL_MS);
      ctx.events.normal(e, 'ReplicaAdded', `replica ${rname} (${address}) added to volume ${e.spec.volumeName}`);
    } catch (err) {
      ctx.events.warning(e, 'ReplicaAddFailed', `replica ${rname} (${address}): ${(err as Error).message}`);
    }
    changed = true;
    break; // one rebuild at a time per volume
  }
  if (changed) listed = (await unary(client.replicaList, client, {}, CALL_MS)).replicas;
  const vol = await unary(client.volumeGet, client, {}, CALL_MS);
  if (e.spec.volumeSize > vol.size) {
    await unary(client.volumeExpand, client, { size: e.spec.volumeSize }, CALL_MS);
    ctx.events.normal(e, 'Expanded', `volume ${e.spec.volumeName} grew to ${e.spec.volumeSize} bytes`);
  }
  const replicaModeMap: Record<string, ReplicaMode> = {};
  const currentReplicaAddressMap: Record<string, string> = {};
  const rebuildStatus: EngineStatus['rebuildStatus'] = {};
  for (const r of listed) {
    const rname = nameOf.get(r.address);
    if (!rname) continue;
    replicaModeMap[rname] = MODE[r.mode] ?? 'ERR';
    currentReplicaAddressMap[rname] = r.address;
    if (r.mode === ProtoMode.WO) {
      const p = await unary(client.replicaRebuildStatus, client, { address: r.address }, CALL_MS);
      rebuildStatus[rname] = {
        isRebuilding: p.state === 'in_progress',
        progress: p.bytesTotal > 0 ? Math.min(100, Math.floor((p.bytesDone * 100) / p.bytesTotal)) : 0,
        bytesDone: p.bytesDone,
        bytesTotal: p.bytesTotal,
        state: p.state,
        error: p.error,
        fromReplicaAddress: '',
      };
    }
  }
  const snapshots: Record<string, SnapshotInfo> = {};
  let snapshotsError = '';
  try {
    for (const s of (await unary(client.snapshotList, client, {}, CALL_MS)).snapshots) {
      snapshots[s.name] = {
        name: s.name,
        parent: s.parent,
        children: [...s.children].sort(),
        removed: s.removed,
        userCreated: s.userCreated,
        created: s.created,
        size: s.size,
        labels: s.labels,
      };
    }
  } catch (err) {
    snapshotsError = (err as Error).message;
  }
  return {
    replicaModeMap,
    currentReplicaAddressMap,
    rebuildStatus,
    endpoint: vol.endpoint,
    currentSize: vol.size,
    snapshots,
    snapshotsError,
  } satisfies Partial<EngineStatus>;
}
