// The behaviour every Store backend must have (store/store.ts documents it). A backend's test file calls
// runStoreContract with a factory that opens an empty store; nothing here knows which backend it runs on.
// Watch assertions never rely on timing alone: a "sentinel" write is made last, and once its event has
// arrived every earlier event must have arrived too (events come in version order).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Kind, KindMap } from '../../model/kinds.js';
import type { Volume } from '../../model/volume.js';
import { isStoreError, type StoreErrorCode } from '../../store/errors.js';
import type { CreateInput, Store, WatchEvent } from '../../store/store.js';

export interface OpenedStore {
  store: Store;
  /** Closes `store` and opens the same data again (backends with durable state). */
  reopen?: () => Promise<Store>;
  /** Closes whatever store is open and removes its data. */
  cleanup: () => Promise<void>;
}

const GiB = 1073741824;

/** Only the required fields: the store fills the defaults, which the typed input would otherwise demand. */
function input<K extends Kind>(
  _kind: K,
  name: string,
  spec: object,
  metadata: Partial<KindMap[K]['metadata']> = {},
): CreateInput<K> {
  return { metadata: { ...metadata, name }, spec } as unknown as CreateInput<K>;
}

const volume = (name: string, labels: Record<string, string> = {}) =>
  input('Volume', name, { size: GiB, numberOfReplicas: 3 }, { labels });

const setting = (name: string, value: string) => input('Setting', name, { value });

async function expectStoreError(promise: Promise<unknown>, code: StoreErrorCode): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isStoreError(err, code), `expected StoreError(${code}), got ${String(err)}`).toBe(true);
  return err as Error;
}

async function waitFor(what: string, done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface Recorder<K extends Kind> {
  events: WatchEvent<K>[];
  errors: Error[];
  stop(): void;
}

function record<K extends Kind>(store: Store, kind: K, resourceVersion?: string): Recorder<K> {
  const events: WatchEvent<K>[] = [];
  const errors: Error[] = [];
  const watch = store.watch(kind, {
    resourceVersion,
    onEvent: (e) => events.push(e),
    onError: (e) => errors.push(e),
  });
  return { events, errors, stop: () => watch.stop() };
}

/** The (type, name) pairs of the events, the form most assertions compare. */
const summary = (events: WatchEvent[]) => events.map((e) => `${e.type} ${e.object.metadata.name}`);

export function runStoreContract(backendName: string, open: () => Promise<OpenedStore>): void {
  describe(`Store contract: ${backendName}`, () => {
    let opened: OpenedStore;
    let store: Store;

    beforeEach(async () => {
      opened = await open();
      store = opened.store;
    });
    afterEach(async () => {
      await opened.cleanup();
    });

    /** Writes a Setting and waits until `rec` (a Setting watch) has seen it. */
    async function sentinel(rec: Recorder<'Setting'>, name = 'sentinel'): Promise<void> {
      const existing = await store.get('Setting', name);
      const obj = existing
        ? await store.update('Setting', { ...existing, spec: { value: String(Number(existing.spec.value) + 1) } })
        : await store.create('Setting', setting(name, '0'));
      const rv = obj.metadata.resourceVersion;
      await waitFor(`sentinel ${rv}`, () => rec.events.some((e) => e.object.metadata.resourceVersion === rv));
    }

    describe('create, get, list', () => {
      it('create fills metadata and the kind defaults', async () => {
        const v = await store.create('Volume', volume('vol-a', { app: 'db' }));
        expect(v.apiVersion).toBe('shorthorn.io/v1');
        expect(v.kind).toBe('Volume');
        expect(v.metadata.name).toBe('vol-a');
        expect(v.metadata.uid).not.toBe('');
        expect(v.metadata.resourceVersion).toMatch(/^\d+$/);
        expect(v.metadata.generation).toBe(1);
        expect(Number.isNaN(Date.parse(v.metadata.creationTimestamp))).toBe(false);
        expect(v.metadata.labels).toEqual({ app: 'db' });
        expect(v.metadata.finalizers).toEqual([]);
        expect(v.metadata.deletionTimestamp).toBeUndefined();
        expect(v.spec).toMatchObject({ size: GiB, numberOfReplicas: 3, frontend: 'nbd', dataLocality: 'disabled' });
        expect(v.status).toMatchObject({ state: 'creating', robustness: 'unknown' });
        expect(await store.get('Volume', 'vol-a')).toEqual(v);
      });

      it('create ignores store-owned metadata the caller sends', async () => {
        const v = await store.create(
          'Volume',
          input(
            'Volume',
            'vol-a',
            { size: GiB, numberOfReplicas: 1 },
            { uid: 'mine', resourceVersion: '12345', generation: 7, deletionTimestamp: '2020-01-01T00:00:00Z' },
          ),
        );
        expect(v.metadata.uid).not.toBe('mine');
        expect(v.metadata.resourceVersion).not.toBe('12345');
        expect(v.metadata.generation).toBe(1);
        expect(v.metadata.deletionTimestamp).toBeUndefined();
      });

      it('each create gets its own uid and a higher resourceVersion', async () => {
        const a = await store.create('Volume', volume('vol-a'));
        const b = await store.create('Volume', volume('vol-b'));
        const s = await store.create('Setting', setting('s1', 'x'));
        expect(a.metadata.uid).not.toBe(b.metadata.uid);
        expect(Number(b.metadata.resourceVersion)).toBeGreaterThan(Number(a.metadata.resourceVersion));
        expect(Number(s.metadata.resourceVersion)).toBeGreaterThan(Number(b.metadata.resourceVersion));
      });

      it('get of a missing object is undefined', async () => {
        expect(await store.get('Volume', 'nope')).toBeUndefined();
      });

      it('list sorts by name, filters by every label given, and reports the current version', async () => {
        await store.create('Volume', volume('vol-c', { app: 'db', tier: 'gold' }));
        await store.create('Volume', volume('vol-a', { app: 'db', tier: 'silver' }));
        await store.create('Volume', volume('vol-b', { app: 'web' }));
        const last = await store.create('Setting', setting('vol-a', 'same name, other kind'));

        const all = await store.list('Volume');
        expect(all.items.map((v) => v.metadata.name)).toEqual(['vol-a', 'vol-b', 'vol-c']);
        expect(Number(all.resourceVersion)).toBeGreaterThanOrEqual(Number(last.metadata.resourceVersion));
        expect((await store.list('Volume', { labelSelector: {} })).items).toHaveLength(3);

        const names = async (labelSelector: Record<string, string>) =>
          (await store.list('Volume', { labelSelector })).items.map((v) => v.metadata.name);
        expect(await names({ app: 'db' })).toEqual(['vol-a', 'vol-c']);
        expect(await names({ app: 'db', tier: 'gold' })).toEqual(['vol-c']);
        expect(await names({ app: 'db', tier: 'bronze' })).toEqual([]);
        expect(await names({ missing: '' })).toEqual([]);

        expect((await store.list('Setting')).items.map((s) => s.spec.value)).toEqual(['same name, other kind']);
        expect((await store.list('Engine')).items).toEqual([]);
      });
    });

    describe('validation', () => {
      it('rejects invalid input with Invalid naming the field, and stores nothing', async () => {
        const before = (await store.list('Volume')).resourceVersion;
        const bad = async (obj: CreateInput<'Volume'>, field: string) => {
          const err = await expectStoreError(store.create('Volume', obj), 'Invalid');
          expect(err.message).toContain(field);
        };
        await bad(input('Volume', 'vol-a', { size: 1000, numberOfReplicas: 3 }), 'spec.size');
        await bad(input('Volume', 'vol-a', { size: GiB }), 'spec.numberOfReplicas');
        await bad(input('Volume', 'vol-a', { size: GiB, numberOfReplicas: 3, frontend: 'iscsi' }), 'spec.frontend');
        await bad(input('Volume', 'Not_A_Name', { size: GiB, numberOfReplicas: 3 }), 'metadata.name');
        await bad(
          input('Volume', 'vol-a', { size: GiB, numberOfReplicas: 3 }, { labels: { a: 1 as unknown as string } }),
          'metadata.labels',
        );
        const after = await store.list('Volume');
        expect(after.items).toEqual([]);
        expect(after.resourceVersion).toBe(before);
      });

      it('rejects an invalid update or status, leaving the stored object as it was', async () => {
        const v = await store.create('Volume', volume('vol-a'));
        const err = await expectStoreError(
          store.update('Volume', { ...v, spec: { ...v.spec, numberOfReplicas: 0 } }),
          'Invalid',
        );
        expect(err.message).toContain('spec.numberOfReplicas');
        const err2 = await expectStoreError(
          store.updateStatus('Volume', { ...v, status: { ...v.status, state: 'exploded' as 'attached' } }),
          'Invalid',
        );
        expect(err2.message).toContain('status.state');
        expect(await store.get('Volume', 'vol-a')).toEqual(v);
      });
    });

    describe('create conflicts and missing objects', () => {
      it('a second create of the same name fails with AlreadyExists and changes nothing', async () => {
        const v = await store.create('Volume', volume('vol-a', { first: 'yes' }));
        await expectStoreError(store.create('Volume', volume('vol-a', { second: 'yes' })), 'AlreadyExists');
        expect(await store.get('Volume', 'vol-a')).toEqual(v);
      });

      it('update, updateStatus and delete of a missing object fail with NotFound', async () => {
        const v = await store.create('Volume', volume('vol-a'));
        const ghost: Volume = { ...v, metadata: { ...v.metadata, name: 'ghost', resourceVersion: '' } };
        await expectStoreError(store.update('Volume', ghost), 'NotFound');
        await expectStoreError(store.updateStatus('Volume', ghost), 'NotFound');
        await expectStoreError(store.delete('Volume', 'ghost'), 'NotFound');
      });
    });

    describe('optimistic concurrency', () => {
      it('two writers from the same version: the second gets Conflict', async () => {
        const v = await store.create('Volume', volume('vol-a'));
        const first = await store.update('Volume', { ...v, metadata: { ...v.metadata, labels: { by: 'first' } } });
        expect(Number(first.metadata.resourceVersion)).toBeGreaterThan(Number(v.metadata.resourceVersion));
        await expectStoreError(
          store.update('Volume', { ...v, metadata: { ...v.metadata, labels: { by: 'second' } } }),
          'Conflict',
        );
        await expectStoreError(
          store.updateStatus('Volume', { ...v, status: { ...v.status, state: 'detached' } }),
          'Conflict',
        );
        expect((await store.get('Volume', 'vol-a'))?.metadata.labels).toEqual({ by: 'first' });
      });

      it('an empty resourceVersion skips the check', async () => {
        const v = await store.create('Volume', volume('vol-a'));
        await store.update('Volume', { ...v, metadata: { ...v.metadata, labels: { n: '1' } } });
        const blind = { ...v, metadata: { ...v.metadata, resourceVersion: '', labels: { n: '2' } } };
        expect((await store.update('Volume', blind)).metadata.labels).toEqual({ n: '2' });
        const status = await store.updateStatus('Volume', {
          ...blind,
          status: { ...v.status, state: 'detached' },
        });
        expect(status.status.state).toBe('detached');
      });

      it('delete with a stale resourceVersion fails with Conflict; with the current one it deletes', async () => {
        const v = await store.create('Volume', volume('vol-a'));
        const v2 = await store.update('Volume', { ...v, spec: { ...v.spec, numberOfReplicas: 2 } });
        await expectStoreError(
          store.delete('Volume', 'vol-a', { resourceVersion: v.metadata.resourceVersion }),
          'Conflict',
        );
        expect(await store.get('Volume', 'vol-a')).toBeDefined();
        await store.delete('Volume', 'vol-a', { resourceVersion: v2.metadata.resourceVersion });
        expect(await store.get('Volume', 'vol-a')).toBeUndefined();
      });

      it('an object deleted and created again is not updated through the old copy', async () => {
        const old = await store.create('Volume', volume('vol-a'));
        await store.delete('Volume', 'vol-a');
        await store.create('Volume', volume('vol-a'));
        const stale = { ...old, metadata: { ...old.metadata, resourceVersion: '', labels: { stale: 'yes' } } };
        await expectStoreError(store.update('Volume', stale), 'Conflict');
      });

      it('many concurrent updates from one version: exactly one wins', async () => {
        const s = await store.create('Setting', setting('race', 'start'));
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) => store.update('Setting', { ...s, spec: { value: `writer-${i}` } })),
        );
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r) => r.status === 'rejected');
        expect(won).toHaveLength(1);
        for (const r of lost) expect(isStoreError(r.reason, 'Conflict')).toBe(true);
        const winner = (won[0] as PromiseFulfilledResult<KindMap['Setting']>).value;
        expect(await store.get('Setting', 'race')).toEqual(winner);
      });

      it('concurrent read-modify-write loops that retry on Conflict lose no increment', async () => {
        await store.create('Setting', setting('counter', '0'));
        const workers = 8;
        const perWorker = 5;
        const increment = async () => {
          for (;;) {
            const cur = (await store.get('Setting', 'counter'))!;
            try {
              return await store.update('Setting', { ...cur, spec: { value: String(Number(cur.spec.value) + 1) } });
            } catch (err) {
              if (!isStoreError(err, 'Conflict')) throw err;
            }
          }
        };
        const written = await Promise.all(
          Array.from({ length: workers }, async () => {
            const values: string[] = [];
            for (let i = 0; i < perWorker; i++) values.push((await increment()).spec.value);
            return values;
          }),
        );
        const final = (await store.get('Setting', 'counter'))!;
        expect(final.spec.value).toBe(String(workers * perWorker));
        // Every successful write produced a distinct value: no two writers both won from one version.
        const all = written.flat().map(Number);
        expect(new Set(all).size).toBe(workers * perWorker);
        expect(Math.max(...all)).toBe(workers * perWorker);
      });
    });

    describe('spec, status and generation', () => {
      it('update writes metadata and spec but never status', async () => {
        const v = await store.create('Volume', volume('vol-a'));
        const u = await store.update('Volume', {
          ...v,
          metadata: {
            ...v.metadata,
            labels: { a: 'b' },
            annotations: { note: 'x' },
            finalizers: ['shorthorn.io/test'],
          },
          spec: { ...v.spec, numberOfReplicas: 2 },
          status: { ...v.status, state: 'attached', endpoint: 'nbd://sneaky' },
        });
        expect(u.metadata.labels).toEqual({ a: 'b' });
        expect(u.metadata.annotations).toEqual({ note: 'x' });
        expect(u.metadata.finalizers).toEqual(['shorthorn.io/test']);
        expect(u.spec.numberOfReplicas).toBe(2);
        expect(u.status).toEqual(v.status);
        expect(u.metadata.uid).toBe(v.metadata.uid);
        expect(u.metadata.creationTimestamp).toBe(v.metadata.creationTimestamp);
        expect(await store.get('Volume', 'vol-a')).toEqual(u);
      });

      it('updateStatus writes status but never spec or metadata', async () => {
        const v = await store.create('Volume', volume('vol-a'));
        const u = await store.updateStatus('Volume', {
          ...v,
          metadata: { ...v.metadata, labels: { sneaky: 'yes' } },
          spec: { ...v.spec, numberOfReplicas: 1 },
          status: { ...v.status, state: 'detached', robustness: 'healthy' },
        });
        expect(u.status).toMatchObject({ state: 'detached', robustness: 'healthy' });
        expect(u.spec).toEqual(v.spec);
        expect(u.metadata.labels).toEqual({});
        expect(u.metadata.generation).toBe(1);
        expect(Number(u.metadata.resourceVersion)).toBeGreaterThan(Number(v.metadata.resourceVersion));
      });

      it('generation grows only when spec changes', async () => {
        const v = await store.create('Volume', volume('vol-a'));
        const labelled = await store.update('Volume', { ...v, metadata: { ...v.metadata, labels: { x: 'y' } } });
        expect(labelled.metadata.generation).toBe(1);
        expect(Number(labelled.metadata.resourceVersion)).toBeGreaterThan(Number(v.metadata.resourceVersion));
        const resized = await store.update('Volume', { ...labelled, spec: { ...labelled.spec, size: 2 * GiB } });
        expect(resized.metadata.generation).toBe(2);
        const status = await store.updateStatus('Volume', {
          ...resized,
          status: { ...resized.status, currentSize: 2 * GiB },
        });
        expect(status.metadata.generation).toBe(2);
        const again = await store.update('Volume', { ...status, spec: { ...status.spec, numberOfReplicas: 1 } });
        expect(again.metadata.generation).toBe(3);
      });

      it('an update that changes nothing writes nothing', async () => {
        const v = await store.create('Volume', volume('vol-a', { a: 'b' }));
        expect(await store.update('Volume', v)).toEqual(v);
        expect(await store.updateStatus('Volume', v)).toEqual(v);
        expect((await store.get('Volume', 'vol-a'))?.metadata.resourceVersion).toBe(v.metadata.resourceVersion);
      });
    });

    describe('delete, finalizers, owners', () => {
      it('without finalizers delete removes the object and returns it', async () => {
        const v = await store.create('Volume', volume('vol-a'));
        const gone = await store.delete('Volume', 'vol-a');
        expect(gone.metadata.uid).toBe(v.metadata.uid);
        expect(await store.get('Volume', 'vol-a')).toBeUndefined();
        expect((await store.list('Volume')).items).toEqual([]);
        await expectStoreError(store.delete('Volume', 'vol-a'), 'NotFound');
      });

      it('with finalizers delete marks once; removing the last finalizer removes the object', async () => {
        const v = await store.create(
          'Volume',
          input('Volume', 'vol-a', { size: GiB, numberOfReplicas: 3 }, { finalizers: ['a.io/one', 'a.io/two'] }),
        );
        const marked = await store.delete('Volume', 'vol-a');
        expect(marked.metadata.deletionTimestamp).toBeDefined();
        expect(marked.metadata.finalizers).toEqual(['a.io/one', 'a.io/two']);
        expect(await store.get('Volume', 'vol-a')).toEqual(marked);

        const again = await store.delete('Volume', 'vol-a');
        expect(again.metadata.deletionTimestamp).toBe(marked.metadata.deletionTimestamp);
        expect(again.metadata.resourceVersion).toBe(marked.metadata.resourceVersion);

        // An object being deleted accepts no new finalizer, but spec and status still change.
        await expectStoreError(
          store.update('Volume', {
            ...marked,
            metadata: { ...marked.metadata, finalizers: [...marked.metadata.finalizers, 'a.io/three'] },
          }),
          'Invalid',
        );
        const status = await store.updateStatus('Volume', { ...marked, status: { ...v.status, state: 'deleting' } });
        expect(status.metadata.deletionTimestamp).toBe(marked.metadata.deletionTimestamp);
        // The update cannot clear deletionTimestamp either.
        const one = await store.update('Volume', {
          ...status,
          metadata: { ...status.metadata, finalizers: ['a.io/two'], deletionTimestamp: undefined },
        });
        expect(one.metadata.deletionTimestamp).toBe(marked.metadata.deletionTimestamp);
        expect(await store.get('Volume', 'vol-a')).toBeDefined();

        const last = await store.update('Volume', { ...one, metadata: { ...one.metadata, finalizers: [] } });
        expect(last.metadata.finalizers).toEqual([]);
        expect(await store.get('Volume', 'vol-a')).toBeUndefined();
        // The name is free again.
        await store.create('Volume', volume('vol-a'));
      });

      it('removing an owner deletes its dependents, recursively, honouring their finalizers', async () => {
        const vol = await store.create('Volume', volume('vol-a'));
        const other = await store.create('Volume', volume('vol-b'));
        const owned = (o: { kind: string; metadata: { name: string; uid: string } }) => [
          { kind: o.kind, name: o.metadata.name, uid: o.metadata.uid, controller: true },
        ];
        const engine = await store.create(
          'Engine',
          input('Engine', 'vol-a-e-0', { volumeName: 'vol-a' }, { ownerReferences: owned(vol) }),
        );
        await store.create(
          'Replica',
          input('Replica', 'vol-a-r-1', { volumeName: 'vol-a' }, { ownerReferences: owned(vol) }),
        );
        await store.create(
          'Replica',
          input(
            'Replica',
            'vol-a-r-2',
            { volumeName: 'vol-a' },
            { ownerReferences: owned(vol), finalizers: ['shorthorn.io/replica'] },
          ),
        );
        // Owned by the engine, not the volume: goes when the engine goes.
        await store.create(
          'Snapshot',
          input('Snapshot', 'vol-a-snap', { volume: 'vol-a' }, { ownerReferences: owned(engine) }),
        );
        await store.create(
          'Replica',
          input('Replica', 'vol-b-r-1', { volumeName: 'vol-b' }, { ownerReferences: owned(other) }),
        );

        await store.delete('Volume', 'vol-a');

        expect(await store.get('Volume', 'vol-a')).toBeUndefined();
        expect(await store.get('Engine', 'vol-a-e-0')).toBeUndefined();
        expect(await store.get('Replica', 'vol-a-r-1')).toBeUndefined();
        expect(await store.get('Snapshot', 'vol-a-snap')).toBeUndefined();
        const r2 = (await store.get('Replica', 'vol-a-r-2'))!;
        expect(r2.metadata.deletionTimestamp).toBeDefined();
        expect(await store.get('Volume', 'vol-b')).toEqual(other);
        expect(await store.get('Replica', 'vol-b-r-1')).toBeDefined();

        await store.update('Replica', { ...r2, metadata: { ...r2.metadata, finalizers: [] } });
        expect(await store.get('Replica', 'vol-a-r-2')).toBeUndefined();
      });

      it('an owner with finalizers keeps its dependents until it is really removed', async () => {
        const vol = await store.create(
          'Volume',
          input('Volume', 'vol-a', { size: GiB, numberOfReplicas: 1 }, { finalizers: ['shorthorn.io/volume'] }),
        );
        const ref = [{ kind: 'Volume', name: 'vol-a', uid: vol.metadata.uid }];
        await store.create('Engine', input('Engine', 'vol-a-e-0', { volumeName: 'vol-a' }, { ownerReferences: ref }));
        const marked = await store.delete('Volume', 'vol-a');
        expect(await store.get('Engine', 'vol-a-e-0')).toBeDefined();
        await store.update('Volume', { ...marked, metadata: { ...marked.metadata, finalizers: [] } });
        expect(await store.get('Engine', 'vol-a-e-0')).toBeUndefined();
      });
    });

    describe('watch', () => {
      it('replays exactly the changes after a version, in order, then live ones', async () => {
        await store.create('Volume', volume('vol-a'));
        const b = await store.create('Volume', volume('vol-b'));
        const from = (await store.list('Volume')).resourceVersion;
        const a = (await store.get('Volume', 'vol-a'))!;
        await store.update('Volume', { ...a, metadata: { ...a.metadata, labels: { x: '1' } } });
        await store.create('Setting', setting('other-kind', 'not for a Volume watch'));
        await store.delete('Volume', 'vol-b');
        await store.create('Volume', volume('vol-c'));

        const rec = record(store, 'Volume', from);
        await waitFor('replay', () => rec.events.length >= 3);
        expect(summary(rec.events)).toEqual(['MODIFIED vol-a', 'DELETED vol-b', 'ADDED vol-c']);
        const deleted = rec.events[1]!;
        expect(deleted.object.metadata.uid).toBe(b.metadata.uid);

        const c = (await store.get('Volume', 'vol-c'))!;
        await store.updateStatus('Volume', { ...c, status: { ...c.status, state: 'detached' } });
        await waitFor('live event', () => rec.events.length >= 4);
        expect(summary(rec.events)).toEqual(['MODIFIED vol-a', 'DELETED vol-b', 'ADDED vol-c', 'MODIFIED vol-c']);
        expect(rec.events[3]!.object.status.state).toBe('detached');

        const versions = rec.events.map((e) => Number(e.object.metadata.resourceVersion));
        expect(versions).toEqual([...versions].sort((x, y) => x - y));
        expect(new Set(versions).size).toBe(versions.length);
        expect(versions[0]).toBeGreaterThan(Number(from));
        expect(rec.errors).toEqual([]);
        rec.stop();
      });

      it('a DELETED event carries a version newer than the last write of the object', async () => {
        const v = await store.create('Volume', volume('vol-a'));
        const rec = record(store, 'Volume', v.metadata.resourceVersion);
        const gone = await store.delete('Volume', 'vol-a');
        await waitFor('DELETED', () => rec.events.length >= 1);
        expect(rec.events[0]!.type).toBe('DELETED');
        expect(Number(rec.events[0]!.object.metadata.resourceVersion)).toBeGreaterThan(
          Number(v.metadata.resourceVersion),
        );
        expect(rec.events[0]!.object.metadata.resourceVersion).toBe(gone.metadata.resourceVersion);
        rec.stop();
      });

      it('without a resourceVersion only changes from now on arrive', async () => {
        await store.create('Setting', setting('before', '1'));
        const rec = record(store, 'Setting');
        await store.create('Setting', setting('after', '2'));
        await sentinel(rec);
        expect(summary(rec.events)).toEqual(['ADDED after', 'ADDED sentinel']);
        rec.stop();
      });

      it('delivers events asynchronously, never inside the writer call', async () => {
        const rec = record(store, 'Setting');
        const pending = store.create('Setting', setting('s1', 'x'));
        expect(rec.events).toEqual([]);
        await pending;
        await waitFor('event', () => rec.events.length === 1);
        rec.stop();
      });

      it('stop() stops delivery', async () => {
        const stopped = record(store, 'Setting');
        const running = record(store, 'Setting');
        await store.create('Setting', setting('one', '1'));
        await waitFor('first event', () => stopped.events.length === 1);
        stopped.stop();
        await store.create('Setting', setting('two', '2'));
        await sentinel(running);
        expect(summary(stopped.events)).toEqual(['ADDED one']);
        expect(summary(running.events)).toEqual(['ADDED one', 'ADDED two', 'ADDED sentinel']);
        running.stop();
      });

      it('stop() inside onEvent stops at once', async () => {
        const seen: string[] = [];
        const from = (await store.list('Setting')).resourceVersion;
        await store.create('Setting', setting('one', '1'));
        await store.create('Setting', setting('two', '2'));
        const watch = store.watch('Setting', {
          resourceVersion: from,
          onEvent: (e) => {
            seen.push(e.object.metadata.name);
            watch.stop();
          },
        });
        const witness = record(store, 'Setting', from);
        await sentinel(witness);
        expect(seen).toEqual(['one']);
        witness.stop();
      });

      it('resuming after stop from the last version seen misses nothing and repeats nothing', async () => {
        const from = (await store.list('Setting')).resourceVersion;
        const whole = record(store, 'Setting', from);
        const first = record(store, 'Setting', from);
        for (let i = 0; i < 5; i++) await store.create('Setting', setting(`s-${i}`, String(i)));
        await waitFor('first five', () => first.events.length >= 5);
        first.stop();
        const lastSeen = first.events.at(-1)!.object.metadata.resourceVersion;

        // Changes while nobody listens: updates, a delete, creates.
        const s0 = (await store.get('Setting', 's-0'))!;
        await store.update('Setting', { ...s0, spec: { value: 'changed' } });
        await store.delete('Setting', 's-1');
        for (let i = 5; i < 8; i++) await store.create('Setting', setting(`s-${i}`, String(i)));

        const second = record(store, 'Setting', lastSeen);
        for (let i = 8; i < 10; i++) await store.create('Setting', setting(`s-${i}`, String(i)));
        await sentinel(whole);
        await waitFor('resumed watch catches up', () => second.events.length >= whole.events.length - 5);

        const joined = [...first.events, ...second.events].map((e) => e.object.metadata.resourceVersion);
        expect(joined).toEqual(whole.events.map((e) => e.object.metadata.resourceVersion));
        expect(summary(second.events)).toEqual([
          'MODIFIED s-0',
          'DELETED s-1',
          'ADDED s-5',
          'ADDED s-6',
          'ADDED s-7',
          'ADDED s-8',
          'ADDED s-9',
          'ADDED sentinel',
        ]);
        for (const r of [whole, first, second]) expect(r.errors).toEqual([]);
        whole.stop();
        second.stop();
      });

      it('a watch from the current version sees only what follows', async () => {
        const s = await store.create('Setting', setting('s1', 'a'));
        const rec = record(store, 'Setting', s.metadata.resourceVersion);
        await store.update('Setting', { ...s, spec: { value: 'b' } });
        await sentinel(rec);
        expect(summary(rec.events)).toEqual(['MODIFIED s1', 'ADDED sentinel']);
        rec.stop();
      });
    });

    describe('copies', () => {
      it('objects handed out and taken in are independent of the store', async () => {
        const from = (await store.list('Volume')).resourceVersion;
        const obj = volume('vol-a', { keep: 'me' });
        const created = await store.create('Volume', obj);
        (obj.metadata.labels as Record<string, string>).keep = 'changed by caller';
        obj.spec.size = 4096;
        created.metadata.labels.keep = 'changed too';
        created.spec.numberOfReplicas = 9;

        const got = (await store.get('Volume', 'vol-a'))!;
        expect(got.metadata.labels).toEqual({ keep: 'me' });
        expect(got.spec).toMatchObject({ size: GiB, numberOfReplicas: 3 });
        got.status.conditions.push({
          type: 'X',
          status: 'True',
          reason: '',
          message: '',
          lastProbeTime: '',
          lastTransitionTime: '',
        });
        const listed = (await store.list('Volume')).items[0]!;
        expect(listed.status.conditions).toEqual([]);
        listed.metadata.labels.keep = 'listed';

        const a = record(store, 'Volume', from);
        const b = record(store, 'Volume', from);
        await waitFor('both watches', () => a.events.length >= 1 && b.events.length >= 1);
        a.events[0]!.object.spec.size = 1;
        expect(b.events[0]!.object.spec.size).toBe(GiB);
        expect((await store.get('Volume', 'vol-a'))?.metadata.labels).toEqual({ keep: 'me' });
        a.stop();
        b.stop();
      });
    });

    describe('durability', () => {
      it('data and resourceVersion survive reopening', async ({ skip }) => {
        if (!opened.reopen) skip('backend has no reopen');
        const v = await store.create('Volume', volume('vol-a', { a: 'b' }));
        const s = await store.create('Setting', setting('s1', 'x'));
        const before = await store.list('Volume');
        store = await opened.reopen!();
        expect(await store.get('Volume', 'vol-a')).toEqual(v);
        expect(await store.get('Setting', 's1')).toEqual(s);
        const after = await store.list('Volume');
        expect(after).toEqual(before);
        const next = await store.create('Volume', volume('vol-b'));
        expect(Number(next.metadata.resourceVersion)).toBeGreaterThan(Number(s.metadata.resourceVersion));
        // A watch resumes across the reopen.
        const rec = record(store, 'Volume', v.metadata.resourceVersion);
        await waitFor('replay after reopen', () => rec.events.length >= 1);
        expect(summary(rec.events)).toEqual(['ADDED vol-b']);
        rec.stop();
      });
    });
  });
}
