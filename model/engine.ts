// Engine: the process serving one volume (Longhorn's Engine CR). The engine controller keeps its
// status (replica modes, snapshots, rebuild progress) in step with the real engine.
import { z } from 'zod';
import { instanceSpecFields, instanceStatusFields } from './instance.js';
import { type Resource, resourceSchema } from './meta.js';

export const replicaMode = z.enum(['RW', 'WO', 'ERR']);
export type ReplicaMode = z.infer<typeof replicaMode>;

export const rebuildStatus = z.object({
  isRebuilding: z.boolean(),
  progress: z.number().int().min(0).max(100),
  bytesDone: z.number().int().default(0),
  bytesTotal: z.number().int().default(0),
  state: z.string().default(''),
  error: z.string().default(''),
  fromReplicaAddress: z.string().default(''),
});
export type RebuildStatus = z.infer<typeof rebuildStatus>;

export const snapshotInfo = z.object({
  name: z.string(),
  parent: z.string(),
  children: z.array(z.string()),
  removed: z.boolean(),
  userCreated: z.boolean(),
  created: z.string(),
  size: z.number().int(),
  labels: z.record(z.string(), z.string()),
});
export type SnapshotInfo = z.infer<typeof snapshotInfo>;

export const engineSpec = z.object({
  ...instanceSpecFields,
  frontend: z.enum(['nbd', '']).default('nbd'),
  /** replica name → tcp://ip:port: the replicas this engine should have. */
  replicaAddressMap: z.record(z.string(), z.string()).default({}),
  disableFrontend: z.boolean().default(false),
  unmapMarkSnapChainRemovedEnabled: z.boolean().default(false),
  /** Engine-side I/O timeout in seconds (setting `engine-replica-timeout`). */
  replicaTimeout: z.number().int().min(1).default(8),
  /** Backup name the engine should restore next ('' = none): the volume controller sets it. */
  requestedBackupRestore: z.string().default(''),
  /** Longhorn's backup URL of requestedBackupRestore. */
  requestedBackupRestoreURL: z.string().default(''),
});
export type EngineSpec = z.infer<typeof engineSpec>;

export const engineStatus = z.object({
  ...instanceStatusFields,
  currentSize: z.number().int().default(0),
  currentReplicaAddressMap: z.record(z.string(), z.string()).default({}),
  replicaModeMap: z.record(z.string(), replicaMode).default({}),
  /** NBD URI. */
  endpoint: z.string().default(''),
  rebuildStatus: z.record(z.string(), rebuildStatus).default({}),
  snapshots: z.record(z.string(), snapshotInfo).default({}),
  snapshotsError: z.string().default(''),
  salvageExecuted: z.boolean().default(false),
  /** The backup the engine restored last (the base of the next incremental restore). */
  lastRestoredBackup: z.string().default(''),
  restoreStatus: z
    .object({
      state: z.string().default('idle'),
      backupName: z.string().default(''),
      progress: z.number().int().min(0).max(100).default(0),
      error: z.string().default(''),
    })
    .default({ state: 'idle', backupName: '', progress: 0, error: '' }),
});
export type EngineStatus = z.infer<typeof engineStatus>;

export const engineSchema = resourceSchema('Engine', engineSpec, engineStatus.default(engineStatus.parse({})));
export type Engine = Resource<'Engine', EngineSpec, EngineStatus>;
