// The Kubernetes shape every Shorthorn resource has: apiVersion, kind, metadata, spec, status.
// Spec is desired state (written through the API), status is observed state (written by controllers).
import { z } from 'zod';

export const API_VERSION = 'shorthorn.io/v1';

/** RFC 1123 label, as Kubernetes names: lower case, digits and '-', at most 63 characters. */
export const resourceName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'lower-case letters, digits and "-", starting and ending alphanumeric');

export const ownerReference = z.object({
  kind: z.string(),
  name: z.string(),
  uid: z.string(),
  /** Deleting the owner deletes this resource too (the store's garbage collection). */
  controller: z.boolean().optional(),
});
export type OwnerReference = z.infer<typeof ownerReference>;

export const objectMeta = z.object({
  name: resourceName,
  /** Set by the store on create. */
  uid: z.string().default(''),
  /** Set by the store on every write; opaque to clients, compared for optimistic concurrency. */
  resourceVersion: z.string().default(''),
  /** Bumped by the store when spec (not status) changes. */
  generation: z.number().int().default(0),
  creationTimestamp: z.string().default(''),
  labels: z.record(z.string(), z.string()).default({}),
  annotations: z.record(z.string(), z.string()).default({}),
  ownerReferences: z.array(ownerReference).default([]),
  finalizers: z.array(z.string()).default([]),
  /** Set by delete when finalizers remain; the resource goes once they are all removed. */
  deletionTimestamp: z.string().optional(),
});
export type ObjectMeta = z.infer<typeof objectMeta>;

export const conditionStatus = z.enum(['True', 'False', 'Unknown']);
export type ConditionStatus = z.infer<typeof conditionStatus>;

export const condition = z.object({
  type: z.string(),
  status: conditionStatus,
  reason: z.string().default(''),
  message: z.string().default(''),
  lastProbeTime: z.string().default(''),
  lastTransitionTime: z.string().default(''),
});
export type Condition = z.infer<typeof condition>;

/** The parts every resource shares; each kind adds its spec and status. */
export interface Resource<K extends string = string, Spec = unknown, Status = unknown> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: ObjectMeta;
  spec: Spec;
  status: Status;
}

/** A schema for one kind: validates and fills defaults for spec and status. */
export function resourceSchema<K extends string, S extends z.ZodType, T extends z.ZodType>(
  kind: K,
  spec: S,
  status: T,
) {
  return z.object({
    apiVersion: z.literal(API_VERSION).default(API_VERSION),
    kind: z.literal(kind).default(kind),
    metadata: objectMeta,
    spec,
    status,
  });
}

export function nowIso(): string {
  return new Date().toISOString();
}
