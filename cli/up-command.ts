// `shorthorn up`: the all-in-one on one machine — the embedded store (SQLite under --data-dir), the
// controllers, and N simulated nodes, each an instance manager on 127.0.0.1 with its own disk
// directory. Ctrl-C stops it all in order; running it again on the same data dir brings every volume
// back as it was, attached ones re-attached. If `up` itself dies, the instance managers and their
// volumes keep running and the next `up` adopts them.
import type { Command } from 'commander';

export interface UpOpts {
  dataDir: string;
  port: string;
  listen: string;
  nodes: string;
  volume?: string;
  size: string;
  replicas?: string;
}

/** Ports: the API on --port; node i's instance manager on port+i, its instances on port+1000·i … +999. */
export function nodePorts(base: number, i: number): { imPort: number; portRange: string } {
  return { imPort: base + i, portRange: `${base + 1000 * i}-${base + 1000 * i + 999}` };
}

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('run Shorthorn on this machine: store, controllers and N simulated nodes')
    .option('--data-dir <dir>', 'store, node disks and logs', './data')
    .option('--port <port>', 'API port; node instance managers use the ports right above it', '9500')
    .option(
      '--listen <host>',
      'API address; other than loopback needs an API token (shorthorn token create)',
      '127.0.0.1',
    )
    .option('--nodes <n>', 'simulated nodes (instance managers), each with its own disk directory', '1')
    .option('--volume <name>', 'also create this volume (if missing) and attach it to node-1; prints its NBD endpoint')
    .option('--size <size>', 'size of --volume when it is created', '1Gi')
    .option('--replicas <n>', 'replicas of --volume when it is created (default: min(3, nodes))')
    .action(async (opts: UpOpts) => {
      const { runUp } = await import('./up-run.js');
      await runUp(opts);
    });
}
