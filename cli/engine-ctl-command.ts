// `shorthorn engine-ctl --engine HOST:PORT replicas|add|rm|mode|volume|metrics|expand|frontend|rebuild-status|salvage|backup|restore|restore-status`: talk to a running
// engine's ControllerService, for a person at a terminal (tables) or a script (-o json).
import { credentials } from '@grpc/grpc-js';
import { type Command, Option } from 'commander';
import { unary } from '../dataplane/grpc/unary.js';
import {
  type ControllerReplica,
  ControllerServiceClient,
  ReplicaMode,
  replicaModeToJSON,
} from '../dataplane/proto/gen/engine.js';
import { formatHostPort, parseHostPort, parseReplicaAddress } from '../dataplane/util/address.js';
import { formatSize, parseVolumeSize } from '../dataplane/util/size.js';
import { registerBackupCommands } from './engine-ctl-backup.js';
import { waitForRebuild } from './rebuild-progress.js';
import { formatTable } from './table.js';

interface CtlOpts {
  engine: string;
  output: 'table' | 'json';
}

function connect(opts: CtlOpts): ControllerServiceClient {
  return new ControllerServiceClient(formatHostPort(parseHostPort(opts.engine)), credentials.createInsecure());
}

function replicaRows(replicas: ControllerReplica[]): string[][] {
  return replicas.map((r) => [r.address, replicaModeToJSON(r.mode), String(r.revisionCounter), r.error]);
}

function show(opts: CtlOpts, value: unknown, table: () => string): void {
  process.stdout.write(`${opts.output === 'json' ? JSON.stringify(value) : table()}\n`);
}

/** Replicas as a table for people, or JSON (modes by name) for scripts: a list, or the one replica. */
function showReplicas(opts: CtlOpts, replicas: ControllerReplica[], asList: boolean): void {
  const json = replicas.map((r) => ({ ...r, mode: replicaModeToJSON(r.mode) }));
  show(opts, asList ? json : json[0], () =>
    formatTable(['address', 'mode', 'revision', 'error'], replicaRows(replicas)),
  );
}

export function registerEngineCtlCommand(program: Command): void {
  const ctl = program
    .command('engine-ctl')
    .description('control a running engine over its gRPC API')
    .requiredOption('--engine <host:port>', 'the engine gRPC address')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'));

  const withClient =
    <A extends unknown[]>(fn: (c: ControllerServiceClient, opts: CtlOpts, ...args: A) => Promise<void>) =>
    async (...args: A) => {
      const opts = ctl.opts<CtlOpts>();
      const client = connect(opts);
      try {
        await fn(client, opts, ...args);
      } finally {
        client.close();
      }
    };

  ctl
    .command('replicas')
    .alias('ls')
    .description("list the volume's replicas and their modes")
    .action(
      withClient(async (c, opts) => {
        const { replicas } = await unary(c.replicaList, c, {});
        showReplicas(opts, replicas, true);
      }),
    );

  ctl
    .command('add <address>')
    .description('add a replica tcp://HOST:PORT: RW at once when it holds the volume, else WO and rebuilt online')
    .option('--wait', 'wait for the rebuild to finish, with a progress bar on a terminal')
    .action(
      withClient(async (c, opts, address: string, cmd: { wait?: boolean }) => {
        parseReplicaAddress(address);
        const r = await unary(c.replicaCreate, c, { address }, 120_000);
        if (cmd.wait && r.mode === ReplicaMode.WO) {
          const done = await waitForRebuild(c, address);
          show(opts, done, () =>
            formatTable(
              ['address', 'state', 'mode', 'copied', 'transferred', 'error'],
              [
                [
                  done.address,
                  done.state,
                  done.mode,
                  formatSize(done.bytesTotal),
                  formatSize(done.bytesTransferred),
                  done.error,
                ],
              ],
            ),
          );
          if (done.state !== 'complete') process.exitCode = 1;
          return;
        }
        showReplicas(opts, [r], false);
      }),
    );

  ctl
    .command('rebuild-status <address>')
    .description('progress of the rebuild of a replica')
    .action(
      withClient(async (c, opts, address: string) => {
        const p = await unary(c.replicaRebuildStatus, c, { address });
        show(opts, p, () =>
          formatTable(
            ['address', 'state', 'mode', 'done', 'total', 'transferred', 'error'],
            [
              [
                p.address,
                p.state,
                p.mode,
                formatSize(p.bytesDone),
                formatSize(p.bytesTotal),
                formatSize(p.bytesTransferred),
                p.error,
              ],
            ],
          ),
        );
      }),
    );

  ctl
    .command('expand <size>')
    .description('grow the volume online (e.g. 20Gi); shrinking is refused')
    .action(
      withClient(async (c, opts, size: string) => {
        const v = await unary(c.volumeExpand, c, { size: parseVolumeSize(size) }, 120_000);
        show(opts, v, () => `volume ${v.name} is now ${formatSize(v.size)}; new NBD connections see the new size`);
      }),
    );

  ctl
    .command('salvage')
    .description('every replica is ERR: reconnect them, serve from the best one, flag the others for rebuild')
    .action(
      withClient(async (c, opts) => {
        const { replicas } = await unary(c.volumeSalvage, c, {}, 120_000);
        showReplicas(opts, replicas, true);
      }),
    );

  ctl
    .command('frontend <action>')
    .description('stop or start the NBD frontend (revert needs it stopped)')
    .action(
      withClient(async (c, opts, action: string) => {
        if (action !== 'stop' && action !== 'start')
          throw new Error(`frontend action must be stop or start, got ${action}`);
        const v = await unary(action === 'stop' ? c.volumeFrontendShutdown : c.volumeFrontendStart, c, {}, 60_000);
        show(opts, v, () => `frontend ${v.frontendState}${v.frontendState === 'up' ? ` at ${v.endpoint}` : ''}`);
      }),
    );

  ctl
    .command('rm <address>')
    .description('remove a replica from the volume')
    .action(
      withClient(async (c, opts, address: string) => {
        await unary(c.replicaDelete, c, { address });
        show(opts, { removed: address }, () => `removed ${address}`);
      }),
    );

  ctl
    .command('mode <address> <mode>')
    .description('set a replica mode: ERR (take it out) or RW (only when it holds every write)')
    .action(
      withClient(async (c, opts, address: string, mode: string) => {
        const m = { RW: ReplicaMode.RW, WO: ReplicaMode.WO, ERR: ReplicaMode.ERR }[mode.toUpperCase()];
        if (m === undefined) throw new Error(`mode must be RW, WO or ERR, got ${mode}`);
        const r = await unary(c.replicaUpdate, c, { address, mode: m });
        showReplicas(opts, [r], false);
      }),
    );

  ctl
    .command('volume')
    .description('show the volume')
    .action(
      withClient(async (c, opts) => {
        const v = await unary(c.volumeGet, c, {});
        show(opts, v, () =>
          formatTable(
            ['name', 'size', 'replicas', 'frontend', 'state', 'endpoint'],
            [[v.name, formatSize(v.size), v.replicaCount, v.frontend, v.frontendState, v.endpoint]],
          ),
        );
      }),
    );

  registerBackupCommands(ctl, withClient, show);

  ctl
    .command('metrics')
    .description('I/O over the last second')
    .action(
      withClient(async (c, opts) => {
        const m = await unary(c.metricsGet, c, {});
        show(opts, m, () =>
          formatTable(
            ['', 'iops', 'throughput', 'latency'],
            [
              ['read', m.readIops, `${formatSize(m.readThroughput)}/s`, `${(m.readLatency / 1000).toFixed(0)}µs`],
              ['write', m.writeIops, `${formatSize(m.writeThroughput)}/s`, `${(m.writeLatency / 1000).toFixed(0)}µs`],
            ],
          ),
        );
      }),
    );
}
