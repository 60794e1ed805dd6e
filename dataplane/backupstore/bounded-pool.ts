// Block uploads and downloads run a few at a time: enough to hide the target's latency, few enough to
// bound memory (each task holds a 2 MiB block and its compressed copy) and not to flood the target.

/**
 * Runs `task` for every item with at most `limit` running, roughly in order. The first failure (or
 * an abort) stops new tasks from starting, waits for the running ones, and rejects with that reason.
 */
export async function runBounded<T>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const width = Math.max(1, Math.min(Math.floor(limit) || 1, items.length));
  let next = 0;
  let failure: { reason: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      if (signal?.aborted) {
        failure ??= { reason: signal.reason };
        return;
      }
      const index = next++;
      try {
        await task(items[index]!, index);
      } catch (reason) {
        failure ??= { reason };
      }
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  if (failure !== undefined) throw failure.reason;
  if (signal?.aborted) throw signal.reason;
}

/** Clamps a caller's concurrency to something sane. */
export function boundedConcurrency(requested: number | undefined, fallback = 4, max = 32): number {
  if (requested === undefined || !Number.isFinite(requested)) return fallback;
  return Math.max(1, Math.min(max, Math.floor(requested)));
}
