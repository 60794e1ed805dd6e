// The manager: informers over every kind, the controllers, and the wiring of events to keys. `shorthorn
// up` runs one in-process on the embedded store; it can stop and start again at any time without
// touching volume I/O (instance managers own the processes).
import type { Logger } from 'pino';
import { KINDS, type Kind } from '../model/kinds.js';
import type { Store } from '../store/store.js';
import { type ControllerContext, DataplaneClients, type Informers } from './context.js';
import { engineController } from './engine-controller.js';
import { EventRecorder } from './events.js';
import { instanceManagerController } from './instance-manager-controller.js';
import { engineNameOf } from './labels.js';
import { nodeController } from './node-controller.js';
import { ReadYourWritesStore } from './read-your-writes.js';
import { replicaController } from './replica-controller.js';
import { type Controller, watchInto } from './runtime/controller.js';
import { Informer } from './runtime/informer.js';
import { Settings } from './settings.js';
import { snapshotController } from './snapshot-controller.js';
import { ensureDefaultSettings, VolumeApi } from './volume-api.js';
import { volumeAttachmentController } from './volume-attachment-controller.js';
import { volumeController } from './volume-controller.js';

export interface Manager {
  api: VolumeApi;
  ctx: ControllerContext;
  stop(): Promise<void>;
}

export async function startManager(opts: { store: Store; managerID: string; logger: Logger }): Promise<Manager> {
  const log = opts.logger;
  await ensureDefaultSettings(opts.store);
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
  watchInto(informers.InstanceManager, c.replica, (im) => onNode(im.spec.nodeID, 'Replica'));
  watchInto(informers.InstanceManager, c.engine, (im) => onNode(im.spec.nodeID, 'Engine'));
  watchInto(informers.InstanceManager, c.volume, (im) => volumesOnNode(im.spec.nodeID));
  watchInto(informers.Node, c.node);
  watchInto(informers.Node, c.volume, (n) => volumesOnNode(n.metadata.name));
  watchInto(informers.Node, c.attachment, () => informers.VolumeAttachment.list().map((v) => v.metadata.name));
  watchInto(informers.Replica, c.replica);
  watchInto(informers.Replica, c.volume, (r) => [r.spec.volumeName]);
  watchInto(informers.Replica, c.node, (r) => (r.spec.nodeID ? [r.spec.nodeID] : []));
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
    },
  };
}
