// grpc-js says only "No address added out of total 1 resolved" when it cannot bind. To tell an
// operator why, try the same address with a plain socket once the bind failed and name the errno.
import { createServer } from 'node:net';

const HINTS: Record<string, string> = {
  EADDRINUSE: 'the port is taken (another process, or the local end of a recent client connection)',
  EADDRNOTAVAIL: 'no interface on this machine has that address',
  EACCES: 'ports below 1024 need privileges',
};

/** Why `host:port` cannot be listened on, e.g. "EADDRINUSE: the port is taken …"; '' if it now can. */
export function listenFailureReason(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'error';
      resolve(HINTS[code] ? `${code}: ${HINTS[code]}` : `${code}: ${err.message}`);
    });
    probe.listen(port, host, () => probe.close(() => resolve('')));
  });
}
