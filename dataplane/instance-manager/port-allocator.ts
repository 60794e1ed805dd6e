// Two consecutive ports per instance (gRPC, and data or NBD at port+1) from the node's range. Ports of
// every listed instance stay reserved until it is deleted, even while it is in ERROR: the control plane
// may still point at them, and a restarted instance manager reserves them again from its state file.
import { createServer } from 'node:net';

export interface PortRange {
  start: number;
  /** inclusive */
  end: number;
}

export function parsePortRange(text: string): PortRange {
  const m = /^(\d+)-(\d+)$/.exec(text.trim());
  const range = m ? { start: Number(m[1]), end: Number(m[2]) } : undefined;
  if (!range || range.start < 1 || range.end > 65535 || range.end - range.start < 1)
    throw new Error(`invalid port range "${text}": expected A-B with 1 <= A < B <= 65535`);
  return range;
}

/** Whether nothing (another program, a leftover process) listens on host:port right now. */
function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

export class PortAllocator {
  private readonly reserved = new Set<number>();
  // Search from where the last allocation ended, so a pair that was just released is the last one handed
  // out again: a client still holding the old address then hits nothing rather than a new instance.
  private cursor: number;

  constructor(
    readonly range: PortRange,
    private readonly host: string,
  ) {
    this.cursor = range.start;
  }

  /** Mark a pair as taken (an instance found in the state file). */
  reserve(port: number): void {
    this.reserved.add(port);
    this.reserved.add(port + 1);
  }

  release(port: number): void {
    this.reserved.delete(port);
    this.reserved.delete(port + 1);
  }

  /** The first port of a free pair, reserved; `preferred` first (an instance replaced keeps its address). */
  async allocate(preferred?: number): Promise<number> {
    const { start, end } = this.range;
    const pairs = Math.floor((end - start + 1) / 2);
    const candidates = preferred === undefined ? [] : [preferred];
    for (let i = 0; i < pairs; i++) {
      const offset = (this.cursor - start + 2 * i) % (2 * pairs);
      candidates.push(start + offset);
    }
    for (const port of candidates) {
      if (port < start || port + 1 > end || this.reserved.has(port) || this.reserved.has(port + 1)) continue;
      // Reserve before probing: two creates running at once must not both probe and take the same pair.
      this.reserve(port);
      if ((await portIsFree(this.host, port)) && (await portIsFree(this.host, port + 1))) {
        if (port !== preferred) this.cursor = port + 2 > end ? start : port + 2;
        return port;
      }
      this.release(port);
    }
    throw new Error(`no two consecutive free ports left in ${start}-${end} on ${this.host}`);
  }
}
