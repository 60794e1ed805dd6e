// Node and disk mutations (admin): scheduling flags, eviction, tags, and the disks replicas go on.
import { builder } from '../builder.js';
import { API_ERRORS } from '../errors.js';
import { NodeRef } from '../node.js';

const UpdateNodeInput = builder.inputType('UpdateNodeInput', {
  description: 'Fields left out keep their value',
  fields: (t) => ({
    allowScheduling: t.boolean({ required: false }),
    evictionRequested: t.boolean({ required: false, description: 'Move every replica off this node' }),
    tags: t.stringList({ required: false, description: 'Replaces the tags' }),
  }),
});

const AddDiskInput = builder.inputType('AddDiskInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    path: t.string({ required: true, description: 'An absolute path of an existing directory' }),
    storageReserved: t.field({ type: 'Bytes', required: false, description: 'Bytes kept free for others' }),
    tags: t.stringList({ required: false }),
    allowScheduling: t.boolean({ required: false }),
  }),
});

const UpdateDiskInput = builder.inputType('UpdateDiskInput', {
  description: 'Fields left out keep their value',
  fields: (t) => ({
    allowScheduling: t.boolean({ required: false }),
    evictionRequested: t.boolean({ required: false, description: 'Move every replica off this disk' }),
    storageReserved: t.field({ type: 'Bytes', required: false }),
    tags: t.stringList({ required: false, description: 'Replaces the tags' }),
  }),
});

const opt = <T>(v: T | null | undefined): T | undefined => v ?? undefined;

builder.mutationFields((t) => ({
  updateNode: t.field({
    type: NodeRef,
    authScopes: { admin: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }), input: t.arg({ type: UpdateNodeInput, required: true }) },
    resolve: (_root, { name, input }, ctx) =>
      ctx.api.updateNode(name, {
        allowScheduling: opt(input.allowScheduling),
        evictionRequested: opt(input.evictionRequested),
        tags: opt(input.tags),
      }),
  }),
  addDisk: t.field({
    type: NodeRef,
    description: 'Add a disk to a node; the node controller measures it and reports it in status',
    authScopes: { admin: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { node: t.arg.string({ required: true }), input: t.arg({ type: AddDiskInput, required: true }) },
    resolve: (_root, { node, input }, ctx) =>
      ctx.api.addDisk(node, {
        name: input.name,
        path: input.path,
        storageReserved: opt(input.storageReserved),
        tags: opt(input.tags),
        allowScheduling: opt(input.allowScheduling),
      }),
  }),
  updateDisk: t.field({
    type: NodeRef,
    authScopes: { admin: true },
    errors: { types: API_ERRORS, directResult: true },
    args: {
      node: t.arg.string({ required: true }),
      disk: t.arg.string({ required: true }),
      input: t.arg({ type: UpdateDiskInput, required: true }),
    },
    resolve: (_root, { node, disk, input }, ctx) =>
      ctx.api.updateDisk(node, disk, {
        allowScheduling: opt(input.allowScheduling),
        evictionRequested: opt(input.evictionRequested),
        storageReserved: opt(input.storageReserved),
        tags: opt(input.tags),
      }),
  }),
  removeDisk: t.field({
    type: NodeRef,
    description: 'Remove a disk that holds no replica (request eviction first and wait)',
    authScopes: { admin: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { node: t.arg.string({ required: true }), disk: t.arg.string({ required: true }) },
    resolve: (_root, { node, disk }, ctx) => ctx.api.removeDisk(node, disk),
  }),
}));
