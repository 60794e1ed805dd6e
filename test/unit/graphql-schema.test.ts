// The GraphQL schema as clients see it: any change to a type, field, argument or nullability shows up
// here as a snapshot diff to review (update with `vitest run -u` when it is meant).
// graphql/index.js, not graphql: vite would resolve the bare name to graphql's .mjs build, a second copy
// beside the CommonJS one Pothos builds the schema with ("Cannot use GraphQLInputObjectType from another module").
import { printSchema } from 'graphql/index.js';
import { describe, expect, it } from 'vitest';
import { schema } from '../../schema/index.js';

describe('GraphQL schema', () => {
  it('prints as recorded', () => {
    expect(printSchema(schema)).toMatchSnapshot();
  });
});
