// The GraphQL server as a fetch handler (graphql-yoga): GraphiQL, SSE subscriptions, masked errors.
// HTTP listening and WebSocket wiring live in server.ts; tests call `yoga.fetch` in-process.
import { randomUUID } from 'node:crypto';
import { createGraphQLError, createYoga, maskError, type YogaServerInstance } from 'graphql-yoga';
import type { Logger } from 'pino';
import type { VolumeApi } from '../controllers/volume-api.js';
import { StoreReads } from '../resolvers/store-reads.js';
import type { Store } from '../store/store.js';
import type { GraphQLContext, Role } from './context.js';
import { schema } from './index.js';
import { useBadUserInputCode, useRequestLimits } from './request-limits.js';

export interface YogaOptions {
  store: Store;
  api: VolumeApi;
  /** Role of a request without a token: 'admin' on a loopback-only server, else undefined (refused). */
  anonymousRole: Role | undefined;
  /** Bearer token → role; undefined when the token is unknown. */
  resolveToken?: (token: string) => Promise<Role | undefined>;
  /** Where unexpected (masked) errors are logged, with the id the client is given. */
  logger?: Logger;
}

export type ShorthornYoga = YogaServerInstance<Record<string, unknown>, GraphQLContext>;

const unauthenticated = (message: string) =>
  createGraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });

export function createShorthornYoga(opts: YogaOptions): ShorthornYoga {
  return createYoga<Record<string, unknown>, GraphQLContext>({
    schema,
    plugins: [useRequestLimits(), useBadUserInputCode()],
    graphqlEndpoint: '/graphql',
    landingPage: false,
    graphiql: true,
    maskedErrors: {
      // What yoga would mask (anything but a deliberate GraphQLError) is logged with an id that the
      // client gets too, so a person can find the cause in the log.
      maskError: (error, message, isDev) => {
        const masked = maskError(error, message, isDev);
        if (masked === error) return masked;
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
      return { role, reads: new StoreReads(opts.store), api: opts.api, store: opts.store };
    },
  });
}
