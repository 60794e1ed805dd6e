// `shorthorn snapshot create|ls|rm|purge|revert|hash --engine HOST:PORT …`: a volume's snapshots,
// through the engine's ControllerService. Tables for people, -o json for scripts.
import { credentials } from '@grpc/grpc-js';
import { type Command, Option } from 'commander';
import { unary } from '../dataplane/grpc/unary.js';
import { ControllerServiceClient, type SnapshotInfo } from '../dataplane/proto/gen/engine.js';
import { formatHostPort, parseHostPort } from '../dataplane/util/address.js';
import { formatSize } from '../dataplane/util/size.js';
import { formatTable } from './table.js';

interface SnapshotOpts {
  engine: string;
  output: 'table' | 'json';
}

/** Purge and hash read whole files: give them a day, as Longhorn does. */
const LONG_MS = 24 * 3600 * 1000;

export function registerSnapshotCommand(program: Command): void {
  const snap = program
    .command('snapshot')
    .description("manage a volume's snapshots through its engine")
    .requiredOption('--engine <host:port>', 'the engine gRPC address')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'));

  const run =
    <A extends unknown[]>(fn: (c: ControllerServiceClient, opts: SnapshotOpts, ...args: A) => Promise<void>) =>
    async (...args: A) => {
      const opts = snap.opts<SnapshotOpts>();
      const c = new ControllerServiceClient(formatHostPort(parseHostPort(opts.engine)), credentials.createInsecure());
      try {
        await fn(c, opts, ...args);
      } finally {
        c.close();
      }
    };
  const show = (opts: SnapshotOpts, value: unknown, text: () => string) =>
    process.stdout.write(`${opts.output === 'json' ? JSON.stringify(value) : text()}\n`);

  snap
    .command('create [name]')
    .description('take a snapshot (name defaults to a UUID) with I/O paused for a moment')
    .option('-l, --label <key=value...>', 'labels to attach', [])
    .action(
      run(async (c, opts, name: string | undefined, cmd: { label: string[] }) => {
        const labels = parseLabels(cmd.label);
        const r = await unary(c.snapshotCreate, c, { name: name ?? '', labels }, 120_000);
        show(opts, r, () => `snapshot ${r.name} created (I/O paused ${(r.pauseUs / 1000).toFixed(1)} ms)`);
      }),
    );

  snap
    .command('ls')
    .description('list snapshots as a tree (newest last; removed ones marked)')
    .action(
      run(async (c, opts) => {
        const { snapshots } = await unary(c.snapshotList, c, {});
        show(opts, snapshots, () => snapshotTable(snapshots));
      }),
    );

  snap
    .command('rm <name...>')
    .description('mark snapshots removed (purge frees their space)')
    .action(
      run(async (c, opts, names: string[]) => {
        for (const name of names) await unary(c.snapshotRemove, c, { name });
        show(opts, { removed: names }, () => `marked removed: ${names.join(', ')} (run purge to free the space)`);
      }),
    );

  snap
    .command('purge')
    .description('fold removed and system snapshots away on every replica')
    .action(
      run(async (c, opts) => {
        const { replicas } = await unary(c.snapshotPurge, c, {}, LONG_MS);
        show(opts, replicas, () =>
          formatTable(
            ['replica', 'actions', 'error'],
            replicas.map((r) => [r.address, r.actions, r.error]),
          ),
        );
        if (replicas.some((r) => r.error !== '')) process.exitCode = 1;
      }),
    );

  snap
    .command('revert <name>')
    .description('revert the volume to a snapshot (the frontend must be stopped)')
    .option('--stop-frontend', 'stop the NBD frontend first and start it again afterwards (disconnects clients)')
    .action(
      run(async (c, opts, name: string, cmd: { stopFrontend?: boolean }) => {
        if (cmd.stopFrontend) await unary(c.volumeFrontendShutdown, c, {}, 60_000);
        try {
          await unary(c.snapshotRevert, c, { name }, 120_000);
        } finally {
          if (cmd.stopFrontend) await unary(c.volumeFrontendStart, c, {}, 60_000);
        }
        show(opts, { reverted: name }, () => `volume reverted to ${name}`);
      }),
    );

  snap
    .command('hash <name>')
    .description("checksum a snapshot on every replica and compare (stored in Longhorn's .checksum files)")
    .option('--rehash', 'hash again even if the recorded checksum is current')
    .action(
      run(async (c, opts, name: string, cmd: { rehash?: boolean }) => {
        const r = await unary(c.snapshotHash, c, { name, rehash: cmd.rehash ?? false }, LONG_MS);
        show(opts, r, () =>
          [
            formatTable(
              ['replica', 'crc64', 'corrupted', 'odd one out', 'error'],
              r.replicas.map((x) => [
                x.address,
                x.checksum,
                x.silentlyCorrupted ? 'YES' : 'no',
                x.oddOneOut ? 'YES' : '',
                x.error,
              ]),
            ),
            r.consistent
              ? `${name}: consistent on every replica`
              : `${name}: replicas DIFFER — rebuild the odd one out`,
          ].join('\n'),
        );
        if (!r.consistent) process.exitCode = 1;
      }),
    );
}

function parseLabels(pairs: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new Error(`label ${JSON.stringify(pair)} is not key=value`);
    labels[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return labels;
}

/** Snapshots indented under their parents, oldest root first. */
function snapshotTable(snapshots: SnapshotInfo[]): string {
  const byName = new Map(snapshots.map((s) => [s.name, s]));
  const rows: string[][] = [];
  const visit = (s: SnapshotInfo, depth: number) => {
    const labels = Object.entries(s.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    rows.push([
      `${'  '.repeat(depth)}${s.name}`,
      s.removed ? 'removed' : s.userCreated ? 'user' : 'system',
      s.created,
      formatSize(s.size),
      labels,
    ]);
    for (const child of s.children) {
      const c = byName.get(child);
      if (c !== undefined) visit(c, depth + 1);
    }
  };
  for (const root of snapshots.filter((s) => s.parent === '' || !byName.has(s.parent))) visit(root, 0);
  return formatTable(['snapshot', 'kind', 'created', 'size', 'labels'], rows);
}
