// The API on the network: yoga at /graphql over node:http (queries, mutations, GraphiQL, SSE
// subscriptions) and graphql-ws on the same path for WebSocket subscriptions, each WebSocket operation
// getting its own context through yoga.getEnveloped (so loaders and auth are per operation).
//
// Auth: listening on loopback with no ApiToken in the store, anonymous requests are admin (one person
// on one machine). Anywhere else the server refuses to start until a token exists
// (`shorthorn token create`), and then every request needs `Authorization: Bearer <token>` (over
// WebSocket: the upgrade request's header or `connectionParams.authorization`).
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionArgs, ExecutionResult, GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type { Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { BackupApi } from '../controllers/backup-api.js';
import type { VolumeApi } from '../controllers/volume-api.js';
import { ReadModel } from '../resolvers/read-model.js';
import { TokenVerifier } from '../resolvers/tokens.js';
import type { Store } from '../store/store.js';
import type { GraphQLContext, Role } from './context.js';
import { createShorthornYoga, type ShorthornYoga } from './yoga.js';

export interface ApiServerOptions {
  /** Address to listen on: 127.0.0.1 (default of `up`), ::1, 0.0.0.0, … */
  host: string;
  /** 0 = any free port. */
  port: number;
  store: Store;
  api: VolumeApi;
  /** Backup actions; default: one over `store` and `api`. */
  backupApi?: BackupApi;
  logger: Logger;
  /** Require a bearer token even on loopback with no token stored (default: false). */
  requireTokens?: boolean;
  /**
   * Cache whole query results between changes (default: on; env SHORTHORN_API_RESPONSE_CACHE=off turns
   * it off, e.g. to measure the uncached path).
   */
  responseCache?: boolean;
}

export interface ApiServer {
  /** http://HOST:PORT/graphql (also the WebSocket endpoint, as ws://…). */
  url: string;
  port: number;
  /** Who a request without a token is: 'admin' on a loopback server without tokens, else refused. */
  anonymousRole: Role | undefined;
  yoga: ShorthornYoga;
  close(): Promise<void>;
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:127\./.test(h);
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const log = opts.logger.child({ component: 'api' });
  const tokens = await TokenVerifier.start(opts.store, (err) => log.error({ err }, 'watching API tokens'));
  const subscriptions = liveSubscriptions();
  const loopback = isLoopback(opts.host);
  if (!loopback && tokens.size === 0) {
    tokens.stop();
    throw new Error(
      `refusing to serve the API on ${opts.host}, which is not a loopback address, without API tokens: ` +
        'create one first (shorthorn token create --role admin, while up is stopped) or listen on 127.0.0.1',
    );
  }
  const anonymousRole: Role | undefined = loopback && tokens.size === 0 && !opts.requireTokens ? 'admin' : undefined;
  // Queries read an in-memory model of the store (informers), not the store itself.
  const readModel = await ReadModel.start(opts.store, log.child({ component: 'read-model' }));
  const yoga = createShorthornYoga({
    store: opts.store,
    api: opts.api,
    ...(opts.backupApi ? { backupApi: opts.backupApi } : {}),
    readModel,
    responseCache: opts.responseCache ?? process.env['SHORTHORN_API_RESPONSE_CACHE'] !== 'off',
    anonymousRole,
    resolveToken: async (token) => tokens.verify(token),
    logger: log,
    plugins: [subscriptions.plugin],
  });

  const server = createServer(yoga);
  const wss = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
  const ws = useServer<Record<string, unknown> | undefined, { authorization?: string }>(
    {
      // The per-operation execute/subscribe of getEnveloped travel in rootValue (yoga's graphql-ws example).
      execute: (args) => (args.rootValue as Enveloped).execute(args),
      subscribe: (args) => (args.rootValue as Enveloped).subscribe(args),
      onConnect: (ctx) => {
        const p = ctx.connectionParams ?? {};
        const fromParams = p['authorization'] ?? p['Authorization'];
        ctx.extra.authorization =
          typeof fromParams === 'string' ? fromParams : headerOf(ctx.extra.request, 'authorization');
      },
      onSubscribe: async (ctx, _id, params) => {
        const headers = new Headers();
        if (ctx.extra.authorization) headers.set('authorization', ctx.extra.authorization);
        const request = new Request(`http://ws${yoga.graphqlEndpoint}`, { method: 'POST', headers });
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          request,
          params,
        });
        try {
          const document = parse(params.query);
          const errors = validate(schema, document);
          if (errors.length > 0) return errors;
          return {
            schema,
            document,
            operationName: params.operationName,
            variableValues: params.variables,
            contextValue: await contextFactory(),
            rootValue: { execute, subscribe } as Enveloped,
          };
        } catch (err) {
          // By name: graphql's CJS and ESM builds can both be loaded, each with its own GraphQLError class.
          if (err instanceof Error && err.name === 'GraphQLError') return [err as GraphQLError];
          throw err;
        }
      },
    },
    wss,
  );

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await ws.dispose();
    tokens.stop();
    readModel.stop();
    throw new Error(`API server cannot listen on ${opts.host}:${opts.port}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(':') && !opts.host.startsWith('[') ? `[${opts.host}]` : opts.host;
  const url = `http://${host}:${port}${yoga.graphqlEndpoint}`;
  log.info({ url, anonymousRole: anonymousRole ?? 'refused', tokens: tokens.size }, 'API listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    anonymousRole,
    yoga,
    close: () =>
      (closing ??= (async () => {
        // Subscriptions first (SSE responses and sockets never end on their own), then the listener.
        await ws.dispose();
        for (const c of wss.clients) c.terminate();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        // Ending a stream stops its store watch a little later: wait, so the store can close after this.
        await subscriptions.drained(2000);
        tokens.stop();
        readModel.stop();
      })()),
  };
}

/** Counts subscription streams in flight (SSE and WebSocket alike) so close() can wait for them to end. */
function liveSubscriptions() {
  let active = 0;
  const plugin: Plugin<GraphQLContext> = {
    onSubscribe: () => ({
      onSubscribeResult: ({ result }) => {
        if (!(Symbol.asyncIterator in Object(result))) return;
        active++;
        return { onEnd: () => void active-- };
      },
    }),
  };
  const drained = async (timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setImmediate(r));
  };
  return { plugin, drained };
}

interface Enveloped {
  execute: (args: ExecutionArgs) => OperationResult;
  subscribe: (args: ExecutionArgs) => OperationResult;
}
type OperationResult = Promise<ExecutionResult | AsyncGenerator<ExecutionResult>>;

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
