// SqliteStore: the Store contract on a real file, then what only the SQLite backend promises: a bounded
// change log (Expired), and no acknowledged write lost when the writing process is SIGKILLed.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Kind } from '../../model/kinds.js';
import { CountingStore } from '../../store/counting-store.js';
import { isStoreError } from '../../store/errors.js';
import { openSqliteStore, type SqliteStore, type SqliteStoreOptions } from '../../store/sqlite-store.js';
import type { WatchEvent } from '../../store/store.js';
import { runStoreContract } from '../contract/store-contract.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** A store on a new file in its own temp dir; reopen = close and open the same file. */
function openOnFile(opts: SqliteStoreOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'shorthorn-sqlite-store-'));
  const path = join(dir, 'store.db');
  let current = openSqliteStore(path, opts);
  return {
    path,
    get store() {
      return current;
    },
    reopen: async () => {
      await current.close();
      current = openSqliteStore(path, opts);
      return current;
    },
    cleanup: async () => {
      await current.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

runStoreContract('SqliteStore', async () => openOnFile());

// The decorator must be invisible: the same contract through it.
runStoreContract('CountingStore(SqliteStore)', async () => {
  const opened = openOnFile();
  return {
    store: new CountingStore(opened.store),
    reopen: async () => new CountingStore(await opened.reopen()),
    cleanup: opened.cleanup,
  };
});

const volumeInput = (name: string) =>
  // Defaults are the store's to fill; the typed input would demand every field.
  ({ metadata: { name }, spec: { size: 1073741824, numberOfReplicas: 3 } }) as never;

describe('SqliteStore specifics', () => {
  let opened: ReturnType<typeof openOnFile> | undefined;
  afterEach(async () => {
    await opened?.cleanup();
    opened = undefined;
  });

  function watchErrors(store: SqliteStore, kind: Kind, resourceVersion?: string) {
    const events: WatchEvent[] = [];
    const errors: Error[] = [];
    const watch = store.watch(kind, {
      resourceVersion,
      onEvent: (e) => events.push(e),
      onError: (e) => errors.push(e),
    });
    return { events, errors, watch };
  }

  const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

  it('keeps the change log bounded and answers a watch from before it with Expired', async () => {
    opened = openOnFile({ changeLogSize: 5 });
    let store = opened.store;
    const versions: string[] = [];
    for (let i = 0; i < 10; i++) {
      versions.push(
        (await store.create('Setting', { metadata: { name: `s-${i}` }, spec: { value: '' } })).metadata.resourceVersion,
      );
    }
    // Versions 6..10 are kept: from 5 on nothing is missing, from 4 on version 5 is.
    const ok = watchErrors(store, 'Setting', versions[4]);
    const expired = watchErrors(store, 'Setting', versions[3]);
    await settle();
    expect(ok.errors).toEqual([]);
    expect(ok.events.map((e) => e.object.metadata.name)).toEqual(['s-5', 's-6', 's-7', 's-8', 's-9']);
    expect(expired.events).toEqual([]);
    expect(expired.errors).toHaveLength(1);
    expect(isStoreError(expired.errors[0], 'Expired')).toBe(true);

    // The prune mark is persisted.
    store = await opened.reopen();
    const again = watchErrors(store, 'Setting', versions[3]);
    await settle();
    expect(isStoreError(again.errors[0], 'Expired')).toBe(true);
    const db = new Database(opened.path, { readonly: true });
    try {
      expect(db.prepare('SELECT count(*) AS n FROM changes').get()).toEqual({ n: 5 });
    } finally {
      db.close();
    }
  });

  it('answers a watch from a version that is not a number with Invalid', async () => {
    opened = openOnFile();
    const w = watchErrors(opened.store, 'Volume', 'abc');
    await settle();
    expect(isStoreError(w.errors[0], 'Invalid')).toBe(true);
  });

  it('is in WAL mode', async () => {
    opened = openOnFile();
    await opened.store.create('Volume', volumeInput('vol-a'));
    const db = new Database(opened.path, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
    }
  });

  it('close ends the watches with an error and refuses further calls', async () => {
    opened = openOnFile();
    const store = opened.store;
    const w = watchErrors(store, 'Volume');
    await store.create('Volume', volumeInput('vol-a'));
    await store.close();
    await settle();
    expect(w.events.map((e) => e.type)).toEqual(['ADDED']);
    expect(w.errors).toHaveLength(1);
    await expect(store.get('Volume', 'vol-a')).rejects.toThrow(/closed/);
    await store.close(); // idempotent
  });

  it('a handler that throws ends its watch through onError', async () => {
    opened = openOnFile();
    const store = opened.store;
    const errors: Error[] = [];
    let calls = 0;
    store.watch('Volume', {
      onEvent: () => {
        calls++;
        throw new Error('handler bug');
      },
      onError: (e) => errors.push(e),
    });
    await store.create('Volume', volumeInput('vol-a'));
    await store.create('Volume', volumeInput('vol-b'));
    await settle();
    expect(calls).toBe(1);
    expect(errors.map((e) => e.message)).toEqual(['handler bug']);
  });

  it('CountingStore counts calls per operation', async () => {
    opened = openOnFile();
    const store = new CountingStore(opened.store);
    const v = await store.create('Volume', volumeInput('vol-a'));
    await store.get('Volume', 'vol-a');
    await store.get('Volume', 'nope');
    await store.list('Volume');
    await store.update('Volume', { ...v, metadata: { ...v.metadata, labels: { a: 'b' } } });
    store.watch('Volume', { onEvent: () => {} }).stop();
    await expect(store.delete('Volume', 'nope')).rejects.toThrow();
    expect(store.counts()).toEqual({ create: 1, get: 2, list: 1, update: 1, watch: 1, delete: 1 });
    store.reset();
    expect(store.counts()).toEqual({});
    await store.get('Volume', 'vol-a');
    expect(store.counts()).toEqual({ get: 1 });
  });

  describe('crash in the middle of writes', () => {
    let child: ChildProcess | undefined;
    let dir: string | undefined;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'shorthorn-sqlite-crash-'));
    });
    afterEach(() => {
      if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // Already gone between the check and the kill.
        }
      }
      child = undefined;
      rmSync(dir!, { recursive: true, force: true });
    });

    it('every acknowledged write survives SIGKILL; the file is intact and writable', async () => {
      const path = join(dir!, 'crash.db');
      const proc = spawn(process.execPath, ['bin/run-ts.js', 'test/fixtures/store-writer.ts', path], {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = proc;
      let out = '';
      let err = '';
      proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
      });
      proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        err += chunk;
      });
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));

      // Let it start (tsx takes a moment), then let it write for about a second and kill it mid-stream.
      const deadline = Date.now() + 30_000;
      while (!out.includes('\n')) {
        if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`writer did not start: ${err}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(proc.exitCode, `writer stopped on its own: ${err}`).toBeNull();
      proc.kill('SIGKILL');
      await exited;
      expect(proc.signalCode).toBe('SIGKILL');

      // Only whole lines are acknowledgements; a torn last line is a write we may or may not have.
      const acked = new Map<string, number>();
      for (const line of out.split('\n').slice(0, -1)) {
        const [kind, name, rv] = line.split(' ');
        const key = `${kind} ${name}`;
        acked.set(key, Math.max(acked.get(key) ?? 0, Number(rv)));
      }
      expect(acked.size).toBeGreaterThan(10);

      const store = openSqliteStore(path);
      try {
        let maxStored = 0;
        for (const [key, rv] of acked) {
          const [kind, name] = key.split(' ') as [Kind, string];
          const obj = await store.get(kind, name);
          expect(obj, `${key} was acknowledged at ${rv}`).toBeDefined();
          expect(Number(obj!.metadata.resourceVersion), key).toBeGreaterThanOrEqual(rv);
        }
        for (const kind of ['Volume', 'Setting'] as const) {
          const list = await store.list(kind);
          for (const item of list.items) maxStored = Math.max(maxStored, Number(item.metadata.resourceVersion));
          expect(Number(list.resourceVersion)).toBeGreaterThanOrEqual(maxStored);
        }
        const after = await store.create('Volume', volumeInput('after-crash'));
        expect(Number(after.metadata.resourceVersion)).toBeGreaterThan(maxStored);
      } finally {
        await store.close();
      }
      const db = new Database(path, { readonly: true });
      try {
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      } finally {
        db.close();
      }
    });
  });
});
