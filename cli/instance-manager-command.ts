// `shorthorn instance-manager --node NAME --listen HOST:PORT --data-dir DIR [--port-range A-B]`: one per
// node; starts, stops and watches the node's engine and replica processes and outlives its own restarts
// without touching them.
import type { Command } from 'commander';
import { startInstanceManager } from '../dataplane/instance-manager/instance-manager-server.js';
import { parsePortRange } from '../dataplane/instance-manager/port-allocator.js';
import { parseHostPort } from '../dataplane/util/address.js';
import { DATA_PLANE_NODE_FLAGS, SHORTHORN_BIN } from './child-process.js';
import { closeOnSignals, createLogger, printReady } from './logger.js';

export function registerInstanceManagerCommand(program: Command): void {
  program
    .command('instance-manager')
    .description("start, stop and watch this node's engine and replica processes (gRPC InstanceService)")
    .requiredOption('--node <name>', 'the node this instance manager runs on')
    .requiredOption('--listen <host:port>', 'gRPC address; instances listen on the same host')
    .requiredOption('--data-dir <dir>', 'state file (instances.json) and instance logs (logs/NAME.log)')
    .option('--port-range <a-b>', 'ports for instances, two per instance (gRPC and data/NBD)', '10000-10999')
    .action(async (opts: { node: string; listen: string; dataDir: string; portRange: string }) => {
      const logger = createLogger('instance-manager').child({ node: opts.node });
      const listen = parseHostPort(opts.listen);
      const running = await startInstanceManager({
        node: opts.node,
        listen,
        dataDir: opts.dataDir,
        portRange: parsePortRange(opts.portRange),
        // The same node flags and entry point as every other shorthorn process (cli/child-process.ts).
        launcher: { execPath: process.execPath, args: [...DATA_PLANE_NODE_FLAGS, SHORTHORN_BIN] },
        logger,
      });
      // SIGTERM / Ctrl-C: a deliberate stop of the node's data plane. A crash or SIGKILL leaves the
      // instances running for the next instance manager to adopt.
      closeOnSignals(logger, () => running.close());
      printReady({ role: 'instance-manager', node: opts.node, listen: running.address, pid: process.pid });
    });
}
