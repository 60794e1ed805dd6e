// Run the real NBD clients and system tools the tests drive. A missing tool is a failure, never a skip.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Debian's python3 has the nbd module; pyenv's python3 (first on PATH here) does not. */
export const TOOL_ENV = { ...process.env, PATH: `/usr/bin:/usr/sbin:/bin:/sbin:${process.env['PATH'] ?? ''}` };

export function requireTool(path: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm test\` (its pretest installs the test tools)`);
  return path;
}

/** Run a command to completion (bounded by `timeoutMs`); never throws on a non-zero exit. */
export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  requireTool(cmd);
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { env: TOOL_ENV, timeout: opts.timeoutMs ?? 120_000, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number' && !err.killed) reject(err);
        else resolve({ code: child.exitCode, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like run() but fails the test with the tool's output when it exits non-zero. */
export async function runOk(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Start a long-running tool (fio during a fault, nbdfuse); the caller kills it by PID. */
export function startTool(cmd: string, args: string[]) {
  requireTool(cmd);
  const child = spawn(cmd, args, { env: TOOL_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  // 'close' (not 'exit'): it fires after stdout/stderr are drained, so output() is complete then.
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    exited,
    output: () => ({ stdout, stderr }),
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
