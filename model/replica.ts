// Replica: one copy of a volume's data on one disk of one node (Longhorn's Replica CR), with the four
// health timestamps that decide reuse, cleanup and salvage.
import { z } from 'zod';
import { instanceSpecFields, instanceStatusFields } from './instance.js';
import { type Resource, resourceSchema } from './meta.js';

export const replicaSpec = z.object({
  ...instanceSpecFields,
  engineName: z.string().default(''),
  /** The disk's UUID (stable across renames); empty while unscheduled. */
  diskID: z.string().default(''),
  diskPath: z.string().default(''),
  /** `<volume>-<8 hex>`: the directory under `<diskPath>/replicas/`. */
  dataDirectoryName: z.string().default(''),
  /** Node the replica must be placed on (data locality, auto-balance); empty = any. */
  hardNodeAffinity: z.string().default(''),
  active: z.boolean().default(true),
  rebuildRetryCount: z.number().int().default(0),
  evictionRequested: z.boolean().default(false),
  /** Set the first time it turns RW after creation or rebuild; cleared before a rebuild. */
  healthyAt: z.string().default(''),
  /** Set every time it turns RW; never cleared. */
  lastHealthyAt: z.string().default(''),
  /** Set when it fails or the engine drops it; cleared before a rebuild or salvage. */
  failedAt: z.string().default(''),
  /** Set with failedAt; never cleared. */
  lastFailedAt: z.string().default(''),
});
export type ReplicaSpec = z.infer<typeof replicaSpec>;

export const replicaStatus = z.object({ ...instanceStatusFields });
export type ReplicaStatus = z.infer<typeof replicaStatus>;

export const replicaSchema = resourceSchema('Replica', replicaSpec, replicaStatus.default(replicaStatus.parse({})));
export type Replica = Resource<'Replica', ReplicaSpec, ReplicaStatus>;
