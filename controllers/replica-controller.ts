// Replica controller: runs or stops the replica process on its node as spec.desireState says and
// reports its state. Policy (when a replica failed, reuse, rebuild) is the volume controller's.
import { join } from 'node:path';
import type { Replica } from '../model/replica.js';
import type { ControllerContext } from './context.js';
import { instanceHost, lookupInstance } from './instances.js';
import { FINALIZER } from './labels.js';
import { Controller } from './runtime/controller.js';
import { addFinalizer, patchStatus, removeFinalizer } from './write.js';

export function replicaDataDir(r: Replica): string {
  return join(r.spec.diskPath, 'replicas', r.spec.dataDirectoryName);
}

export function replicaController(ctx: ControllerContext): Controller {
  const log = ctx.log.child({ controller: 'replica' });
  return new Controller({
    name: 'replica',
    logger: log,
    reconcile: async (name) => {
      let r = ctx.informers.Replica.get(name);
      if (!r) return;
      const { im, imUp, instance } = lookupInstance(ctx, r.spec.nodeID, name);
      if (r.metadata.deletionTimestamp) {
        if (r.spec.nodeID && imUp && im) {
          // The process goes, then its data: the volume controller deletes a replica only when it
          // is no longer needed.
          const client = ctx.clients.instanceManager(im.spec.address);
          if (instance) await client.delete(name, { cleanupDataDir: true });
          else await client.deleteReplicaData(replicaDataDir(r));
          ctx.events.normal(r, 'Deleted', `replica ${name} stopped and its data ${replicaDataDir(r)} removed`);
        } else if (r.spec.nodeID) {
          ctx.events.warning(
            r,
            'DataLeftBehind',
            `node ${r.spec.nodeID} is down: replica data ${replicaDataDir(r)} stays on it until removed by hand`,
          );
        }
        await removeFinalizer(ctx.store, 'Replica', r, FINALIZER);
        return;
      }
      r = await addFinalizer(ctx.store, 'Replica', r, FINALIZER);
      if (!r.spec.nodeID) return;
      if (!imUp || !im) {
        await patchStatus(ctx.store, 'Replica', r, (s) => {
          s.currentState = 'unknown';
          s.errorMsg = `node ${r!.spec.nodeID}'s instance manager is not reachable`;
        });
        return;
      }
      const client = ctx.clients.instanceManager(im.spec.address);
      if (r.spec.desireState === 'running') {
        // An instance in error stays until the volume controller has recorded the failure
        // (lastFailedAt after the process started): restarting it before would hide the failure. Once
        // recorded, a cleared failedAt means "use it again" (reuse for a rebuild, or salvage).
        const failureSeen =
          instance?.state === 'error' &&
          !r.spec.failedAt &&
          r.spec.lastFailedAt !== '' &&
          (instance.startedAt === '' || Date.parse(instance.startedAt) <= Date.parse(r.spec.lastFailedAt));
        if (!instance || instance.state === 'stopped' || failureSeen) {
          await patchStatus(ctx.store, 'Replica', r, (s) => {
            s.currentState = 'starting';
            s.errorMsg = '';
          });
          await client.create({
            name,
            type: 'replica',
            volumeName: r.spec.volumeName,
            volumeSize: r.spec.volumeSize,
            dataDir: replicaDataDir(r),
          });
          return;
        }
      } else if (instance && instance.state !== 'stopped') {
        await client.delete(name, { cleanupDataDir: false });
      }
      const cur = instance && r.spec.desireState === 'running' ? instance : undefined;
      await patchStatus(ctx.store, 'Replica', r, (s) => {
        s.ownerID = ctx.managerID;
        s.instanceManagerName = im.metadata.name;
        s.currentState = cur?.state ?? (instance ? 'stopping' : 'stopped');
        s.ip = cur ? instanceHost(im) : '';
        s.port = cur?.port ?? 0;
        s.started = cur?.state === 'running';
        s.errorMsg = cur?.errorMsg ?? '';
      });
    },
  });
}
