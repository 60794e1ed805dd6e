// Free TCP ports on 127.0.0.1 for test processes. A replica needs two consecutive ports (gRPC and
// data), so we probe runs; a short race with other programs remains and start-up retries cover it.
//
// Probed below Linux's ephemeral range (32768–60999 by default): a port there may be the local end of
// any established client connection (fio, gRPC, S3 clients of earlier tests), which makes a listen on
// it fail, and a run of 20 consecutive free ports there was once not found in 200 tries.
import { createServer } from 'node:net';

const LOW = 10_000;
const HIGH = 32_000;

/** True if the port is free; false if it is in use; any other failure is thrown, not taken for "busy". */
function tryListen(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false);
      else reject(new Error(`probing port ${port} on 127.0.0.1: ${err.message}`, { cause: err }));
    });
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

let next = LOW + Math.floor(Math.random() * (HIGH - LOW));

/** `count` consecutive free ports; returns the first. */
export async function freePorts(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (next + count > HIGH) next = LOW;
    const base = next;
    next += count + 1;
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await tryListen(base + i);
    if (ok) return base;
  }
  throw new Error(`no ${count} consecutive free ports found in [${LOW}, ${HIGH})`);
}
