// `shorthorn node ls|get|update`: nodes through the GraphQL API. Tables for people, -o json for scripts.
import type { Command } from 'commander';
import {
  action,
  addClientOptions,
  age,
  CliError,
  ERROR_FIELDS,
  humanSize,
  parseBool,
  type Result,
  show,
  unwrap,
} from './graphql-client.js';
import { formatTable } from './table.js';
import { watchList } from './watch-list.js';

const NODE_FIELDS = `name ready schedulable allowScheduling evictionRequested tags zone region lastHeartbeatAt
  instanceManagerAddress
  conditions { type status reason message }
  disks { name path allowScheduling evictionRequested tags storageMaximum storageAvailable storageReserved storageScheduled }
  replicas { name volumeName currentState }`;

interface NodeView {
  name: string;
  ready: boolean;
  schedulable: boolean;
  allowScheduling: boolean;
  evictionRequested: boolean;
  tags: string[];
  zone: string;
  region: string;
  lastHeartbeatAt: string | null;
  instanceManagerAddress: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
  disks: {
    name: string;
    path: string;
    allowScheduling: boolean;
    evictionRequested: boolean;
    tags: string[];
    storageMaximum: number;
    storageAvailable: number;
    storageReserved: number;
    storageScheduled: number;
  }[];
  replicas: { name: string; volumeName: string; currentState: string }[];
}

const LIST = `query Nodes($name: String, $tag: String, $ready: Boolean) {
  nodes(name: $name, tag: $tag, ready: $ready) { ${NODE_FIELDS} }
}`;
const GET = `query Node($name: String!) { node(name: $name) { ${NODE_FIELDS} } }`;
const NODE_CHANGED = `subscription NodeChanged($name: String!) { nodeChanged(name: $name) { name } }`;
const UPDATE = `mutation UpdateNode($name: String!, $input: UpdateNodeInput!) {
  result: updateNode(name: $name, input: $input) { ${ERROR_FIELDS} ... on Node { ${NODE_FIELDS} } }
}`;

const yesNo = (b: boolean) => (b ? 'yes' : 'no');

function nodeTable(nodes: NodeView[]): string {
  const now = Date.now();
  return formatTable(
    [
      'name',
      'ready',
      'schedulable',
      'allow-scheduling',
      'eviction',
      'tags',
      'disks',
      'available',
      'scheduled',
      'replicas',
      'heartbeat',
    ],
    nodes.map((n) => [
      n.name,
      yesNo(n.ready),
      yesNo(n.schedulable),
      yesNo(n.allowScheduling),
      n.evictionRequested ? 'requested' : '',
      n.tags.join(','),
      n.disks.length,
      `${humanSize(n.disks.reduce((s, d) => s + d.storageAvailable, 0))} / ${humanSize(n.disks.reduce((s, d) => s + d.storageMaximum, 0))}`,
      humanSize(n.disks.reduce((s, d) => s + d.storageScheduled, 0)),
      n.replicas.length,
      age(n.lastHeartbeatAt, now),
    ]),
  );
}

function nodeDetail(n: NodeView): string {
  return [
    nodeTable([n]),
    '',
    formatTable(
      ['disk', 'path', 'allow-scheduling', 'eviction', 'tags', 'available', 'maximum', 'reserved', 'scheduled'],
      n.disks.map((d) => [
        d.name,
        d.path,
        yesNo(d.allowScheduling),
        d.evictionRequested ? 'requested' : '',
        d.tags.join(','),
        humanSize(d.storageAvailable),
        humanSize(d.storageMaximum),
        humanSize(d.storageReserved),
        humanSize(d.storageScheduled),
      ]),
    ),
    '',
    formatTable(
      ['condition', 'status', 'reason', 'message'],
      n.conditions.map((c) => [c.type, c.status, c.reason, c.message]),
    ),
  ].join('\n');
}

export function registerNodeCommand(program: Command): void {
  const node = addClientOptions(program.command('node').description('manage nodes through the GraphQL API'));

  node
    .command('ls')
    .description('list nodes with readiness, scheduling flags and storage')
    .option('--name <substring>', 'only names containing this')
    .option('--tag <tag>', 'only nodes with this tag')
    .option('-w, --watch', 'keep listing as nodes change (Ctrl-C ends)')
    .action(
      action(async (c, opts) => {
        const filter = { name: opts['name'], tag: opts['tag'] };
        const list = async () => (await c.request<{ nodes: NodeView[] }>(LIST, filter)).nodes;
        if (opts['watch']) {
          return watchList<NodeView>(c, opts, {
            list,
            nameOf: (n) => n.name,
            subscribeOne: (name, onChange) => c.subscribe(NODE_CHANGED, { name }, onChange),
            table: nodeTable,
          });
        }
        const nodes = await list();
        show(opts, nodes, () => nodeTable(nodes));
      }),
    );

  node
    .command('get <name>')
    .description('one node: disks and conditions')
    .action(
      action(async (c, opts, name: string) => {
        const { node: n } = await c.request<{ node: NodeView | null }>(GET, { name });
        if (!n) throw new CliError('NotFound', `node "${name}" not found`);
        show(opts, n, () => nodeDetail(n));
      }),
    );

  node
    .command('update <name>')
    .description('change scheduling, eviction or tags of a node')
    .option('--allow-scheduling <bool>', 'true: new replicas may be placed here; false: not')
    .option('--eviction-requested <bool>', 'true: move every replica off this node')
    .option('--tags <tags>', 'replace the tags (comma separated; "" for none)')
    .action(
      action(async (c, opts, name: string) => {
        const input: Record<string, unknown> = {};
        if (opts['allowScheduling'] !== undefined)
          input['allowScheduling'] = parseBool(opts['allowScheduling'] as string, '--allow-scheduling');
        if (opts['evictionRequested'] !== undefined)
          input['evictionRequested'] = parseBool(opts['evictionRequested'] as string, '--eviction-requested');
        if (opts['tags'] !== undefined)
          input['tags'] = String(opts['tags'])
            .split(',')
            .map((t) => t.trim())
            .filter((t) => t !== '');
        if (Object.keys(input).length === 0)
          throw new CliError(
            'BAD_ARGUMENT',
            'nothing to update: give --allow-scheduling, --eviction-requested or --tags',
          );
        const { result } = await c.request<{ result: Result<NodeView> }>(UPDATE, { name, input });
        const n = unwrap(result);
        show(opts, n, () => `node ${n.name} updated`);
      }),
    );
}
