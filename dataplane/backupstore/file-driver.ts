// A backup target on a directory: a local disk in tests, an NFS or CIFS share mounted by the node in
// production (Longhorn mounts those itself; we leave mounting to the operator). Objects are files under
// the target root, written whole through a temp file and a rename, so a reader never sees half a block
// or half a cfg, even across a crash.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  BackupNotFoundError,
  type BackupStoreDriver,
  BackupTargetError,
  type BackupTargetLocation,
  type DriverStats,
} from './types.js';

/**
 * statfs f_type of filesystems whose clients cache attributes and directory listings (other machines'
 * writes show up late): NFS, SMB/CIFS (3 magics), FUSE (s3fs, sshfs…), Ceph, 9p, virtiofs, AFS, Lustre.
 */
const NETWORK_FS_MAGIC = new Set([
  0x6969, 0x517b, 0xff534d42, 0xfe534d42, 0x65735546, 0x00c36400, 0x01021997, 0x6a656a63, 0x5346414f, 0x0bd00bd0,
]);

/** Temp files carry this marker so list() never shows a write in flight. */
const TEMP_MARKER = '.shorthorn-tmp-';

export function createFileDriver(location: Extract<BackupTargetLocation, { kind: 'file' }>): BackupStoreDriver {
  const root = location.dir;
  const stats: DriverStats = { puts: 0, gets: 0, bytesWritten: 0, bytesRead: 0 };

  /**
   * Every operation first checks the root: an unmounted share must read as "target down", never as
   * "no backups" (list → []) and never be written into (mkdir -p would recreate it on the local disk).
   */
  async function checkRoot(): Promise<void> {
    let isDir: boolean;
    try {
      isDir = (await stat(root)).isDirectory();
    } catch (cause) {
      throw new BackupTargetError(
        `backup target ${location.url} is unavailable: ${root} ${describeFsError(cause)} (is the share mounted?)`,
        { cause },
      );
    }
    if (!isDir) throw new BackupTargetError(`backup target ${location.url} is unavailable: ${root} is not a directory`);
  }

  function resolve(path: string): string {
    const segments = path.split('/').filter((s) => s !== '');
    if (path.startsWith('/') || segments.some((s) => s === '..' || s === '.')) {
      throw new Error(`invalid backup store path ${JSON.stringify(path)}: must be relative without '.' or '..'`);
    }
    return join(root, ...segments);
  }

  /** A failure other than "not found" is the target's fault (permissions, I/O error, stale mount). */
  function targetError(op: string, path: string, cause: unknown): BackupTargetError {
    return new BackupTargetError(`backup target ${location.url}: ${op} ${path}: ${describeFsError(cause)}`, { cause });
  }

  return {
    kind: 'file',
    url: location.url,
    stats,

    async exists(path) {
      await checkRoot();
      try {
        await stat(resolve(path));
        return true;
      } catch (cause) {
        if (isNotFound(cause)) return false;
        throw targetError('stat', path, cause);
      }
    },

    async read(path) {
      await checkRoot();
      let data: Buffer;
      try {
        data = await readFile(resolve(path));
      } catch (cause) {
        if (isNotFound(cause)) throw new BackupNotFoundError(`${path} not found in backup target ${location.url}`);
        throw targetError('read', path, cause);
      }
      stats.gets++;
      stats.bytesRead += data.length;
      return data;
    },

    async write(path, data) {
      await checkRoot();
      const file = resolve(path);
      const dir = dirname(file);
      const tmp = join(dir, `${TEMP_MARKER}${process.pid}-${randomBytes(6).toString('hex')}`);
      try {
        await mkdir(dir, { recursive: true });
        const handle = await open(tmp, 'w', 0o644);
        try {
          await handle.writeFile(data);
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(tmp, file);
        await syncDirectory(dir);
      } catch (cause) {
        await rm(tmp, { force: true }).catch(() => undefined);
        throw targetError('write', path, cause);
      }
      stats.puts++;
      stats.bytesWritten += data.length;
    },

    async remove(path) {
      await checkRoot();
      const target = resolve(path);
      if (target === root) throw new Error(`refusing to remove the backup target root ${root}`);
      try {
        if (path.endsWith('/')) {
          await rm(target, { recursive: true, force: true });
        } else {
          try {
            await rm(target, { force: true });
          } catch (cause) {
            // A directory named without the trailing '/': remove it only if empty, like Longhorn's
            // final removal of a volume directory after its contents.
            if (
              (cause as NodeJS.ErrnoException).code !== 'ERR_FS_EISDIR' &&
              (cause as NodeJS.ErrnoException).code !== 'EISDIR'
            ) {
              throw cause;
            }
            await rmdir(target);
          }
        }
      } catch (cause) {
        if (isNotFound(cause)) return;
        throw targetError('remove', path, cause);
      }
    },

    async list(dir) {
      await checkRoot();
      try {
        const names = await readdir(resolve(dir));
        return names.filter((n) => !n.startsWith(TEMP_MARKER)).sort();
      } catch (cause) {
        if (isNotFound(cause)) return [];
        if ((cause as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
        throw targetError('list', dir, cause);
      }
    },

    async consistentListing() {
      await checkRoot();
      return !NETWORK_FS_MAGIC.has((await statfs(root)).type);
    },

    async mtime(path) {
      await checkRoot();
      try {
        return (await stat(resolve(path))).mtime;
      } catch (cause) {
        if (isNotFound(cause)) return undefined;
        throw targetError('stat', path, cause);
      }
    },

    async close() {},
  };
}

/** The rename is durable only once the directory entry is: fsync the directory as Longhorn's meta writes do. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isNotFound(cause: unknown): boolean {
  return (cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function describeFsError(cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'is not accessible (permission denied)';
  return (cause as Error | undefined)?.message ?? String(cause);
}
