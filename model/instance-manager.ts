// InstanceManager: the per-node process that runs engines and replicas, as the control plane sees it.
import { z } from 'zod';
import { instanceState } from './instance.js';
import { condition, type Resource, resourceSchema } from './meta.js';

export const instanceManagerSpec = z.object({
  nodeID: z.string(),
  /** gRPC address of its InstanceService. */
  address: z.string(),
});
export type InstanceManagerSpec = z.infer<typeof instanceManagerSpec>;

export const instanceProcessStatus = z.object({
  type: z.enum(['engine', 'replica']),
  state: instanceState,
  port: z.number().int(),
  pid: z.number().int(),
  errorMsg: z.string().default(''),
  /** When the process was started (RFC 3339); tells a failure already seen from a new one. */
  startedAt: z.string().default(''),
});

export const instanceManagerStatus = z.object({
  ownerID: z.string().default(''),
  currentState: z.enum(['running', 'stopped', 'error', 'starting', 'unknown']).default('unknown'),
  instances: z.record(z.string(), instanceProcessStatus).default({}),
  conditions: z.array(condition).default([]),
  lastHeartbeatAt: z.string().default(''),
});
export type InstanceManagerStatus = z.infer<typeof instanceManagerStatus>;

export const instanceManagerSchema = resourceSchema(
  'InstanceManager',
  instanceManagerSpec,
  instanceManagerStatus.default(instanceManagerStatus.parse({})),
);
export type InstanceManager = Resource<'InstanceManager', InstanceManagerSpec, InstanceManagerStatus>;
