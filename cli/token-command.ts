// `shorthorn token create --role viewer|operator|admin [--description D]`: makes an API bearer token and
// prints it once (only its SHA-256 is kept).
//
// Two ways, for two moments:
// - with --server URL (or SHORTHORN_SERVER): through the API's createToken mutation, as an admin
//   (--token / SHORTHORN_TOKEN, or anonymous on a loopback server without tokens). Use this while `up`
//   runs: the server sees the new token at once.
// - without: straight into the store under --data-dir. This is how the first token is made, before
//   `up --listen 0.0.0.0` (which refuses to start without one). A running `up` only watches its own
//   writes, so it sees a token made this way at its next start.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { apiTokenRole } from '../model/api-token.js';
import { createApiToken } from '../resolvers/tokens.js';
import { openSqliteStore } from '../store/sqlite-store.js';

interface CreateOpts {
  role: string;
  description: string;
  dataDir: string;
  server?: string;
  token?: string;
  output: string;
}

const CREATE_TOKEN = `mutation CreateToken($role: Role!, $description: String) {
  createToken(role: $role, description: $description) {
    __typename
    ... on CreatedToken { token apiToken { name role description } }
    ... on Error { message code }
  }
}`;

interface Created {
  token: string;
  name: string;
  role: string;
  description: string;
}

async function createThroughApi(server: string, bearer: string | undefined, role: string, description: string) {
  const url = server.endsWith('/graphql') ? server : `${server.replace(/\/$/, '')}/graphql`;
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
    },
    body: JSON.stringify({ query: CREATE_TOKEN, variables: { role, description } }),
  }).catch((err: unknown) => {
    throw new Error(`cannot reach ${url}: ${(err as Error).message}`);
  });
  const body = (await res.json().catch(() => undefined)) as
    | {
        data?: {
          createToken?: {
            __typename: string;
            token?: string;
            apiToken?: Omit<Created, 'token'>;
            message?: string;
          } | null;
        } | null;
        errors?: { message: string; extensions?: { code?: string } }[];
      }
    | undefined;
  if (!body) throw new Error(`${url} answered ${res.status} ${res.statusText}, not GraphQL`);
  if (body.errors?.length)
    throw new Error(
      body.errors.map((e) => `${e.message}${e.extensions?.code ? ` (${e.extensions.code})` : ''}`).join('; '),
    );
  const r = body.data?.createToken;
  if (!r?.token || !r.apiToken) throw new Error(r?.message ?? `unexpected answer from ${url}`);
  return { token: r.token, ...r.apiToken };
}

async function createInStore(dataDir: string, role: 'viewer' | 'operator' | 'admin', description: string) {
  mkdirSync(resolve(dataDir), { recursive: true });
  const store = openSqliteStore(join(resolve(dataDir), 'shorthorn.db'));
  try {
    const { token, apiToken } = await createApiToken(store, { role, description });
    return { token, name: apiToken.metadata.name, role, description };
  } finally {
    await store.close();
  }
}

export function registerTokenCommand(program: Command): void {
  const token = program.command('token').description('API bearer tokens');
  token
    .command('create')
    .description('make an API token and print it (once: only its hash is stored)')
    .requiredOption('--role <role>', 'viewer (read), operator (+ volume and snapshot actions) or admin (everything)')
    .option('--description <text>', 'what the token is for', '')
    .option('--server <url>', 'create it through this API (env SHORTHORN_SERVER), as an admin')
    .option('--token <token>', 'admin token for --server (env SHORTHORN_TOKEN)')
    .option('--data-dir <dir>', 'without --server: the store to write it into', './data')
    .option('-o, --output <format>', 'text (the token alone) or json', 'text')
    .action(async (opts: CreateOpts) => {
      const role = apiTokenRole.safeParse(opts.role);
      if (!role.success) throw new Error(`--role must be viewer, operator or admin, got ${opts.role}`);
      if (opts.description.length > 256) throw new Error('--description: at most 256 characters');
      if (opts.output !== 'text' && opts.output !== 'json') throw new Error('-o must be text or json');
      const server = opts.server ?? process.env['SHORTHORN_SERVER'];
      const created = server
        ? await createThroughApi(server, opts.token ?? process.env['SHORTHORN_TOKEN'], role.data, opts.description)
        : await createInStore(opts.dataDir, role.data, opts.description);
      if (opts.output === 'json') process.stdout.write(`${JSON.stringify(created)}\n`);
      else {
        process.stdout.write(`${created.token}\n`);
        process.stderr.write(
          `token ${created.name} (${created.role}) created; it is shown only now. ` +
            (server ? '' : 'A running `shorthorn up` sees it at its next start (or use --server).') +
            '\n',
        );
      }
    });
}
