// Node controller: disks (capacity by statfs, identity, scheduled storage, Ready/Schedulable with
// reasons) and the node's own Ready/Schedulable conditions, from its instance manager's health.

import { getCondition, setCondition } from '../model/conditions.js';
import { nowIso } from '../model/meta.js';
import { DiskConditionType, type DiskStatus, NodeConditionType } from '../model/node.js';
import type { ControllerContext } from './context.js';
import { type DiskInfo, readDiskInfo } from './disk-identity.js';
import { Controller } from './runtime/controller.js';
import { patchStatus } from './write.js';

const DISK_POLL_MS = 10_000;

function fmtBytes(n: number): string {
  return `${(n / 2 ** 30).toFixed(1)} GiB`;
}

export function nodeController(ctx: ControllerContext): Controller {
  const log = ctx.log.child({ controller: 'node' });
  const diskCache = new Map<string, { at: number; info: DiskInfo }>();
  return new Controller({
    name: 'node',
    logger: log,
    reconcile: async (name) => {
      const node = ctx.informers.Node.get(name);
      if (!node || node.metadata.deletionTimestamp) return;
      const im = ctx.informers.InstanceManager.list().find((i) => i.spec.nodeID === name);
      const replicas = ctx.informers.Replica.list().filter((r) => r.spec.nodeID === name);
      const minimalAvailable = ctx.settings.int('storage-minimal-available-percentage');
      const diskStatus: Record<string, DiskStatus> = {};
      for (const [diskName, disk] of Object.entries(node.spec.disks)) {
        const old = node.status.diskStatus[diskName];
        let conditions = old?.conditions ?? [];
        const st: DiskStatus = {
          conditions,
          storageAvailable: 0,
          storageScheduled: 0,
          storageMaximum: 0,
          scheduledReplica: {},
          diskUUID: old?.diskUUID ?? '',
          diskName,
          diskPath: disk.path,
          filesystemType: old?.filesystemType ?? '',
        };
        try {
          // statfs at most every DISK_POLL_MS per disk: the node's own status write wakes this
          // controller, and under I/O every statfs finds a new free-space figure.
          const key = `${name}/${diskName}/${disk.path}`;
          const cached = diskCache.get(key);
          const info =
            cached && Date.now() - cached.at < DISK_POLL_MS
              ? cached.info
              : await readDiskInfo(disk.path, !old?.diskUUID);
          if (!cached || cached.info !== info) diskCache.set(key, { at: Date.now(), info });
          if (old?.diskUUID && info.diskUUID !== old.diskUUID) {
            throw new Error(
              `the filesystem at ${disk.path} is another disk (UUID ${info.diskUUID}, expected ${old.diskUUID})`,
            );
          }
          Object.assign(st, {
            diskUUID: info.diskUUID,
            storageMaximum: info.storageMaximum,
            storageAvailable: info.storageAvailable,
            filesystemType: info.filesystemType,
          });
          for (const r of replicas) {
            if (r.spec.diskID !== info.diskUUID) continue;
            st.scheduledReplica[r.metadata.name] = r.spec.volumeSize;
            st.storageScheduled += r.spec.volumeSize;
          }
          conditions = setCondition(conditions, DiskConditionType.Ready, 'True');
          const floor = (st.storageMaximum * minimalAvailable) / 100;
          conditions =
            st.storageAvailable > floor
              ? setCondition(conditions, DiskConditionType.Schedulable, 'True')
              : setCondition(
                  conditions,
                  DiskConditionType.Schedulable,
                  'False',
                  'DiskPressure',
                  `disk ${diskName} (${disk.path}) has ${fmtBytes(st.storageAvailable)} available, at or below ${minimalAvailable}% of ${fmtBytes(st.storageMaximum)}`,
                );
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          const why =
            e.code === 'ENOENT'
              ? `disk path ${disk.path} does not exist (unmounted or removed?)`
              : `disk ${diskName} at ${disk.path} is not usable: ${e.message}`;
          const reason = e.code === 'ENOENT' ? 'DiskNotReady' : 'DiskFilesystemChanged';
          conditions = setCondition(conditions, DiskConditionType.Ready, 'False', reason, why);
          conditions = setCondition(conditions, DiskConditionType.Schedulable, 'False', 'DiskNotReady', why);
        }
        st.conditions = conditions;
        const wasReady = old ? getCondition(old.conditions, DiskConditionType.Ready).status : 'Unknown';
        const nowReady = getCondition(conditions, DiskConditionType.Ready);
        if (wasReady !== nowReady.status) {
          if (nowReady.status === 'True')
            ctx.events.normal(node, 'DiskReady', `disk ${diskName} (${disk.path}) is ready`);
          else ctx.events.warning(node, 'DiskNotReady', nowReady.message);
        }
        diskStatus[diskName] = st;
      }
      const imUp = im?.status.currentState === 'running';
      const oldReady = getCondition(node.status.conditions, NodeConditionType.Ready).status;
      await patchStatus(ctx.store, 'Node', node, (s) => {
        s.diskStatus = diskStatus;
        s.instanceManagerAddress = im?.spec.address ?? '';
        s.conditions = imUp
          ? setCondition(s.conditions, NodeConditionType.Ready, 'True')
          : setCondition(
              s.conditions,
              NodeConditionType.Ready,
              'False',
              'InstanceManagerDown',
              im
                ? `instance manager at ${im.spec.address} is ${im.status.currentState}`
                : `node ${name} has no instance manager`,
            );
        const badDisks = Object.values(diskStatus)
          .map((d) => getCondition(d.conditions, DiskConditionType.Ready))
          .filter((c) => c.status !== 'True');
        s.conditions =
          Object.keys(diskStatus).length > 0 && badDisks.length === Object.keys(diskStatus).length
            ? setCondition(
                s.conditions,
                NodeConditionType.Schedulable,
                'False',
                'NoReadyDisk',
                `no disk of node ${name} is ready: ${badDisks.map((c) => c.message).join('; ')}`,
              )
            : setCondition(s.conditions, NodeConditionType.Schedulable, 'True');
        if (imUp) s.lastHeartbeatAt = im.status.lastHeartbeatAt || nowIso();
      });
      const newReady = imUp ? 'True' : 'False';
      if (oldReady !== newReady) {
        if (imUp) ctx.events.normal(node, 'Ready', `node ${name} is ready`);
        else ctx.events.warning(node, 'NotReady', `node ${name} is down: its instance manager is not reachable`);
      }
      return { requeueAfterMs: DISK_POLL_MS };
    },
  });
}
