// `shorthorn replica --dir DIR [--size SIZE] --listen HOST:PORT [--volume NAME]`: one replica process; PORT is gRPC,
// PORT+1 the data port.
import type { Command } from 'commander';
import { startReplicaServer } from '../dataplane/replica/replica-server.js';
import { parseHostPort } from '../dataplane/util/address.js';
import { useBatchScheduling } from '../dataplane/util/cpu-scheduling.js';
import { parseVolumeSize } from '../dataplane/util/size.js';
import { closeOnSignals, createLogger, printReady } from './logger.js';

export function registerReplicaCommand(program: Command): void {
  program
    .command('replica')
    .description('serve one replica of a volume from a directory of sparse layer files')
    .requiredOption('--dir <dir>', 'replica directory (created if missing)')
    .option(
      '--size <size>',
      'volume size: bytes or 512Mi, 1Gi, 10G … (required to create a replica; checked against an existing one)',
    )
    .requiredOption('--listen <host:port>', 'gRPC address; the data port is PORT+1')
    .option('--volume <name>', 'the volume it belongs to: engines of any other volume are refused')
    .option(
      '--no-batch-scheduling',
      'keep the normal CPU scheduling policy (by default the process runs SCHED_BATCH: fewer preemptions between data-plane processes)',
    )
    .action(async (opts: { dir: string; size?: string; listen: string; volume?: string; batchScheduling: boolean }) => {
      const logger = createLogger('replica');
      if (opts.batchScheduling) useBatchScheduling(logger);
      const listen = parseHostPort(opts.listen);
      const server = await startReplicaServer({
        dir: opts.dir,
        size: opts.size === undefined ? undefined : parseVolumeSize(opts.size),
        host: listen.host,
        port: listen.port,
        volume: opts.volume,
        logger,
      });
      closeOnSignals(logger, () => server.close());
      printReady({
        role: 'replica',
        dir: opts.dir,
        grpcPort: server.grpcPort,
        dataPort: server.dataPort,
        pid: process.pid,
      });
    });
}
