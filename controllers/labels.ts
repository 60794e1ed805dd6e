// Labels, names and finalizers the controllers put on resources they create.
import { randomBytes } from 'node:crypto';

export const FINALIZER = 'shorthorn.io';
export const VOLUME_LABEL = 'shorthorn.io/volume';
export const NODE_LABEL = 'shorthorn.io/node';

export function engineNameOf(volume: string): string {
  return `${volume}-e-0`;
}

/** `<volume>-r-<8 hex>`, as Longhorn names replicas; also the data directory's name. */
export function newReplicaName(volume: string): string {
  return `${volume}-r-${randomBytes(4).toString('hex')}`;
}

/** Metadata of a resource a volume owns: its label, our finalizer, and the volume as controlling owner. */
export function ownedByVolume(
  name: string,
  vol: { metadata: { name: string; uid: string } },
  opts: { finalizer?: boolean } = {},
) {
  return {
    name,
    labels: { [VOLUME_LABEL]: vol.metadata.name },
    finalizers: opts.finalizer === false ? [] : [FINALIZER],
    ownerReferences: [{ kind: 'Volume', name: vol.metadata.name, uid: vol.metadata.uid, controller: true }],
  };
}

/** `backup-<16 hex>`, as Longhorn names backups (also their name in the backup store). */
export function newBackupName(): string {
  return `backup-${randomBytes(8).toString('hex')}`;
}
