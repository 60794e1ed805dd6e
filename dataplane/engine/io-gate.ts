// Lets control operations (adding a replica, comparing revision counters; snapshots later) run with
// no I/O in flight: pause() stops new I/O at the gate and waits for the running I/O to drain.

export class IoGate {
  private inFlight = 0;
  private paused: Promise<void> | null = null;
  private resumePaused: (() => void) | null = null;
  private drained: (() => void) | null = null;

  /** Enter the gate: undefined on the fast path, a promise to await while paused. */
  enter(): Promise<void> | undefined {
    if (this.paused === null) {
      this.inFlight++;
      return undefined;
    }
    return this.enterSlow();
  }

  private async enterSlow(): Promise<void> {
    while (this.paused !== null) await this.paused;
    this.inFlight++;
  }

  exit(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.drained) {
      const done = this.drained;
      this.drained = null;
      done();
    }
  }

  /** Pause new I/O, wait for the in-flight I/O, run `fn`, resume. One pause at a time. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.paused !== null) await this.paused;
    this.paused = new Promise<void>((resolve) => {
      this.resumePaused = resolve;
    });
    try {
      if (this.inFlight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      return await fn();
    } finally {
      const resume = this.resumePaused!;
      this.paused = null;
      this.resumePaused = null;
      resume();
    }
  }
}
