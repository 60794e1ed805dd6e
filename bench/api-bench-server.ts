// The servers `npm run bench:api` measures (bench/api-bench.ts), startable in-process or as a child:
//
//   shorthorn  the real API (schema/server.ts startApiServer) on the SQLite store file the bench seeded,
//              anonymous admin on loopback, pino at warn to a file. No controllers run.
//   bare       a yoga server (same graphql-yoga) whose one field `volumes: JSON` returns the dashboard
//              document captured from shorthorn, from memory: same HTTP stack, same body bytes.
//   typed      a yoga server with the dashboard's types (Volume, Replica, Node, Disk, Engine, EngineReplica)
//              and default resolvers over the same in-memory document: what GraphQL execution of the
//              selection costs without Shorthorn's resolvers and store reads.
//
// As a child (`node bin/run-ts.js bench/api-bench-server.ts --target T --db FILE | --doc FILE --log FILE`)
// it prints one JSON line `{"ready":true,"url":…}` on stdout, then answers JSON commands read from stdin,
// one a line, each with an `id` echoed in its answer:
//   {"cmd":"stats"}    CPU time (µs), memory and process.hrtime (µs, the clock of V8's CPU profiles)
//   {"cmd":"changes","volume":V,"count":K,"spacingMs":S}   (shorthorn only) K status writes of volume V with
//                      store.updateStatus, S ms apart, each with status.lastDegradedAt = the time of the
//                      write (ISO, ms) and robustness alternating degraded/healthy; answers their times
//   {"cmd":"exit"}     closes the server (and store) and exits 0, so --cpu-prof writes its profile
// stdin closing (the bench gone) exits too.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createSchema, createYoga } from 'graphql-yoga';
import { pino } from 'pino';
import { VolumeApi } from '../controllers/volume-api.js';
import { startApiServer } from '../schema/server.js';
import { openSqliteStore } from '../store/sqlite-store.js';

export type TargetKind = 'shorthorn' | 'bare' | 'typed';

export interface StartedTarget {
  url: string;
  /** Only shorthorn: K status writes of `volume`; returns the written lastDegradedAt values (ISO). */
  changes?: (volume: string, count: number, spacingMs: number) => Promise<string[]>;
  close(): Promise<void>;
}

export interface TargetOptions {
  /** shorthorn: the seeded SQLite store file. */
  db?: string;
  /** shorthorn: where its pino log (level warn) goes. */
  log?: string;
  /** bare, typed: the JSON file of the dashboard's `data.volumes`. */
  doc?: string;
}

/** What the bare server is asked: one field of type JSON, answered with the whole document. */
export const BARE_QUERY = '{ volumes }';

const TYPED_SDL = /* GraphQL */ `
  scalar Bytes
  type Disk { name: String storageAvailable: Bytes }
  type Node { name: String disks: [Disk!] }
  type Replica { name: String mode: String currentState: String node: Node }
  type EngineReplica { name: String mode: String }
  type Engine { currentState: String endpoint: String replicas: [EngineReplica!] }
  type Volume { name: String state: String robustness: String size: Bytes replicas: [Replica!] engine: Engine }
  type Query { volumes: [Volume!] }
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
}

function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}

export async function startTarget(kind: TargetKind, o: TargetOptions): Promise<StartedTarget> {
  if (kind === 'shorthorn') {
    if (!o.db || !o.log) throw new Error('shorthorn target: --db and --log needed');
    const logger = pino({ level: 'warn' }, pino.destination({ dest: o.log, sync: false }));
    const store = openSqliteStore(o.db); // synchronous FULL, as `shorthorn up`
    const api = await startApiServer({ host: '127.0.0.1', port: 0, store, api: new VolumeApi(store), logger });
    if (api.anonymousRole !== 'admin') throw new Error(`anonymous role is ${api.anonymousRole}, not admin`);
    return {
      url: api.url,
      changes: async (volume, count, spacingMs) => {
        const written: string[] = [];
        for (let i = 0; i < count; i++) {
          if (i > 0) await sleep(spacingMs);
          const v = await store.get('Volume', volume);
          if (!v) throw new Error(`no volume ${volume}`);
          v.status.robustness = i % 2 === 0 ? 'degraded' : 'healthy';
          v.status.lastDegradedAt = new Date().toISOString(); // the write time: what the subscriber subtracts
          await store.updateStatus('Volume', v);
          written.push(v.status.lastDegradedAt);
        }
        return written;
      },
      close: async () => {
        await api.close();
        await store.close();
        logger.flush();
      },
    };
  }
  if (!o.doc) throw new Error(`${kind} target: --doc needed`);
  const doc = JSON.parse(readFileSync(o.doc, 'utf8')) as unknown;
  const schema =
    kind === 'bare'
      ? createSchema({
          typeDefs: 'scalar JSON\ntype Query { volumes: JSON }',
          resolvers: { Query: { volumes: () => doc } },
        })
      : createSchema({ typeDefs: TYPED_SDL, resolvers: { Query: { volumes: () => doc } } });
  const yoga = createYoga({ schema, graphqlEndpoint: '/graphql', landingPage: false, logging: false });
  const server = createServer(yoga);
  const url = await listen(server);
  return { url, close: () => closeServer(server) };
}

interface Command {
  id?: number;
  cmd: string;
  volume?: string;
  count?: number;
  spacingMs?: number;
}

async function child(): Promise<void> {
  const { values } = parseArgs({
    options: { target: { type: 'string' }, db: { type: 'string' }, doc: { type: 'string' }, log: { type: 'string' } },
  });
  const kind = values.target as TargetKind;
  if (!['shorthorn', 'bare', 'typed'].includes(kind)) throw new Error(`--target: shorthorn, bare or typed`);
  const target = await startTarget(kind, values);
  const say = (msg: object) => process.stdout.write(`${JSON.stringify(msg)}\n`);
  say({ ready: true, url: target.url, pid: process.pid });
  let exiting = false;
  const exit = async () => {
    if (exiting) return;
    exiting = true;
    await target.close().catch(() => {});
    process.exit(0);
  };
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    void (async () => {
      const c = JSON.parse(line) as Command;
      try {
        switch (c.cmd) {
          case 'stats':
            say({
              id: c.id,
              hrtimeUs: Number(process.hrtime.bigint() / 1000n),
              cpu: process.cpuUsage(),
              mem: process.memoryUsage(),
            });
            break;
          case 'changes': {
            if (!target.changes) throw new Error(`${kind}: no store to change`);
            const written = await target.changes(c.volume!, c.count!, c.spacingMs!);
            say({ id: c.id, written });
            break;
          }
          case 'exit':
            await exit();
            break;
          default:
            throw new Error(`unknown command ${c.cmd}`);
        }
      } catch (err) {
        say({ id: c.id, error: err instanceof Error ? err.message : String(err) });
      }
    })();
  });
  lines.on('close', () => void exit());
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  child().catch((err) => {
    process.stderr.write(`api bench server failed: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`);
    process.exit(1);
  });
}
