// Read/write IOPS, throughput and mean latency over the last complete second, as Longhorn's
// MetricsGet reports them. Counting is a few additions per I/O; the window rolls lazily.

export interface IoMetricsSnapshot {
  readIops: number;
  writeIops: number;
  readThroughput: number;
  writeThroughput: number;
  /** Mean latency in nanoseconds. */
  readLatency: number;
  writeLatency: number;
}

interface Bucket {
  ops: number;
  bytes: number;
  latencyMs: number;
}

const empty = (): Bucket => ({ ops: 0, bytes: 0, latencyMs: 0 });

export class IoMetrics {
  private second = Math.floor(Date.now() / 1000);
  private current = { read: empty(), write: empty() };
  private last = { read: empty(), write: empty() };

  record(kind: 'read' | 'write', bytes: number, latencyMs: number): void {
    this.roll();
    const b = this.current[kind];
    b.ops++;
    b.bytes += bytes;
    b.latencyMs += latencyMs;
  }

  snapshot(): IoMetricsSnapshot {
    this.roll();
    const { read, write } = this.last;
    return {
      readIops: read.ops,
      writeIops: write.ops,
      readThroughput: read.bytes,
      writeThroughput: write.bytes,
      readLatency: read.ops ? Math.round((read.latencyMs / read.ops) * 1e6) : 0,
      writeLatency: write.ops ? Math.round((write.latencyMs / write.ops) * 1e6) : 0,
    };
  }

  private roll(): void {
    const now = Math.floor(Date.now() / 1000);
    if (now === this.second) return;
    // A gap of more than one second means the last full second was idle.
    this.last = now === this.second + 1 ? this.current : { read: empty(), write: empty() };
    this.current = { read: empty(), write: empty() };
    this.second = now;
  }
}
