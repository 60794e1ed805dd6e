// Secret: opaque key/value data, as Kubernetes' Secret (backup target credentials: Longhorn's AWS_* keys).
// The API shows a secret's keys, never its values.
import { z } from 'zod';
import { type Resource, resourceSchema } from './meta.js';

export const secretSpec = z.object({
  data: z.record(z.string(), z.string()).default({}),
});
export type SecretSpec = z.infer<typeof secretSpec>;

export const secretSchema = resourceSchema('Secret', secretSpec, z.object({}).default({}));
export type Secret = Resource<'Secret', SecretSpec, Record<string, never>>;
