// The control plane's actions on volumes, as the API (GraphQL, CLI, CSI) calls them: each checks its
// input, writes desired state, and returns at once; controllers do the work and report in status.
// Every expected failure is an ApiError a person can act on, and a refused action changes nothing.
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { ZodError, z } from 'zod';
import { nowIso, objectMeta, resourceName } from '../model/meta.js';
import { type DiskSpec, diskSpec, type Node } from '../model/node.js';
import type { Replica } from '../model/replica.js';
import { isSettingName, SETTING_DEFINITIONS, settingValueProblem } from '../model/setting-definitions.js';
import type { Snapshot } from '../model/snapshot.js';
import type { Volume, VolumeSpec } from '../model/volume.js';
import { volumeSpec, volumeStatus } from '../model/volume.js';
import type { AttachmentTicketType, VolumeAttachment } from '../model/volume-attachment.js';
import { isStoreError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { type ApiError, conflict, insufficientCapacity, invalid, invalidState, notFound } from './api-errors.js';
import { FINALIZER, ownedByVolume, VOLUME_LABEL } from './labels.js';
import { schedulingSettingsFrom, volumeSchedulingProblem } from './scheduler/replica-scheduler.js';
import { Settings } from './settings.js';

export interface CreateVolumeInput {
  name: string;
  size: number;
  numberOfReplicas?: number;
  dataLocality?: VolumeSpec['dataLocality'];
  staleReplicaTimeout?: number;
  nodeSelector?: string[];
  diskSelector?: string[];
  /** Longhorn's backup URL to restore from (the volume controller restores it before first use). */
  fromBackup?: string;
  /** A standby (DR) volume following its backup volume (needs fromBackup). */
  standby?: boolean;
}

/** A volume not yet stored, for the scheduler's pre-check. */
function draftVolume(name: string, spec: VolumeSpec): Volume {
  return {
    apiVersion: 'shorthorn.io/v1',
    kind: 'Volume',
    metadata: objectMeta.parse({ name }),
    spec,
    status: volumeStatus.parse({}),
  };
}

function fromZod(err: ZodError, prefix = ''): ApiError {
  const issue = err.issues[0]!;
  const path = issue.path.join('.');
  return invalid(prefix && path ? `${prefix}.${path}` : prefix || path || 'input', issue.message);
}

export interface UpdateVolumeInput {
  numberOfReplicas?: number;
  staleReplicaTimeout?: number;
  dataLocality?: VolumeSpec['dataLocality'];
  nodeSelector?: string[];
  diskSelector?: string[];
}

export interface UpdateNodeInput {
  allowScheduling?: boolean;
  evictionRequested?: boolean;
  tags?: string[];
}

export interface AddDiskInput {
  name: string;
  path: string;
  storageReserved?: number;
  tags?: string[];
  allowScheduling?: boolean;
}

export interface UpdateDiskInput {
  allowScheduling?: boolean;
  evictionRequested?: boolean;
  storageReserved?: number;
  tags?: string[];
}

/** Node and disk tags (Longhorn's rule): letters, digits, '-', '_' and '.', at most 63 characters. */
const tag = z
  .string()
  .min(1, 'a tag cannot be empty')
  .max(63, 'a tag has at most 63 characters')
  .regex(/^[A-Za-z0-9][-A-Za-z0-9_.]*$/, 'a tag is letters, digits, "-", "_" and "." (starting alphanumeric)');
const tags = z
  .array(tag)
  .max(50, 'at most 50 tags')
  .transform((t) => [...new Set(t)].sort());
const labels = z.record(
  z
    .string()
    .min(1)
    .max(63)
    .regex(/^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/, 'a label key is letters, digits, "-", "_", "." and "/"'),
  z.string().max(253, 'a label value has at most 253 characters'),
);

function check<T>(schema: z.ZodType<T>, value: unknown, field: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw fromZod(r.error, field);
  return r.data;
}

/** Healthy: holds the volume's data now (RW once, not failed since, not being removed). */
function isHealthyReplica(r: Replica): boolean {
  return !!r.spec.healthyAt && !r.spec.failedAt && r.spec.active && !r.metadata.deletionTimestamp;
}

function isDetached(vol: Volume): boolean {
  return vol.status.state === 'detached' && vol.spec.nodeID === '' && vol.status.currentNodeID === '';
}

export class VolumeApi {
  constructor(private readonly store: Store) {}

  private async settings(): Promise<Settings> {
    const { items } = await this.store.list('Setting');
    const byName = new Map(items.map((s) => [s.metadata.name, s]));
    return new Settings({ get: (n) => byName.get(n) });
  }

  private async volume(name: string): Promise<Volume> {
    const v = await this.store.get('Volume', name);
    if (!v) throw notFound('volume', name);
    return v;
  }

  /** The volume, refused when it is going away or a revert has it attached for the control plane. */
  private async activeVolume(name: string, action: string): Promise<Volume> {
    const v = await this.volume(name);
    if (v.metadata.deletionTimestamp) throw invalidState(`volume "${name}" is being deleted; it cannot ${action}`);
    if (v.spec.revertRequested)
      throw invalidState(
        `volume "${name}" is being reverted to snapshot "${v.spec.revertRequested.snapshot}"; it can ${action} once the revert is done`,
      );
    return v;
  }

  private async node(name: string): Promise<Node> {
    const n = await this.store.get('Node', name);
    if (!n) throw notFound('node', name);
    return n;
  }

  private async replicasOf(volume: string): Promise<Replica[]> {
    return (await this.store.list('Replica')).items.filter((r) => r.spec.volumeName === volume);
  }

  /** The volume's VolumeAttachment; created here (as the volume controller would) if not there yet. */
  private async attachment(vol: Volume): Promise<VolumeAttachment> {
    const name = vol.metadata.name;
    const va = await this.store.get('VolumeAttachment', name);
    if (va) return va;
    try {
      return await this.store.create('VolumeAttachment', {
        metadata: ownedByVolume(name, vol, { finalizer: false }),
        spec: { volume: name, attachmentTickets: {} },
      });
    } catch (err) {
      if (!isStoreError(err, 'AlreadyExists')) throw err;
      const again = await this.store.get('VolumeAttachment', name);
      if (!again) throw err;
      return again;
    }
  }

  async createVolume(input: CreateVolumeInput): Promise<Volume> {
    const nameCheck = resourceName.safeParse(input.name);
    if (!nameCheck.success) throw invalid('name', nameCheck.error.issues[0]!.message);
    const settings = await this.settings();
    const parsed = volumeSpec.safeParse({
      size: input.size,
      numberOfReplicas: input.numberOfReplicas ?? settings.int('default-replica-count'),
      dataLocality: input.dataLocality ?? settings.raw('default-data-locality'),
      staleReplicaTimeout: input.staleReplicaTimeout,
      nodeSelector: input.nodeSelector,
      diskSelector: input.diskSelector,
      fromBackup: input.fromBackup,
      standby: input.standby,
    });
    if (!parsed.success) throw fromZod(parsed.error);
    const spec = parsed.data;
    if (spec.standby && !spec.fromBackup)
      throw invalid('standby', 'a standby volume restores from a backup: give fromBackup');
    if (spec.dataLocality === 'strict-local' && spec.numberOfReplicas !== 1)
      throw invalid('numberOfReplicas', 'strict-local data locality needs exactly 1 replica');
    if (await this.store.get('Volume', input.name)) throw conflict(`volume "${input.name}" already exists`);
    // Refused unless every replica can be placed now: a volume created half-placed is a volume
    // that is degraded from its first write (the issue asks for a typed error, not a degraded volume).
    const problem = volumeSchedulingProblem({
      volume: draftVolume(input.name, spec),
      replicas: [],
      nodes: (await this.store.list('Node')).items,
      settings: schedulingSettingsFrom(settings.all()),
    });
    if (problem) throw insufficientCapacity(problem);
    try {
      return await this.store.create('Volume', {
        metadata: { name: input.name, finalizers: [FINALIZER], labels: {} },
        spec,
      });
    } catch (err) {
      if (isStoreError(err, 'AlreadyExists')) throw conflict(`volume "${input.name}" already exists`);
      if (isStoreError(err, 'Invalid')) throw invalid('input', err.message);
      throw err;
    }
  }

  async deleteVolume(name: string): Promise<Volume> {
    await this.volume(name);
    return this.store.delete('Volume', name);
  }

  /**
   * Adds a ticket; the volume-attachment controller sets the node, status.endpoint then holds the URI.
   * While a revert runs the ticket waits (the controller honours only the revert's own ticket).
   */
  async attachVolume(
    name: string,
    nodeID: string,
    opts: { ticketID?: string; type?: AttachmentTicketType; disableFrontend?: boolean } = {},
  ): Promise<Volume> {
    const vol = await this.volume(name);
    if (vol.metadata.deletionTimestamp) throw invalidState(`volume "${name}" is being deleted`);
    // A restore writes with no reader (Longhorn restores with the frontend off): a client would see
    // blocks change under it, and a standby volume's data changes at each new backup.
    if (!opts.disableFrontend) {
      if (vol.spec.standby || vol.status.isStandby)
        throw invalidState(`volume "${name}" is a standby volume; activate it (activateVolume) before attaching it`);
      if (vol.spec.fromBackup && (!vol.status.lastRestoredBackup || vol.status.restoreRequired))
        throw invalidState(`volume "${name}" is being restored from a backup; attach it once the restore is done`);
    }
    await this.node(nodeID);
    const type = opts.type ?? 'shorthorn-api';
    const id = opts.ticketID ?? `${type}-${nodeID}`;
    await this.retryOnConflict(async () => {
      const va = await this.attachment(vol);
      const busy = Object.values(va.spec.attachmentTickets).find((t) => t.nodeID !== nodeID && t.type === type);
      if (busy) throw invalidState(`volume "${name}" is attached to ${busy.nodeID}; detach it first`);
      const ticket = {
        id,
        type,
        nodeID,
        parameters: { disableFrontend: opts.disableFrontend ?? false },
        generation: 0,
      };
      const old = va.spec.attachmentTickets[id];
      if (old && JSON.stringify(old) === JSON.stringify(ticket)) return;
      va.spec.attachmentTickets[id] = ticket;
      await this.store.update('VolumeAttachment', va);
    });
    return this.volume(name);
  }

  /** Removes the ticket (or every ticket with `force`). */
  async detachVolume(
    name: string,
    opts: { ticketID?: string; nodeID?: string; force?: boolean } = {},
  ): Promise<Volume> {
    await this.volume(name);
    await this.retryOnConflict(async () => {
      const va = await this.store.get('VolumeAttachment', name);
      if (!va) return;
      let changed = false;
      for (const [id, t] of Object.entries(va.spec.attachmentTickets)) {
        const match =
          opts.force ||
          id === opts.ticketID ||
          (!opts.ticketID && (!opts.nodeID || t.nodeID === opts.nodeID) && t.type === 'shorthorn-api');
        if (match) {
          delete va.spec.attachmentTickets[id];
          changed = true;
        }
      }
      if (changed) await this.store.update('VolumeAttachment', va);
    });
    return this.volume(name);
  }

  async expandVolume(name: string, size: number): Promise<Volume> {
    return this.retryOnConflict(async () => {
      const vol = await this.activeVolume(name, 'be expanded');
      const check = volumeSpec.shape.size.safeParse(size);
      if (!check.success) throw invalid('size', check.error.issues[0]!.message);
      if (size < vol.spec.size)
        throw invalid('size', `shrinking is not supported (${size} < current ${vol.spec.size})`);
      // Online only: the engine grows every replica together (Longhorn's expansion snapshot).
      if (vol.status.state !== 'attached')
        throw invalidState(`volume "${name}" is ${vol.status.state}; attach it to expand it (expansion is online)`);
      if (size === vol.spec.size) return vol;
      vol.spec.size = size;
      return this.store.update('Volume', vol);
    });
  }

  async updateVolume(name: string, patch: UpdateVolumeInput): Promise<Volume> {
    return this.retryOnConflict(async () => {
      const vol = await this.volume(name);
      if (vol.metadata.deletionTimestamp) throw invalidState(`volume "${name}" is being deleted`);
      const defined = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined && v !== null));
      const parsed = volumeSpec.safeParse({ ...vol.spec, ...defined });
      if (!parsed.success) throw fromZod(parsed.error);
      if (parsed.data.dataLocality === 'strict-local' && parsed.data.numberOfReplicas !== 1)
        throw invalid('numberOfReplicas', 'strict-local data locality needs exactly 1 replica');
      if (JSON.stringify(parsed.data) === JSON.stringify(vol.spec)) return vol;
      vol.spec = parsed.data;
      return this.store.update('Volume', vol);
    });
  }

  /**
   * Manual salvage (Longhorn's `salvage{names[]}`): on a detached faulted volume, clears failedAt of the
   * chosen replicas (default: every failed one that held data) so the next attach starts from them.
   */
  async salvageVolume(name: string, replicaNames?: string[]): Promise<Volume> {
    const vol = await this.volume(name);
    if (vol.metadata.deletionTimestamp) throw invalidState(`volume "${name}" is being deleted`);
    const replicas = await this.replicasOf(name);
    const faulted = replicas.length > 0 && !replicas.some((r) => !r.spec.failedAt && r.spec.active);
    if (!faulted)
      throw invalidState(
        `volume "${name}" is not faulted (${replicas.filter((r) => !r.spec.failedAt).length} replicas have not failed); only a faulted volume is salvaged`,
      );
    if (!isDetached(vol))
      throw invalidState(`volume "${name}" is ${vol.status.state}; salvage runs on a detached volume, detach it first`);
    let chosen: Replica[];
    if (replicaNames && replicaNames.length > 0) {
      chosen = [];
      for (const n of new Set(replicaNames)) {
        const r = replicas.find((x) => x.metadata.name === n);
        if (!r) throw notFound('replica', n);
        if (!r.spec.lastHealthyAt)
          throw invalid('replicas', `replica "${n}" never held the volume's data (it was never healthy)`);
        chosen.push(r);
      }
    } else {
      chosen = replicas.filter((r) => r.spec.lastHealthyAt && !r.metadata.deletionTimestamp);
      if (chosen.length === 0)
        throw invalidState(`no replica of volume "${name}" ever held its data; there is nothing to salvage`);
    }
    for (const r of chosen) {
      await this.retryOnConflict(async () => {
        const cur = await this.store.get('Replica', r.metadata.name);
        if (!cur?.spec.failedAt) return;
        cur.spec.failedAt = '';
        await this.store.update('Replica', cur);
      });
    }
    return this.volume(name);
  }

  async createSnapshot(volume: string, name?: string, snapshotLabels: Record<string, string> = {}) {
    const vol = await this.activeVolume(volume, 'take a snapshot');
    const snapName = name ?? randomUUID();
    const nameCheck = resourceName.safeParse(snapName);
    if (!nameCheck.success) throw invalid('name', nameCheck.error.issues[0]!.message);
    const lbls = check(labels, snapshotLabels, 'labels');
    if (vol.status.state !== 'attached')
      throw invalidState(`volume "${volume}" is ${vol.status.state}; attach it to take a snapshot`);
    if (await this.store.get('Snapshot', snapName)) throw conflict(`snapshot "${snapName}" already exists`);
    try {
      return await this.store.create('Snapshot', {
        metadata: { name: snapName, finalizers: [FINALIZER], labels: { [VOLUME_LABEL]: volume } },
        spec: { volume, createSnapshot: true, labels: lbls },
      });
    } catch (err) {
      if (isStoreError(err, 'AlreadyExists')) throw conflict(`snapshot "${snapName}" already exists`);
      throw err;
    }
  }

  async deleteSnapshot(name: string): Promise<Snapshot> {
    const snap = await this.store.get('Snapshot', name);
    if (!snap) throw notFound('snapshot', name);
    const vol = await this.store.get('Volume', snap.spec.volume);
    if (vol?.spec.revertRequested?.snapshot === name)
      throw invalidState(
        `volume "${vol.metadata.name}" is being reverted to snapshot "${name}"; delete it once that is done`,
      );
    if (snap.metadata.deletionTimestamp) return snap;
    return this.store.delete('Snapshot', name);
  }

  /**
   * Asks for a revert of a detached volume to one of its snapshots. The controllers attach it with the
   * frontend off on a node holding a replica, revert, detach again and clear the request; the Revert
   * condition says how it went. Tickets added meanwhile wait until it is done.
   */
  async revertSnapshot(volume: string, snapshot: string): Promise<Volume> {
    const vol = await this.volume(volume);
    if (vol.metadata.deletionTimestamp) throw invalidState(`volume "${volume}" is being deleted`);
    const snap = await this.store.get('Snapshot', snapshot);
    if (!snap || snap.spec.volume !== volume) throw notFound('snapshot', snapshot);
    if (snap.metadata.deletionTimestamp || snap.status.markRemoved)
      throw invalidState(`snapshot "${snapshot}" is removed; it cannot be reverted to`);
    if (!snap.status.creationTime)
      throw invalidState(`snapshot "${snapshot}" has not been taken yet (attach volume "${volume}" first)`);
    const pending = vol.spec.revertRequested;
    if (pending?.snapshot === snapshot) return vol;
    if (pending)
      throw invalidState(`volume "${volume}" is already being reverted to snapshot "${pending.snapshot}"; wait for it`);
    if (vol.status.state === 'attached' || vol.status.state === 'attaching' || vol.spec.nodeID)
      throw invalidState(`volume "${volume}" is attached; detach it before reverting`);
    if (!isDetached(vol)) throw invalidState(`volume "${volume}" is ${vol.status.state}; wait until it is detached`);
    const va = await this.store.get('VolumeAttachment', volume);
    const ticket = Object.values(va?.spec.attachmentTickets ?? {})[0];
    if (ticket)
      throw invalidState(`volume "${volume}" has an attach request for ${ticket.nodeID}; detach it before reverting`);
    const replicas = await this.replicasOf(volume);
    if (!replicas.some(isHealthyReplica))
      throw invalidState(`volume "${volume}" has no healthy replica to revert (salvage it first)`);
    return this.retryOnConflict(async () => {
      const cur = await this.volume(volume);
      if (cur.spec.nodeID) throw invalidState(`volume "${volume}" is attached; detach it before reverting`);
      cur.spec.revertRequested = { snapshot, requestedAt: nowIso() };
      return this.store.update('Volume', cur);
    });
  }

  /**
   * Asks the engine of an attached volume to purge: snapshots marked removed go and system snapshots
   * are coalesced. The Purge condition says how it went.
   */
  async purgeSnapshots(volume: string): Promise<Volume> {
    return this.retryOnConflict(async () => {
      const vol = await this.activeVolume(volume, 'purge snapshots');
      if (vol.status.state !== 'attached')
        throw invalidState(
          `volume "${volume}" is ${vol.status.state}; attach it to purge snapshots (the purge runs on its engine)`,
        );
      if (vol.spec.purgeRequestedAt) return vol;
      vol.spec.purgeRequestedAt = nowIso();
      return this.store.update('Volume', vol);
    });
  }

  /** Removes one replica; the volume controller replaces it. The last healthy copy is never removed. */
  async removeReplica(name: string): Promise<Replica> {
    const r = await this.store.get('Replica', name);
    if (!r) throw notFound('replica', name);
    if (r.metadata.deletionTimestamp) return r;
    const vol = await this.store.get('Volume', r.spec.volumeName);
    if (vol?.spec.revertRequested)
      throw invalidState(`volume "${vol.metadata.name}" is being reverted; remove replicas once that is done`);
    const others = (await this.replicasOf(r.spec.volumeName)).filter(
      (x) => x.metadata.name !== name && isHealthyReplica(x),
    );
    if (isHealthyReplica(r) && others.length === 0 && !vol?.metadata.deletionTimestamp)
      throw invalidState(
        `replica "${name}" is the last healthy replica of volume "${r.spec.volumeName}"; removing it would lose the data (add replicas and wait until one is healthy)`,
      );
    return this.store.delete('Replica', name);
  }

  async updateNode(name: string, patch: UpdateNodeInput): Promise<Node> {
    const nextTags = patch.tags ? check(tags, patch.tags, 'tags') : undefined;
    return this.retryOnConflict(async () => {
      const n = await this.node(name);
      const before = JSON.stringify(n.spec);
      if (patch.allowScheduling !== undefined && patch.allowScheduling !== null)
        n.spec.allowScheduling = patch.allowScheduling;
      if (patch.evictionRequested !== undefined && patch.evictionRequested !== null)
        n.spec.evictionRequested = patch.evictionRequested;
      if (nextTags) n.spec.tags = nextTags;
      if (JSON.stringify(n.spec) === before) return n;
      return this.store.update('Node', n);
    });
  }

  /** A disk is a directory on the node (an absolute path that exists); the node controller measures it. */
  async addDisk(nodeName: string, input: AddDiskInput): Promise<Node> {
    await this.node(nodeName);
    const nameCheck = resourceName.safeParse(input.name);
    if (!nameCheck.success) throw invalid('name', nameCheck.error.issues[0]!.message);
    if (!input.path || !isAbsolute(input.path)) throw invalid('path', `"${input.path}" is not an absolute path`);
    const st = await stat(input.path).catch(() => undefined);
    if (!st) throw invalid('path', `${input.path} does not exist on this machine`);
    if (!st.isDirectory()) throw invalid('path', `${input.path} is not a directory`);
    const spec: DiskSpec = check(
      diskSpec,
      {
        path: input.path,
        allowScheduling: input.allowScheduling ?? undefined,
        storageReserved: input.storageReserved ?? undefined,
        tags: input.tags ? check(tags, input.tags, 'tags') : undefined,
      },
      '',
    );
    return this.retryOnConflict(async () => {
      const n = await this.node(nodeName);
      if (n.spec.disks[input.name]) throw conflict(`node "${nodeName}" already has a disk "${input.name}"`);
      const same = Object.entries(n.spec.disks).find(([, d]) => d.path === input.path);
      if (same) throw conflict(`disk "${same[0]}" of node "${nodeName}" already uses ${input.path}`);
      n.spec.disks[input.name] = spec;
      return this.store.update('Node', n);
    });
  }

  async updateDisk(nodeName: string, disk: string, patch: UpdateDiskInput): Promise<Node> {
    const nextTags = patch.tags ? check(tags, patch.tags, 'tags') : undefined;
    if (patch.storageReserved !== undefined && patch.storageReserved !== null)
      check(diskSpec.shape.storageReserved, patch.storageReserved, 'storageReserved');
    return this.retryOnConflict(async () => {
      const n = await this.node(nodeName);
      const d = n.spec.disks[disk];
      if (!d) throw notFound('disk', `${nodeName}/${disk}`);
      const before = JSON.stringify(d);
      if (patch.allowScheduling !== undefined && patch.allowScheduling !== null)
        d.allowScheduling = patch.allowScheduling;
      if (patch.evictionRequested !== undefined && patch.evictionRequested !== null)
        d.evictionRequested = patch.evictionRequested;
      if (patch.storageReserved !== undefined && patch.storageReserved !== null)
        d.storageReserved = patch.storageReserved;
      if (nextTags) d.tags = nextTags;
      if (JSON.stringify(d) === before) return n;
      return this.store.update('Node', n);
    });
  }

  /** Refused while replicas live on the disk: request eviction, wait until they have moved, then remove. */
  async removeDisk(nodeName: string, disk: string): Promise<Node> {
    return this.retryOnConflict(async () => {
      const n = await this.node(nodeName);
      const d = n.spec.disks[disk];
      if (!d) throw notFound('disk', `${nodeName}/${disk}`);
      const uuid = n.status.diskStatus[disk]?.diskUUID ?? '';
      const on = (await this.store.list('Replica')).items.filter(
        (r) => r.spec.nodeID === nodeName && ((uuid && r.spec.diskID === uuid) || r.spec.diskPath === d.path),
      );
      if (on.length > 0) {
        const volumes = [...new Set(on.map((r) => r.spec.volumeName))].sort();
        const evicting = on.filter((r) => r.spec.evictionRequested).length;
        throw invalidState(
          `disk "${disk}" of node "${nodeName}" holds ${on.length} replica(s) of ${volumes.length} volume(s) (${volumes.slice(0, 5).join(', ')}${volumes.length > 5 ? ', …' : ''}); ` +
            (d.evictionRequested
              ? `eviction is under way (${evicting} of ${on.length} flagged); remove the disk once they have moved`
              : 'set evictionRequested on it (updateDisk), wait until they have moved, then remove it'),
        );
      }
      delete n.spec.disks[disk];
      return this.store.update('Node', n);
    });
  }

  async updateSetting(name: string, value: string) {
    if (!isSettingName(name)) throw notFound('setting', name);
    const problem = settingValueProblem(name, value);
    if (problem) throw invalid('value', problem);
    return this.retryOnConflict(async () => {
      const s = await this.store.get('Setting', name);
      if (!s) throw notFound('setting', name);
      s.spec.value = value;
      return this.store.update('Setting', s);
    });
  }

  private async retryOnConflict<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof ZodError) throw fromZod(err);
        if (!isStoreError(err, 'Conflict') || attempt >= 5) throw err;
      }
    }
  }
}

/** Creates every defined setting that is missing, with its default. */
export async function ensureDefaultSettings(store: Store): Promise<void> {
  for (const [name, def] of Object.entries(SETTING_DEFINITIONS)) {
    if (await store.get('Setting', name)) continue;
    await store.create('Setting', { metadata: { name }, spec: { value: def.default } }).catch((err: unknown) => {
      if (!isStoreError(err, 'AlreadyExists')) throw err;
    });
  }
}
