// BackupTarget: where backups go (Longhorn's BackupTarget CR). `default` always exists; an empty URL
// means "no target set". Credentials live in a Secret named by credentialSecret, never in here.
import { z } from 'zod';
import { condition, type Resource, resourceSchema } from './meta.js';

export const DEFAULT_BACKUP_TARGET = 'default';

export const BackupTargetConditionType = {
  /** True once the target was listed; False while it cannot be (down, refused credentials, bad URL): message says why. */
  Available: 'Available',
} as const;

export const backupTargetSpec = z.object({
  /** file:///path or s3://bucket@region/path; '' = none set. */
  backupTargetURL: z.string().default(''),
  /** Name of the Secret holding Longhorn's AWS_* keys; '' = none. */
  credentialSecret: z.string().default(''),
  /** Seconds between syncs of BackupVolumes and Backups from the target. */
  pollInterval: z.number().int().min(0).default(300),
  /** Asked for an immediate sync at this time. */
  syncRequestedAt: z.string().default(''),
});
export type BackupTargetSpec = z.infer<typeof backupTargetSpec>;

export const backupTargetStatus = z.object({
  ownerID: z.string().default(''),
  available: z.boolean().default(false),
  conditions: z.array(condition).default([]),
  lastSyncedAt: z.string().default(''),
});
export type BackupTargetStatus = z.infer<typeof backupTargetStatus>;

export const backupTargetSchema = resourceSchema(
  'BackupTarget',
  backupTargetSpec,
  backupTargetStatus.default(backupTargetStatus.parse({})),
);
export type BackupTarget = Resource<'BackupTarget', BackupTargetSpec, BackupTargetStatus>;
