// Writes that happen only when something changed: reconciles run often, and a write that changes
// nothing would wake every watcher and cost a store operation for no news.
import { isDeepStrictEqual } from 'node:util';
import type { Kind, KindMap } from '../model/kinds.js';
import type { Store } from '../store/store.js';

/** Applies `mutate` to a copy's status and writes it if it differs; returns what is stored now. */
export async function patchStatus<K extends Kind>(
  store: Store,
  kind: K,
  obj: KindMap[K],
  mutate: (status: KindMap[K]['status'], obj: KindMap[K]) => void,
): Promise<KindMap[K]> {
  const next = structuredClone(obj);
  mutate(next.status, next);
  if (isDeepStrictEqual(next.status, obj.status)) return obj;
  return store.updateStatus(kind, next);
}

/** Applies `mutate` to a copy's metadata and spec and writes it if either differs. */
export async function patchSpec<K extends Kind>(
  store: Store,
  kind: K,
  obj: KindMap[K],
  mutate: (spec: KindMap[K]['spec'], obj: KindMap[K]) => void,
): Promise<KindMap[K]> {
  const next = structuredClone(obj);
  mutate(next.spec, next);
  if (isDeepStrictEqual(next.spec, obj.spec) && isDeepStrictEqual(next.metadata, obj.metadata)) return obj;
  return store.update(kind, next);
}

export function hasFinalizer(obj: { metadata: { finalizers: string[] } }, f: string): boolean {
  return obj.metadata.finalizers.includes(f);
}

export async function addFinalizer<K extends Kind>(store: Store, kind: K, obj: KindMap[K], f: string) {
  if (hasFinalizer(obj, f) || obj.metadata.deletionTimestamp) return obj;
  return patchSpec(store, kind, obj, (_s, o) => {
    o.metadata.finalizers.push(f);
  });
}

export async function removeFinalizer<K extends Kind>(store: Store, kind: K, obj: KindMap[K], f: string) {
  if (!hasFinalizer(obj, f)) return obj;
  return patchSpec(store, kind, obj, (_s, o) => {
    o.metadata.finalizers = o.metadata.finalizers.filter((x) => x !== f);
  });
}
