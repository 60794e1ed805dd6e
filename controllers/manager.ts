// The manager: informers over every kind, the controllers, and the wiring of events to keys. `shorthorn
// up` runs one in-process on the embedded store; it can stop and start again at any time without
// touching volume I/O (instance managers own the processes).
import type { Logger } from 'pino';
import { KINDS, type Kind } from '../model/kinds.js';
import type { Node } from '../model/node.js';
import type { Store } from '../store/store.js';
import { backupController } from './backup/backup-controller.js';
import { backupTargetController } from './backup/backup-target-controller.js';
import { backupVolumeController } from './backup/backup-volume-controller.js';
import { closeDrivers } from './backup/target-access.js';
import { wireBackups } from './backup/wiring.js';
import { ensureDefaultBackupTarget } from './backup-api.js';
import { type ControllerContext, DataplaneClients, type Informers } from './context.js';
import { engineController } from './engine-controller.js';
import { EventRecorder } from './events.js';
import { instanceManagerController } from './instance-manager-controller.js';
import { engineNameOf } from './labels.js';
import { nodeController } from './node-controller.js';
import { ReadYourWritesStore } from './read-your-writes.js';
import { recurringJobController } from './recurring-job-controller.js';
import { replicaController } from './replica-controller.js';
import { type Controller, watchInto } from './runtime/controller.js';
import { Informer } from './runtime/informer.js';
import { Settings } from './settings.js';
import { snapshotController } from './snapshot-controller.js';
import { ensureDefaultSettings, VolumeApi } from './volume-api.js';
import { volumeAttachmentController } from './volume-attachment-controller.js';
import { volumeController } from './volume-controller.js';

/** How long replica changes are gathered before a node's scheduled storage is recomputed. */
const NODE_BATCH_MS = 500;

export interface Manager {
  api: VolumeApi;
  ctx: ControllerContext;
  stop(): Promise<void>;
}

export async function startManager(opts: { store: Store; managerID: string; logger: Logger }): Promise<Manager> {
  const log = opts.logger;
  await ensureDefaultSettings(opts.store);
  await ensureDefaultBackupTarget(opts.store);
  const informers = Object.fromEntries(
    KINDS.map((k) => [k, new Informer(opts.store, k, { logger: log })]),
  ) as unknown as Informers; // built kind by kind from KINDS; the mapped type cannot follow Object.fromEntries
  const store = new ReadYourWritesStore(opts.store, () => informers);
  const ctx: ControllerContext = {
    store,
    informers,
    settings: new Settings(informers.Setting),
    events: new EventRecorder(store, log.child({ component: 'events' }), opts.managerID),
    log,
    managerID: opts.managerID,
    clients: new DataplaneClients(),
  };
  const c = {
    instanceManager: instanceManagerController(ctx),
    node: nodeController(ctx),
    replica: replicaController(ctx),
    engine: engineController(ctx),
    volume: volumeController(ctx),
    attachment: volumeAttachmentController(ctx),
    snapshot: snapshotController(ctx),
    recurringJob: recurringJobController(ctx),
    backupTarget: backupTargetController(ctx),
    backup: backupController(ctx),
    backupVolume: backupVolumeController(ctx),
  };
  const volumesOnNode = (nodeID: string) => [
    ...new Set(
      [...informers.Replica.list(), ...informers.Engine.list()]
        .filter((x) => x.spec.nodeID === nodeID)
        .map((x) => x.spec.volumeName),
    ),
  ];
  const onNode = (nodeID: string, kind: 'Replica' | 'Engine') =>
    informers[kind]
      .list()
      .filter((x) => x.spec.nodeID === nodeID)
      .map((x) => x.metadata.name);

  watchInto(informers.InstanceManager, c.instanceManager);
  watchInto(informers.InstanceManager, c.node, (im) => [im.spec.nodeID]);
  informers.InstanceManager.onEvent((type, im, old) => {
    // Only the instances whose entry changed, unless the instance manager itself came or went.
    const all = type !== 'MODIFIED' || !old || old.status.currentState !== im.status.currentState;
    const changed = (name: string) =>
      JSON.stringify(old?.status.instances[name]) !== JSON.stringify(im.status.instances[name]);
    for (const kind of ['Replica', 'Engine'] as const) {
      const ctl = kind === 'Replica' ? c.replica : c.engine;
      const names = all
        ? onNode(im.spec.nodeID, kind)
        : [...new Set([...Object.keys(im.status.instances), ...Object.keys(old?.status.instances ?? {})])].filter(
            (n) => changed(n) && informers[kind].get(n),
          );
      for (const n of names) ctl.enqueue(n);
    }
  });
  // Node and instance-manager status is rewritten often (free space, heartbeats); volumes care only
  // when a node comes or goes, turns (un)ready or (un)schedulable, or its spec changes. Waking every
  // volume on each status write made a 1,000-volume teardown quadratic (bench:control).
  const nodeHealth = (n: Node) =>
    JSON.stringify([
      n.metadata.generation,
      n.status.conditions.map((x) => [x.type, x.status]),
      Object.values(n.status.diskStatus).map((d) => [d.diskUUID, d.conditions.map((x) => [x.type, x.status])]),
    ]);
  informers.Node.onEvent((type, n, old) => {
    if (type === 'MODIFIED' && old && nodeHealth(n) === nodeHealth(old)) return;
    for (const v of volumesOnNode(n.metadata.name)) c.volume.enqueue(v);
    if (type !== 'MODIFIED') for (const va of informers.VolumeAttachment.list()) c.attachment.enqueue(va.metadata.name);
  });
  informers.InstanceManager.onEvent((type, im, old) => {
    if (type === 'MODIFIED' && old && old.status.currentState === im.status.currentState) return;
    for (const v of volumesOnNode(im.spec.nodeID)) c.volume.enqueue(v);
  });
  informers.Node.onEvent((type, n, old) => {
    // Its own status writes come back here: gather them (a burst of replica placements rewrites the
    // node's scheduled storage) unless a person changed the spec, which is acted on at once.
    if (type === 'MODIFIED' && old && old.metadata.generation === n.metadata.generation)
      c.node.enqueueAfter(n.metadata.name, NODE_BATCH_MS);
    else c.node.enqueue(n.metadata.name);
  });
  watchInto(informers.Replica, c.replica);
  watchInto(informers.Replica, c.volume, (r) => [r.spec.volumeName]);
  informers.Replica.onEvent((type, r, old) => {
    // A node's scheduled storage changes only when a replica lands on, leaves or resizes on a disk.
    if (type === 'MODIFIED' && old && old.spec.diskID === r.spec.diskID && old.spec.volumeSize === r.spec.volumeSize)
      return;
    // Batched: a burst of replica changes (1,000 volumes deleted) costs one node status write per
    // half second, not one per replica.
    for (const n of new Set([r.spec.nodeID, old?.spec.nodeID])) if (n) c.node.enqueueAfter(n, NODE_BATCH_MS);
  });
  watchInto(informers.Replica, c.engine, (r) => [engineNameOf(r.spec.volumeName)]);
  watchInto(informers.Engine, c.engine);
  watchInto(informers.Engine, c.volume, (e) => [e.spec.volumeName]);
  watchInto(informers.Engine, c.snapshot, (e) =>
    [e.spec.volumeName, ...Object.keys(e.status.snapshots).filter((n) => n !== 'volume-head')].map((k, i) =>
      i === 0 ? k : `${e.spec.volumeName}/${k}`,
    ),
  );
  watchInto(informers.Volume, c.volume);
  watchInto(informers.Volume, c.attachment);
  watchInto(informers.VolumeAttachment, c.attachment);
  watchInto(informers.VolumeAttachment, c.volume);
  watchInto(informers.Snapshot, c.snapshot, (s) => [`${s.spec.volume}/${s.metadata.name}`]);
  watchInto(informers.Setting, c.volume, () => informers.Volume.list().map((v) => v.metadata.name));
  watchInto(informers.RecurringJob, c.recurringJob);
  informers.Volume.onEvent((type, v, old) => {
    // Volumes join and leave jobs through their labels.
    if (type === 'MODIFIED' && old && JSON.stringify(old.metadata.labels) === JSON.stringify(v.metadata.labels)) return;
    for (const j of informers.RecurringJob.list()) c.recurringJob.enqueue(j.metadata.name);
  });
  wireBackups(informers, c);

  for (const k of KINDS) informers[k as Kind].start();
  await Promise.all(KINDS.map((k) => informers[k as Kind].waitForSync()));
  const controllers: Controller[] = Object.values(c);
  for (const ctl of controllers) ctl.start();
  log.info({ controllers: controllers.map((x) => x.name) }, 'manager started');
  return {
    api: new VolumeApi(opts.store),
    ctx,
    async stop() {
      await Promise.all(controllers.map((x) => x.stop()));
      for (const k of KINDS) informers[k as Kind].stop();
      ctx.clients.close();
      await closeDrivers();
    },
  };
}
