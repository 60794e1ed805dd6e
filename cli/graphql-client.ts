// The CLI's GraphQL client: queries and mutations POSTed with fetch, subscriptions over graphql-ws
// (WebSocket on the same /graphql path). `--server URL` / SHORTHORN_SERVER and `--token T` /
// SHORTHORN_TOKEN say where and as whom. Every failure becomes a CliError whose message names its code
// (UNAUTHENTICATED, NotFound, ValidationError, …): main.ts prints it on stderr and exits 1.
import { type Command, Option } from 'commander';
import { createClient, type Client as WsClient } from 'graphql-ws';
import WebSocket from 'ws';

export const DEFAULT_SERVER = 'http://127.0.0.1:9500/graphql';

/** A failure to report to the person: `code` (GraphQL extension code or typed error) leads the message. */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'CliError';
  }
}

export interface ClientOptions {
  server?: string;
  token?: string;
  output?: 'table' | 'json';
}

/** `--server`, `--token` and `-o` on a noun command (`volume`, `node`, …); its subcommands inherit them. */
export function addClientOptions(cmd: Command, output = true): Command {
  cmd
    .addOption(
      new Option('--server <url>', 'GraphQL endpoint of the manager').env('SHORTHORN_SERVER').default(DEFAULT_SERVER),
    )
    .addOption(new Option('--token <token>', 'API bearer token').env('SHORTHORN_TOKEN'));
  if (output)
    cmd.addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'));
  return cmd;
}

/** http://host:port, http://host:port/, http://host:port/graphql all mean the same endpoint. */
export function graphqlUrl(server: string): string {
  let url: URL;
  try {
    url = new URL(server.includes('://') ? server : `http://${server}`);
  } catch {
    throw new CliError('BAD_SERVER', `--server ${JSON.stringify(server)} is not a URL`);
  }
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/graphql';
  return url.toString();
}

interface GraphQLErrorJson {
  message: string;
  extensions?: { code?: string; errorId?: string };
}
interface GraphQLResponse<T> {
  data?: T | null;
  errors?: GraphQLErrorJson[];
}

/** The first GraphQL error as a CliError, its extension code leading (GRAPHQL_ERROR when it has none). */
function fromGraphQLErrors(errors: readonly GraphQLErrorJson[]): CliError {
  const first = errors[0]!;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more error${errors.length > 2 ? 's' : ''})` : '';
  return new CliError(first.extensions?.code ?? 'GRAPHQL_ERROR', `${first.message}${more}`);
}

export interface Subscription {
  /** Resolves when the server completes the subscription, rejects with a CliError when it fails. */
  done: Promise<void>;
  /** Ends it (done then resolves). */
  stop(): void;
}

export class GraphQLClient {
  readonly url: string;
  private ws: WsClient | undefined;

  constructor(
    server: string,
    private readonly token?: string,
  ) {
    this.url = graphqlUrl(server);
  }

  static from(opts: ClientOptions): GraphQLClient {
    return new GraphQLClient(opts.server ?? process.env['SHORTHORN_SERVER'] ?? DEFAULT_SERVER, opts.token);
  }

  /** A query or mutation; `data` when there are no errors, else a CliError. */
  async request<T>(query: string, variables: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json, application/json',
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
        },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const why =
        e.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : (e.cause?.message ?? e.message);
      throw new CliError('UNREACHABLE', `cannot reach ${this.url}: ${why}`);
    }
    const text = await res.text();
    let body: GraphQLResponse<T> | undefined;
    try {
      body = JSON.parse(text) as GraphQLResponse<T>;
    } catch {
      body = undefined;
    }
    if (body?.errors?.length) throw fromGraphQLErrors(body.errors);
    if (!res.ok || !body?.data)
      throw new CliError(`HTTP_${res.status}`, `${this.url} answered ${res.status}: ${text.slice(0, 200)}`);
    return body.data;
  }

  /** ws://…/graphql (wss:// for https). */
  get wsUrl(): string {
    return this.url.replace(/^http/, 'ws');
  }

  /** One WebSocket for every subscription of this client (graphql-ws multiplexes them). */
  private wsClient(): WsClient {
    if (this.ws) return this.ws;
    const token = this.token;
    this.ws = createClient({
      url: this.wsUrl,
      webSocketImpl: token
        ? class extends WebSocket {
            constructor(address: string | URL, protocols?: string | string[]) {
              super(address, protocols, { headers: { authorization: `Bearer ${token}` } });
            }
          }
        : WebSocket,
      connectionParams: token ? { authorization: `Bearer ${token}` } : {},
      retryAttempts: 0,
      lazy: true,
    });
    return this.ws;
  }

  /**
   * A subscription over graphql-ws: `onNext` for each result, one at a time and in order (even when it
   * is async), until the server completes it, it fails or `stop()` is called.
   */
  subscribe<T>(
    query: string,
    variables: Record<string, unknown>,
    onNext: (data: T) => void | Promise<void>,
  ): Subscription {
    const client = this.wsClient();
    let unsubscribe: (() => void) | undefined;
    let finish: (() => void) | undefined;
    let chain = Promise.resolve();
    const done = new Promise<void>((resolve, reject) => {
      const fail = (err: unknown) => reject(toCliError(err, this.wsUrl));
      finish = () => chain.then(resolve, fail);
      unsubscribe = client.subscribe<T>(
        { query, variables },
        {
          next: (result) => {
            chain = chain.then(async () => {
              if (result.errors?.length) throw fromGraphQLErrors(result.errors as unknown as GraphQLErrorJson[]);
              if (result.data) await onNext(result.data as T);
            });
            chain.catch(fail);
          },
          error: fail,
          complete: () => finish?.(),
        },
      );
    });
    return {
      done,
      stop: () => {
        unsubscribe?.();
        finish?.();
      },
    };
  }

  /** Closes the WebSocket, if one was opened. */
  async close(): Promise<void> {
    const ws = this.ws;
    this.ws = undefined;
    await ws?.dispose();
  }
}

/** What graphql-ws hands `error`: GraphQL errors, a CloseEvent, an Error or an ErrorEvent. */
function toCliError(err: unknown, url: string): CliError {
  if (err instanceof CliError) return err;
  if (Array.isArray(err) && err.length > 0) return fromGraphQLErrors(err as GraphQLErrorJson[]);
  if (err instanceof Error) return new CliError('SUBSCRIPTION_FAILED', `${url}: ${err.message}`);
  const e = err as { code?: number; reason?: string; message?: string; error?: Error };
  if (typeof e?.code === 'number')
    return new CliError(
      e.code === 4403 || e.code === 4401 ? 'UNAUTHENTICATED' : 'CONNECTION_CLOSED',
      `${url} closed the subscription (${e.code}${e.reason ? `: ${e.reason}` : ''})`,
    );
  const message = e?.error?.message ?? e?.message ?? String(err);
  return new CliError('UNREACHABLE', `cannot reach ${url}: ${message}`);
}

/** A mutation's union result: the resource, or one of the Error interface's types. */
export type Result<T> = (T & { __typename: string }) | { __typename: string; message: string; code: string };

/**
 * The resource of a typed result, or a CliError naming the error's type (NotFound, ValidationError,
 * Conflict, InsufficientCapacity, InvalidState) with its message.
 */
export function unwrap<T>(result: Result<T>): T {
  const r = result as { __typename: string; message?: unknown; code?: unknown };
  if (typeof r.code === 'string' && typeof r.message === 'string')
    throw new CliError(r.__typename || r.code, r.message);
  return result as T;
}

/** The selection every mutation adds so `unwrap` can tell an error apart. */
export const ERROR_FIELDS = '__typename ... on Error { message code }';

/** Prints JSON for scripts, or the table text for people. */
export function show(opts: ClientOptions, value: unknown, text: () => string): void {
  process.stdout.write(`${opts.output === 'json' ? JSON.stringify(value, null, 2) : text()}\n`);
}

/** Resolves on SIGINT/SIGTERM: how `--watch` and `--follow` end. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

/** "k=v" pairs into an object; "k=v,k2=v2" works too. */
export function parseKeyValues(pairs: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs.flatMap((p) => p.split(','))) {
    if (pair === '') continue;
    const at = pair.indexOf('=');
    if (at <= 0) throw new CliError('BAD_ARGUMENT', `${what} ${JSON.stringify(pair)} is not key=value`);
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

/** "3" → 3, with the flag named when it is not a whole number. */
export function parseIntFlag(value: string, flag: string): number {
  if (!/^-?\d+$/.test(value.trim())) throw new CliError('BAD_ARGUMENT', `${flag} takes a whole number, not "${value}"`);
  return Number(value);
}

export function parseBool(value: string, flag: string): boolean {
  if (value === 'true' || value === 'yes' || value === 'on') return true;
  if (value === 'false' || value === 'no' || value === 'off') return false;
  throw new CliError('BAD_ARGUMENT', `${flag} takes true or false, not "${value}"`);
}

/** A short relative age for tables: 5s, 3m, 2h, 4d. */
export function age(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/** What an action sees: the inherited --server/--token/-o and its own flags. */
export type ActionOptions = ClientOptions & Record<string, unknown>;

/**
 * A commander action with a client built from the options inherited from the noun command
 * (--server, --token, -o); the client's WebSocket, if any, is closed afterwards.
 */
export const action =
  <A extends unknown[]>(fn: (c: GraphQLClient, opts: ActionOptions, ...args: A) => Promise<void>) =>
  async (...args: A) => {
    const cmd = args[args.length - 1] as Command;
    const opts = cmd.optsWithGlobals<ActionOptions>();
    const c = GraphQLClient.from(opts);
    try {
      await fn(c, opts, ...args);
    } finally {
      await c.close();
    }
  };

/** Bytes for people: 1.5Gi, 74.4Gi, 512Mi, 0 (binary units, one decimal when not whole). */
export function humanSize(bytes: number): string {
  for (const [suffix, unit] of [
    ['Ti', 2 ** 40],
    ['Gi', 2 ** 30],
    ['Mi', 2 ** 20],
    ['Ki', 2 ** 10],
  ] as const) {
    if (bytes >= unit) {
      const v = bytes / unit;
      return `${Number.isInteger(v) ? v : v.toFixed(1)}${suffix}`;
    }
  }
  return `${bytes}`;
}
