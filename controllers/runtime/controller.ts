// A controller runs `reconcile(key)` from a work queue on a few workers, with controller-runtime's
// result semantics:
// - success: the key's backoff is reset; `requeueAfterMs` runs it again after that delay (polling);
// - a thrown error: retried with per-key exponential backoff, logged with its cause chain;
// - a TerminalError (anywhere in the cause chain): logged, not retried until the key is added again;
// - a store Conflict (anywhere in the cause chain): someone else wrote first, which is normal with
//   optimistic concurrency, so it is retried (rate limited) and logged at debug level only.
// Reconciles are level-based: they read the current state for the key, whatever event caused the run.
import type { Logger } from 'pino';
import type { Kind, KindMap } from '../../model/kinds.js';
import { isStoreError } from '../../store/errors.js';
import type { Informer } from './informer.js';
import { WorkQueue } from './work-queue.js';

/**
 * Taken at load: tests that fake timers (vitest) replace the global, and a worker's yield must not
 * wait for a fake clock to advance.
 */
const realSetImmediate = globalThis.setImmediate;

export interface ReconcileResult {
  /** Run this key again after this many milliseconds (on success only). */
  requeueAfterMs?: number;
}

export interface ControllerOptions {
  name: string;
  logger: Logger;
  // biome-ignore lint/suspicious/noConfusingVoidType: lets a reconcile that never requeues be `async (key) => {...}` or a `Promise<void>` function.
  reconcile: (key: string) => Promise<ReconcileResult | void>;
  /** Keys reconciled in parallel (one key is never run twice at once). Default 1. */
  workers?: number;
}

/** An error that retrying cannot fix (e.g. an invalid spec): logged once and not retried. */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

/** Whether `err` or any error in its `cause` chain matches. */
function inCauseChain(err: unknown, match: (e: unknown) => boolean): boolean {
  const seen = new Set<unknown>();
  for (let e = err; e !== undefined && e !== null && !seen.has(e); e = e instanceof Error ? e.cause : undefined) {
    if (match(e)) return true;
    seen.add(e);
  }
  return false;
}

export class Controller {
  readonly name: string;
  private readonly logger: Logger;
  private readonly reconcile: ControllerOptions['reconcile'];
  private readonly workerCount: number;
  private readonly queue = new WorkQueue();
  private workers: Promise<void>[] = [];

  constructor(opts: ControllerOptions) {
    this.name = opts.name;
    this.logger = opts.logger.child({ controller: opts.name });
    this.reconcile = opts.reconcile;
    this.workerCount = opts.workers ?? 1;
    if (!Number.isInteger(this.workerCount) || this.workerCount < 1) {
      throw new Error(`controller ${opts.name}: workers must be a positive integer`);
    }
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  enqueueAfter(key: string, ms: number): void {
    this.queue.addAfter(key, ms);
  }

  start(): void {
    if (this.workers.length > 0) throw new Error(`controller ${this.name} already started`);
    for (let i = 0; i < this.workerCount; i++) this.workers.push(this.runWorker());
  }

  /** Stops handing out keys and waits for the reconciles running now to end; queued keys are dropped. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.workers);
  }

  private async runWorker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.runOne(key);
      } finally {
        this.queue.done(key);
      }
      // Yield to the event loop between reconciles. With the embedded store every call is synchronous,
      // so a burst of reconciles chains through microtasks alone and would starve timers (requeueAfter,
      // batching) and sockets (gRPC streams, the API) until the burst ends.
      await new Promise<void>((resolve) => realSetImmediate(resolve));
    }
  }

  private async runOne(key: string): Promise<void> {
    let requeueAfterMs: number | undefined;
    try {
      requeueAfterMs = (await this.reconcile(key))?.requeueAfterMs;
    } catch (err) {
      if (inCauseChain(err, (e) => e instanceof TerminalError)) {
        this.queue.forget(key);
        this.logger.error({ key, err }, 'reconcile failed with a terminal error; not retrying');
      } else if (inCauseChain(err, (e) => isStoreError(e, 'Conflict'))) {
        this.queue.addRateLimited(key);
        this.logger.debug({ key, err }, 'reconcile hit a conflict; requeued');
      } else {
        this.queue.addRateLimited(key);
        // pino's err serializer appends the messages and stacks of the `cause` chain.
        this.logger.error(
          { key, err, requeues: this.queue.numRequeues(key) },
          'reconcile failed; retrying with backoff',
        );
      }
      return;
    }
    this.queue.forget(key);
    if (requeueAfterMs !== undefined) this.queue.addAfter(key, requeueAfterMs);
  }
}

/**
 * Enqueues into `controller` the keys `mapFn` gives for each event of `informer` (by default the
 * object's own name). For a MODIFIED event the old object is mapped too, so a key that an object
 * stops pointing at (e.g. a replica moved to another volume) is reconciled as well. Returns a function
 * that unhooks it.
 */
export function watchInto<K extends Kind>(
  informer: Informer<K>,
  controller: Controller,
  mapFn: (obj: KindMap[K]) => string[] = (obj) => [obj.metadata.name],
): () => void {
  return informer.onEvent((_type, obj, old) => {
    for (const key of mapFn(obj)) controller.enqueue(key);
    if (old) for (const key of mapFn(old)) controller.enqueue(key);
  });
}
