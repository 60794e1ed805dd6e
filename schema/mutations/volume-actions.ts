// Volume mutations: each writes desired state through VolumeApi and returns the volume at once; the
// controllers do the work and report it in status (state, robustness, endpoint, conditions).
import { builder } from '../builder.js';
import { API_ERRORS } from '../errors.js';
import { VolumeRef } from '../volume.js';

const CreateVolumeInput = builder.inputType('CreateVolumeInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: 'Lower-case letters, digits and "-", at most 63' }),
    size: t.field({ type: 'Bytes', required: true, description: 'A multiple of 4096 bytes' }),
    numberOfReplicas: t.int({ required: false, description: 'Default: the default-replica-count setting' }),
    dataLocality: t.string({ required: false, description: 'disabled, best-effort or strict-local' }),
    staleReplicaTimeout: t.int({ required: false, description: 'Minutes a failed replica is kept for reuse' }),
    nodeSelector: t.stringList({ required: false, description: 'Node tags every replica node must have' }),
    diskSelector: t.stringList({ required: false, description: 'Disk tags every replica disk must have' }),
  }),
});

const UpdateVolumeInput = builder.inputType('UpdateVolumeInput', {
  description: 'Fields left out keep their value',
  fields: (t) => ({
    numberOfReplicas: t.int({ required: false }),
    staleReplicaTimeout: t.int({ required: false }),
    dataLocality: t.string({ required: false, description: 'disabled, best-effort or strict-local' }),
    nodeSelector: t.stringList({ required: false }),
    diskSelector: t.stringList({ required: false }),
  }),
});

const opt = <T>(v: T | null | undefined): T | undefined => v ?? undefined;

builder.mutationFields((t) => ({
  createVolume: t.field({
    type: VolumeRef,
    description: 'Create a volume; its replicas are placed at once (InsufficientCapacity when they cannot be)',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { input: t.arg({ type: CreateVolumeInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      ctx.api.createVolume({
        name: input.name,
        size: input.size,
        numberOfReplicas: opt(input.numberOfReplicas),
        dataLocality: opt(input.dataLocality) as never, // checked by the API's zod schema
        staleReplicaTimeout: opt(input.staleReplicaTimeout),
        nodeSelector: opt(input.nodeSelector),
        diskSelector: opt(input.diskSelector),
      }),
  }),
  updateVolume: t.field({
    type: VolumeRef,
    description: 'Change replica count, stale-replica timeout, data locality or selectors',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }), input: t.arg({ type: UpdateVolumeInput, required: true }) },
    resolve: (_root, { name, input }, ctx) =>
      ctx.api.updateVolume(name, {
        numberOfReplicas: opt(input.numberOfReplicas),
        staleReplicaTimeout: opt(input.staleReplicaTimeout),
        dataLocality: opt(input.dataLocality) as never, // checked by the API's zod schema
        nodeSelector: opt(input.nodeSelector),
        diskSelector: opt(input.diskSelector),
      }),
  }),
  deleteVolume: t.field({
    type: VolumeRef,
    description: 'Delete a volume: processes stop, replica data is removed, then the volume goes',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.api.deleteVolume(name),
  }),
  attachVolume: t.field({
    type: VolumeRef,
    description: 'Ask for the volume on a node (a ticket); once attached, status endpoint holds the NBD URI',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: {
      name: t.arg.string({ required: true }),
      node: t.arg.string({ required: true }),
      disableFrontend: t.arg.boolean({ required: false, defaultValue: false }),
    },
    resolve: (_root, { name, node, disableFrontend }, ctx) =>
      ctx.api.attachVolume(name, node, { disableFrontend: disableFrontend ?? false }),
  }),
  detachVolume: t.field({
    type: VolumeRef,
    description: "Withdraw the API's attach request; force withdraws every request (CSI and controllers too)",
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }), force: t.arg.boolean({ required: false, defaultValue: false }) },
    resolve: (_root, { name, force }, ctx) => ctx.api.detachVolume(name, { force: force ?? false }),
  }),
  expandVolume: t.field({
    type: VolumeRef,
    description: 'Grow an attached volume (online); status currentSize follows',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }), size: t.arg({ type: 'Bytes', required: true }) },
    resolve: (_root, { name, size }, ctx) => ctx.api.expandVolume(name, size),
  }),
  salvageVolume: t.field({
    type: VolumeRef,
    description:
      'Faulted and detached: start again from these failed replicas (default: every one that held data); attach it afterwards',
    authScopes: { operator: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }), replicas: t.arg.stringList({ required: false }) },
    resolve: (_root, { name, replicas }, ctx) => ctx.api.salvageVolume(name, opt(replicas)),
  }),
}));
