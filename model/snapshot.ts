// Snapshot: one snapshot of a volume as a resource (Longhorn's Snapshot CR). Created by a person
// (createSnapshot: true → the controller takes it) or mirrored from the engine's chain.
import { z } from 'zod';
import { type Resource, resourceSchema } from './meta.js';

export const snapshotSpec = z.object({
  volume: z.string(),
  /** true: the controller asks the engine to take it; false: it mirrors one the engine already has. */
  createSnapshot: z.boolean().default(false),
  labels: z.record(z.string(), z.string()).default({}),
});
export type SnapshotSpec = z.infer<typeof snapshotSpec>;

export const snapshotStatus = z.object({
  ownerID: z.string().default(''),
  parent: z.string().default(''),
  children: z.array(z.string()).default([]),
  markRemoved: z.boolean().default(false),
  userCreated: z.boolean().default(false),
  creationTime: z.string().default(''),
  size: z.number().int().default(0),
  labels: z.record(z.string(), z.string()).default({}),
  readyToUse: z.boolean().default(false),
  error: z.string().default(''),
});
export type SnapshotStatus = z.infer<typeof snapshotStatus>;

export const snapshotSchema = resourceSchema(
  'Snapshot',
  snapshotSpec,
  snapshotStatus.default(snapshotStatus.parse({})),
);
export type Snapshot = Resource<'Snapshot', SnapshotSpec, SnapshotStatus>;
