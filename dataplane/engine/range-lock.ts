// Overlapping writes must reach every replica in the same order, or replicas silently diverge: the
// engine spreads requests over several connections per replica, and two connections give no order.
// So a write (or trim / write-zeroes) waits while an overlapping one is in flight. Non-overlapping
// writes — nearly all of them — pass straight through without allocating a promise.

export interface HeldRange {
  start: number;
  end: number;
  release(): void;
}

interface Entry extends HeldRange {
  waiters: (() => void)[] | null;
}

export class RangeLock {
  private readonly active = new Set<Entry>();

  /** The held range, or null when an overlapping range is in flight. */
  tryAcquire(start: number, end: number): HeldRange | null {
    for (const e of this.active) if (e.start < end && start < e.end) return null;
    const entry: Entry = {
      start,
      end,
      waiters: null,
      release: () => {
        this.active.delete(entry);
        if (entry.waiters) for (const wake of entry.waiters) wake();
      },
    };
    this.active.add(entry);
    return entry;
  }

  async acquire(start: number, end: number): Promise<HeldRange> {
    for (;;) {
      const held = this.tryAcquire(start, end);
      if (held) return held;
      let blocker: Entry | undefined;
      for (const e of this.active) {
        if (e.start < end && start < e.end) {
          blocker = e;
          break;
        }
      }
      if (!blocker) continue;
      const b = blocker;
      await new Promise<void>((resolve) => {
        b.waiters ??= [];
        b.waiters.push(resolve);
      });
    }
  }

  get size(): number {
    return this.active.size;
  }
}
