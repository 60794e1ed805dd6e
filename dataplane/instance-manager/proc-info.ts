// What /proc says about a PID. A PID alone is not an identity: after a reboot or enough forks the same
// number names another process, so an instance is recognised by PID + start time (+ its command line).
import { readFileSync } from 'node:fs';

interface ProcStat {
  /** R, S, D, Z (zombie), X (dead) … */
  state: string;
  /** field 22: start time in clock ticks since boot */
  startTime: string;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 is "(comm)" and comm may contain spaces or parentheses: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field 22 is rest[19].
  return { state: rest[0] ?? '', startTime: rest[19] ?? '' };
}

/** The start time of a process, '' when it is gone. */
export function processStartTime(pid: number): string {
  return readStat(pid)?.startTime ?? '';
}

/**
 * Whether that very process still runs. A zombie counts as gone: an adopted process that exited is
 * reaped by init, not by us, and until then `kill(pid, 0)` would still succeed on it.
 */
export function processAlive(pid: number, startTime: string): boolean {
  const stat = readStat(pid);
  return stat !== undefined && stat.startTime === startTime && stat.state !== 'Z' && stat.state !== 'X';
}

export function processCommandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}
