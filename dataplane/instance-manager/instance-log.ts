// An instance's log file: its stdout (the one ready line) and stderr (pino JSON) appended across
// restarts of the same name, by this instance manager's children and by adopted processes alike.
import { closeSync, openSync, readSync, statSync } from 'node:fs';

const TAIL_BYTES = 256 * 1024;

function readRange(path: string, from: number, to: number): string {
  if (to <= from) return '';
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(to - from);
    const n = readSync(fd, buf, 0, buf.length, from);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export function logSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The last `lines` lines of the file ('' when it does not exist). */
export function tailLog(path: string, lines: number): string {
  const size = logSize(path);
  const text = readRange(path, Math.max(0, size - TAIL_BYTES), size);
  const all = text.split('\n');
  if (all.at(-1) === '') all.pop();
  return all.slice(-lines).join('\n');
}

/** Whether the process that started writing at `offset` has printed its `{"ready":true,...}` line. */
export function printedReady(path: string, offset: number): boolean {
  const size = logSize(path);
  // Ready comes first on stdout, but pino lines on stderr may precede it: scan what was written since.
  return readRange(path, offset, Math.min(size, offset + 4 * 1024 * 1024))
    .split('\n')
    .some((l) => l.startsWith('{"ready":true'));
}
