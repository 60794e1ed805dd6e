// Longhorn's backup store locks (reference §5.8). The store has no compare-and-swap, so a lock is a
// file that says "I want this", and priority is settled by what every client can see alike: whether a
// lock is already Acquired, then the *target's* mtime of the file (not the clients' clocks), then the
// name. Backups and restores (type 1) run side by side; a deletion (type 2) excludes both, because its
// block GC would remove blocks a running backup has just found present and decided not to upload.
import { generateLockName, lockNameOfFile, lockPath, locksDir } from './layout.js';
import { BackupLockedError, type BackupStoreDriver } from './types.js';

export const BACKUP_LOCK = 1;
/** Restores take the backup lock type: they coexist with backups and exclude deletions. */
export const RESTORE_LOCK = 1;
export const DELETION_LOCK = 2;
export type LockType = typeof BACKUP_LOCK | typeof DELETION_LOCK;

/**
 * Longhorn waits this long between writing its lock and reading the others, so that a lock written at
 * the same moment elsewhere is visible by then. Kept on targets whose listings may lag (network
 * filesystems); on consistent ones the second look below makes the wait unnecessary.
 */
export const LOCK_CHECK_WAIT_MS = 2000;
/** A lock not refreshed for this long is dead: its holder crashed. */
export const LOCK_EXPIRY_MS = 150_000;
export const LOCK_REFRESH_MS = 60_000;

export interface LockOptions {
  /** Pause between announcing the lock and checking the others; default: 0 on a consistent target, else LOCK_CHECK_WAIT_MS. */
  waitMs?: number;
  expiryMs?: number;
  refreshMs?: number;
  signal?: AbortSignal;
}

export interface HeldLock {
  readonly name: string;
  readonly type: LockType;
  /** Stops the refresh and removes the lock file. Safe to call twice. */
  release(): Promise<void>;
}

interface SeenLock {
  name: string;
  type: number;
  acquired: boolean;
  serverTime: Date;
}

/**
 * One attempt, as Longhorn's reference §5.8 describes — announce, wait, look, mark Acquired — plus a
 * second look after marking: if a conflicting lock is Acquired by then, this one backs off. Two
 * clients can then never both hold: for both to keep, each one's second look would have to come
 * before the other's mark, and each mark comes before its own second look — a cycle. That holds
 * without any wait on a target where a write is seen by every later list (consistentListing), so the
 * wait is only paid where listings lag. Longhorn clients on the same target see our locks by its rules.
 * Rejects with BackupLockedError; the caller decides whether to retry later.
 */
export async function acquireLock(
  driver: BackupStoreDriver,
  volumeName: string,
  type: LockType,
  opts: LockOptions = {},
): Promise<HeldLock> {
  const waitMs = opts.waitMs ?? ((await driver.consistentListing()) ? 0 : LOCK_CHECK_WAIT_MS);
  const expiryMs = opts.expiryMs ?? LOCK_EXPIRY_MS;
  const refreshMs = opts.refreshMs ?? LOCK_REFRESH_MS;
  const name = generateLockName();
  const path = lockPath(volumeName, name);

  await driver.write(path, lockFile(name, type, false));
  try {
    const serverTime = (await driver.mtime(path)) ?? new Date();
    await sleep(waitMs, opts.signal);
    const me: SeenLock = { name, type, acquired: false, serverTime };
    const conflicts = async () =>
      (await readLocks(driver, volumeName)).filter(
        (other) => other.name !== name && other.type !== type && Date.now() - other.serverTime.getTime() <= expiryMs,
      );
    const blocked = (other: SeenLock) =>
      new BackupLockedError(
        `backup volume ${volumeName} is locked by a ${describeType(other.type)} in progress ` +
          `(lock ${other.name}${other.acquired ? ', acquired' : ', waiting'} since ${other.serverTime.toISOString()}); ` +
          `cannot start a ${describeType(type)} now, try again when it has finished`,
      );
    for (const other of await conflicts()) if (compareLocks(other, me) < 0) throw blocked(other);
    await driver.write(path, lockFile(name, type, true));
    const raced = (await conflicts()).find((other) => other.acquired);
    if (raced) throw blocked(raced);
  } catch (err) {
    await driver.remove(path).catch(() => undefined);
    throw err;
  }

  // The refresh keeps the file's mtime younger than the expiry while we work. A failed refresh is
  // retried at the next tick; if the target stays unreachable, the operation fails on its own I/O.
  let released = false;
  const timer = setInterval(() => {
    if (!released) driver.write(path, lockFile(name, type, true)).catch(() => undefined);
  }, refreshMs);
  timer.unref();

  return {
    name,
    type,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await driver.remove(path);
    },
  };
}

/** Every readable lock of the volume with the target's mtime; unreadable or vanished ones are skipped, as Longhorn does. */
async function readLocks(driver: BackupStoreDriver, volumeName: string): Promise<SeenLock[]> {
  const names = (await driver.list(locksDir(volumeName)))
    .map(lockNameOfFile)
    .filter((n): n is string => n !== undefined);
  const locks: SeenLock[] = [];
  for (const fileName of names) {
    const path = lockPath(volumeName, fileName);
    try {
      const [data, serverTime] = await Promise.all([driver.read(path), driver.mtime(path)]);
      if (serverTime === undefined) continue;
      const parsed = JSON.parse(data.toString('utf8')) as { Name?: unknown; Type?: unknown; Acquired?: unknown };
      locks.push({
        name: typeof parsed.Name === 'string' && parsed.Name !== '' ? parsed.Name : fileName,
        type: typeof parsed.Type === 'number' ? parsed.Type : 0,
        acquired: parsed.Acquired === true,
        serverTime,
      });
    } catch (err) {
      if ((err as { code?: string }).code === 'TARGET_UNAVAILABLE') throw err;
    }
  }
  return locks;
}

/** Negative when `a` has priority: Acquired first, then the older server time, then the name. */
function compareLocks(a: SeenLock, b: SeenLock): number {
  if (a.acquired !== b.acquired) return a.acquired ? -1 : 1;
  const dt = a.serverTime.getTime() - b.serverTime.getTime();
  if (dt !== 0) return dt;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function lockFile(name: string, type: LockType, acquired: boolean): Buffer {
  // Go's json.Marshal of FileLock: its three exported fields in declaration order.
  return Buffer.from(JSON.stringify({ Name: name, Type: type, Acquired: acquired }));
}

function describeType(type: number): string {
  if (type === BACKUP_LOCK) return 'backup or restore';
  if (type === DELETION_LOCK) return 'deletion';
  return `lock type ${type}`;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
