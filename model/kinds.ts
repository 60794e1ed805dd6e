// Every kind the store holds, with its schema: the one place that maps a kind name to its type.
import type { z } from 'zod';
import { type ApiToken, apiTokenSchema } from './api-token.js';
import { type Backup, backupSchema } from './backup.js';
import { type BackupTarget, backupTargetSchema } from './backup-target.js';
import { type BackupVolume, backupVolumeSchema } from './backup-volume.js';
import { type Engine, engineSchema } from './engine.js';
import { type Event, eventSchema } from './event.js';
import { type InstanceManager, instanceManagerSchema } from './instance-manager.js';
import { type Node, nodeSchema } from './node.js';
import { type RecurringJob, recurringJobSchema } from './recurring-job.js';
import { type Replica, replicaSchema } from './replica.js';
import { type Secret, secretSchema } from './secret.js';
import { type Setting, settingSchema } from './setting.js';
import { type Snapshot, snapshotSchema } from './snapshot.js';
import { type Volume, volumeSchema } from './volume.js';
import { type VolumeAttachment, volumeAttachmentSchema } from './volume-attachment.js';

export interface KindMap {
  Node: Node;
  Volume: Volume;
  Engine: Engine;
  Replica: Replica;
  VolumeAttachment: VolumeAttachment;
  Snapshot: Snapshot;
  Setting: Setting;
  InstanceManager: InstanceManager;
  Event: Event;
  ApiToken: ApiToken;
  BackupTarget: BackupTarget;
  BackupVolume: BackupVolume;
  Backup: Backup;
  RecurringJob: RecurringJob;
  Secret: Secret;
}
export type Kind = keyof KindMap;
export type AnyResource = KindMap[Kind];

export const KIND_SCHEMAS: { [K in Kind]: z.ZodType } = {
  Node: nodeSchema,
  Volume: volumeSchema,
  Engine: engineSchema,
  Replica: replicaSchema,
  VolumeAttachment: volumeAttachmentSchema,
  Snapshot: snapshotSchema,
  Setting: settingSchema,
  InstanceManager: instanceManagerSchema,
  Event: eventSchema,
  ApiToken: apiTokenSchema,
  BackupTarget: backupTargetSchema,
  BackupVolume: backupVolumeSchema,
  Backup: backupSchema,
  RecurringJob: recurringJobSchema,
  Secret: secretSchema,
};

export const KINDS = Object.keys(KIND_SCHEMAS) as Kind[];

/** Fills defaults and checks a resource of `kind`; throws a ZodError naming the bad field. */
export function parseResource<K extends Kind>(kind: K, input: unknown): KindMap[K] {
  return KIND_SCHEMAS[kind].parse(input) as KindMap[K];
}
