// The GraphQL server as a fetch handler (graphql-yoga): GraphiQL, SSE subscriptions, masked errors.
// HTTP listening and WebSocket wiring live in server.ts; tests call `yoga.fetch` in-process.
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import type { VolumeApi } from '../controllers/volume-api.js';
import { StoreReads } from '../resolvers/store-reads.js';
import type { Store } from '../store/store.js';
import type { GraphQLContext, Role } from './context.js';
import { schema } from './index.js';

export interface YogaOptions {
  store: Store;
  api: VolumeApi;
  /** Role of a request without a token: 'admin' on a loopback-only server, else undefined (refused). */
  anonymousRole: Role | undefined;
  /** Bearer token → role; undefined when the token is unknown. */
  resolveToken?: (token: string) => Promise<Role | undefined>;
}

export type ShorthornYoga = YogaServerInstance<Record<string, unknown>, GraphQLContext>;

export function createShorthornYoga(opts: YogaOptions): ShorthornYoga {
  return createYoga<Record<string, unknown>, GraphQLContext>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    context: async ({ request }) => {
      const auth = request.headers.get('authorization');
      let role = opts.anonymousRole;
      if (auth) {
        const token = /^Bearer\s+(.+)$/i.exec(auth)?.[1];
        role = token && opts.resolveToken ? await opts.resolveToken(token) : undefined;
      }
      return { role, reads: new StoreReads(opts.store), api: opts.api, store: opts.store };
    },
  });
}
