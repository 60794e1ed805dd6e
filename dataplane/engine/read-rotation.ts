// Which RW replica serves the next read: round-robin by event-loop turn. The reads of one turn go to
// the replica the turn's first read chose, so they leave in one write and come back in one batch;
// spread per request, a turn of 32 reads cost three replicas' sends, wake-ups and answer batches, each
// a third as full (3-replica randread QD32: engine + replicas 26–28 → 21–23 µs CPU per read). A client
// that sends one read at a time still has every read go to the next replica.

export interface ReadTarget {
  /** Requests of the current turn are queued for this replica (data-client.ts `queuedThisTurn`). */
  readonly data: { readonly queuedThisTurn: boolean };
}

export class ReadRotation {
  private next = 0;

  /** `readers` must not be empty. */
  pick<T extends ReadTarget>(readers: readonly T[]): T {
    const current = readers[this.next % readers.length]!;
    if (current.data.queuedThisTurn) return current;
    this.next = (this.next + 1) % readers.length;
    return readers[this.next]!;
  }
}
