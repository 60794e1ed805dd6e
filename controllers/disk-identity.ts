// A disk keeps its identity in a small file at its root, as Longhorn's longhorn-disk.cfg: replicas are
// scheduled by disk UUID, so a disk mounted at a new path, or a different filesystem mounted at the
// old one, is told apart from the disk the replicas were placed on.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const DISK_CONFIG_FILE = 'shorthorn-disk.cfg';

export interface DiskInfo {
  diskUUID: string;
  storageMaximum: number;
  storageAvailable: number;
  filesystemType: string;
}

const FS_TYPES: Record<number, string> = { 61267: 'ext4', 1481003842: 'xfs', 16914836: 'tmpfs', 2435016766: 'btrfs' };

/**
 * statfs of the disk and its UUID, created on first use. Throws with the reason when the path is
 * missing or unusable; a missing path is never created here (a vanished mount must not turn into an
 * empty directory on the root filesystem that silently takes replicas).
 */
export async function readDiskInfo(path: string, createIfNew: boolean): Promise<DiskInfo> {
  const st = await statfs(path);
  const cfgPath = join(path, DISK_CONFIG_FILE);
  let diskUUID: string;
  try {
    diskUUID = (JSON.parse(await readFile(cfgPath, 'utf8')) as { diskUUID: string }).diskUUID;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !createIfNew) throw err;
    diskUUID = randomUUID();
    await mkdir(join(path, 'replicas'), { recursive: true });
    await writeFile(`${cfgPath}.tmp`, JSON.stringify({ diskUUID }));
    await rename(`${cfgPath}.tmp`, cfgPath);
  }
  return {
    diskUUID,
    storageMaximum: st.blocks * st.bsize,
    storageAvailable: st.bavail * st.bsize,
    filesystemType: FS_TYPES[st.type] ?? `0x${st.type.toString(16)}`,
  };
}
