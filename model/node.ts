// Node: one machine's view for scheduling: its disks, tags, flags and conditions (Longhorn's Node CR).
import { z } from 'zod';
import { condition, type Resource, resourceSchema } from './meta.js';

export const NodeConditionType = { Ready: 'Ready', Schedulable: 'Schedulable' } as const;
export const DiskConditionType = { Ready: 'Ready', Schedulable: 'Schedulable' } as const;

export const diskSpec = z.object({
  diskType: z.enum(['filesystem']).default('filesystem'),
  path: z.string().min(1, 'a disk needs a path'),
  allowScheduling: z.boolean().default(true),
  evictionRequested: z.boolean().default(false),
  /** Bytes kept free for other users of the filesystem. */
  storageReserved: z.number().int().min(0).default(0),
  tags: z.array(z.string()).default([]),
});
export type DiskSpec = z.infer<typeof diskSpec>;

export const diskStatus = z.object({
  conditions: z.array(condition).default([]),
  storageAvailable: z.number().int().default(0),
  storageScheduled: z.number().int().default(0),
  storageMaximum: z.number().int().default(0),
  /** replica name → its volume size. */
  scheduledReplica: z.record(z.string(), z.number().int()).default({}),
  /** Written into `<path>/shorthorn-disk.cfg` so a disk keeps its identity across path changes. */
  diskUUID: z.string().default(''),
  diskName: z.string().default(''),
  diskPath: z.string().default(''),
  filesystemType: z.string().default(''),
});
export type DiskStatus = z.infer<typeof diskStatus>;

export const nodeSpec = z.object({
  disks: z.record(z.string(), diskSpec).default({}),
  allowScheduling: z.boolean().default(true),
  evictionRequested: z.boolean().default(false),
  tags: z.array(z.string()).default([]),
});
export type NodeSpec = z.infer<typeof nodeSpec>;

export const nodeStatus = z.object({
  conditions: z.array(condition).default([]),
  diskStatus: z.record(z.string(), diskStatus).default({}),
  region: z.string().default(''),
  zone: z.string().default(''),
  /** gRPC address of this node's instance manager. */
  instanceManagerAddress: z.string().default(''),
  lastHeartbeatAt: z.string().default(''),
});
export type NodeStatus = z.infer<typeof nodeStatus>;

export const nodeSchema = resourceSchema('Node', nodeSpec, nodeStatus.default(nodeStatus.parse({})));
export type Node = Resource<'Node', NodeSpec, NodeStatus>;
