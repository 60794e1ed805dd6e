// The settings a new all-in-one store starts with (cli/embedded-nodes.ts), on a real SQLite store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ALL_IN_ONE_SETTINGS, seedAllInOneSettings } from '../../cli/embedded-nodes.js';
import { openSqliteStore } from '../../store/sqlite-store.js';

const dir = mkdtempSync(join(tmpdir(), 'shorthorn-aio-settings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('seedAllInOneSettings', () => {
  it('creates the missing settings and keeps one an operator already set', async () => {
    const store = openSqliteStore(join(dir, 'a.db'));
    try {
      await store.create('Setting', {
        metadata: { name: 'storage-minimal-available-percentage' },
        spec: { value: '40' },
      });
      await seedAllInOneSettings(store);
      expect((await store.get('Setting', 'storage-minimal-available-percentage'))?.spec.value).toBe('40');
    } finally {
      store.close();
    }
    const fresh = openSqliteStore(join(dir, 'b.db'));
    try {
      await seedAllInOneSettings(fresh);
      await seedAllInOneSettings(fresh); // a restart: nothing to add, nothing fails
      for (const [name, value] of Object.entries(ALL_IN_ONE_SETTINGS)) {
        expect((await fresh.get('Setting', name))?.spec.value).toBe(value);
      }
      expect(ALL_IN_ONE_SETTINGS['storage-minimal-available-percentage']).toBe('5');
    } finally {
      fresh.close();
    }
  });
});
