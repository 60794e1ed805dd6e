// Snapshot and replica mutations. Revert and purge are requests carried out by the controllers: the
// returned volume shows them in spec (revertRequested, purgeRequestedAt) until done, and the Revert
// and Purge conditions say how it went.
import { builder } from '../builder.js';
import { API_ERRORS } from '../errors.js';
import { ReplicaRef } from '../replica.js';
import { SnapshotRef } from '../snapshot.js';
import { VolumeRef } from '../volume.js';

builder.mutationFields((t) => ({
  createSnapshot: t.field({
    type: SnapshotRef,
    description: 'Take a snapshot of an attached volume (name: a UUID unless given)',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: {
      volume: t.arg.string({ required: true }),
      name: t.arg.string({ required: false }),
      labels: t.arg({ type: 'JSON', required: false, description: 'An object of string values' }),
    },
    resolve: (_root, { volume, name, labels }, ctx) =>
      ctx.api.createSnapshot(volume, name ?? undefined, (labels ?? {}) as Record<string, string>), // checked by the API
  }),
  deleteSnapshot: t.field({
    type: SnapshotRef,
    description: 'Remove a snapshot from the chain (done when the volume is attached) and purge',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.api.deleteSnapshot(name),
  }),
  revertSnapshot: t.field({
    type: VolumeRef,
    description:
      'Revert a detached volume to a snapshot: it is attached without frontend, reverted and detached again; attach requests wait meanwhile',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { volume: t.arg.string({ required: true }), name: t.arg.string({ required: true }) },
    resolve: (_root, { volume, name }, ctx) => ctx.api.revertSnapshot(volume, name),
  }),
  purgeSnapshots: t.field({
    type: VolumeRef,
    description: 'Purge an attached volume: removed snapshots go, system snapshots are merged',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { volume: t.arg.string({ required: true }) },
    resolve: (_root, { volume }, ctx) => ctx.api.purgeSnapshots(volume),
  }),
  removeReplica: t.field({
    type: ReplicaRef,
    description: 'Remove one replica (it is replaced); the last healthy replica is refused',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.api.removeReplica(name),
  }),
}));

builder.objectFields(VolumeRef, (t) => ({
  revertRequestedTo: t.string({
    nullable: true,
    description: 'The snapshot a requested revert goes back to, until the controllers have done it',
    resolve: (v) => v.spec.revertRequested?.snapshot ?? null,
  }),
  purgeRequested: t.boolean({
    description: 'A snapshot purge is asked for and not done yet',
    resolve: (v) => !!v.spec.purgeRequestedAt,
  }),
}));
