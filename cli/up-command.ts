// `shorthorn up`: the all-in-one for a single machine. Until the control plane lands (store,
// controllers, API), it runs one volume by hand: N replica processes and an engine on 127.0.0.1, data
// under --data-dir, and prints the NBD endpoint. Running it again on the same data dir serves the
// same data.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseVolumeSize } from '../dataplane/util/size.js';
import { type ShorthornProcess, startShorthorn } from './child-process.js';
import { closeOnSignals, createLogger, printReady } from './logger.js';

interface UpOpts {
  dataDir: string;
  port: string;
  replicas: string;
  volume: string;
  size: string;
  nbdPort: string;
}

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('run Shorthorn on this machine: one replicated volume served over NBD')
    .option('--data-dir <dir>', 'where replicas keep their data', './data')
    .option('--port <port>', 'engine gRPC port; replicas use the ports above it', '9500')
    .option('--replicas <n>', 'number of replicas', '3')
    .option('--volume <name>', 'volume name (NBD export name)', 'vol0')
    .option('--size <size>', 'volume size', '1Gi')
    .option('--nbd-port <port>', 'NBD port on 127.0.0.1', '10809')
    .action(async (opts: UpOpts) => {
      const logger = createLogger('up');
      const size = parseVolumeSize(opts.size);
      const base = Number(opts.port);
      const children: ShorthornProcess[] = [];
      let stopping = false;
      const stopAll = async () => {
        stopping = true;
        // Engine first, so it closes the replicas cleanly before they stop.
        for (const c of [...children].reverse()) await c.stop();
      };
      // Never leave orphans holding ports, even if this process dies of an error.
      process.on('exit', () => {
        for (const c of children) c.child.kill('SIGKILL');
      });
      const spawnOpts = { logStderr: true, ownProcessGroup: true };
      try {
        const replicas: string[] = [];
        for (let i = 0; i < Number(opts.replicas); i++) {
          const dir = resolve(join(opts.dataDir, 'replicas', `${opts.volume}-r${i}`));
          mkdirSync(dir, { recursive: true });
          const port = base + 2 + i * 2;
          children.push(
            await startShorthorn(
              [
                'replica',
                '--dir',
                dir,
                '--size',
                String(size),
                '--listen',
                `127.0.0.1:${port}`,
                '--volume',
                opts.volume,
              ],
              spawnOpts,
            ),
          );
          replicas.push(`tcp://127.0.0.1:${port}`);
        }
        const engine = await startShorthorn(
          [
            'engine',
            '--volume',
            opts.volume,
            '--size',
            String(size),
            ...replicas.flatMap((r) => ['--replica', r]),
            '--listen',
            `127.0.0.1:${base}`,
            '--frontend',
            'nbd',
            '--nbd-listen',
            `127.0.0.1:${opts.nbdPort}`,
          ],
          spawnOpts,
        );
        children.push(engine);
        closeOnSignals(logger, stopAll);
        printReady({
          role: 'up',
          volume: opts.volume,
          endpoint: engine.ready['endpoint'],
          engine: `127.0.0.1:${base}`,
          replicas,
        });
        // A child that dies on its own takes the whole group down: a half-running demo hides failures.
        for (const c of children) {
          c.exited.then((code) => {
            if (stopping) return;
            logger.error({ pid: c.pid, code }, 'a shorthorn process exited; stopping');
            stopAll().finally(() => process.exit(1));
          });
        }
      } catch (err) {
        await stopAll();
        throw err;
      }
    });
}
