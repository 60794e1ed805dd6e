// `<data-dir>/instances.json`: what this instance manager started, so the next one (after a crash or an
// upgrade) can adopt the processes still running and report the others. Written before every spawn
// and after every change, to a temp file that is renamed over the old one: a crash mid-write leaves
// the previous version, never half a file.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { InstanceCreateSpec, InstanceState } from './instance-types.js';

export interface InstanceRecord {
  name: string;
  spec: InstanceCreateSpec;
  state: InstanceState;
  /** 0 when the instance manager went down between writing this and spawning */
  pid: number;
  /** field 22 of /proc/PID/stat: tells this process apart from a later one with the same PID */
  startTime: string;
  port: number;
  endpoint: string;
  errorMsg: string;
  startedAt: string;
  /** size of the log file when the process was started: its ready line comes after it */
  logOffset: number;
}

interface StateFileContent {
  version: 1;
  instances: InstanceRecord[];
}

export class StateFile {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, 'instances.json');
  }

  read(): InstanceRecord[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new Error(`cannot read ${this.path}`, { cause: err });
    }
    const content = JSON.parse(text) as StateFileContent;
    if (content.version !== 1) throw new Error(`${this.path}: unknown version ${content.version}`);
    return content.instances;
  }

  write(instances: InstanceRecord[]): void {
    const content: StateFileContent = { version: 1, instances };
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, `${JSON.stringify(content, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
  }
}
