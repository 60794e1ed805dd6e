// Every shorthorn process logs JSON lines with pino on stderr; stdout is kept for the one
// `{"ready":true,...}` line (and command output), so scripts can read it without filtering logs.
import { type Logger, pino } from 'pino';

export function createLogger(name: string): Logger {
  return pino({ name, level: process.env['SHORTHORN_LOG_LEVEL'] ?? 'info' }, pino.destination({ fd: 2, sync: false }));
}

export function printReady(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ ready: true, ...fields })}\n`);
}

/** Run `close` on SIGTERM/SIGINT once, then exit 0 (1 if closing failed). */
export function closeOnSignals(logger: Logger, close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    close().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
