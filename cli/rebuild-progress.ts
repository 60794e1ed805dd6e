// Waiting for a replica's rebuild from the CLI: a progress bar (bytes done / total) on a terminal,
// nothing on a pipe, and the final state either way.
import cliProgress from 'cli-progress';
import { unary } from '../dataplane/grpc/unary.js';
import type { ControllerServiceClient, RebuildProgress } from '../dataplane/proto/gen/engine.js';
import { formatSize } from '../dataplane/util/size.js';

const POLL_MS = 250;

export async function waitForRebuild(c: ControllerServiceClient, address: string): Promise<RebuildProgress> {
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `rebuild ${address} [{bar}] {percentage}% | {done} / {all} | sent {sent}`,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;
  bar?.start(1, 0, { done: '0 B', all: '?', sent: '0 B' });
  try {
    for (;;) {
      const p = await unary(c.replicaRebuildStatus, c, { address });
      const total = Math.max(p.bytesTotal, 1);
      bar?.setTotal(total);
      bar?.update(Math.min(p.bytesDone, total), {
        done: formatSize(p.bytesDone),
        all: formatSize(p.bytesTotal),
        sent: formatSize(p.bytesTransferred),
      });
      if (p.state !== 'in_progress') return p;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    bar?.stop();
  }
}
