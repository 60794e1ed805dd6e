// ApiToken: a bearer token of the GraphQL API, kept as the SHA-256 of the token (hex) with its role;
// the token itself is shown once, when it is made, and never stored.
import { z } from 'zod';
import { type Resource, resourceSchema } from './meta.js';

export const apiTokenRole = z.enum(['viewer', 'operator', 'admin']);
export type ApiTokenRole = z.infer<typeof apiTokenRole>;

export const apiTokenSpec = z.object({
  role: apiTokenRole,
  hash: z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in lower-case hex'),
  description: z.string().max(256).default(''),
});
export type ApiTokenSpec = z.infer<typeof apiTokenSpec>;

export const apiTokenSchema = resourceSchema('ApiToken', apiTokenSpec, z.object({}).default({}));
export type ApiToken = Resource<'ApiToken', ApiTokenSpec, Record<string, never>>;
