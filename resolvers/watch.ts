// Subscriptions are fed from the store's watch (never from mutations), so a change made by a
// controller reaches subscribers like one made through the API. The current value goes first.
import { Repeater } from 'graphql-yoga';
import type { Kind, KindMap } from '../model/kinds.js';
import type { Store } from '../store/store.js';

const rv = (o: { metadata: { resourceVersion: string } }) => Number(o.metadata.resourceVersion);

/**
 * Objects of `kind` that `match`, each as it is now, then at every change. Changes that arrive while the
 * current values are read are held back and only those newer than what was sent follow.
 */
export function watchMatching<K extends Kind>(
  store: Store,
  kind: K,
  match: (o: KindMap[K]) => boolean,
  opts: { endWhenGone?: string; current?: () => Promise<KindMap[K][]> } = {},
): AsyncIterable<KindMap[K]> {
  return new Repeater<KindMap[K]>(async (push, stop) => {
    const sent = new Map<string, number>();
    let held: { type: string; object: KindMap[K] }[] | undefined = [];
    const deliver = (type: string, o: KindMap[K]) => {
      if (!match(o)) return;
      if ((sent.get(o.metadata.name) ?? -1) >= rv(o)) return;
      sent.set(o.metadata.name, rv(o));
      if (type === 'DELETED' && opts.endWhenGone === o.metadata.name) stop();
      else void push(o);
    };
    const w = store.watch(kind, {
      onEvent: (e) => (held ? held.push(e) : deliver(e.type, e.object)),
      onError: (err) => stop(err),
    });
    const items = opts.current ? await opts.current() : (await store.list(kind)).items;
    for (const o of items) deliver('ADDED', o);
    for (const e of held) deliver(e.type, e.object);
    held = undefined;
    await stop;
    w.stop();
  });
}

/** One object by name, now and at every change; the stream ends when it is deleted. */
export function watchOne<K extends Kind>(store: Store, kind: K, name: string): AsyncIterable<KindMap[K]> {
  // The current value by name: listing the whole kind for one object made 100 subscribers wait seconds.
  return watchMatching(store, kind, (o) => o.metadata.name === name, {
    endWhenGone: name,
    current: async () => {
      const one = await store.get(kind, name);
      return one ? [one] : [];
    },
  });
}
