// Limits on what one request may ask of the server, and a code on every refusal: a body over
// `maxBodyBytes` is refused with 413 (checked against Content-Length first, then while reading, so an
// oversized body is never buffered whole); queries over the complexity plugin's depth, breadth or cost,
// a role short of a field's scope (FORBIDDEN) and variables of the wrong type (BAD_USER_INPUT) each get
// an error with a code a client can switch on.

import { type ComplexityErrorFn, ComplexityErrorKind } from '@pothos/plugin-complexity';
import type { ForbiddenResult } from '@pothos/plugin-scope-auth';
import type { ExecutionResult } from 'graphql';
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

export const MAX_BODY_BYTES = 1024 * 1024;

function tooLarge(max: number, what: string): Response {
  return new Response(
    JSON.stringify({
      errors: [
        {
          message: `request body ${what} is over the limit of ${max} bytes; send a smaller query or fewer variables`,
          extensions: { code: 'REQUEST_TOO_LARGE' },
        },
      ],
    }),
    { status: 413, headers: { 'content-type': 'application/json' } },
  );
}

/** Reads at most `max` bytes of the body; undefined when there are more. */
async function readLimited(body: ReadableStream<Uint8Array>, max: number): Promise<Uint8Array | undefined> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

export function useRequestLimits(opts: { maxBodyBytes?: number } = {}): Plugin {
  const max = opts.maxBodyBytes ?? MAX_BODY_BYTES;
  return {
    onRequestParse({ request, requestParser, setRequestParser, endResponse }) {
      const declared = Number(request.headers.get('content-length') ?? Number.NaN);
      if (declared > max) {
        endResponse(tooLarge(max, `(${declared} bytes)`));
        return;
      }
      if (!request.body || !requestParser) return;
      setRequestParser(async (req) => {
        if (!req.body) return requestParser(req);
        const bytes = await readLimited(req.body, max);
        if (!bytes) return tooLarge(max, '');
        return requestParser(
          new Request(req.url, { method: req.method, headers: req.headers, body: bytes as Uint8Array<ArrayBuffer> }),
        );
      });
    },
  };
}

const LIMITS = {
  [ComplexityErrorKind.Depth]: { what: 'depth', code: 'QUERY_TOO_DEEP' },
  [ComplexityErrorKind.Breadth]: { what: 'breadth', code: 'QUERY_TOO_BROAD' },
  [ComplexityErrorKind.Complexity]: { what: 'complexity', code: 'QUERY_TOO_COMPLEX' },
} as const;

/** The complexity plugin's error, with a code and what to do about it. */
export const complexityError: ComplexityErrorFn = (kind, result) => {
  const { what, code } = LIMITS[kind];
  const value = result[what];
  const limit = { depth: result.maxDepth, breadth: result.maxBreadth, complexity: result.maxComplexity }[what];
  return new GraphQLError(
    `query ${what} is ${value}, over the limit of ${limit}; ask for fewer nested, repeated or listed fields`,
    { extensions: { code, [what]: value, limit } },
  );
};

/** scope-auth's refusal, with a code: the role asking is short of what the field needs. */
export function forbiddenError(
  _parent: unknown,
  ctx: { role?: string },
  info: { parentType: { name: string }; fieldName: string },
  result: ForbiddenResult,
): GraphQLError {
  return new GraphQLError(
    `not authorized: ${info.parentType.name}.${info.fieldName} needs a higher role than ${ctx.role ?? 'anonymous'} (${result.message})`,
    { extensions: { code: 'FORBIDDEN' } },
  );
}

/** A scalar's refusal of an input value: a GraphQL error (so it is not masked) with BAD_USER_INPUT. */
export function badUserInput(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });
}

/**
 * graphql-js reports variables that do not fit their type (`$n: Int!` given "x", or missing) as errors
 * with no code and no data: they get BAD_USER_INPUT, as validation errors get GRAPHQL_VALIDATION_FAILED.
 */
export function useBadUserInputCode(): Plugin {
  const withCode = (result: ExecutionResult): ExecutionResult | undefined => {
    if (result.data !== undefined || !result.errors?.some((e) => e.extensions?.['code'] === undefined)) return;
    return {
      ...result,
      errors: result.errors.map((e) =>
        e.extensions?.['code'] === undefined
          ? new GraphQLError(e.message, {
              nodes: e.nodes,
              source: e.source,
              positions: e.positions,
              path: e.path,
              originalError: e.originalError,
              extensions: { ...e.extensions, code: 'BAD_USER_INPUT' },
            })
          : e,
      ),
    };
  };
  return {
    onExecute: () => ({
      onExecuteDone: ({ result, setResult }) => {
        if (Symbol.asyncIterator in result) return;
        const next = withCode(result);
        if (next) setResult(next);
      },
    }),
  };
}
