// Reads for one GraphQL request. Every kind is listed at most once per request and indexed, so a
// dashboard query of 1,000 volumes with their replicas, engines and nodes costs a constant number of
// store reads whatever its size (a test counts them). Single objects go through a DataLoader per kind:
// a batch of one is a `get`, anything more is answered from the kind's one list.
import DataLoader from 'dataloader';
import type { Kind, KindMap } from '../model/kinds.js';
import type { Store } from '../store/store.js';
import type { ReadModel } from './read-model.js';

export class StoreReads {
  private readonly lists = new Map<Kind, Promise<unknown[]>>();
  private readonly loaders = new Map<Kind, DataLoader<string, unknown>>();
  private readonly indexes = new Map<string, Promise<Map<string, unknown[]>>>();

  /** With a read model (the API server's), reads come from memory; without, from the store. */
  constructor(
    readonly store: Store,
    private readonly model?: ReadModel,
  ) {}

  list<K extends Kind>(kind: K): Promise<KindMap[K][]> {
    let p = this.lists.get(kind);
    if (!p) {
      p = this.model ? Promise.resolve(this.model.list(kind)) : this.store.list(kind).then((r) => r.items);
      this.lists.set(kind, p);
    }
    return p as Promise<KindMap[K][]>;
  }

  get<K extends Kind>(kind: K, name: string): Promise<KindMap[K] | undefined> {
    if (this.model) return Promise.resolve(this.model.get(kind, name));
    let loader = this.loaders.get(kind);
    if (!loader) {
      loader = new DataLoader<string, unknown>(async (names) => {
        if (names.length === 1 && !this.lists.has(kind)) return [await this.store.get(kind, names[0]!)];
        const byName = new Map((await this.list(kind)).map((o) => [o.metadata.name, o]));
        return names.map((n) => byName.get(n));
      });
      this.loaders.set(kind, loader);
    }
    return loader.load(name) as Promise<KindMap[K] | undefined>;
  }

  /** Objects of `kind` grouped by `keyOf` (e.g. replicas by volume), from the kind's one list. */
  async by<K extends Kind>(
    kind: K,
    index: string,
    keyOf: (o: KindMap[K]) => string,
    key: string,
  ): Promise<KindMap[K][]> {
    const id = `${kind}/${index}`;
    let p = this.indexes.get(id);
    if (!p) {
      p = this.list(kind).then((items) => {
        const m = new Map<string, unknown[]>();
        for (const o of items) {
          const k = keyOf(o);
          const arr = m.get(k);
          if (arr) arr.push(o);
          else m.set(k, [o]);
        }
        return m;
      });
      this.indexes.set(id, p);
    }
    return ((await p).get(key) ?? []) as KindMap[K][];
  }
}
