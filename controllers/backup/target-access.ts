// The manager's way to a backup target: the BackupTarget resource's URL and its Secret's keys, opened
// as a backup store driver. Drivers are kept per URL + credential (an S3 client holds sockets) and
// replaced when either changes.
import { createHash } from 'node:crypto';
import { openTarget } from '../../dataplane/backupstore/open-target.js';
import type { BackupStoreDriver, TargetCredential } from '../../dataplane/backupstore/types.js';
import { DEFAULT_BACKUP_TARGET } from '../../model/backup-target.js';
import type { ControllerContext } from '../context.js';

export interface TargetAccess {
  name: string;
  url: string;
  credential: TargetCredential;
}

/** The target's URL and credential, or a reason why there is none to use. */
export function targetAccess(
  ctx: ControllerContext,
  name: string = DEFAULT_BACKUP_TARGET,
): TargetAccess | { error: string } {
  const t = ctx.informers.BackupTarget.get(name);
  if (!t?.spec.backupTargetURL) return { error: `no backup target set (backup target ${name} has no URL)` };
  let credential: TargetCredential = {};
  if (t.spec.credentialSecret) {
    const secret = ctx.informers.Secret.get(t.spec.credentialSecret);
    if (!secret)
      return { error: `credential secret ${t.spec.credentialSecret} of backup target ${name} does not exist` };
    credential = secret.spec.data;
  }
  return { name, url: t.spec.backupTargetURL, credential };
}

const drivers = new Map<string, { key: string; driver: BackupStoreDriver }>();

/** A driver for the access; the same one while URL and credential stay the same. Throws on a bad URL. */
export function driverFor(access: TargetAccess): BackupStoreDriver {
  const key = createHash('sha256')
    .update(JSON.stringify([access.url, access.credential]))
    .digest('hex');
  const cached = drivers.get(access.name);
  if (cached?.key === key) return cached.driver;
  if (cached) void cached.driver.close().catch(() => {});
  const driver = openTarget(access.url, access.credential);
  drivers.set(access.name, { key, driver });
  return driver;
}

/** Close every cached driver (manager shutdown). */
export async function closeDrivers(): Promise<void> {
  const all = [...drivers.values()];
  drivers.clear();
  await Promise.all(all.map((d) => d.driver.close().catch(() => {})));
}
