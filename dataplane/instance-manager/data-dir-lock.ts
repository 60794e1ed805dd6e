// One instance manager per data dir: two would both adopt the same processes and overwrite each other's
// state file. The lock names the holder by PID and start time, so a crashed holder (SIGKILL, no cleanup)
// does not block its successor.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processAlive, processStartTime } from './proc-info.js';

export function lockDataDir(dataDir: string): () => void {
  const path = join(dataDir, 'instance-manager.lock');
  let holder: { pid: number; startTime: string } | undefined;
  try {
    holder = JSON.parse(readFileSync(path, 'utf8')) as { pid: number; startTime: string };
  } catch {
    // no lock, or an unreadable one: nobody we can name holds it
  }
  if (holder && holder.pid !== process.pid && processAlive(holder.pid, holder.startTime))
    throw new Error(`${dataDir} is in use by another instance manager (pid ${holder.pid})`);
  const mine = { pid: process.pid, startTime: processStartTime(process.pid) };
  writeFileSync(path, `${JSON.stringify(mine)}\n`);
  return () => rmSync(path, { force: true });
}
