// What Engine and Replica share (Longhorn's InstanceSpec/InstanceStatus): a process that an instance
// manager runs on one node.
import { z } from 'zod';
import { condition } from './meta.js';

export const instanceState = z.enum([
  'running',
  'suspended',
  'stopped',
  'error',
  'starting',
  'stopping',
  'unknown',
  'terminated',
]);
export type InstanceState = z.infer<typeof instanceState>;
export const desiredInstanceState = z.enum(['running', 'stopped']);

export const instanceSpecFields = {
  volumeName: z.string(),
  volumeSize: z.number().int().default(0),
  nodeID: z.string().default(''),
  desireState: desiredInstanceState.default('stopped'),
  salvageRequested: z.boolean().default(false),
};

export const instanceStatusFields = {
  ownerID: z.string().default(''),
  instanceManagerName: z.string().default(''),
  currentState: instanceState.default('stopped'),
  ip: z.string().default(''),
  /** gRPC control port (a replica's data port is port + 1). */
  port: z.number().int().default(0),
  started: z.boolean().default(false),
  /** Why the last start failed or the process died, for people. */
  errorMsg: z.string().default(''),
  conditions: z.array(condition).default([]),
};
