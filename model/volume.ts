// Volume: the user-facing block device. Enums and field names follow Longhorn's v1beta2 Volume
// (reference/longhorn-manager.md §1.2) so a Longhorn user finds what they know.
import { z } from 'zod';
import { condition, type Resource, resourceSchema } from './meta.js';

export const BLOCK_SIZE = 4096;

export const volumeState = z.enum(['creating', 'attached', 'detached', 'attaching', 'detaching', 'deleting']);
export type VolumeState = z.infer<typeof volumeState>;
export const volumeRobustness = z.enum(['healthy', 'degraded', 'faulted', 'unknown']);
export type VolumeRobustness = z.infer<typeof volumeRobustness>;
export const volumeFrontend = z.enum(['nbd']);
export const dataLocality = z.enum(['disabled', 'best-effort', 'strict-local']);
export type DataLocality = z.infer<typeof dataLocality>;
export const replicaAutoBalance = z.enum(['ignored', 'disabled', 'least-effort', 'best-effort']);
/** Per-volume override of a global setting: `ignored` means "use the setting". */
export const settingOverride = z.enum(['ignored', 'enabled', 'disabled']);
export type SettingOverride = z.infer<typeof settingOverride>;

export const VolumeConditionType = {
  Scheduled: 'Scheduled',
  Restore: 'Restore',
  /** The last revert or purge asked through the API: True done, False failed (message says why). */
  Revert: 'Revert',
  Purge: 'Purge',
  TooManySnapshots: 'TooManySnapshots',
} as const;

/** Volume sizes are whole 4 KiB blocks, at least one. */
export const volumeSize = z
  .number()
  .int('size must be a whole number of bytes')
  .positive('size must be greater than 0')
  .refine((n) => n % BLOCK_SIZE === 0, `size must be a multiple of ${BLOCK_SIZE} bytes`)
  .refine((n) => Number.isSafeInteger(n), 'size is too large');

export const volumeSpec = z.object({
  size: volumeSize,
  /** 0 = take `default-replica-count` at creation (the API fills it in). */
  numberOfReplicas: z.number().int().min(1).max(20),
  frontend: volumeFrontend.default('nbd'),
  dataLocality: dataLocality.default('disabled'),
  /** Minutes a failed replica is kept for reuse before it is deleted (Longhorn's default: 48 h). */
  staleReplicaTimeout: z.number().int().min(0).default(2880),
  nodeSelector: z.array(z.string()).default([]),
  diskSelector: z.array(z.string()).default([]),
  replicaAutoBalance: replicaAutoBalance.default('ignored'),
  replicaSoftAntiAffinity: settingOverride.default('ignored'),
  replicaZoneSoftAntiAffinity: settingOverride.default('ignored'),
  replicaDiskSoftAntiAffinity: settingOverride.default('ignored'),
  unmapMarkSnapChainRemoved: settingOverride.default('ignored'),
  /** Desired attach node. Written only by the volume-attachment controller, from tickets. */
  nodeID: z.string().default(''),
  disableFrontend: z.boolean().default(false),
  snapshotMaxCount: z.number().int().min(0).max(250).default(0),
  /**
   * Revert to this snapshot, asked through the API on a detached volume and carried out by the
   * controllers (attach with the frontend off, revert, detach); cleared when done. Absent = none.
   */
  revertRequested: z.object({ snapshot: z.string().min(1), requestedAt: z.string() }).optional(),
  /** A snapshot purge asked at this time, run by the controllers while attached; cleared when done. */
  purgeRequestedAt: z.string().optional(),
  /** Longhorn's backup URL to restore this volume from at creation ('' = an empty volume). */
  fromBackup: z.string().default(''),
  /**
   * Standby (DR) volume: keeps restoring its backup volume's newest backup, incrementally, with no
   * frontend; setting it to false (activateVolume) finishes the last restore and opens the volume for use.
   */
  standby: z.boolean().default(false),
});
export type VolumeSpec = z.infer<typeof volumeSpec>;

export const volumeStatus = z.object({
  ownerID: z.string().default(''),
  state: volumeState.default('creating'),
  robustness: volumeRobustness.default('unknown'),
  /** Node the engine actually runs on. */
  currentNodeID: z.string().default(''),
  /** The NBD URI clients connect to, e.g. nbd://127.0.0.1:10809/vol1. Empty while detached. */
  endpoint: z.string().default(''),
  currentSize: z.number().int().default(0),
  actualSize: z.number().int().default(0),
  conditions: z.array(condition).default([]),
  lastDegradedAt: z.string().default(''),
  lastAutoSalvagedAt: z.string().default(''),
  frontendDisabled: z.boolean().default(false),
  expansionRequired: z.boolean().default(false),
  /** A restore from spec.fromBackup (or a standby's next backup) is still to be done. */
  restoreRequired: z.boolean().default(false),
  restoreInitiated: z.boolean().default(false),
  isStandby: z.boolean().default(false),
  /** The backup last restored into this volume (standby volumes move it forward). */
  lastRestoredBackup: z.string().default(''),
  restoreProgress: z.number().int().min(0).max(100).default(0),
  /** The newest completed backup of this volume, and the snapshot time it holds. */
  lastBackup: z.string().default(''),
  lastBackupAt: z.string().default(''),
});
export type VolumeStatus = z.infer<typeof volumeStatus>;

export const volumeSchema = resourceSchema('Volume', volumeSpec, volumeStatus.default(volumeStatus.parse({})));
export type Volume = Resource<'Volume', VolumeSpec, VolumeStatus>;
