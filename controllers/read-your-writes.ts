// Controllers read from informer caches and write to the store. Without care, the reconcile right after
// a write reads the cache from before it and acts twice (e.g. creates a volume's replicas again).
// This Store wrapper makes every write wait until the informer of its kind has seen it — the same
// guarantee controller-runtime gets from "expectations" — so a reconcile always reads its own writes.
import type { Kind, KindMap } from '../model/kinds.js';
import type { CreateInput, ListResult, Store, Watch, WatchOptions } from '../store/store.js';
import type { Informers } from './context.js';

const CATCH_UP_MS = 5000;

function rvNumber(rv: string): number {
  const n = Number(rv);
  return Number.isFinite(n) ? n : 0;
}

export class ReadYourWritesStore implements Store {
  constructor(
    private readonly inner: Store,
    private readonly informers: () => Informers,
  ) {}

  /** Resolves once the informer's copy of `name` is at `rv` or later (or gone, for a removal). */
  private seen<K extends Kind>(kind: K, name: string, rv: string, gone: boolean): Promise<void> {
    const inf = this.informers()[kind];
    const ok = () => {
      const cur = inf.get(name);
      return gone
        ? cur === undefined || rvNumber(cur.metadata.resourceVersion) >= rvNumber(rv)
        : !!cur && rvNumber(cur.metadata.resourceVersion) >= rvNumber(rv);
    };
    if (ok()) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, CATCH_UP_MS);
      const off = inf.onEvent(() => {
        if (ok()) done();
      });
      function done() {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  }

  get<K extends Kind>(kind: K, name: string) {
    return this.inner.get(kind, name);
  }

  list<K extends Kind>(kind: K, opts?: { labelSelector?: Record<string, string> }): Promise<ListResult<K>> {
    return this.inner.list(kind, opts);
  }

  watch<K extends Kind>(kind: K, opts: WatchOptions<K>): Watch {
    return this.inner.watch(kind, opts);
  }

  async create<K extends Kind>(kind: K, obj: CreateInput<K>): Promise<KindMap[K]> {
    const out = await this.inner.create(kind, obj);
    await this.seen(kind, out.metadata.name, out.metadata.resourceVersion, false);
    return out;
  }

  async update<K extends Kind>(kind: K, obj: KindMap[K]): Promise<KindMap[K]> {
    const out = await this.inner.update(kind, obj);
    // Removing the last finalizer of an object being deleted removes it.
    const removed = !!out.metadata.deletionTimestamp && out.metadata.finalizers.length === 0;
    await this.seen(kind, out.metadata.name, out.metadata.resourceVersion, removed);
    return out;
  }

  async updateStatus<K extends Kind>(kind: K, obj: KindMap[K]): Promise<KindMap[K]> {
    const out = await this.inner.updateStatus(kind, obj);
    await this.seen(kind, out.metadata.name, out.metadata.resourceVersion, false);
    return out;
  }

  async delete<K extends Kind>(kind: K, name: string, opts?: { resourceVersion?: string }): Promise<KindMap[K]> {
    const out = await this.inner.delete(kind, name, opts);
    await this.seen(kind, name, out.metadata.resourceVersion, true);
    return out;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
