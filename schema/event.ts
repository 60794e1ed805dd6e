// Event: something a person would want to read about a resource; queries events (newest first) and
// eventsConnection (paginated).

import { resolveArrayConnection } from '@pothos/plugin-relay';
import type { Event as EventModel } from '../model/event.js';
import { newestEventsFirst } from '../resolvers/graph-reads.js';
import type { StoreReads } from '../resolvers/store-reads.js';
import { builder } from './builder.js';

export const EventRef = builder.objectRef<EventModel>('Event');

const InvolvedObjectRef = builder.objectRef<EventModel['spec']['involvedObject']>('InvolvedObject').implement({
  description: 'The resource an event is about',
  fields: (t) => ({ kind: t.exposeString('kind'), name: t.exposeString('name') }),
});

EventRef.implement({
  description: 'An event about a resource ("Attached", "Degraded", "Rebuilt" …); repeats bump its count',
  fields: (t) => ({
    name: t.string({ resolve: (e) => e.metadata.name }),
    type: t.string({ description: 'Normal or Warning', resolve: (e) => e.spec.type }),
    reason: t.string({ resolve: (e) => e.spec.reason }),
    message: t.string({ resolve: (e) => e.spec.message }),
    involvedObject: t.field({ type: InvolvedObjectRef, resolve: (e) => e.spec.involvedObject }),
    source: t.string({ description: 'Who reported it', resolve: (e) => e.spec.source }),
    firstTimestamp: t.field({
      type: 'DateTime',
      resolve: (e) => e.spec.firstTimestamp || e.metadata.creationTimestamp,
    }),
    lastTimestamp: t.field({
      type: 'DateTime',
      resolve: (e) => e.spec.lastTimestamp || e.spec.firstTimestamp || e.metadata.creationTimestamp,
    }),
    count: t.int({ resolve: (e) => e.spec.count }),
  }),
});

interface EventFilter {
  kind?: string | null;
  name?: string | null;
  type?: string | null;
}

async function filteredEvents(reads: StoreReads, f: EventFilter): Promise<EventModel[]> {
  return newestEventsFirst(
    (await reads.list('Event')).filter(
      (e) =>
        (!f.kind || e.spec.involvedObject.kind === f.kind) &&
        (!f.name || e.spec.involvedObject.name === f.name) &&
        (!f.type || e.spec.type === f.type),
    ),
  );
}

builder.queryFields((t) => ({
  events: t.field({
    type: [EventRef],
    description: "Events, newest first, filtered by the involved object's kind and name, and by type",
    authScopes: { viewer: true },
    args: {
      kind: t.arg.string({ required: false }),
      name: t.arg.string({ required: false }),
      type: t.arg.string({ required: false }),
      limit: t.arg.int({ required: false }),
    },
    resolve: async (_root, args, ctx) => {
      const events = await filteredEvents(ctx.reads, args);
      return args.limit != null && args.limit >= 0 ? events.slice(0, args.limit) : events;
    },
  }),
  eventsConnection: t.connection(
    {
      type: EventRef,
      description: 'Events, newest first, a page at a time',
      authScopes: { viewer: true },
      args: {
        kind: t.arg.string({ required: false }),
        name: t.arg.string({ required: false }),
        type: t.arg.string({ required: false }),
      },
      resolve: async (_root, args, ctx) => resolveArrayConnection({ args }, await filteredEvents(ctx.reads, args)),
    },
    { name: 'EventConnection' },
    { name: 'EventEdge' },
  ),
}));
