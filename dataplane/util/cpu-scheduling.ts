// The data-plane processes (engine, replica) run under SCHED_BATCH, Linux's policy for throughput work
// that is not interactive: a woken task no longer preempts the running one at once. A read crosses
// fio -> engine -> replica -> engine -> fio; with the default policy every hand-off could preempt the
// sender in the middle of its batch, and on 2 cores the processes spent more time switching than
// working. Side by side, 3-replica randread QD32: +13 % and +17 % IOPS, engine + replica CPU per read
// 14 -> 11.5 µs; 1 replica and writes within noise; QD1 reads +8 % (bench/RESULTS.md, "Levers tried").
import { readdirSync } from 'node:fs';
import type { Logger } from 'pino';
import { sparse } from '../native/sparse.js';

/**
 * Puts every thread of this process under SCHED_BATCH (threads started later inherit it from the
 * thread that starts them). Never fatal: a thread that refuses is logged and left as it is.
 */
export function useBatchScheduling(log: Logger): void {
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch (err) {
    log.warn({ err }, 'cannot list this process’s threads; CPU scheduling left as it is');
    return;
  }
  for (const tid of tids) {
    try {
      sparse.setBatchScheduling(Number(tid));
    } catch (err) {
      // A thread may have exited since the listing (ESRCH); anything else is worth a line.
      if (!/No such process/.test(String(err))) log.warn({ err, tid }, 'cannot set SCHED_BATCH for a thread');
    }
  }
  log.debug({ threads: tids.length }, 'CPU scheduling policy: SCHED_BATCH');
}
