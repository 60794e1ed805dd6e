// A Store that counts the calls made through it, per operation, and passes them on unchanged: how a
// benchmark or a test sees how many store round trips something costs (e.g. a GraphQL query's N+1).
import type { Kind, KindMap } from '../model/kinds.js';
import type { CreateInput, LabelSelector, ListResult, Store, Watch, WatchOptions } from './store.js';

export type StoreOperation = keyof Store;

export class CountingStore implements Store {
  private calls: Partial<Record<StoreOperation, number>> = {};

  constructor(readonly inner: Store) {}

  /** Calls per operation since creation or the last reset(); operations never called are absent. */
  counts(): Record<string, number> {
    return { ...this.calls };
  }

  reset(): void {
    this.calls = {};
  }

  private count(op: StoreOperation): void {
    this.calls[op] = (this.calls[op] ?? 0) + 1;
  }

  get<K extends Kind>(kind: K, name: string): Promise<KindMap[K] | undefined> {
    this.count('get');
    return this.inner.get(kind, name);
  }

  list<K extends Kind>(kind: K, opts?: { labelSelector?: LabelSelector }): Promise<ListResult<K>> {
    this.count('list');
    return this.inner.list(kind, opts);
  }

  watch<K extends Kind>(kind: K, opts: WatchOptions<K>): Watch {
    this.count('watch');
    return this.inner.watch(kind, opts);
  }

  create<K extends Kind>(kind: K, obj: CreateInput<K>): Promise<KindMap[K]> {
    this.count('create');
    return this.inner.create(kind, obj);
  }

  update<K extends Kind>(kind: K, obj: KindMap[K]): Promise<KindMap[K]> {
    this.count('update');
    return this.inner.update(kind, obj);
  }

  updateStatus<K extends Kind>(kind: K, obj: KindMap[K]): Promise<KindMap[K]> {
    this.count('updateStatus');
    return this.inner.updateStatus(kind, obj);
  }

  delete<K extends Kind>(kind: K, name: string, opts?: { resourceVersion?: string }): Promise<KindMap[K]> {
    this.count('delete');
    return this.inner.delete(kind, name, opts);
  }

  close(): Promise<void> {
    this.count('close');
    return this.inner.close();
  }
}
