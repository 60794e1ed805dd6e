// One engine or replica process, either spawned by this instance manager or adopted from the one that
// ran before it. Both look the same to the supervisor: a PID, a way to signal it and a promise that
// says how it ended.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { processAlive, processStartTime } from './proc-info.js';

/** How to run the shorthorn binary: node, its flags and bin/shorthorn.js (given by the CLI). */
export interface Launcher {
  execPath: string;
  args: string[];
}

export interface InstanceProcess {
  pid: number;
  startTime: string;
  /** Resolves once the process is gone, with how it ended ("exited with code 1", "killed by SIGKILL"). */
  exited: Promise<string>;
  isGone(): boolean;
  signal(sig: NodeJS.Signals): void;
}

const ADOPTED_POLL_MS = 500;

/**
 * Start `shorthorn <args>` with stdout and stderr appended to `logPath`. Files, not pipes: a pipe would
 * break (SIGPIPE, lost logs) the moment this instance manager dies, and the instances must outlive it.
 * Not detached: it stays in our process group, so killing the group (the node going down) ends it too.
 */
export function spawnInstance(launcher: Launcher, args: string[], logPath: string): InstanceProcess {
  const fd = openSync(logPath, 'a');
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(launcher.execPath, [...launcher.args, ...args], { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  let gone = false;
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => {
      gone = true;
      resolve(signal ? `killed by ${signal}` : `exited with code ${code}`);
    });
    // spawn failures (ENOENT, EAGAIN) arrive as 'error' with no 'exit'.
    child.once('error', (err) => {
      gone = true;
      resolve(`could not be started: ${err.message}`);
    });
  });
  const pid = child.pid ?? 0;
  return {
    pid,
    // Read at once: until Node reaps it, even a process that already exited still has its /proc entry.
    startTime: pid ? processStartTime(pid) : '',
    exited,
    isGone: () => gone,
    signal: (sig) => {
      if (!gone) child.kill(sig);
    },
  };
}

/**
 * A process left running by the previous instance manager. It is not our child, so no 'exit' event
 * comes: poll for it. Its exit status is lost (init reaps it), so the message can only say it is gone.
 */
export function adoptInstance(pid: number, startTime: string): InstanceProcess {
  let gone = false;
  const exited = new Promise<string>((resolve) => {
    const timer = setInterval(() => {
      if (processAlive(pid, startTime)) return;
      clearInterval(timer);
      gone = true;
      resolve(`process ${pid} (adopted after an instance manager restart) exited; its exit status is unknown`);
    }, ADOPTED_POLL_MS);
  });
  return {
    pid,
    startTime,
    exited,
    isGone: () => gone,
    signal: (sig) => {
      // Checked first: once it is gone its PID may already name someone else's process.
      if (gone || !processAlive(pid, startTime)) return;
      try {
        process.kill(pid, sig);
      } catch {
        // ESRCH: it exited between the poll and now; the poll reports it.
      }
    },
  };
}
