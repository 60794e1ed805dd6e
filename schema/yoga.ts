// The GraphQL server as a fetch handler (graphql-yoga): GraphiQL, SSE subscriptions, masked errors.
// HTTP listening and WebSocket wiring live in server.ts; tests call `yoga.fetch` in-process.
import { randomUUID } from 'node:crypto';
import { createGraphQLError, createYoga, maskError, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import type { Logger } from 'pino';
import { BackupApi } from '../controllers/backup-api.js';
import type { VolumeApi } from '../controllers/volume-api.js';
import type { ReadModel } from '../resolvers/read-model.js';
import { useResponseCache } from '../resolvers/response-cache.js';
import { StoreReads } from '../resolvers/store-reads.js';
import type { Store } from '../store/store.js';
import type { GraphQLContext, Role } from './context.js';
import { schema } from './index.js';
import { useBadUserInputCode, useRequestLimits } from './request-limits.js';

export interface YogaOptions {
  store: Store;
  api: VolumeApi;
  /** Backup actions; default: one over `store` and `api`. */
  backupApi?: BackupApi;
  /** Role of a request without a token: 'admin' on a loopback-only server, else undefined (refused). */
  anonymousRole: Role | undefined;
  /** Bearer token → role; undefined when the token is unknown. */
  resolveToken?: (token: string) => Promise<Role | undefined>;
  /** Where unexpected (masked) errors are logged, with the id the client is given, and yoga's own logs. */
  logger?: Logger;
  /** More envelop/yoga plugins (the server counts live subscriptions with one). */
  plugins?: Plugin<GraphQLContext>[];
  /** The server's in-memory read model: queries read from it (and are cached per generation). */
  readModel?: ReadModel;
  /** Cache whole query results per generation of the read model (needs readModel). */
  responseCache?: boolean;
}

export type ShorthornYoga = YogaServerInstance<Record<string, unknown>, GraphQLContext>;

const unauthenticated = (message: string) =>
  createGraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });

/**
 * A subscription keeps its context for its whole life: without this, the second event's nested fields
 * (`volumeChanged { replicas { … } }`) would be answered from the first event's cached reads. Reads are
 * lazy, so a fresh StoreReads after each event serves the next one with what the store holds then.
 */
function useFreshReadsPerEvent(store: Store, model: ReadModel | undefined): Plugin<GraphQLContext> {
  return {
    onSubscribe: () => ({
      onSubscribeResult: () => ({
        onNext: ({ args }) => {
          args.contextValue.reads = new StoreReads(store, model);
        },
      }),
    }),
  };
}

/**
 * A GraphQLError thrown on purpose (auth, limits, bad input), not wrapping anything else. By name, not
 * instanceof: graphql can be loaded twice (its CJS build by packages, its ESM build by vitest for the
 * repository's own files), each with its own GraphQLError class.
 */
function isDeliberate(error: unknown): boolean {
  if (!(error instanceof Error) || error.name !== 'GraphQLError') return false;
  const cause = (error as { originalError?: unknown }).originalError;
  return cause == null || isDeliberate(cause);
}

function yogaLogging(log: Logger) {
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (...args: unknown[]) =>
      log[level](
        { err: args.find((a) => a instanceof Error), detail: args.filter((a) => !(a instanceof Error)) },
        'yoga',
      );
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export function createShorthornYoga(opts: YogaOptions): ShorthornYoga {
  const backups = opts.backupApi ?? new BackupApi(opts.store, opts.api);
  return createYoga<Record<string, unknown>, GraphQLContext>({
    schema,
    plugins: [
      useRequestLimits(),
      useBadUserInputCode(),
      useFreshReadsPerEvent(opts.store, opts.readModel),
      ...(opts.readModel && opts.responseCache ? [useResponseCache(opts.readModel)] : []),
      ...(opts.plugins ?? []),
    ],
    ...(opts.logger ? { logging: yogaLogging(opts.logger) } : {}),
    graphqlEndpoint: '/graphql',
    landingPage: false,
    graphiql: true,
    maskedErrors: {
      // What yoga would mask (anything but a deliberate GraphQLError) is logged with an id that the
      // client gets too, so a person can find the cause in the log.
      maskError: (error, message, isDev) => {
        if (isDeliberate(error)) return error as Error;
        const masked = maskError(error, message, isDev);
        const errorId = randomUUID();
        opts.logger?.error({ err: error, errorId }, 'unexpected error in a GraphQL operation');
        const m = masked as ReturnType<typeof createGraphQLError>;
        return createGraphQLError(`${message} (error id ${errorId})`, {
          nodes: m.nodes,
          source: m.source,
          positions: m.positions,
          path: m.path,
          extensions: { ...m.extensions, errorId },
        });
      },
    },
    context: async ({ request }) => {
      const auth = request.headers.get('authorization');
      let role = opts.anonymousRole;
      if (auth) {
        const token = /^Bearer\s+(.+)$/i.exec(auth)?.[1];
        role = token && opts.resolveToken ? await opts.resolveToken(token) : undefined;
        if (!role) throw unauthenticated('invalid bearer token');
      } else if (!role) {
        throw unauthenticated('this server needs a bearer token (Authorization: Bearer <token>)');
      }
      return { role, reads: new StoreReads(opts.store, opts.readModel), api: opts.api, backups, store: opts.store };
    },
  });
}
