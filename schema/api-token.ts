// ApiToken: bearer tokens of this API (admin only). createToken returns the token once; only its
// SHA-256 is stored, so a lost token is replaced, not recovered.
import { z } from 'zod';
import { NotFoundError } from '../controllers/api-errors.js';
import type { ApiToken as ApiTokenModel } from '../model/api-token.js';
import { createApiToken } from '../resolvers/tokens.js';
import { builder } from './builder.js';
import { API_ERRORS } from './errors.js';

const RoleEnum = builder.enumType('Role', {
  description: 'viewer: queries and subscriptions; operator: also volume and snapshot actions; admin: everything',
  values: ['viewer', 'operator', 'admin'] as const,
});

export const ApiTokenRef = builder.objectRef<ApiTokenModel>('ApiToken').implement({
  description: 'A bearer token of the API: its role and description (the token itself is never stored)',
  fields: (t) => ({
    name: t.string({ resolve: (a) => a.metadata.name }),
    role: t.field({ type: RoleEnum, resolve: (a) => a.spec.role }),
    description: t.string({ resolve: (a) => a.spec.description }),
    createdAt: t.string({ resolve: (a) => a.metadata.creationTimestamp }),
  }),
});

const CreatedTokenRef = builder.objectRef<{ token: string; apiToken: ApiTokenModel }>('CreatedToken').implement({
  fields: (t) => ({
    token: t.string({
      description: 'Use as `Authorization: Bearer <token>`; shown this once only',
      resolve: (c) => c.token,
    }),
    apiToken: t.field({ type: ApiTokenRef, resolve: (c) => c.apiToken }),
  }),
});

builder.queryFields((t) => ({
  apiTokens: t.field({
    type: [ApiTokenRef],
    authScopes: { admin: true },
    resolve: (_root, _args, ctx) => ctx.reads.list('ApiToken'),
  }),
}));

builder.mutationFields((t) => ({
  createToken: t.field({
    type: CreatedTokenRef,
    description: 'A new bearer token with this role; the token is in the result and nowhere else',
    authScopes: { admin: true },
    errors: { types: API_ERRORS, directResult: true },
    args: {
      role: t.arg({ type: RoleEnum, required: true }),
      description: t.arg.string({ required: false, validate: z.string().max(256) }),
    },
    resolve: (_root, { role, description }, ctx) =>
      createApiToken(ctx.store, { role, description: description ?? undefined }),
  }),
  deleteToken: t.field({
    type: ApiTokenRef,
    description: 'Revoke a token: requests carrying it are refused from now on',
    authScopes: { admin: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: async (_root, { name }, ctx) => {
      const existing = await ctx.store.get('ApiToken', name);
      if (!existing) throw new NotFoundError('ApiToken', name);
      return ctx.store.delete('ApiToken', name);
    },
  }),
}));
