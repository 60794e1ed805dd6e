// Event: something a person would want to read about a resource ("Degraded", "Rebuilt", ...).
import { z } from 'zod';
import { type Resource, resourceSchema } from './meta.js';

export const eventSpec = z.object({
  type: z.enum(['Normal', 'Warning']),
  reason: z.string(),
  message: z.string(),
  involvedObject: z.object({ kind: z.string(), name: z.string() }),
  /** Who reported it (controller name). */
  source: z.string().default(''),
  firstTimestamp: z.string(),
  lastTimestamp: z.string(),
  count: z.number().int().default(1),
});
export type EventSpec = z.infer<typeof eventSpec>;

export const eventSchema = resourceSchema('Event', eventSpec, z.object({}).default({}));
export type Event = Resource<'Event', EventSpec, Record<string, never>>;
