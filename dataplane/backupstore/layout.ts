// Where things live in a backup store: Longhorn's layout (reference/longhorn-engine.md §5.1), so a
// Longhorn cluster and Shorthorn can read each other's backups. Paths are relative to the target root.
import { createHash, randomBytes } from 'node:crypto';

export const BACKUPSTORE_BASE = 'backupstore';
export const VOLUMES_DIR = `${BACKUPSTORE_BASE}/volumes`;

const BACKUP_CFG_PREFIX = 'backup_';
const CFG_SUFFIX = '.cfg';
const BLOCK_SUFFIX = '.blk';
const LOCK_SUFFIX = '.lck';

/**
 * Longhorn's util.ValidateName. Names become path segments, so this is also what keeps a volume or
 * backup name from escaping its directory ('..', '/').
 */
const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function isValidName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

export function assertValidName(what: string, name: string): void {
  if (!isValidName(name)) {
    throw new Error(`invalid ${what} name ${JSON.stringify(name)}: expected letters, digits, '_', '.', '-'`);
  }
}

/** Volumes are spread over two directory levels named by their SHA-512, as Longhorn does. */
export function volumePath(volumeName: string): string {
  assertValidName('volume', volumeName);
  const h = createHash('sha512').update(volumeName).digest('hex');
  return `${VOLUMES_DIR}/${h.slice(0, 2)}/${h.slice(2, 4)}/${volumeName}`;
}

export function volumeConfigPath(volumeName: string): string {
  return `${volumePath(volumeName)}/volume.cfg`;
}

export function backupsDir(volumeName: string): string {
  return `${volumePath(volumeName)}/backups`;
}

export function backupConfigPath(volumeName: string, backupName: string): string {
  assertValidName('backup', backupName);
  return `${backupsDir(volumeName)}/${BACKUP_CFG_PREFIX}${backupName}${CFG_SUFFIX}`;
}

/** The backup name in a `backup_<name>.cfg` file name; undefined for anything else in backups/. */
export function backupNameOfConfigFile(fileName: string): string | undefined {
  if (!fileName.startsWith(BACKUP_CFG_PREFIX) || !fileName.endsWith(CFG_SUFFIX)) return undefined;
  const name = fileName.slice(BACKUP_CFG_PREFIX.length, -CFG_SUFFIX.length);
  return isValidName(name) ? name : undefined;
}

export function blocksDir(volumeName: string): string {
  return `${volumePath(volumeName)}/blocks`;
}

const CHECKSUM_PATTERN = /^[0-9a-f]{64}$/;

/** Blocks are content-addressed and spread over two directory levels by their checksum. */
export function blockPath(volumeName: string, checksum: string): string {
  if (!CHECKSUM_PATTERN.test(checksum)) throw new Error(`invalid block checksum ${JSON.stringify(checksum)}`);
  return `${blocksDir(volumeName)}/${checksum.slice(0, 2)}/${checksum.slice(2, 4)}/${checksum}${BLOCK_SUFFIX}`;
}

/** The checksum in a `<checksum>.blk` file name; undefined for anything else. */
export function checksumOfBlockFile(fileName: string): string | undefined {
  if (!fileName.endsWith(BLOCK_SUFFIX)) return undefined;
  const checksum = fileName.slice(0, -BLOCK_SUFFIX.length);
  return CHECKSUM_PATTERN.test(checksum) ? checksum : undefined;
}

export function locksDir(volumeName: string): string {
  return `${volumePath(volumeName)}/locks`;
}

export function lockPath(volumeName: string, lockName: string): string {
  assertValidName('lock', lockName);
  return `${locksDir(volumeName)}/${lockName}${LOCK_SUFFIX}`;
}

export function lockNameOfFile(fileName: string): string | undefined {
  if (!fileName.endsWith(LOCK_SUFFIX)) return undefined;
  const name = fileName.slice(0, -LOCK_SUFFIX.length);
  return isValidName(name) ? name : undefined;
}

/** Longhorn's util.GenerateName: `<prefix>-<16 hex>`. */
function generateName(prefix: string): string {
  return `${prefix}-${randomBytes(8).toString('hex')}`;
}

export function generateBackupName(): string {
  return generateName('backup');
}

export function generateLockName(): string {
  return generateName('lock');
}
