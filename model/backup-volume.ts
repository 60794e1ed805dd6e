// BackupVolume: one volume's folder in a backup target, mirrored from its volume.cfg by the
// backup-target controller (Longhorn's BackupVolume CR). Named after the volume.
import { z } from 'zod';
import { type Resource, resourceSchema } from './meta.js';

export const backupVolumeSpec = z.object({
  backupTargetName: z.string().default('default'),
  /** The volume's name in the backup store (the resource name may differ only if the name is not RFC 1123). */
  volumeName: z.string(),
  syncRequestedAt: z.string().default(''),
});
export type BackupVolumeSpec = z.infer<typeof backupVolumeSpec>;

export const backupVolumeStatus = z.object({
  ownerID: z.string().default(''),
  size: z.number().int().default(0),
  labels: z.record(z.string(), z.string()).default({}),
  createdAt: z.string().default(''),
  lastBackupName: z.string().default(''),
  lastBackupAt: z.string().default(''),
  /** Blocks in the store × block size. */
  dataStored: z.number().int().default(0),
  compressionMethod: z.string().default(''),
  messages: z.record(z.string(), z.string()).default({}),
  lastSyncedAt: z.string().default(''),
});
export type BackupVolumeStatus = z.infer<typeof backupVolumeStatus>;

export const backupVolumeSchema = resourceSchema(
  'BackupVolume',
  backupVolumeSpec,
  backupVolumeStatus.default(backupVolumeStatus.parse({})),
);
export type BackupVolume = Resource<'BackupVolume', BackupVolumeSpec, BackupVolumeStatus>;
