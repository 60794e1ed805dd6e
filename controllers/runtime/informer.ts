// An informer keeps an in-memory cache of one kind, fed by list-then-watch, and tells handlers what
// changed. Controllers read from the cache (cheap, no store round trip) and handlers enqueue keys.
//
// When the watch fails (Expired: the store no longer has the history to resume from; or the backend
// closed it), the informer lists again after a short backoff and emits the differences between the
// cache and the new list, so handlers see every object that changed during the gap as ADDED, MODIFIED
// or DELETED, and the cache stays complete.
import type { Logger } from 'pino';
import type { Kind, KindMap } from '../../model/kinds.js';
import type { ListResult, Store, Watch, WatchEvent, WatchEventType } from '../../store/store.js';

/** `old` is the cached object before the change (MODIFIED, DELETED); for DELETED `obj` is its last state. */
export type InformerHandler<K extends Kind> = (type: WatchEventType, obj: KindMap[K], old?: KindMap[K]) => void;

export interface InformerOptions {
  logger: Logger;
  /** Delay before listing again after a failed list or watch; doubles up to `relistMaxMs`. */
  relistBaseMs?: number;
  relistMaxMs?: number;
}

export class Informer<K extends Kind> {
  private readonly cache = new Map<string, KindMap[K]>();
  private readonly handlers = new Set<InformerHandler<K>>();
  private readonly logger: Logger;
  private readonly relistBaseMs: number;
  private readonly relistMaxMs: number;
  private relistDelayMs: number;
  private watch: Watch | undefined;
  /** Bumped for every watch started, so events from an abandoned watch are ignored. */
  private watchEpoch = 0;
  private relistTimer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;
  private synced = false;
  private syncWaiters: ((synced: boolean) => void)[] = [];

  constructor(
    private readonly store: Store,
    readonly kind: K,
    opts: InformerOptions,
  ) {
    this.logger = opts.logger.child({ informer: kind });
    this.relistBaseMs = opts.relistBaseMs ?? 100;
    this.relistMaxMs = opts.relistMaxMs ?? 5_000;
    this.relistDelayMs = this.relistBaseMs;
  }

  /** Lists, then watches from the list's resourceVersion; returns at once (see waitForSync). */
  start(): void {
    if (this.started) throw new Error(`informer ${this.kind} already started`);
    this.started = true;
    void this.relist();
  }

  stop(): void {
    this.stopped = true;
    this.watchEpoch++;
    this.watch?.stop();
    this.watch = undefined;
    clearTimeout(this.relistTimer);
    this.resolveSyncWaiters(false);
  }

  /**
   * Registers a handler; returns a function that removes it. Register before start() to see the
   * initial list as ADDED events. Handlers run synchronously in the informer: they should only enqueue.
   */
  onEvent(handler: InformerHandler<K>): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  /** Whether the first list has been loaded into the cache. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves true once the first list is in the cache, or false if the informer is stopped before. */
  waitForSync(): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  /**
   * The cached object, or undefined. Read-only: it is shared with every other reader and the cache,
   * so `structuredClone` it before changing it (e.g. to write it back).
   */
  get(name: string): KindMap[K] | undefined {
    return this.cache.get(name);
  }

  /** Cached objects (optionally filtered). Read-only, as get(). */
  list(filter?: (obj: KindMap[K]) => boolean): KindMap[K][] {
    const all = [...this.cache.values()];
    return filter ? all.filter(filter) : all;
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    let listed: ListResult<K>;
    try {
      listed = await this.store.list(this.kind);
    } catch (err) {
      this.logger.warn({ err, retryInMs: this.relistDelayMs }, 'list failed');
      this.scheduleRelist();
      return;
    }
    if (this.stopped) return;
    this.replaceCache(listed.items);
    this.startWatch(listed.resourceVersion);
    if (!this.synced) {
      this.synced = true;
      this.resolveSyncWaiters(true);
    }
  }

  private scheduleRelist(): void {
    if (this.stopped) return;
    clearTimeout(this.relistTimer);
    this.relistTimer = setTimeout(() => void this.relist(), this.relistDelayMs);
    this.relistDelayMs = Math.min(this.relistDelayMs * 2, this.relistMaxMs);
  }

  private startWatch(resourceVersion: string): void {
    const epoch = ++this.watchEpoch;
    const watch = this.store.watch(this.kind, {
      resourceVersion,
      onEvent: (event) => {
        if (epoch !== this.watchEpoch) return;
        // A watch that delivers events is healthy: the next failure starts from the short delay again.
        this.relistDelayMs = this.relistBaseMs;
        this.apply(event);
      },
      onError: (err) => {
        if (epoch !== this.watchEpoch) return;
        this.watchEpoch++;
        this.watch?.stop();
        this.watch = undefined;
        this.logger.info({ err, relistInMs: this.relistDelayMs }, 'watch ended; listing again');
        this.scheduleRelist();
      },
    });
    // onError may already have run inside store.watch(); then this watch is abandoned.
    if (epoch === this.watchEpoch) this.watch = watch;
    else watch.stop();
  }

  private apply(event: WatchEvent<K>): void {
    const obj = event.object;
    const name = obj.metadata.name;
    const old = this.cache.get(name);
    if (event.type === 'DELETED') {
      if (!old) return;
      this.cache.delete(name);
      this.emit('DELETED', obj, old);
      return;
    }
    // The watch's ADDED/MODIFIED is relative to the store; handlers get it relative to the cache.
    if (old?.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    this.cache.set(name, obj);
    if (old) this.emit('MODIFIED', obj, old);
    else this.emit('ADDED', obj);
  }

  /** Makes the cache equal to a fresh list, emitting one event per difference. */
  private replaceCache(items: KindMap[K][]): void {
    const seen = new Set<string>();
    for (const obj of items) {
      const name = obj.metadata.name;
      seen.add(name);
      const old = this.cache.get(name);
      if (old?.metadata.resourceVersion === obj.metadata.resourceVersion) continue;
      this.cache.set(name, obj);
      if (old) this.emit('MODIFIED', obj, old);
      else this.emit('ADDED', obj);
    }
    for (const [name, old] of this.cache) {
      if (seen.has(name)) continue;
      this.cache.delete(name);
      this.emit('DELETED', old, old);
    }
  }

  private emit(type: WatchEventType, obj: KindMap[K], old?: KindMap[K]): void {
    for (const handler of this.handlers) {
      try {
        handler(type, obj, old);
      } catch (err) {
        // One broken handler must not stop the cache from being updated or other handlers from running.
        this.logger.error({ err, type, name: obj.metadata.name }, 'informer event handler threw');
      }
    }
  }

  private resolveSyncWaiters(synced: boolean): void {
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const resolve of waiters) resolve(synced);
  }
}
