// Events a person would want to read ("Attached", "Degraded", "Rebuilt" …), stored as Event resources.
// A repeat of the same reason on the same object bumps its count instead of adding a resource, and old
// events are pruned so a flapping replica cannot grow the store without bound.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { AnyResource } from '../model/kinds.js';
import { nowIso } from '../model/meta.js';
import { isStoreError } from '../store/errors.js';
import type { Store } from '../store/store.js';

export const MAX_EVENTS = 2000;

export class EventRecorder {
  private written = 0;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly source: string,
  ) {}

  normal(obj: AnyResource, reason: string, message: string): void {
    this.record(obj, 'Normal', reason, message);
  }

  warning(obj: AnyResource, reason: string, message: string): void {
    this.record(obj, 'Warning', reason, message);
  }

  /** Fire and forget: an event that cannot be written must never fail a reconcile. */
  private record(obj: AnyResource, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.log.info({ kind: obj.kind, name: obj.metadata.name, reason, type }, message);
    this.write(obj, type, reason, message).catch((err: unknown) =>
      this.log.warn({ err, reason }, 'could not record an event'),
    );
  }

  private async write(obj: AnyResource, type: 'Normal' | 'Warning', reason: string, message: string) {
    const key = `${obj.kind}/${obj.metadata.name}/${reason}/${message}`;
    const name = `${obj.kind.toLowerCase()}-${obj.metadata.name}`.slice(0, 40).replace(/-+$/, '');
    const eventName = `${name}-${createHash('sha1').update(key).digest('hex').slice(0, 12)}`;
    const now = nowIso();
    for (let attempt = 0; attempt < 3; attempt++) {
      const old = await this.store.get('Event', eventName);
      try {
        if (old) {
          old.spec.count += 1;
          old.spec.lastTimestamp = now;
          await this.store.update('Event', old);
        } else {
          await this.store.create('Event', {
            metadata: {
              name: eventName,
              labels: { 'shorthorn.io/kind': obj.kind, 'shorthorn.io/name': obj.metadata.name },
            },
            spec: {
              type,
              reason,
              message,
              involvedObject: { kind: obj.kind, name: obj.metadata.name },
              source: this.source,
              firstTimestamp: now,
              lastTimestamp: now,
              count: 1,
            },
          });
          if (++this.written % 100 === 0) await this.prune();
        }
        return;
      } catch (err) {
        if (!isStoreError(err, 'Conflict') && !isStoreError(err, 'AlreadyExists')) throw err;
      }
    }
  }

  private async prune(): Promise<void> {
    const { items } = await this.store.list('Event');
    if (items.length <= MAX_EVENTS) return;
    items.sort((a, b) => a.spec.lastTimestamp.localeCompare(b.spec.lastTimestamp));
    for (const e of items.slice(0, items.length - MAX_EVENTS)) {
      await this.store.delete('Event', e.metadata.name).catch(() => {});
    }
  }
}
