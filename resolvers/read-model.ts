// The API's read model: an informer per kind (list, then watch) holding every resource parsed in
// memory, so a query reads objects that are already there instead of listing and parsing the store's
// JSON on every request (bench:api: 70 % of a dashboard query's time went to that). Objects handed out
// are the cache's own: resolvers only read them. `generation` moves on with every change of any kind,
// which is what the response cache keys on.
import type { Logger } from 'pino';
import { Informer } from '../controllers/runtime/informer.js';
import { KINDS, type Kind, type KindMap } from '../model/kinds.js';
import type { Store } from '../store/store.js';

export class ReadModel {
  private generationCounter = 0;

  private constructor(private readonly informers: Map<Kind, Informer<Kind>>) {
    for (const inf of informers.values()) {
      inf.onEvent(() => {
        this.generationCounter++;
      });
    }
  }

  static async start(store: Store, logger: Logger): Promise<ReadModel> {
    const informers = new Map<Kind, Informer<Kind>>(KINDS.map((k) => [k, new Informer(store, k, { logger })]));
    const model = new ReadModel(informers);
    for (const inf of informers.values()) inf.start();
    const synced = await Promise.all([...informers.values()].map((inf) => inf.waitForSync()));
    if (!synced.every(Boolean)) throw new Error('the API read model could not list the store');
    return model;
  }

  get generation(): number {
    return this.generationCounter;
  }

  /** The informer of `kind` (every kind has one: built from KINDS). */
  private informer<K extends Kind>(kind: K): Informer<K> {
    return this.informers.get(kind) as unknown as Informer<K>;
  }

  list<K extends Kind>(kind: K): KindMap[K][] {
    return this.informer(kind).list();
  }

  get<K extends Kind>(kind: K, name: string): KindMap[K] | undefined {
    return this.informer(kind).get(name);
  }

  stop(): void {
    for (const inf of this.informers.values()) inf.stop();
  }
}
