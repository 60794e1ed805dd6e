// The controller runtime: work queue, controller result semantics, informer list/watch/re-list.
// Time-dependent behaviour (backoff, delays) runs under vitest fake timers so a loaded machine cannot
// make it flaky; the informer and stop() tests use real timers and wait for conditions, never for
// fixed durations.
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Controller, TerminalError, watchInto } from '../../controllers/runtime/controller.js';
import { Informer } from '../../controllers/runtime/informer.js';
import { isResponsible } from '../../controllers/runtime/owner.js';
import { WorkQueue } from '../../controllers/runtime/work-queue.js';
import type { Kind, KindMap } from '../../model/kinds.js';
import { API_VERSION } from '../../model/meta.js';
import type { Setting } from '../../model/setting.js';
import { StoreError } from '../../store/errors.js';
import type { CreateInput, ListResult, Store, Watch, WatchEvent, WatchOptions } from '../../store/store.js';

interface LogLine {
  level: number;
  msg: string;
  key?: string;
  err?: { message: string };
}

/** A pino logger that keeps its lines in memory (30 = info, 20 = debug, 50 = error). */
function captureLogger() {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines };
}

const silent = pino({ level: 'silent' });

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Polls `cond` with real timers until it holds; fails after a generous timeout. */
async function waitFor(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Lets pending promise callbacks run (several hops: get() → reconcile → done()). */
/** Taken before any test fakes timers: controller workers yield with the real setImmediate. */
const realSetImmediate = globalThis.setImmediate;

/** Lets pending work run: microtasks, and the workers' yields to the event loop between reconciles. */
async function settle(): Promise<void> {
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 20; i++) await Promise.resolve();
    await new Promise<void>((resolve) => realSetImmediate(resolve));
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('WorkQueue', () => {
  it('queues a key once however often it is added', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.len()).toBe(0);
  });

  it('never hands out a key being processed; one added meanwhile comes back after done()', async () => {
    const q = new WorkQueue();
    q.add('a');
    expect(await q.get()).toBe('a');
    q.add('a');
    q.add('a');
    expect(q.len()).toBe(0);
    let second: string | undefined;
    const pending = q.get().then((k) => {
      second = k;
    });
    await settle();
    expect(second).toBeUndefined();
    q.done('a');
    await pending;
    expect(second).toBe('a');
    q.done('a');
    expect(q.len()).toBe(0);
  });

  it('does not re-run a key that was not added during processing', async () => {
    const q = new WorkQueue();
    q.add('a');
    await q.get();
    q.done('a');
    expect(q.len()).toBe(0);
  });

  it('backs off exponentially from 50 ms up to 30 s, and forget() resets it', async () => {
    vi.useFakeTimers();
    const q = new WorkQueue();
    const expectDelay = async (ms: number) => {
      q.addRateLimited('a');
      await vi.advanceTimersByTimeAsync(ms - 1);
      expect(q.len(), `not ready 1 ms before ${ms} ms`).toBe(0);
      await vi.advanceTimersByTimeAsync(1);
      expect(q.len(), `ready after ${ms} ms`).toBe(1);
      expect(await q.get()).toBe('a');
      q.done('a');
    };
    for (const ms of [50, 100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000]) {
      await expectDelay(ms);
    }
    expect(q.numRequeues('a')).toBe(12);
    q.forget('a');
    await expectDelay(50);
    await expectDelay(100);
  });

  it('addAfter keeps the earliest due time and adds the key once', async () => {
    vi.useFakeTimers();
    const q = new WorkQueue();
    q.addAfter('a', 1_000);
    q.addAfter('a', 100);
    q.addAfter('a', 5_000);
    await vi.advanceTimersByTimeAsync(99);
    expect(q.len()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(q.len()).toBe(1);
    expect(await q.get()).toBe('a');
    q.done('a');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(q.len()).toBe(0);
  });

  it('get() returns undefined after shutDown, also to a waiting caller', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add('a');
    expect(await q.get()).toBeUndefined();
  });
});

describe('Controller', () => {
  it('runs a key enqueued several times once', async () => {
    const runs: string[] = [];
    const c = new Controller({ name: 't', logger: silent, reconcile: async (k) => void runs.push(k) });
    c.enqueue('a');
    c.enqueue('a');
    c.enqueue('b');
    c.enqueue('a');
    c.start();
    await waitFor(() => runs.length >= 2, 'two runs');
    await c.stop();
    expect(runs).toEqual(['a', 'b']);
  });

  it('never runs one key twice at once, and re-runs it once when enqueued during a run', async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const gates = [deferred(), deferred()];
    const c = new Controller({
      name: 't',
      logger: silent,
      workers: 4,
      reconcile: async () => {
        const gate = gates[runs++];
        active++;
        maxActive = Math.max(maxActive, active);
        await gate?.promise;
        active--;
      },
    });
    c.start();
    c.enqueue('a');
    await waitFor(() => runs === 1, 'first run');
    for (let i = 0; i < 5; i++) c.enqueue('a');
    // Give idle workers every chance to pick 'a' up concurrently.
    await new Promise((r) => setTimeout(r, 50));
    expect(runs).toBe(1);
    gates[0]!.resolve();
    await waitFor(() => runs === 2, 'second run');
    gates[1]!.resolve();
    await waitFor(() => active === 0, 'second run to end');
    await c.stop();
    expect(runs).toBe(2);
    expect(maxActive).toBe(1);
  });

  it('retries a failing reconcile with backoff and logs the key and the cause chain', async () => {
    vi.useFakeTimers();
    const { logger, lines } = captureLogger();
    let runs = 0;
    const c = new Controller({
      name: 't',
      logger,
      reconcile: async () => {
        runs++;
        if (runs <= 3) throw new Error('failed to sync vol-1', { cause: new Error('disk is gone') });
        return undefined;
      },
    });
    c.start();
    c.enqueue('vol-1');
    await settle();
    expect(runs).toBe(1);
    await vi.advanceTimersByTimeAsync(50);
    expect(runs).toBe(2);
    await vi.advanceTimersByTimeAsync(99);
    expect(runs).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toBe(3);
    await vi.advanceTimersByTimeAsync(200);
    expect(runs).toBe(4);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toBe(4);
    await c.stop();
    const errors = lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatchObject({ key: 'vol-1', err: { message: 'failed to sync vol-1: disk is gone' } });
  });

  it('resets the backoff after a success', async () => {
    vi.useFakeTimers();
    let runs = 0;
    const c = new Controller({
      name: 't',
      logger: silent,
      reconcile: async () => {
        runs++;
        if (runs === 1 || runs === 2 || runs === 4) throw new Error('boom');
      },
    });
    c.start();
    c.enqueue('a');
    await vi.advanceTimersByTimeAsync(150); // fails (run 1), 50 ms, fails (run 2), 100 ms, succeeds (run 3)
    expect(runs).toBe(3);
    c.enqueue('a');
    await settle();
    expect(runs).toBe(4);
    await vi.advanceTimersByTimeAsync(50); // back to the first step of the backoff
    expect(runs).toBe(5);
    await c.stop();
  });

  it('does not retry a TerminalError, also when it is the cause of another error', async () => {
    vi.useFakeTimers();
    const { logger, lines } = captureLogger();
    const runs: string[] = [];
    const c = new Controller({
      name: 't',
      logger,
      reconcile: async (k) => {
        runs.push(k);
        if (k === 'a') throw new TerminalError('size is not a multiple of 4096');
        throw new Error('failed to sync b', { cause: new TerminalError('bad spec') });
      },
    });
    c.start();
    c.enqueue('a');
    c.enqueue('b');
    await vi.advanceTimersByTimeAsync(120_000);
    await settle();
    expect(runs).toEqual(['a', 'b']);
    expect(lines.filter((l) => l.level === 50).map((l) => l.key)).toEqual(['a', 'b']);
    // Enqueued again (e.g. the spec was fixed), it runs again.
    c.enqueue('a');
    await settle();
    expect(runs).toEqual(['a', 'b', 'a']);
    await c.stop();
  });

  it('requeues a store Conflict quietly (debug log only)', async () => {
    vi.useFakeTimers();
    const { logger, lines } = captureLogger();
    let runs = 0;
    const c = new Controller({
      name: 't',
      logger,
      reconcile: async () => {
        runs++;
        if (runs === 1) throw new StoreError('Conflict', 'resourceVersion 7 is stale');
        if (runs === 2) throw new Error('failed to write status', { cause: new StoreError('Conflict', 'stale') });
      },
    });
    c.start();
    c.enqueue('a');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runs).toBe(3);
    expect(lines.filter((l) => l.level > 20)).toEqual([]);
    expect(lines.filter((l) => l.level === 20 && l.key === 'a')).toHaveLength(2);
    await c.stop();
  });

  it('honours requeueAfterMs', async () => {
    vi.useFakeTimers();
    let runs = 0;
    const c = new Controller({
      name: 't',
      logger: silent,
      reconcile: async () => {
        runs++;
        return runs < 3 ? { requeueAfterMs: 1_000 } : {};
      },
    });
    c.start();
    c.enqueue('a');
    await settle();
    expect(runs).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(runs).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toBe(2);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runs).toBe(3);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toBe(3);
    await c.stop();
  });

  it('stop() waits for the running reconcile and runs nothing after', async () => {
    const gate = deferred();
    const started: string[] = [];
    let finished = 0;
    const c = new Controller({
      name: 't',
      logger: silent,
      reconcile: async (k) => {
        started.push(k);
        await gate.promise;
        finished++;
      },
    });
    c.start();
    c.enqueue('a');
    await waitFor(() => started.length === 1, 'reconcile to start');
    c.enqueue('b');
    let stopped = false;
    const stopping = c.stop().then(() => {
      stopped = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(stopped).toBe(false);
    gate.resolve();
    await stopping;
    expect(finished).toBe(1);
    expect(started).toEqual(['a']);
  });
});

describe('isResponsible', () => {
  const obj = (ownerID: string) => ({ status: { ownerID } });
  const up =
    (...ids: string[]) =>
    (id: string) =>
      ids.includes(id);

  it.each([
    // [case, ownerID, me, preferred, nodes up, expected]
    ['preferred node up: it, not me', 'n1', 'n1', 'n2', up('n1', 'n2'), false],
    ['preferred node up and it is me', 'n1', 'n2', 'n2', up('n1'), true],
    ['preferred down: the current owner keeps it', 'n1', 'n3', 'n2', up('n1'), false],
    ['preferred down and I own it', 'n3', 'n3', 'n2', up(), true],
    ['preferred and owner down: I take it', 'n1', 'n3', 'n2', up(), true],
    ['no preferred node, no owner: I take it', '', 'n3', '', up(), true],
    ['no preferred node, owner up', 'n1', 'n3', '', up('n1'), false],
  ] as const)('%s', (_case, ownerID, me, preferred, nodeIsUp, expected) => {
    expect(isResponsible(obj(ownerID), me, preferred, nodeIsUp)).toBe(expected);
  });
});

/**
 * TEST FAKE, not a real backend: an in-memory Store of Settings with just the list/watch semantics
 * the informer relies on (list returns a resourceVersion; watch replays from it, then follows live
 * changes; asynchronous, ordered delivery). Knobs let a test lose events, break watches, fail a list
 * or act between a list and the watch that follows it.
 */
class FakeSettingStore implements Store {
  private rv = 0;
  private readonly objects = new Map<string, Setting>();
  private history: WatchEvent<'Setting'>[] = [];
  /** Watching from a version below this fails with Expired (the history before it is gone). */
  private oldestWatchable = 0;
  private readonly watchers = new Set<{ deliver: (e: WatchEvent<'Setting'>) => void; fail: (e: Error) => void }>();
  /** While set, live events are not delivered to current watches (a connection silently lost). */
  dropEvents = false;
  failNextList: Error | undefined;
  /** Runs once, after a list has read its result and before it returns. */
  afterNextList: (() => void) | undefined;
  listCalls = 0;

  set(name: string, value: string): Setting {
    const old = this.objects.get(name);
    const obj: Setting = {
      apiVersion: API_VERSION,
      kind: 'Setting',
      metadata: {
        name,
        uid: old?.metadata.uid ?? `uid-${name}`,
        resourceVersion: String(++this.rv),
        generation: (old?.metadata.generation ?? 0) + 1,
        creationTimestamp: '',
        labels: {},
        annotations: {},
        ownerReferences: [],
        finalizers: [],
      },
      spec: { value },
      status: { applied: false },
    };
    this.objects.set(name, obj);
    this.record({ type: old ? 'MODIFIED' : 'ADDED', object: obj });
    return obj;
  }

  remove(name: string): void {
    const old = this.objects.get(name);
    if (!old) throw new Error(`no ${name}`);
    this.objects.delete(name);
    this.record({
      type: 'DELETED',
      object: { ...old, metadata: { ...old.metadata, resourceVersion: String(++this.rv) } },
    });
  }

  /** Forgets the watch history: resuming from any version up to now fails with Expired. */
  compact(): void {
    this.history = [];
    this.oldestWatchable = this.rv;
  }

  /** Ends every open watch with `err`, as a backend closing its streams. */
  breakWatches(err: Error): void {
    for (const w of [...this.watchers]) w.fail(err);
  }

  activeWatches(): number {
    return this.watchers.size;
  }

  async list<K extends Kind>(kind: K): Promise<ListResult<K>> {
    this.listCalls++;
    if (this.failNextList) {
      const err = this.failNextList;
      this.failNextList = undefined;
      throw err;
    }
    const items = kind === 'Setting' ? [...this.objects.values()].map((o) => structuredClone(o)) : [];
    const result = { items: items as KindMap[K][], resourceVersion: String(this.rv) };
    const hook = this.afterNextList;
    this.afterNextList = undefined;
    hook?.();
    return result;
  }

  watch<K extends Kind>(kind: K, opts: WatchOptions<K>): Watch {
    if (kind !== 'Setting') throw new Error('the fake store holds Settings only');
    const onEvent = opts.onEvent as (e: WatchEvent<'Setting'>) => void;
    const from = Number(opts.resourceVersion ?? this.rv);
    let active = true;
    const watcher = {
      deliver: (e: WatchEvent<'Setting'>) => {
        const copy = structuredClone(e);
        queueMicrotask(() => active && onEvent(copy));
      },
      fail: (err: Error) => {
        this.watchers.delete(watcher);
        queueMicrotask(() => {
          if (active) opts.onError?.(err);
          active = false;
        });
      },
    };
    this.watchers.add(watcher);
    if (from < this.oldestWatchable) {
      watcher.fail(new StoreError('Expired', `resourceVersion ${from} is too old`));
    } else {
      for (const e of this.history) if (Number(e.object.metadata.resourceVersion) > from) watcher.deliver(e);
    }
    return {
      stop: () => {
        active = false;
        this.watchers.delete(watcher);
      },
    };
  }

  private record(e: WatchEvent<'Setting'>): void {
    this.history.push(e);
    if (this.dropEvents) return;
    for (const w of this.watchers) w.deliver(e);
  }

  async get<K extends Kind>(): Promise<KindMap[K] | undefined> {
    throw new Error('not used by the informer');
  }
  async create<K extends Kind>(_kind: K, _obj: CreateInput<K>): Promise<KindMap[K]> {
    throw new Error('not used by the informer');
  }
  async update<K extends Kind>(): Promise<KindMap[K]> {
    throw new Error('not used by the informer');
  }
  async updateStatus<K extends Kind>(): Promise<KindMap[K]> {
    throw new Error('not used by the informer');
  }
  async delete<K extends Kind>(): Promise<KindMap[K]> {
    throw new Error('not used by the informer');
  }
  async close(): Promise<void> {}
}

type Seen = [type: string, name: string, value: string, oldValue?: string];

function recordEvents(informer: Informer<'Setting'>): Seen[] {
  const seen: Seen[] = [];
  informer.onEvent((type, obj, old) => {
    seen.push(
      old ? [type, obj.metadata.name, obj.spec.value, old.spec.value] : [type, obj.metadata.name, obj.spec.value],
    );
  });
  return seen;
}

function cacheContents(informer: Informer<'Setting'>): Record<string, string> {
  return Object.fromEntries(informer.list().map((s) => [s.metadata.name, s.spec.value]));
}

describe('Informer', () => {
  let informer: Informer<'Setting'> | undefined;
  afterEach(() => informer?.stop());

  it('lists, then follows the watch; the cache mirrors the store', async () => {
    const store = new FakeSettingStore();
    store.set('a', '1');
    store.set('b', '1');
    informer = new Informer(store, 'Setting', { logger: silent });
    const seen = recordEvents(informer);
    expect(informer.hasSynced()).toBe(false);
    informer.start();
    expect(await informer.waitForSync()).toBe(true);
    expect(informer.hasSynced()).toBe(true);
    expect(seen).toEqual([
      ['ADDED', 'a', '1'],
      ['ADDED', 'b', '1'],
    ]);

    store.set('a', '2');
    store.set('c', '1');
    store.remove('b');
    await waitFor(() => seen.length === 5, 'three watch events');
    expect(seen.slice(2)).toEqual([
      ['MODIFIED', 'a', '2', '1'],
      ['ADDED', 'c', '1'],
      ['DELETED', 'b', '1', '1'],
    ]);
    expect(cacheContents(informer)).toEqual({ a: '2', c: '1' });
    expect(informer.get('a')?.spec.value).toBe('2');
    expect(informer.get('b')).toBeUndefined();
    expect(informer.list((s) => s.spec.value === '1').map((s) => s.metadata.name)).toEqual(['c']);
  });

  it('after a watch error, lists again and emits exactly what changed meanwhile', async () => {
    const store = new FakeSettingStore();
    for (const n of ['a', 'b', 'd']) store.set(n, '1');
    informer = new Informer(store, 'Setting', { logger: silent, relistBaseMs: 10 });
    const seen = recordEvents(informer);
    informer.start();
    await informer.waitForSync();
    await waitFor(() => store.activeWatches() === 1, 'the watch');
    seen.length = 0;

    store.dropEvents = true;
    store.set('a', '2');
    store.remove('b');
    store.set('c', '1');
    store.set('e', '1');
    store.remove('e');
    store.dropEvents = false;
    expect(seen).toEqual([]);
    store.breakWatches(new Error('connection reset'));

    await waitFor(() => seen.length === 3, 'the differences');
    expect(seen).toEqual([
      ['MODIFIED', 'a', '2', '1'],
      ['ADDED', 'c', '1'],
      ['DELETED', 'b', '1', '1'],
    ]);
    expect(cacheContents(informer)).toEqual({ a: '2', c: '1', d: '1' });
    expect(store.listCalls).toBe(2);

    // And the new watch is live.
    await waitFor(() => store.activeWatches() === 1, 'the new watch');
    store.set('d', '2');
    await waitFor(() => seen.length === 4, 'a live event on the new watch');
    expect(seen[3]).toEqual(['MODIFIED', 'd', '2', '1']);
  });

  it('when the watch is Expired at its start, lists again and emits the differences', async () => {
    const store = new FakeSettingStore();
    store.set('a', '1');
    store.set('b', '1');
    // Between the first list and its watch: changes, and the history they are in is dropped.
    store.afterNextList = () => {
      store.set('a', '2');
      store.remove('b');
      store.set('c', '1');
      store.compact();
    };
    informer = new Informer(store, 'Setting', { logger: silent, relistBaseMs: 10 });
    const seen = recordEvents(informer);
    informer.start();
    await waitFor(() => seen.length === 5, 'the first list and the re-list');
    expect(seen).toEqual([
      ['ADDED', 'a', '1'],
      ['ADDED', 'b', '1'],
      ['MODIFIED', 'a', '2', '1'],
      ['ADDED', 'c', '1'],
      ['DELETED', 'b', '1', '1'],
    ]);
    expect(store.listCalls).toBe(2);
    expect(cacheContents(informer)).toEqual({ a: '2', c: '1' });
  });

  it('retries a failed first list', async () => {
    const store = new FakeSettingStore();
    store.set('a', '1');
    store.failNextList = new Error('database is locked');
    informer = new Informer(store, 'Setting', { logger: silent, relistBaseMs: 10 });
    informer.start();
    expect(await informer.waitForSync()).toBe(true);
    expect(store.listCalls).toBe(2);
    expect(cacheContents(informer)).toEqual({ a: '1' });
  });

  it('emits nothing after stop(), and waitForSync() answers false if stopped first', async () => {
    const store = new FakeSettingStore();
    const early = new Informer(store, 'Setting', { logger: silent });
    const sync = early.waitForSync();
    early.stop();
    expect(await sync).toBe(false);

    informer = new Informer(store, 'Setting', { logger: silent });
    const seen = recordEvents(informer);
    informer.start();
    await informer.waitForSync();
    informer.stop();
    store.set('a', '1');
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual([]);
    expect(store.activeWatches()).toBe(0);
  });

  it('watchInto enqueues the mapped keys of the new and the old object', async () => {
    const store = new FakeSettingStore();
    store.set('r1', 'vol-a');
    informer = new Informer(store, 'Setting', { logger: silent });
    const runs: string[] = [];
    const c = new Controller({ name: 'volumes', logger: silent, reconcile: async (k) => void runs.push(k) });
    // A "replica" event → its volume's key.
    watchInto(informer, c, (s) => [s.spec.value]);
    informer.start();
    await informer.waitForSync();
    c.start();
    await waitFor(() => runs.length === 1, 'the initial key');
    store.set('r1', 'vol-b');
    await waitFor(() => runs.length === 3, 'old and new keys');
    await c.stop();
    expect(runs[0]).toBe('vol-a');
    expect([...runs.slice(1)].sort()).toEqual(['vol-a', 'vol-b']);
  });
});
