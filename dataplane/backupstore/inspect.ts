// Reading what a backup store holds: which volumes, which backups, their configs. Read-only and
// lock-free, like Longhorn's list/inspect: a concurrent writer replaces whole files, so a reader sees
// either the old or the new config.
import { type BackupConfig, decodeBackupConfig, decodeVolumeConfig, type VolumeConfig } from './config.js';
import {
  backupConfigPath,
  backupNameOfConfigFile,
  backupsDir,
  isValidName,
  VOLUMES_DIR,
  volumeConfigPath,
} from './layout.js';
import { BackupNotFoundError, type BackupStoreDriver } from './types.js';

/** Names of the volumes with a volume.cfg, walking volumes/<xx>/<yy>/<name>/. */
export async function listBackupVolumes(driver: BackupStoreDriver): Promise<string[]> {
  const names: string[] = [];
  for (const l1 of await driver.list(VOLUMES_DIR)) {
    for (const l2 of await driver.list(`${VOLUMES_DIR}/${l1}`)) {
      for (const name of await driver.list(`${VOLUMES_DIR}/${l1}/${l2}`)) {
        // A directory without volume.cfg is a half-created or half-deleted volume: not listed.
        if (isValidName(name) && (await driver.exists(volumeConfigPath(name)))) names.push(name);
      }
    }
  }
  return names.sort();
}

export async function readVolumeConfig(driver: BackupStoreDriver, volumeName: string): Promise<VolumeConfig> {
  const path = volumeConfigPath(volumeName);
  const data = await readOrNotFound(driver, path, `backup volume ${volumeName} does not exist in ${driver.url}`);
  return decodeVolumeConfig(data, `${driver.url} ${path}`);
}

export async function readBackupConfig(
  driver: BackupStoreDriver,
  volumeName: string,
  backupName: string,
): Promise<BackupConfig> {
  const path = backupConfigPath(volumeName, backupName);
  const data = await readOrNotFound(
    driver,
    path,
    `backup ${backupName} of volume ${volumeName} does not exist in ${driver.url}`,
  );
  return decodeBackupConfig(data, `${driver.url} ${path}`);
}

/** Names from the backups/ directory, in progress or not. */
export async function listBackupNames(driver: BackupStoreDriver, volumeName: string): Promise<string[]> {
  return (await driver.list(backupsDir(volumeName)))
    .map(backupNameOfConfigFile)
    .filter((n): n is string => n !== undefined);
}

export interface ListBackupsOptions {
  /** Called for a cfg that cannot be read or decoded (it is left out of the result). */
  onUnreadable?: (backupName: string, error: Error) => void;
}

/**
 * Every backup config of the volume, completed and in progress (`createdTime === ''`, see
 * isBackupInProgress): callers that show backups to users must filter the latter out, as Longhorn
 * does not list them.
 */
export async function listBackups(
  driver: BackupStoreDriver,
  volumeName: string,
  opts: ListBackupsOptions = {},
): Promise<BackupConfig[]> {
  const result: BackupConfig[] = [];
  for (const name of await listBackupNames(driver, volumeName)) {
    try {
      result.push(await readBackupConfig(driver, volumeName, name));
    } catch (err) {
      if ((err as { code?: string }).code === 'TARGET_UNAVAILABLE') throw err;
      // Deleted between list and read: not a backup any more.
      if (err instanceof BackupNotFoundError) continue;
      opts.onUnreadable?.(name, err as Error);
    }
  }
  return result;
}

async function readOrNotFound(driver: BackupStoreDriver, path: string, message: string): Promise<Buffer> {
  try {
    return await driver.read(path);
  } catch (err) {
    if (err instanceof BackupNotFoundError || (err as { code?: string }).code === 'ENOENT') {
      throw new BackupNotFoundError(message, { cause: err });
    }
    throw err;
  }
}
