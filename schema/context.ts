// What every resolver gets: who is asking, per-request reads, and the control plane's actions.
import type { BackupApi } from '../controllers/backup-api.js';
import type { VolumeApi } from '../controllers/volume-api.js';
import type { StoreReads } from '../resolvers/store-reads.js';
import type { Store } from '../store/store.js';

export type Role = 'viewer' | 'operator' | 'admin';

export interface GraphQLContext {
  /** undefined = anonymous (refused everywhere unless the server allows it on loopback). */
  role: Role | undefined;
  reads: StoreReads;
  api: VolumeApi;
  /** Backups, backup targets, restores and recurring jobs. */
  backups: BackupApi;
  store: Store;
}

const RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

export function hasRole(ctx: { role: Role | undefined }, need: Role): boolean {
  return ctx.role !== undefined && RANK[ctx.role] >= RANK[need];
}
