// The control plane's actions on volumes, as the API (GraphQL, CLI, CSI) calls them: each checks its
// input, writes desired state, and returns at once; controllers do the work and report in status.
// Every expected failure is an ApiError a person can act on, and a refused action changes nothing.
import { randomUUID } from 'node:crypto';
import { ZodError } from 'zod';
import { objectMeta, resourceName } from '../model/meta.js';
import { SETTING_DEFINITIONS, settingValueProblem } from '../model/setting-definitions.js';
import type { Volume, VolumeSpec } from '../model/volume.js';
import { volumeSpec, volumeStatus } from '../model/volume.js';
import type { AttachmentTicketType } from '../model/volume-attachment.js';
import { isStoreError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { type ApiError, conflict, insufficientCapacity, invalid, invalidState, notFound } from './api-errors.js';
import { FINALIZER, VOLUME_LABEL } from './labels.js';
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

function fromZod(err: ZodError): ApiError {
  const issue = err.issues[0]!;
  return invalid(issue.path.join('.') || 'input', issue.message);
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
    });
    if (!parsed.success) throw fromZod(parsed.error);
    const spec = parsed.data;
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

  /** Adds a ticket; the volume-attachment controller sets the node, status.endpoint then holds the URI. */
  async attachVolume(
    name: string,
    nodeID: string,
    opts: { ticketID?: string; type?: AttachmentTicketType; disableFrontend?: boolean } = {},
  ): Promise<Volume> {
    const vol = await this.volume(name);
    if (vol.metadata.deletionTimestamp) throw invalidState(`volume "${name}" is being deleted`);
    if (!(await this.store.get('Node', nodeID))) throw notFound('node', nodeID);
    const id = opts.ticketID ?? `shorthorn-api-${nodeID}`;
    await this.retryOnConflict(async () => {
      const va = await this.store.get('VolumeAttachment', name);
      if (!va) throw invalidState(`volume "${name}" is still being created; try again in a moment`);
      const busy = Object.values(va.spec.attachmentTickets).find(
        (t) => t.nodeID !== nodeID && t.type === (opts.type ?? 'shorthorn-api'),
      );
      if (busy) throw invalidState(`volume "${name}" is attached to ${busy.nodeID}; detach it first`);
      va.spec.attachmentTickets[id] = {
        id,
        type: opts.type ?? 'shorthorn-api',
        nodeID,
        parameters: { disableFrontend: opts.disableFrontend ?? false },
        generation: 0,
      };
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
      for (const [id, t] of Object.entries(va.spec.attachmentTickets)) {
        const match =
          opts.force ||
          id === opts.ticketID ||
          (!opts.ticketID && (!opts.nodeID || t.nodeID === opts.nodeID) && t.type === 'shorthorn-api');
        if (match) delete va.spec.attachmentTickets[id];
      }
      await this.store.update('VolumeAttachment', va);
    });
    return this.volume(name);
  }

  async expandVolume(name: string, size: number): Promise<Volume> {
    return this.retryOnConflict(async () => {
      const vol = await this.volume(name);
      const check = volumeSpec.shape.size.safeParse(size);
      if (!check.success) throw invalid('size', check.error.issues[0]!.message);
      if (size < vol.spec.size)
        throw invalid('size', `shrinking is not supported (${size} < current ${vol.spec.size})`);
      // Online only: the engine grows every replica together (Longhorn's expansion snapshot).
      if (vol.status.state !== 'attached')
        throw invalidState(`volume "${name}" is ${vol.status.state}; attach it to expand it (expansion is online)`);
      vol.spec.size = size;
      return this.store.update('Volume', vol);
    });
  }

  async updateVolume(
    name: string,
    patch: { numberOfReplicas?: number; staleReplicaTimeout?: number },
  ): Promise<Volume> {
    return this.retryOnConflict(async () => {
      const vol = await this.volume(name);
      const parsed = volumeSpec.safeParse({ ...vol.spec, ...patch });
      if (!parsed.success) throw fromZod(parsed.error);
      vol.spec = parsed.data;
      return this.store.update('Volume', vol);
    });
  }

  async createSnapshot(volume: string, name?: string, labels: Record<string, string> = {}) {
    const vol = await this.volume(volume);
    if (vol.status.state !== 'attached')
      throw invalidState(`volume "${volume}" is ${vol.status.state}; attach it to take a snapshot`);
    const snapName = name ?? randomUUID();
    const check = resourceName.safeParse(snapName);
    if (!check.success) throw invalid('name', check.error.issues[0]!.message);
    try {
      return await this.store.create('Snapshot', {
        metadata: { name: snapName, finalizers: [FINALIZER], labels: { [VOLUME_LABEL]: volume } },
        spec: { volume, createSnapshot: true, labels },
      });
    } catch (err) {
      if (isStoreError(err, 'AlreadyExists')) throw conflict(`snapshot "${snapName}" already exists`);
      throw err;
    }
  }

  async deleteSnapshot(name: string) {
    if (!(await this.store.get('Snapshot', name))) throw notFound('snapshot', name);
    return this.store.delete('Snapshot', name);
  }

  async updateSetting(name: string, value: string) {
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
