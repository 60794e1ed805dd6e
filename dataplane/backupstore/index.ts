// The backup store's public API in one import for its users (controllers, CLI, replica and engine
// glue). Note: DESIGN.md §8 discourages barrel files; this one was asked for explicitly, and code inside
// dataplane/backupstore imports the concept files directly, never this file.
export { type BackupMode, type CreateBackupOptions, type CreateBackupResult, createBackup } from './backup.js';
export {
  blockChecksum,
  COMPRESSION_METHODS,
  compressBlock,
  decompressAndVerify,
  decompressBlock,
  isCompressionMethod,
} from './compression.js';
export {
  BACKUP_PARAM_BLOCK_SIZE,
  BACKUP_PARAM_MODE,
  type BackupConfig,
  type BlockMapping,
  backupBlockSizeOf,
  decodeBackupConfig,
  decodeVolumeConfig,
  encodeBackupConfig,
  encodeVolumeConfig,
  isBackupInProgress,
  type VolumeConfig,
} from './config.js';
export {
  ABANDONED_BACKUP_AFTER_MS,
  collectGarbage,
  type DeleteBackupOptions,
  type DeleteBackupResult,
  deleteBackup,
  deleteBackupVolume,
  type GarbageCollectionResult,
} from './delete.js';
export { createFileDriver } from './file-driver.js';
export {
  type ListBackupsOptions,
  listBackupNames,
  listBackups,
  listBackupVolumes,
  readBackupConfig,
  readVolumeConfig,
} from './inspect.js';
export {
  backupConfigPath,
  blockPath,
  generateBackupName,
  generateLockName,
  isValidName,
  lockPath,
  volumeConfigPath,
  volumePath,
} from './layout.js';
export {
  acquireLock,
  BACKUP_LOCK,
  DELETION_LOCK,
  type HeldLock,
  LOCK_CHECK_WAIT_MS,
  LOCK_EXPIRY_MS,
  LOCK_REFRESH_MS,
  type LockOptions,
  type LockType,
  RESTORE_LOCK,
} from './locks.js';
export { openTarget } from './open-target.js';
export { type RestoreBackupOptions, type RestoreBackupResult, restoreBackup } from './restore.js';
export { createS3Driver } from './s3-driver.js';
export { type DecodedBackupUrl, decodeBackupUrl, encodeBackupUrl, parseTargetUrl } from './target-url.js';
export {
  BACKUP_BLOCK_SIZE,
  BackupLockedError,
  BackupNotFoundError,
  type BackupSource,
  type BackupStoreDriver,
  BackupTargetError,
  type BackupTargetLocation,
  type CompressionMethod,
  type DriverStats,
  type Progress,
  type RestoreSink,
  type TargetCredential,
} from './types.js';
