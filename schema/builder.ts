// The Pothos builder and nothing else (no types here): plugins in DESIGN.md §5's order.
import SchemaBuilder from '@pothos/core';
import ComplexityPlugin from '@pothos/plugin-complexity';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import ErrorsPlugin from '@pothos/plugin-errors';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import SimpleObjectsPlugin from '@pothos/plugin-simple-objects';
import ValidationPlugin from '@pothos/plugin-validation';
import WithInputPlugin from '@pothos/plugin-with-input';
import { Kind } from 'graphql';
import { DateTimeResolver, JSONResolver } from 'graphql-scalars';
import { type GraphQLContext, hasRole } from './context.js';
import { badUserInput, complexityError, forbiddenError } from './request-limits.js';

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  AuthScopes: { viewer: boolean; operator: boolean; admin: boolean };
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
    JSON: { Input: unknown; Output: unknown };
    /** Sizes in bytes: above 2^31, so not GraphQL's Int. Serialized as a JSON number (safe up to 2^53). */
    Bytes: { Input: number; Output: number };
  };
  DefaultFieldNullability: false;
}>({
  plugins: [
    ScopeAuthPlugin,
    ErrorsPlugin,
    RelayPlugin,
    DataloaderPlugin,
    SimpleObjectsPlugin,
    ValidationPlugin,
    WithInputPlugin,
    ComplexityPlugin,
  ],
  defaultFieldNullability: false,
  scopeAuth: {
    unauthorizedError: forbiddenError,
    authScopes: (ctx) => ({
      viewer: hasRole(ctx, 'viewer'),
      operator: hasRole(ctx, 'operator'),
      admin: hasRole(ctx, 'admin'),
    }),
  },
  errors: { defaultTypes: [] },
  // Connections only (volumesConnection, eventsConnection): no global IDs, so no Node interface or node query.
  relay: { cursorType: 'String', clientMutationId: 'omit', nodeQueryOptions: false, nodesQueryOptions: false },
  complexity: {
    defaultComplexity: 1,
    defaultListMultiplier: 10,
    limit: { complexity: 50_000, depth: 12, breadth: 200 },
    complexityError,
  },
});

builder.addScalarType('DateTime', DateTimeResolver);
builder.addScalarType('JSON', JSONResolver);
builder.scalarType('Bytes', {
  description: 'A size in bytes (a JSON number, exact up to 2^53)',
  serialize: (v) => v,
  // A variable: a coded GraphQL error (a TypeError would be masked). A literal: validation wraps the
  // TypeError with its location (GRAPHQL_VALIDATION_FAILED).
  parseValue: (v) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw badUserInput('Bytes must be a whole number of bytes');
    return v;
  },
  parseLiteral: (ast) => {
    const v = ast.kind === Kind.INT ? Number(ast.value) : Number.NaN;
    if (!Number.isSafeInteger(v)) throw new TypeError('Bytes must be a whole number of bytes (at most 2^53)');
    return v;
  },
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
