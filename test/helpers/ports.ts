// Free TCP ports on 127.0.0.1 for test processes. A replica needs two consecutive ports (gRPC and
// data), so we probe pairs; a short race with other programs remains and start-up retries cover it.
import { createServer } from 'node:net';

function tryListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

let next = 20000 + Math.floor(Math.random() * 20000);

/** `count` consecutive free ports; returns the first. */
export async function freePorts(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = next;
    next += count + 1;
    if (next > 60000) next = 20000;
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await tryListen(base + i);
    if (ok) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}
