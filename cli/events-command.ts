// `shorthorn events [--follow]`: what happened to volumes, nodes, replicas … through the GraphQL API.
// Without --follow: the newest events (oldest of them first). With it: those, then each new event or
// repeat as it happens (the `events` subscription), until Ctrl-C. -o json prints one JSON object per
// line when following, an array otherwise.
import type { Command } from 'commander';
import { action, addClientOptions, CliError, parseIntFlag, untilSignal } from './graphql-client.js';
import { formatTable } from './table.js';

const EVENT_FIELDS = 'name type reason message count source firstTimestamp lastTimestamp involvedObject { kind name }';

interface EventView {
  name: string;
  type: string;
  reason: string;
  message: string;
  count: number;
  source: string;
  firstTimestamp: string;
  lastTimestamp: string;
  involvedObject: { kind: string; name: string };
}

const LIST = `query Events($kind: String, $name: String, $type: String, $limit: Int) {
  events(kind: $kind, name: $name, type: $type, limit: $limit) { ${EVENT_FIELDS} }
}`;
const FOLLOW = `subscription Events($kind: String, $name: String, $type: String, $since: DateTime) {
  events(kind: $kind, name: $name, type: $type, since: $since) { ${EVENT_FIELDS} }
}`;

const HEADERS = ['last seen', 'type', 'reason', 'object', 'count', 'message'];

function row(e: EventView): string[] {
  return [
    e.lastTimestamp,
    e.type,
    e.reason,
    `${e.involvedObject.kind}/${e.involvedObject.name}`,
    String(e.count),
    e.message,
  ];
}

/** Streamed rows cannot be aligned after the fact: fixed widths, long cells pushing the rest along. */
const WIDTHS = [24, 7, 20, 32, 5];
function streamLine(cells: string[]): string {
  return cells.map((c, i) => (i < WIDTHS.length ? c.padEnd(WIDTHS[i]!) : c)).join('  ');
}

export function registerEventsCommand(program: Command): void {
  addClientOptions(program.command('events'))
    .description('list events (--follow: then stream new ones until Ctrl-C)')
    .option('--kind <kind>', 'only about this kind (Volume, Node, Replica, Engine …)')
    .option('--name <name>', 'only about the object of this name')
    .option('--type <type>', 'Normal or Warning')
    .option('--limit <n>', 'how many of the newest events to show first', '50')
    .option('-f, --follow', 'keep printing events as they happen')
    .action(
      action(async (c, opts) => {
        const filter = {
          kind: opts['kind'] as string | undefined,
          name: opts['name'] as string | undefined,
          type: opts['type'] as string | undefined,
        };
        const limit = parseIntFlag(opts['limit'] as string, '--limit');
        if (limit < 0) throw new CliError('BAD_ARGUMENT', '--limit must not be negative');
        const json = opts.output === 'json';
        // The subscription replays what was last seen from this moment on: nothing between the list
        // and the subscription is missed, and what both return is printed once.
        const since = new Date().toISOString();
        const { events } = await c.request<{ events: EventView[] }>(LIST, { ...filter, limit });
        const newestLast = [...events].reverse();
        if (!opts['follow']) {
          process.stdout.write(
            `${json ? JSON.stringify(newestLast, null, 2) : formatTable(HEADERS, newestLast.map(row))}\n`,
          );
          return;
        }
        const seen = new Set(newestLast.map((e) => `${e.name}#${e.count}`));
        const print = (e: EventView) => process.stdout.write(`${json ? JSON.stringify(e) : streamLine(row(e))}\n`);
        if (!json) process.stdout.write(`${streamLine(HEADERS.map((h) => h.toUpperCase()))}\n`);
        for (const e of newestLast) print(e);
        const sub = c.subscribe<{ events: EventView }>(FOLLOW, { ...filter, since }, (d) => {
          const key = `${d.events.name}#${d.events.count}`;
          if (seen.has(key)) return;
          seen.add(key);
          print(d.events);
        });
        try {
          await Promise.race([sub.done, untilSignal()]);
        } finally {
          sub.stop();
        }
      }),
    );
}
