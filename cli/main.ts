// The `shorthorn` command.
import { Command } from 'commander';
import { registerBackupCommand } from './backup-command.js';
import { registerEngineCommand } from './engine-command.js';
import { registerEngineCtlCommand } from './engine-ctl-command.js';
import { registerEventsCommand } from './events-command.js';
import { registerInstanceManagerCommand } from './instance-manager-command.js';
import { registerNodeCommand } from './node-command.js';
import { registerRecurringJobCommand } from './recurring-job-command.js';
import { registerReplicaCommand } from './replica-command.js';
import { registerSettingCommand } from './setting-command.js';
import { registerSnapshotCommand } from './snapshot-command.js';
import { registerTokenCommand } from './token-command.js';
import { registerUpCommand } from './up-command.js';
import { registerVolumeCommand } from './volume-command.js';

const program = new Command('shorthorn')
  .description('Shorthorn: replicated block storage with a GraphQL control API')
  .showHelpAfterError();

registerUpCommand(program);
registerReplicaCommand(program);
registerEngineCommand(program);
registerEngineCtlCommand(program);
registerSnapshotCommand(program);
registerVolumeCommand(program);
registerNodeCommand(program);
registerSettingCommand(program);
registerBackupCommand(program);
registerRecurringJobCommand(program);
registerEventsCommand(program);
registerInstanceManagerCommand(program);
registerTokenCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`shorthorn: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
