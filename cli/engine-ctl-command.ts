// `shorthorn engine-ctl --engine HOST:PORT replicas|add|rm|mode|volume|metrics`: talk to a running
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
import { formatSize } from '../dataplane/util/size.js';
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
    .description('add a replica tcp://HOST:PORT (RW when it holds every write, else WO awaiting rebuild)')
    .action(
      withClient(async (c, opts, address: string) => {
        parseReplicaAddress(address);
        const r = await unary(c.replicaCreate, c, { address }, 120_000);
        showReplicas(opts, [r], false);
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
