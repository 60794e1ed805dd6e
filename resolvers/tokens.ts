// API tokens: made here (the plaintext is returned once and only its SHA-256 is stored as an ApiToken)
// and checked against an in-memory copy of every stored hash that the store's watch keeps current, so
// a request costs no store read and a token made through the API works at once. Checking compares the
// hashes in constant time and always walks every token, so timing says nothing about which one is near.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiToken, ApiTokenRole } from '../model/api-token.js';
import type { Store, Watch } from '../store/store.js';

/** Tokens look like `shorthorn_<43 base64url characters>` (256 random bits). */
const TOKEN_PREFIX = 'shorthorn_';

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export interface CreatedToken {
  /** The plaintext bearer token: shown once, not recoverable. */
  token: string;
  apiToken: ApiToken;
}

export async function createApiToken(
  store: Store,
  input: { role: ApiTokenRole; description?: string },
): Promise<CreatedToken> {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const apiToken = await store.create('ApiToken', {
    metadata: { name: `token-${randomBytes(4).toString('hex')}` },
    spec: { role: input.role, hash: hashToken(token), description: input.description ?? '' },
  });
  return { token, apiToken };
}

export async function hasApiTokens(store: Store): Promise<boolean> {
  return (await store.list('ApiToken')).items.length > 0;
}

/** The stored tokens' hashes, watched; `verify(token)` gives the token's role or undefined. */
export class TokenVerifier {
  private readonly hashes = new Map<string, { hash: Buffer; role: ApiTokenRole }>();
  private watch: Watch | undefined;

  private constructor() {}

  static async start(store: Store, onError?: (err: Error) => void): Promise<TokenVerifier> {
    const v = new TokenVerifier();
    const put = (t: ApiToken) =>
      v.hashes.set(t.metadata.name, { hash: Buffer.from(t.spec.hash, 'hex'), role: t.spec.role });
    const held: { type: string; object: ApiToken }[] = [];
    let listing = true;
    const apply = (type: string, t: ApiToken) => (type === 'DELETED' ? v.hashes.delete(t.metadata.name) : put(t));
    v.watch = store.watch('ApiToken', {
      onEvent: (e) => (listing ? held.push(e) : apply(e.type, e.object)),
      onError: (err) => onError?.(err),
    });
    const { items } = await store.list('ApiToken');
    for (const t of items) put(t);
    for (const e of held) apply(e.type, e.object);
    listing = false;
    return v;
  }

  get size(): number {
    return this.hashes.size;
  }

  verify(token: string): ApiTokenRole | undefined {
    const given = Buffer.from(hashToken(token), 'hex');
    let role: ApiTokenRole | undefined;
    for (const t of this.hashes.values()) if (timingSafeEqual(given, t.hash) && !role) role = t.role;
    return role;
  }

  stop(): void {
    this.watch?.stop();
  }
}
