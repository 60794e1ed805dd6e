// What purge does next with the removed snapshots of a replica (reference §1.6), decided from the
// layer metas alone so it can be tested as a table: remove a childless one, coalesce one into its only
// child, prune the one under the head, skip those with several children.
import { childrenByParent, type DiskMeta } from './disk-meta.js';

export type PurgeAction =
  | { kind: 'remove'; disk: string }
  /** Fold `child`'s data into `parent`'s file, which then takes the child's name and place. */
  | { kind: 'coalesce'; parent: string; child: string }
  /** Punch holes in `disk` where the head has data; the snapshot stays in the chain, still removed. */
  | { kind: 'prune'; disk: string };

/**
 * The next action, or null when nothing is left to do. `pruned` lists snapshots already pruned in
 * this purge, so the loop ends. Removes and coalesces go first; the prune of the snapshot right under
 * the head goes last, after everything that might coalesce into it.
 */
export function nextPurgeAction(disks: Map<string, DiskMeta>, head: string, pruned: Set<string>): PurgeAction | null {
  const children = childrenByParent(disks.values());
  let prune: PurgeAction | null = null;
  for (const disk of [...disks.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!disk.removed || disk.name === head) continue;
    const kids = children.get(disk.name) ?? [];
    if (kids.length === 0) return { kind: 'remove', disk: disk.name };
    if (kids.length > 1) continue;
    const child = kids[0]!;
    if (child !== head) return { kind: 'coalesce', parent: disk.name, child };
    if (!pruned.has(disk.name)) prune = { kind: 'prune', disk: disk.name };
  }
  return prune;
}
