// The engine's ControllerService straight from a test (the CLI is exercised separately): quicker than
// spawning `shorthorn` for each of many calls, e.g. 20 snapshots taken while fio runs.
import { credentials } from '@grpc/grpc-js';
import { SHORTHORN_BIN } from '../../cli/child-process.js';
import { unary } from '../../dataplane/grpc/unary.js';
import { ControllerServiceClient } from '../../dataplane/proto/gen/engine.js';
import type { TestVolume } from './cluster.js';
import { type RunResult, run } from './tools.js';

export function engineClient(vol: TestVolume): ControllerServiceClient {
  return new ControllerServiceClient(`127.0.0.1:${vol.enginePort}`, credentials.createInsecure());
}

export { unary };

/** `shorthorn ARGS…` as a real process. */
export function shorthorn(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return run(process.execPath, [SHORTHORN_BIN, ...args], { timeoutMs });
}

/** `shorthorn … -o json` parsed; throws with stderr when it exits non-zero. */
export async function shorthornJson<T>(args: string[], timeoutMs = 120_000): Promise<T> {
  const r = await shorthorn(args, timeoutMs);
  if (r.code !== 0) throw new Error(`shorthorn ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
