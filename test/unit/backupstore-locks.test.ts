// Backup store locks on a consistent target (a local directory): no settle wait, and still never a
// backup and a deletion holding the volume at once, however their announcements interleave.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFileDriver } from '../../dataplane/backupstore/file-driver.js';
import { acquireLock, BACKUP_LOCK, DELETION_LOCK, type HeldLock } from '../../dataplane/backupstore/locks.js';
import { BackupLockedError, type BackupStoreDriver } from '../../dataplane/backupstore/types.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function target() {
  const dir = mkdtempSync(join(tmpdir(), 'shorthorn-locks-'));
  dirs.push(dir);
  return createFileDriver({ kind: 'file', url: `file://${dir}`, dir });
}

/**
 * Test double around the real driver: each call starts after a random 0–2 ms, so the two clients'
 * announce / look / mark steps interleave in every order (without it they run in lockstep), and mtimes
 * come in whole seconds, as S3's LastModified does — so two announcements tie and the name decides.
 */
function jittered(driver: BackupStoreDriver): BackupStoreDriver {
  const later = <T>(f: () => Promise<T>) =>
    new Promise<T>((resolve, reject) => setTimeout(() => f().then(resolve, reject), Math.random() * 2));
  return {
    ...driver,
    kind: driver.kind,
    url: driver.url,
    stats: driver.stats,
    exists: (p) => later(() => driver.exists(p)),
    read: (p) => later(() => driver.read(p)),
    write: (p, d) => later(() => driver.write(p, d)),
    remove: (p) => later(() => driver.remove(p)),
    list: (p) => later(() => driver.list(p)),
    mtime: (p) =>
      later(async () => {
        const t = await driver.mtime(p);
        return t && new Date(Math.floor(t.getTime() / 1000) * 1000);
      }),
    consistentListing: () => driver.consistentListing(),
    close: () => driver.close(),
  };
}

describe('backup store locks', () => {
  it('a local directory is a consistent target: a lock is taken without the 2 s settle wait', async () => {
    const driver = target();
    expect(await driver.consistentListing()).toBe(true);
    const started = Date.now();
    const lock = await acquireLock(driver, 'vol', BACKUP_LOCK);
    expect(Date.now() - started).toBeLessThan(1000);
    await lock.release();
  });

  it('a backup and a deletion racing for the same volume never both hold it (300 races)', async () => {
    const driver = jittered(target());
    let both = 0;
    let held = 0;
    for (let i = 0; i < 300; i++) {
      const results = await Promise.allSettled([
        acquireLock(driver, 'vol', BACKUP_LOCK, { waitMs: 0 }),
        acquireLock(driver, 'vol', DELETION_LOCK, { waitMs: 0 }),
      ]);
      const ok = results.filter((r): r is PromiseFulfilledResult<HeldLock> => r.status === 'fulfilled');
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(BackupLockedError);
      if (ok.length === 2) both++;
      held += ok.length;
      await Promise.all(ok.map((r) => r.value.release()));
    }
    expect(both).toBe(0);
    expect(held).toBeGreaterThan(0); // not a lock that refuses everyone
    expect(await driver.list('backupstore/volumes')).toBeDefined();
  });

  it('the worst interleaving: B announces after A looked and looks before A marks itself Acquired, with tied mtimes', async () => {
    // A's mark waits until B has finished trying; B's announcement waits until A has looked. With
    // whole-second mtimes the tie goes to the smaller lock name, so B (if its name is smaller) sees A as
    // a waiting lock it outranks — both would hold without A's second look. Repeated so both name
    // orders occur.
    let bothHeld = 0;
    let bWonTie = 0;
    for (let i = 0; i < 40; i++) {
      const base = jittered(target());
      let aLooked!: () => void;
      const aHasLooked = new Promise<void>((r) => {
        aLooked = r;
      });
      let bDone!: () => void;
      const bHasTried = new Promise<void>((r) => {
        bDone = r;
      });
      const driverA: BackupStoreDriver = {
        ...base,
        list: async (p) => {
          const out = await base.list(p);
          if (p.endsWith('/locks')) aLooked();
          return out;
        },
        write: async (p, d) => {
          if (p.includes('/locks/') && d.toString().includes('"Acquired":true')) await bHasTried;
          return base.write(p, d);
        },
      };
      const a = acquireLock(driverA, 'vol', BACKUP_LOCK, { waitMs: 0 });
      await aHasLooked;
      const b = acquireLock(base, 'vol', DELETION_LOCK, { waitMs: 0 }).finally(() => bDone());
      const [ra, rb] = await Promise.allSettled([a, b]);
      if (rb.status === 'fulfilled') bWonTie++;
      if (ra.status === 'fulfilled' && rb.status === 'fulfilled') bothHeld++;
      for (const r of [ra, rb]) if (r.status === 'fulfilled') await r.value.release();
    }
    expect(bothHeld).toBe(0);
    expect(bWonTie).toBeGreaterThan(0); // the dangerous order did occur
  });

  it('two backups share the volume (same lock type)', async () => {
    const driver = target();
    const [a, b] = await Promise.all([
      acquireLock(driver, 'vol', BACKUP_LOCK, { waitMs: 0 }),
      acquireLock(driver, 'vol', BACKUP_LOCK, { waitMs: 0 }),
    ]);
    await a.release();
    await b.release();
  });
});
