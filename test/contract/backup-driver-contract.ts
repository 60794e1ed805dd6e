// What every BackupStoreDriver must do (dataplane/backupstore/types.ts), whatever the target: a
// driver's test file calls backupDriverContract with a factory that returns a driver on an EMPTY
// target (a fresh directory, a fresh S3 prefix). Nothing here knows which kind it runs on.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackupNotFoundError, type BackupStoreDriver } from '../../dataplane/backupstore/types.js';

/** The factory's answer: a driver, or a driver plus what removes its target afterwards. */
export type MadeDriver = BackupStoreDriver | { driver: BackupStoreDriver; cleanup: () => Promise<void> };

const VOL = 'backupstore/volumes/ab/cd/vol1';

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

export function backupDriverContract(name: string, makeDriver: () => MadeDriver | Promise<MadeDriver>): void {
  describe(`backup driver contract: ${name}`, () => {
    let driver: BackupStoreDriver;
    let cleanup: (() => Promise<void>) | undefined;

    beforeEach(async () => {
      const made = await makeDriver();
      if ('driver' in made && 'cleanup' in made) {
        driver = made.driver;
        cleanup = made.cleanup;
      } else {
        driver = made as BackupStoreDriver;
        cleanup = undefined;
      }
    });
    afterEach(async () => {
      await driver?.close();
      await cleanup?.();
    });

    it('writes and reads back binary objects, counting them in stats', async () => {
      const small = Buffer.from('{"Name":"vol1","Size":"1073741824"}');
      const block = bytes(2 * 1024 * 1024 + 1, 7); // a 2 MiB block, and one byte more
      const before = { ...driver.stats };
      await driver.write(`${VOL}/volume.cfg`, small);
      await driver.write(`${VOL}/blocks/12/34/1234.blk`, block);
      expect(await driver.read(`${VOL}/volume.cfg`)).toEqual(small);
      const back = await driver.read(`${VOL}/blocks/12/34/1234.blk`);
      expect(back.length).toBe(block.length);
      expect(back.equals(block)).toBe(true);
      expect(await driver.exists(`${VOL}/volume.cfg`)).toBe(true);
      expect(driver.stats.puts - before.puts).toBe(2);
      expect(driver.stats.gets - before.gets).toBe(2);
      expect(driver.stats.bytesWritten - before.bytesWritten).toBe(small.length + block.length);
      expect(driver.stats.bytesRead - before.bytesRead).toBe(small.length + block.length);
    });

    it('writes an empty object', async () => {
      await driver.write('backupstore/empty', Buffer.alloc(0));
      expect(await driver.exists('backupstore/empty')).toBe(true);
      expect((await driver.read('backupstore/empty')).length).toBe(0);
    });

    it('overwrites: a read after the second write sees the second content', async () => {
      await driver.write(`${VOL}/volume.cfg`, Buffer.from('first version, longer than the second'));
      await driver.write(`${VOL}/volume.cfg`, Buffer.from('second'));
      expect((await driver.read(`${VOL}/volume.cfg`)).toString()).toBe('second');
    });

    it('a missing object: read rejects with BackupNotFoundError (ENOENT), exists is false, mtime undefined', async () => {
      await driver.write(`${VOL}/volume.cfg`, Buffer.from('x'));
      for (const path of [`${VOL}/missing.cfg`, 'nothing/here/at/all.cfg']) {
        const err = await rejection(driver.read(path));
        expect(err).toBeInstanceOf(BackupNotFoundError);
        expect((err as BackupNotFoundError).code).toBe('ENOENT');
        expect(await driver.exists(path)).toBe(false);
        expect(await driver.mtime(path)).toBeUndefined();
      }
    });

    it('lists the immediate children of a directory, sorted, directories and objects alike', async () => {
      await Promise.all([
        driver.write(`${VOL}/volume.cfg`, Buffer.from('v')),
        driver.write(`${VOL}/backups/backup_b.cfg`, Buffer.from('b')),
        driver.write(`${VOL}/backups/backup_a.cfg`, Buffer.from('a')),
        driver.write(`${VOL}/blocks/12/34/1234.blk`, Buffer.from('1')),
        driver.write(`${VOL}/blocks/56/78/5678.blk`, Buffer.from('5')),
        driver.write(`${VOL}/locks/lock-0123456789abcdef.lck`, Buffer.from('l')),
        driver.write('backupstore/volumes/ab/cd/vol10/volume.cfg', Buffer.from('other')),
      ]);
      expect(await driver.list(VOL)).toEqual(['backups', 'blocks', 'locks', 'volume.cfg']);
      expect(await driver.list(`${VOL}/backups`)).toEqual(['backup_a.cfg', 'backup_b.cfg']);
      expect(await driver.list(`${VOL}/blocks`)).toEqual(['12', '56']);
      expect(await driver.list(`${VOL}/blocks/12/34`)).toEqual(['1234.blk']);
      expect(await driver.list('backupstore/volumes/ab/cd')).toEqual(['vol1', 'vol10']);
      expect(await driver.list('')).toEqual(['backupstore']);
      expect(await driver.list('backupstore/volumes/zz')).toEqual([]);
      expect(await driver.list('no-such-dir')).toEqual([]);
    });

    it('lists and removes a directory with more than 1000 entries (S3 pages and delete batches)', async () => {
      const names = Array.from({ length: 1005 }, (_, i) => `${i.toString(16).padStart(4, '0')}.blk`);
      for (let i = 0; i < names.length; i += 50) {
        await Promise.all(names.slice(i, i + 50).map((n) => driver.write(`${VOL}/blocks/${n}`, Buffer.from(n))));
      }
      expect(await driver.list(`${VOL}/blocks`)).toEqual([...names].sort());
      await driver.remove(`${VOL}/blocks/`);
      expect(await driver.list(`${VOL}/blocks`)).toEqual([]);
      expect(await driver.list(VOL)).toEqual([]);
    }, 180_000);

    it('removes an object; removing a missing one is not an error', async () => {
      await driver.write(`${VOL}/backups/backup_a.cfg`, Buffer.from('a'));
      await driver.write(`${VOL}/backups/backup_b.cfg`, Buffer.from('b'));
      await driver.remove(`${VOL}/backups/backup_a.cfg`);
      expect(await driver.exists(`${VOL}/backups/backup_a.cfg`)).toBe(false);
      expect(await rejection(driver.read(`${VOL}/backups/backup_a.cfg`))).toBeInstanceOf(BackupNotFoundError);
      expect(await driver.list(`${VOL}/backups`)).toEqual(['backup_b.cfg']);
      await driver.remove(`${VOL}/backups/backup_a.cfg`);
      await driver.remove('never/written.cfg');
      await driver.remove('never/written/');
    });

    it('removes everything under a prefix ending in "/", and nothing beside it', async () => {
      await Promise.all([
        driver.write(`${VOL}/volume.cfg`, Buffer.from('v')),
        driver.write(`${VOL}/backups/backup_a.cfg`, Buffer.from('a')),
        driver.write(`${VOL}/blocks/12/34/1234.blk`, Buffer.from('1')),
        // Shares the name prefix "vol1" but is another directory: must survive.
        driver.write('backupstore/volumes/ab/cd/vol10/volume.cfg', Buffer.from('other')),
        driver.write('backupstore/volumes/ab/cd/vol1.cfg', Buffer.from('sibling object')),
      ]);
      await driver.remove(`${VOL}/`);
      expect(await driver.exists(`${VOL}/volume.cfg`)).toBe(false);
      expect(await driver.exists(`${VOL}/blocks/12/34/1234.blk`)).toBe(false);
      expect(await driver.list(VOL)).toEqual([]);
      expect(await driver.list('backupstore/volumes/ab/cd')).toEqual(['vol1.cfg', 'vol10']);
      expect((await driver.read('backupstore/volumes/ab/cd/vol10/volume.cfg')).toString()).toBe('other');
    });

    it('refuses to remove the whole target', async () => {
      await driver.write(`${VOL}/volume.cfg`, Buffer.from('v'));
      await expect(driver.remove('/')).rejects.toThrow();
      expect(await driver.exists(`${VOL}/volume.cfg`)).toBe(true);
    });

    it("mtime is the target's clock at the write", async () => {
      const before = Date.now();
      await driver.write(`${VOL}/locks/lock-0123456789abcdef.lck`, Buffer.from('{}'));
      const after = Date.now();
      const mtime = await driver.mtime(`${VOL}/locks/lock-0123456789abcdef.lck`);
      expect(mtime).toBeInstanceOf(Date);
      // S3 keeps whole seconds; allow a little clock skew on top.
      expect(mtime!.getTime()).toBeGreaterThanOrEqual(before - 2000);
      expect(mtime!.getTime()).toBeLessThanOrEqual(after + 2000);
    });

    it('many concurrent writes of distinct objects all land', async () => {
      const paths = Array.from({ length: 40 }, (_, i) => `${VOL}/backups/backup_${String(i).padStart(2, '0')}.cfg`);
      await Promise.all(paths.map((p, i) => driver.write(p, bytes(1000 + i, i))));
      expect(await driver.list(`${VOL}/backups`)).toEqual(paths.map((p) => p.slice(`${VOL}/backups/`.length)));
      const back = await Promise.all(paths.map((p) => driver.read(p)));
      for (const [i, b] of back.entries()) expect(b.equals(bytes(1000 + i, i)), paths[i]).toBe(true);
    });
  });
}
