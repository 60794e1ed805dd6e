// Start a shorthorn sub-process and wait for its `{"ready":true,...}` line. Used by `shorthorn up`,
// the tests and the benchmark, so all of them run the real binaries the same way.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const SHORTHORN_BIN = fileURLToPath(new URL('../bin/shorthorn.js', import.meta.url));

/**
 * Node flags every shorthorn process runs with (bin/shorthorn.js's shebang says the same for `npx`).
 * `--single-threaded-gc`: on the 2-core benchmark machine V8's concurrent GC threads competed with the
 * engine and replicas; without them replica CPU per write fell 10–20 % and IOPS rose.
 * `--no-incremental-marking`: after a burst of writes, incremental marking kept the engine in
 * back-to-back old-space mark-compacts (~15/s); without it reads cost ~15 % less (bench/RESULTS.md).
 */
export const DATA_PLANE_NODE_FLAGS = ['--single-threaded-gc', '--no-incremental-marking'];

export interface ShorthornProcess {
  child: ChildProcess;
  pid: number;
  ready: Record<string, unknown>;
  /** stderr (pino JSON logs) so far, for failure messages. */
  logs(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null when killed). */
  stop(graceMs?: number): Promise<number | null>;
  kill9(): Promise<void>;
  exited: Promise<number | null>;
}

export function startShorthorn(
  args: string[],
  opts: {
    timeoutMs?: number;
    env?: NodeJS.ProcessEnv;
    logStderr?: boolean;
    ownProcessGroup?: boolean;
    /** Flags for node itself, e.g. --cpu-prof (Node 20 refuses that one in NODE_OPTIONS). */
    nodeArgs?: string[];
    /**
     * Append stderr (its logs) to this file instead of a pipe: a process meant to outlive its parent
     * (an instance manager after `up` is killed) must not lose its logs or write into a dead pipe.
     */
    stderrFile?: string;
  } = {},
): Promise<ShorthornProcess> {
  const stderrFd = opts.stderrFile ? openSync(opts.stderrFile, 'a') : undefined;
  const child = spawn(process.execPath, [...DATA_PLANE_NODE_FLAGS, ...(opts.nodeArgs ?? []), SHORTHORN_BIN, ...args], {
    stdio: ['ignore', 'pipe', stderrFd ?? 'pipe'],
    env: { ...process.env, ...opts.env },
    // In its own process group a child does not get the terminal's Ctrl-C: the parent stops it, in order.
    detached: opts.ownProcessGroup ?? false,
  });
  if (stderrFd !== undefined) closeSync(stderrFd);
  let stderr = '';
  let stdout = '';
  child.stderr?.on('data', (c: Buffer) => {
    if (opts.logStderr) process.stderr.write(c);
    stderr = (stderr + c.toString()).slice(-64 * 1024);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const stop = async (graceMs = 10_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  const kill9 = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`shorthorn ${args.join(' ')}: not ready after ${opts.timeoutMs ?? 30_000} ms\n${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
      const line = stdout.split('\n').find((l) => l.startsWith('{"ready":true'));
      if (!line) return;
      clearTimeout(timer);
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume();
      resolve({
        child,
        pid: child.pid!,
        ready: JSON.parse(line) as Record<string, unknown>,
        logs: () => (opts.stderrFile ? readTail(opts.stderrFile) : stderr),
        stop,
        kill9,
        exited,
      });
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(
          `shorthorn ${args.join(' ')} exited (${code ?? signal}) before ready\n${opts.stderrFile ? readTail(opts.stderrFile) : stderr}`,
        ),
      );
    });
  });
}

function readTail(path: string): string {
  try {
    return readFileSync(path, 'utf8').slice(-64 * 1024);
  } catch {
    return '';
  }
}
