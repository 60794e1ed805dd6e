// Waiting for a backup or a restore from the CLI: a progress bar (percent, bytes done / total) on a
// terminal, nothing on a pipe, and the final state either way.
import cliProgress from 'cli-progress';
import { formatSize } from '../dataplane/util/size.js';

const POLL_MS = 250;

interface JobProgress {
  state: string;
  progress: number;
  bytesDone: number;
  bytesTotal: number;
}

/** Polls `poll` until the job leaves in_progress; returns its last status. */
export async function waitWithProgress<T extends JobProgress>(label: string, poll: () => Promise<T>): Promise<T> {
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${label} [{bar}] {percentage}% | {done} / {all}`,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;
  bar?.start(100, 0, { done: '0 B', all: '?' });
  try {
    for (;;) {
      const p = await poll();
      bar?.update(Math.min(100, Math.max(0, p.progress)), {
        done: formatSize(p.bytesDone),
        all: p.bytesTotal > 0 ? formatSize(p.bytesTotal) : '?',
      });
      if (p.state !== 'in_progress') return p;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    bar?.stop();
  }
}
