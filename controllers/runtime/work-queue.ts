// A keyed, de-duplicating work queue with the semantics of client-go's workqueue (used by
// controller-runtime), so reconciles are level-based: event handlers only add keys, and however many
// events arrive for one key, it is queued once and never processed by two workers at the same time.
//
// - add(key) while the key is queued: nothing (it is already going to run).
// - add(key) while the key is being processed: it is marked dirty and queued again by done(key), so the
//   change that caused the add is seen by a later run rather than a concurrent one.
// - addAfter(key, ms): the key is added when the delay ends; a pending delay that ends sooner wins.
// - addRateLimited(key): addAfter with a per-key exponential backoff (50 ms doubling, at most 30 s);
//   forget(key) resets it once a run succeeds.
// - shutDown(): get() returns undefined from then on (keys still queued are dropped) and pending
//   delays are cancelled.

export const BACKOFF_BASE_MS = 50;
export const BACKOFF_MAX_MS = 30_000;

export class WorkQueue {
  /** Keys ready to hand out, in order; each also in `dirty`. */
  private readonly queue: string[] = [];
  /** Keys that need a run: queued, or added again while being processed. */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly delayed = new Map<string, { due: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private waiters: (() => void)[] = [];
  private shuttingDown = false;

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    // done(key) queues it; queuing it now would let a second worker run it concurrently.
    if (this.processing.has(key)) return;
    this.push(key);
  }

  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const due = Date.now() + ms;
    const pending = this.delayed.get(key);
    if (pending) {
      if (pending.due <= due) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { due, timer });
  }

  addRateLimited(key: string): void {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    this.addAfter(key, Math.min(BACKOFF_BASE_MS * 2 ** failures, BACKOFF_MAX_MS));
  }

  /** Resets the key's backoff (call after a successful run). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** How many rate-limited adds the key has had since it was last forgotten. */
  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to process (call done(key) after); waits for one; undefined once shut down. */
  async get(): Promise<string | undefined> {
    for (;;) {
      if (this.shuttingDown) return undefined;
      const key = this.queue.shift();
      if (key !== undefined) {
        this.dirty.delete(key);
        this.processing.add(key);
        return key;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** The run of `key` ended; if it was added meanwhile, it is queued again now. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) this.push(key);
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Keys ready to be handed out (not counting delayed or in-process ones). */
  len(): number {
    return this.queue.length;
  }

  private push(key: string): void {
    this.queue.push(key);
    // A woken waiter re-checks the queue, so waking one that finds it already emptied is harmless.
    this.waiters.shift()?.();
  }
}
