// Backup: one backup of one snapshot (Longhorn's Backup CR). Made two ways: asked for (spec.snapshotName
// set, the backup controller runs it through the engine) or found in the target by a sync (status only).
// Label `backup-volume` names the volume it belongs to.
import { z } from 'zod';
import { type Resource, resourceSchema } from './meta.js';

/** On Backup resources: the volume (its name in the backup store) a backup belongs to. Longhorn's label. */
export const BACKUP_VOLUME_LABEL = 'backup-volume';

export const backupState = z.enum(['', 'Pending', 'InProgress', 'Completed', 'Error', 'Unknown', 'Deleting']);
export type BackupState = z.infer<typeof backupState>;
export const backupMode = z.enum(['incremental', 'full']);

export const backupSpec = z.object({
  /** The snapshot to back up; '' for a backup found in the target. */
  snapshotName: z.string().default(''),
  labels: z.record(z.string(), z.string()).default({}),
  backupMode: backupMode.default('incremental'),
  syncRequestedAt: z.string().default(''),
});
export type BackupSpec = z.infer<typeof backupSpec>;

export const backupStatus = z.object({
  ownerID: z.string().default(''),
  state: backupState.default(''),
  progress: z.number().int().min(0).max(100).default(0),
  replicaAddress: z.string().default(''),
  error: z.string().default(''),
  /** Longhorn's backup URL: <target>?backup=<name>&volume=<volume>. */
  url: z.string().default(''),
  snapshotName: z.string().default(''),
  snapshotCreatedAt: z.string().default(''),
  backupCreatedAt: z.string().default(''),
  size: z.number().int().default(0),
  labels: z.record(z.string(), z.string()).default({}),
  volumeName: z.string().default(''),
  volumeSize: z.number().int().default(0),
  compressionMethod: z.string().default(''),
  isIncremental: z.boolean().default(false),
  newlyUploadDataSize: z.number().int().default(0),
  reUploadedDataSize: z.number().int().default(0),
  backupTargetName: z.string().default(''),
  lastSyncedAt: z.string().default(''),
});
export type BackupStatus = z.infer<typeof backupStatus>;

export const backupSchema = resourceSchema('Backup', backupSpec, backupStatus.default(backupStatus.parse({})));
export type Backup = Resource<'Backup', BackupSpec, BackupStatus>;
