// `ls --watch` for any list: print the list, subscribe to each listed object's changes (and to all
// events, for objects that appear), and print it again whenever it changed — until Ctrl-C.
import { type ClientOptions, type GraphQLClient, type Subscription, untilSignal } from './graphql-client.js';

const ANY_EVENT = 'subscription AnyEvent { events { name count } }';

export interface LiveList<T> {
  /** The list as it is now. */
  list(): Promise<T[]>;
  nameOf(item: T): string;
  /** A subscription to one item's changes (e.g. volumeChanged(name)); ends when it is deleted. */
  subscribeOne(name: string, onChange: () => void): Subscription;
  table(items: T[]): string;
}

export async function watchList<T>(c: GraphQLClient, opts: ClientOptions, live: LiveList<T>): Promise<void> {
  const subs = new Map<string, Subscription>();
  let pending: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let lastKey = '';
  let failure: unknown;
  const redraw = async () => {
    const items = await live.list();
    // Printed again when an item changed, not when only an AGE column moved on.
    const key = JSON.stringify(items);
    if (key !== lastKey) {
      lastKey = key;
      const text = opts.output === 'json' ? JSON.stringify(items) : live.table(items);
      if (opts.output !== 'json' && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
      else if (opts.output !== 'json') process.stdout.write('\n');
      process.stdout.write(`${text}\n`);
    }
    const names = new Set(items.map((i) => live.nameOf(i)));
    for (const [name, sub] of subs)
      if (!names.has(name)) {
        sub.stop();
        subs.delete(name);
      }
    for (const name of names)
      if (!subs.has(name)) {
        const sub = live.subscribeOne(name, () => schedule());
        // Ends when the item is deleted: list again so it leaves the table.
        sub.done
          .catch(() => {})
          .finally(() => {
            if (subs.get(name) === sub) subs.delete(name);
            schedule();
          });
        subs.set(name, sub);
      }
  };
  let ending = false;
  const schedule = () => {
    // Stopping ends every subscription, and an ended one asks for a re-list: not any more.
    if (pending || ending) return;
    pending = setTimeout(() => {
      pending = undefined;
      running = running.then(redraw).catch((err: unknown) => {
        failure = err;
        stopAll();
      });
    }, 100);
  };
  let stopAll = () => {};
  const stopped = new Promise<void>((resolve) => {
    stopAll = resolve;
  });
  await redraw();
  const events = c.subscribe(ANY_EVENT, {}, () => schedule());
  // New objects raise no event of their own until a controller acts on them: a slow re-list catches them.
  const poll = setInterval(schedule, 5000);
  try {
    await Promise.race([untilSignal(), stopped, events.done]);
  } finally {
    ending = true;
    clearInterval(poll);
    clearTimeout(pending);
    events.stop();
    for (const s of subs.values()) s.stop();
  }
  if (failure) throw failure;
}
