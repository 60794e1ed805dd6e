// A shorthorn process started with extra node flags. Node 20 refuses --cpu-prof in NODE_OPTIONS, so a
// profiled engine or replica has to be `node --cpu-prof --cpu-prof-dir=DIR bin/shorthorn.js …`; without
// flags this is cli/child-process.ts's startShorthorn, the one every other caller uses.
import { spawn } from 'node:child_process';
import { SHORTHORN_BIN, type ShorthornProcess, startShorthorn } from '../cli/child-process.js';

export function startShorthornWith(nodeArgs: string[], args: string[], timeoutMs = 60_000): Promise<ShorthornProcess> {
  if (nodeArgs.length === 0) return startShorthorn(args, { timeoutMs });
  const child = spawn(process.execPath, [...nodeArgs, SHORTHORN_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-64 * 1024)));
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
      reject(new Error(`shorthorn ${args.join(' ')}: not ready after ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
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
        logs: () => stderr,
        stop,
        kill9,
        exited,
      });
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(
          `node ${nodeArgs.join(' ')} shorthorn ${args.join(' ')} exited (${code ?? signal}) before ready\n${stderr}`,
        ),
      );
    });
  });
}
