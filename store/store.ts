// The Store: where resources live, with Kubernetes semantics so the embedded SQLite backend and the
// Kubernetes (CRD) backend are interchangeable. One contract test suite runs against every backend
// (test/contract/store-contract.ts).
//
// Semantics (as the Kubernetes API server):
// - resourceVersion: a decimal string from one counter that grows with every write across all kinds;
//   list returns the version it reflects, and watch can resume from it.
// - create fills uid, resourceVersion, generation=1, creationTimestamp; fails with AlreadyExists.
// - update writes metadata (labels, annotations, finalizers, ownerReferences) and spec, never status;
//   generation grows when spec changed. updateStatus writes status only. Both fail with Conflict when
//   the given metadata.resourceVersion is not the stored one (an empty one skips the check).
// - delete: with finalizers left, sets deletionTimestamp (once) and keeps the object; without, removes
//   it. An object with deletionTimestamp whose last finalizer is removed by update is removed then.
//   Removing an object also deletes the objects whose ownerReferences name its uid (as Kubernetes'
//   background garbage collection does).
// - watch(kind, fromVersion): every change with a version above fromVersion, in version order, then
//   live changes; a version older than the history kept fails with Expired (the caller lists again).
// - Objects handed out are copies: changing one never changes the store.
import type { Kind, KindMap } from '../model/kinds.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent<K extends Kind = Kind> {
  type: WatchEventType;
  /** For DELETED, the object as it was last stored (with its final resourceVersion). */
  object: KindMap[K];
}

/** Equality match on labels, as Kubernetes' `a=b,c=d` selector; `{}` matches everything. */
export type LabelSelector = Record<string, string>;

export interface ListResult<K extends Kind> {
  items: KindMap[K][];
  resourceVersion: string;
}

export interface WatchOptions<K extends Kind> {
  /** Replay changes after this version first; omitted = only changes from now on. */
  resourceVersion?: string;
  onEvent: (event: WatchEvent<K>) => void;
  /** The watch ended for a reason other than stop(): Expired, the backend closed, a connection lost. */
  onError?: (err: Error) => void;
}

export interface Watch {
  stop(): void;
}

/** Input to create: metadata.name and spec required; status optional; the rest the store fills in. */
export type CreateInput<K extends Kind> = Omit<KindMap[K], 'metadata' | 'status' | 'apiVersion' | 'kind'> & {
  metadata: Partial<KindMap[K]['metadata']> & { name: string };
  status?: KindMap[K]['status'];
};

export interface Store {
  get<K extends Kind>(kind: K, name: string): Promise<KindMap[K] | undefined>;
  list<K extends Kind>(kind: K, opts?: { labelSelector?: LabelSelector }): Promise<ListResult<K>>;
  watch<K extends Kind>(kind: K, opts: WatchOptions<K>): Watch;
  create<K extends Kind>(kind: K, obj: CreateInput<K>): Promise<KindMap[K]>;
  update<K extends Kind>(kind: K, obj: KindMap[K]): Promise<KindMap[K]>;
  updateStatus<K extends Kind>(kind: K, obj: KindMap[K]): Promise<KindMap[K]>;
  /** Returns the object as left (with deletionTimestamp) or as it was when removed; NotFound if absent. */
  delete<K extends Kind>(kind: K, name: string, opts?: { resourceVersion?: string }): Promise<KindMap[K]>;
  close(): Promise<void>;
}
