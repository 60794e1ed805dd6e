// Live data, all fed from the store's watch (never from mutation resolvers), so a change a controller
// writes reaches subscribers like one made through the API. Each sends the current value first (events:
// only new ones, unless `since`). volumeChanged lives beside Volume; volumeMetrics polls the engine.
import { filter, map, pipe, Repeater } from 'graphql-yoga';
import type { Backup } from '../model/backup.js';
import type { Engine } from '../model/engine.js';
import type { Event } from '../model/event.js';
import { backupVolumeName } from '../resolvers/graph-reads.js';
import {
  METRICS_DEFAULT_INTERVAL_MS,
  METRICS_MIN_INTERVAL_MS,
  type VolumeMetricsSample,
  volumeMetrics,
} from '../resolvers/metrics.js';
import { watchMatching, watchOne } from '../resolvers/watch.js';
import type { Store } from '../store/store.js';
import { BackupRef } from './backup.js';
import { builder } from './builder.js';
import { EngineRef } from './engine.js';
import { EventRef } from './event.js';
import { NodeRef } from './node.js';
import { ReplicaRef } from './replica.js';
import { SnapshotRef } from './snapshot.js';

interface RebuildProgressView {
  volume: string;
  engine: Engine;
}

const rebuildsOf = (p: RebuildProgressView) => Object.values(p.engine.status.rebuildStatus);

const RebuildProgressRef = builder.objectRef<RebuildProgressView>('RebuildProgress').implement({
  description: "A volume's replica rebuilds as its engine reports them; per replica: engine { rebuildStatus }",
  fields: (t) => ({
    volume: t.string({ resolve: (p) => p.volume }),
    rebuilding: t.boolean({
      description: 'A replica is being rebuilt (write-only in the engine)',
      resolve: (p) => rebuildsOf(p).length > 0,
    }),
    replicasRebuilding: t.int({ resolve: (p) => rebuildsOf(p).length }),
    progress: t.int({
      nullable: true,
      description: 'Percent of all rebuilds together, 0–100; null when nothing is rebuilding',
      resolve: (p) => {
        const r = rebuildsOf(p);
        if (r.length === 0) return null;
        const total = r.reduce((n, s) => n + s.bytesTotal, 0);
        const done = r.reduce((n, s) => n + s.bytesDone, 0);
        return total > 0
          ? Math.min(100, Math.floor((done * 100) / total))
          : Math.floor(r.reduce((n, s) => n + s.progress, 0) / r.length);
      },
    }),
    bytesDone: t.field({ type: 'Bytes', resolve: (p) => rebuildsOf(p).reduce((n, s) => n + s.bytesDone, 0) }),
    bytesTotal: t.field({ type: 'Bytes', resolve: (p) => rebuildsOf(p).reduce((n, s) => n + s.bytesTotal, 0) }),
    engine: t.field({ type: EngineRef, resolve: (p) => p.engine }),
  }),
});

const VolumeMetricsRef = builder.objectRef<VolumeMetricsSample>('VolumeMetrics').implement({
  description: "A volume's I/O as its engine measured it over the last second",
  fields: (t) => ({
    volume: t.string({ resolve: (m) => m.volume }),
    at: t.field({ type: 'DateTime', resolve: (m) => m.at }),
    readIOPS: t.float({ resolve: (m) => m.readIOPS }),
    writeIOPS: t.float({ resolve: (m) => m.writeIOPS }),
    readThroughput: t.float({ description: 'Bytes/s', resolve: (m) => m.readThroughput }),
    writeThroughput: t.float({ description: 'Bytes/s', resolve: (m) => m.writeThroughput }),
    readLatency: t.float({ description: 'Mean, nanoseconds', resolve: (m) => m.readLatency }),
    writeLatency: t.float({ description: 'Mean, nanoseconds', resolve: (m) => m.writeLatency }),
  }),
});

/**
 * Only what a rebuild changes: the engine's other status writes (head size, snapshots) are not news.
 * Repeater operators, not an async generator: a generator waiting on its source cannot be returned, so
 * an unsubscribe would leave the store watch open until the engine changed again.
 */
function rebuildProgress(store: Store, volume: string): AsyncIterable<RebuildProgressView> {
  let last: string | undefined;
  return pipe(
    watchMatching(store, 'Engine', (e) => e.spec.volumeName === volume),
    filter((engine: Engine) => {
      const key = JSON.stringify([engine.metadata.name, engine.status.rebuildStatus]);
      if (key === last) return false;
      last = key;
      return true;
    }),
    map((engine: Engine) => ({ volume, engine })),
  );
}

interface EventFilter {
  kind?: string | null;
  name?: string | null;
  type?: string | null;
  since?: Date | null;
}

/**
 * Events recorded (or repeated: a repeat bumps count and lastTimestamp) from now on that match the
 * filter; with `since`, first the stored ones last seen at or after it, oldest first.
 */
function watchEvents(store: Store, f: EventFilter): AsyncIterable<Event> {
  const match = (e: Event) =>
    (!f.kind || e.spec.involvedObject.kind === f.kind) &&
    (!f.name || e.spec.involvedObject.name === f.name) &&
    (!f.type || e.spec.type === f.type);
  return new Repeater<Event>(async (push, stop) => {
    const sent = new Map<string, number>();
    let held: { type: string; object: Event }[] | undefined = f.since ? [] : undefined;
    const deliver = (type: string, e: Event) => {
      const rv = Number(e.metadata.resourceVersion);
      if (type === 'DELETED' || !match(e) || (sent.get(e.metadata.name) ?? -1) >= rv) return;
      sent.set(e.metadata.name, rv);
      void push(e);
    };
    const w = store.watch('Event', {
      onEvent: (ev) => (held ? held.push(ev) : deliver(ev.type, ev.object)),
      onError: (err) => stop(err),
    });
    if (f.since && held) {
      const since = f.since.getTime();
      const backlog = (await store.list('Event')).items
        .filter((e) => Date.parse(e.spec.lastTimestamp) >= since)
        .sort((a, b) => a.spec.lastTimestamp.localeCompare(b.spec.lastTimestamp));
      for (const e of backlog) deliver('ADDED', e);
      for (const ev of held) deliver(ev.type, ev.object);
      held = undefined;
    }
    await stop;
    w.stop();
  });
}

builder.subscriptionFields((t) => ({
  nodeChanged: t.field({
    type: NodeRef,
    description: 'The node now, then at every change; ends when it is removed',
    authScopes: { viewer: true },
    args: { name: t.arg.string({ required: true }) },
    subscribe: (_root, { name }, ctx) => watchOne(ctx.store, 'Node', name),
    resolve: (n) => n,
  }),
  replicaChanged: t.field({
    type: ReplicaRef,
    description: "Every replica of the volume now, then each replica at every change (a removed one's last state)",
    authScopes: { viewer: true },
    args: { volume: t.arg.string({ required: true }) },
    subscribe: (_root, { volume }, ctx) => watchMatching(ctx.store, 'Replica', (r) => r.spec.volumeName === volume),
    resolve: (r) => r,
  }),
  engineChanged: t.field({
    type: EngineRef,
    description: "The volume's engine now, then at every change",
    authScopes: { viewer: true },
    args: { volume: t.arg.string({ required: true }) },
    subscribe: (_root, { volume }, ctx) => watchMatching(ctx.store, 'Engine', (e) => e.spec.volumeName === volume),
    resolve: (e) => e,
  }),
  snapshotChanged: t.field({
    type: SnapshotRef,
    description: "Every snapshot of the volume now, then each at every change (a removed one's last state)",
    authScopes: { viewer: true },
    args: { volume: t.arg.string({ required: true }) },
    subscribe: (_root, { volume }, ctx) => watchMatching(ctx.store, 'Snapshot', (s) => s.spec.volume === volume),
    resolve: (s) => s,
  }),
  backupChanged: t.field({
    type: BackupRef,
    description:
      "Every backup (of the volume, or all) now, then each at every change, progress included (a deleted one's last state)",
    authScopes: { viewer: true },
    args: { volume: t.arg.string({ required: false }) },
    subscribe: (_root, { volume }, ctx) =>
      watchMatching(ctx.store, 'Backup', (b: Backup) => !volume || backupVolumeName(b) === volume),
    resolve: (b) => b,
  }),
  events: t.field({
    type: EventRef,
    description:
      'Events from now on (new ones and repeats), filtered by involved object kind and name and by type ' +
      '(Normal, Warning); `since` first replays the stored ones last seen at or after it',
    authScopes: { viewer: true },
    args: {
      kind: t.arg.string({ required: false }),
      name: t.arg.string({ required: false }),
      type: t.arg.string({ required: false }),
      since: t.arg({ type: 'DateTime', required: false }),
    },
    subscribe: (_root, args, ctx) => watchEvents(ctx.store, args),
    resolve: (e) => e,
  }),
  rebuildProgress: t.field({
    type: RebuildProgressRef,
    description: "The volume's rebuilds now, then at every change of their progress (from the engine's status)",
    authScopes: { viewer: true },
    args: { volume: t.arg.string({ required: true }) },
    subscribe: (_root, { volume }, ctx) => rebuildProgress(ctx.store, volume),
    resolve: (p) => p,
  }),
  volumeMetrics: t.field({
    type: VolumeMetricsRef,
    description:
      `IOPS, throughput and latency of an attached volume, sampled from its engine every intervalMs ` +
      `(>= ${METRICS_MIN_INTERVAL_MS}, default ${METRICS_DEFAULT_INTERVAL_MS}); ends with an error once it is detached`,
    authScopes: { viewer: true },
    args: { name: t.arg.string({ required: true }), intervalMs: t.arg.int({ required: false }) },
    subscribe: (_root, { name, intervalMs }, ctx) =>
      volumeMetrics(ctx.store, name, intervalMs ?? METRICS_DEFAULT_INTERVAL_MS),
    resolve: (m) => m,
  }),
}));
