// `shorthorn engine --volume NAME --size SIZE --replica tcp://HOST:PORT … --listen HOST:PORT
//   --frontend nbd (--nbd-listen HOST:PORT | --nbd-socket PATH)`: one engine process serving a volume.
import { type Command, Option } from 'commander';
import { startEngineServer } from '../dataplane/engine/engine-server.js';
import { parseHostPort, parseReplicaAddress } from '../dataplane/util/address.js';
import { useBatchScheduling } from '../dataplane/util/cpu-scheduling.js';
import { parseVolumeSize } from '../dataplane/util/size.js';
import { closeOnSignals, createLogger, printReady } from './logger.js';

interface EngineOpts {
  volume: string;
  size: string;
  replica: string[];
  listen: string;
  frontend: string;
  nbdListen?: string;
  nbdSocket?: string;
  ioTimeout: string;
  dataConnections: string;
  unmapMarkSnapChainRemoved?: boolean;
  batchScheduling: boolean;
}

export function registerEngineCommand(program: Command): void {
  program
    .command('engine')
    .description('serve a volume over NBD, replicating every write to its replicas')
    .requiredOption('--volume <name>', 'volume name (the NBD export name)')
    .requiredOption('--size <size>', 'volume size: bytes or 512Mi, 1Gi, 10G …')
    .requiredOption(
      '--replica <address>',
      'replica tcp://HOST:PORT (repeat for each)',
      (v, acc: string[]) => [...acc, v],
      [],
    )
    .requiredOption('--listen <host:port>', 'gRPC ControllerService address')
    .addOption(new Option('--frontend <kind>', 'frontend').choices(['nbd']).default('nbd'))
    .option('--nbd-listen <host:port>', 'serve NBD on TCP')
    .option('--nbd-socket <path>', 'serve NBD on a unix socket')
    .option('--io-timeout <seconds>', 'a replica silent this long with I/O in flight becomes ERR', '8')
    .option('--data-connections <n>', 'data connections per replica', '2')
    .option(
      '--unmap-mark-snap-chain-removed',
      'trims also free snapshot space: the snapshots right under the head are marked removed and punched',
    )
    .option(
      '--no-batch-scheduling',
      'keep the normal CPU scheduling policy (by default the process runs SCHED_BATCH: fewer preemptions between data-plane processes)',
    )
    .action(async (opts: EngineOpts) => {
      if (!opts.nbdListen === !opts.nbdSocket) throw new Error('give exactly one of --nbd-listen or --nbd-socket');
      opts.replica.forEach(parseReplicaAddress);
      const ioTimeout = Number(opts.ioTimeout);
      if (!(ioTimeout > 0)) throw new Error(`--io-timeout must be a positive number of seconds, got ${opts.ioTimeout}`);
      const logger = createLogger('engine');
      if (opts.batchScheduling) useBatchScheduling(logger);
      const running = await startEngineServer({
        volume: opts.volume,
        size: parseVolumeSize(opts.size),
        replicas: opts.replica,
        listen: parseHostPort(opts.listen),
        nbd: opts.nbdListen ? { tcp: parseHostPort(opts.nbdListen) } : { socket: opts.nbdSocket! },
        ioTimeoutMs: ioTimeout * 1000,
        dataConnections: Number(opts.dataConnections),
        unmapMarkSnapChainRemoved: opts.unmapMarkSnapChainRemoved ?? false,
        logger,
      });
      closeOnSignals(logger, () => running.close());
      printReady({
        role: 'engine',
        volume: opts.volume,
        listen: running.grpcAddress,
        endpoint: running.endpoint,
        replicas: running.engine.list(),
        pid: process.pid,
      });
    });
}
