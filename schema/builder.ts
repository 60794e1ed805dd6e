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
import { DateTimeResolver, JSONResolver } from 'graphql-scalars';
import { type GraphQLContext, hasRole } from './context.js';
import { complexityError } from './request-limits.js';

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
  parseValue: (v) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new TypeError('Bytes must be a whole number of bytes');
    return v;
  },
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
