// The embedded Store: one SQLite file (better-sqlite3, WAL) holding every resource, plus a bounded change
// log written in the same transaction as each change, so a watch can resume from any version still in
// the log. Semantics are those documented in store.ts.
//
// One process owns the file: watches see the writes made through this SqliteStore, not those of another
// connection (the counter itself stays correct across connections, as it is read inside each write).
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import Database from 'better-sqlite3';
import { ZodError } from 'zod';
import { type AnyResource, KINDS, type Kind, type KindMap, parseResource } from '../model/kinds.js';
import { API_VERSION, nowIso } from '../model/meta.js';
import { StoreError } from './errors.js';
import type { CreateInput, ListResult, Store, Watch, WatchEventType, WatchOptions } from './store.js';

export interface SqliteStoreOptions {
  /** Changes kept for watches to resume from; a watch from before the oldest fails with Expired. */
  changeLogSize?: number;
  /** FULL (default): a resolved write survives power loss. NORMAL: it survives a crash of this process only. */
  synchronous?: 'FULL' | 'NORMAL';
  /** How long a write waits for another connection's lock before failing (SQLITE_BUSY). */
  busyTimeoutMs?: number;
}

export const DEFAULT_CHANGE_LOG_SIZE = 10_000;

/** One committed change, as the log stores it. */
interface Change {
  resourceVersion: number;
  kind: Kind;
  type: WatchEventType;
  json: string;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    resource_version INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (kind, name)
  ) WITHOUT ROWID;
  -- Who names whom in metadata.ownerReferences, so removing an owner finds its dependents without a scan.
  CREATE TABLE IF NOT EXISTS owner_refs (
    owner_uid TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (owner_uid, kind, name)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS changes (
    resource_version INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    json TEXT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS changes_by_kind ON changes (kind, resource_version);
  -- resourceVersion: the last version handed out. compactedThrough: the newest version pruned from the log.
  CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  INSERT OR IGNORE INTO counters (name, value) VALUES ('resourceVersion', 0), ('compactedThrough', 0);
`;

function prepareStatements(db: Database.Database) {
  return {
    get: db.prepare<[string, string], { json: string }>('SELECT json FROM resources WHERE kind = ? AND name = ?'),
    list: db.prepare<[string], { json: string }>('SELECT json FROM resources WHERE kind = ? ORDER BY name'),
    upsert: db.prepare<[string, string, string, number, string]>(
      'INSERT OR REPLACE INTO resources (kind, name, uid, resource_version, json) VALUES (?, ?, ?, ?, ?)',
    ),
    remove: db.prepare<[string, string]>('DELETE FROM resources WHERE kind = ? AND name = ?'),
    dependents: db.prepare<[string], { kind: Kind; name: string }>(
      'SELECT kind, name FROM owner_refs WHERE owner_uid = ?',
    ),
    clearOwners: db.prepare<[string, string]>('DELETE FROM owner_refs WHERE kind = ? AND name = ?'),
    addOwner: db.prepare<[string, string, string]>(
      'INSERT OR IGNORE INTO owner_refs (owner_uid, kind, name) VALUES (?, ?, ?)',
    ),
    logChange: db.prepare<[number, string, string, string, string]>(
      'INSERT INTO changes (resource_version, kind, name, type, json) VALUES (?, ?, ?, ?, ?)',
    ),
    changesAfter: db.prepare<[string, number], { resourceVersion: number; type: WatchEventType; json: string }>(
      'SELECT resource_version AS resourceVersion, type, json FROM changes WHERE kind = ? AND resource_version > ? ORDER BY resource_version',
    ),
    prune: db.prepare<[number]>('DELETE FROM changes WHERE resource_version <= ?'),
    counter: db.prepare<[string], { value: number }>('SELECT value FROM counters WHERE name = ?'),
    setCounter: db.prepare<[number, string]>('UPDATE counters SET value = ? WHERE name = ?'),
  };
}

export function openSqliteStore(path: string, opts: SqliteStoreOptions = {}): SqliteStore {
  return new SqliteStore(path, opts);
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly changeLogSize: number;
  private readonly watches = new Set<SqliteWatch>();
  private closed = false;
  private readonly sql: ReturnType<typeof prepareStatements>;

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.changeLogSize = opts.changeLogSize ?? DEFAULT_CHANGE_LOG_SIZE;
    if (!Number.isInteger(this.changeLogSize) || this.changeLogSize < 0) {
      throw new RangeError(`changeLogSize must be a whole number >= 0, got ${this.changeLogSize}`);
    }
    this.db = new Database(path, { timeout: opts.busyTimeoutMs ?? 5000 });
    try {
      const mode = this.db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`${path}: SQLite refused WAL mode (journal_mode is ${String(mode)})`);
      // Per connection, so set on every open. FULL syncs the WAL on each commit.
      this.db.pragma(`synchronous = ${opts.synchronous ?? 'FULL'}`);
      this.db.exec(SCHEMA);
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.sql = prepareStatements(this.db);
  }

  async get<K extends Kind>(kind: K, name: string): Promise<KindMap[K] | undefined> {
    this.assertOpen();
    return this.load(kind, name) as KindMap[K] | undefined;
  }

  async list<K extends Kind>(kind: K, opts: { labelSelector?: Record<string, string> } = {}): Promise<ListResult<K>> {
    this.assertOpen();
    const selector = Object.entries(opts.labelSelector ?? {});
    // A read transaction, so the items and the version they reflect come from one snapshot.
    return this.db.transaction(() => {
      const items = this.sql.list
        .all(kind)
        .map((row) => JSON.parse(row.json) as KindMap[K])
        .filter((obj) => selector.every(([key, value]) => obj.metadata.labels[key] === value));
      return { items, resourceVersion: String(this.readCounter('resourceVersion')) };
    })();
  }

  watch<K extends Kind>(kind: K, opts: WatchOptions<K>): Watch {
    this.assertOpen();
    const watch = new SqliteWatch(kind, opts as WatchOptions<Kind>, (w) => this.watches.delete(w));
    const from = opts.resourceVersion || undefined; // '' = omitted: from now on
    if (from !== undefined && !/^\d+$/.test(from)) {
      watch.end(new StoreError('Invalid', `watch ${kind}: resourceVersion "${from}" is not a version`));
      return watch;
    }
    // One read transaction: the replay and the version live events start after come from one snapshot.
    const start = this.db.transaction((): { after: number; replay: Change[] } | StoreError => {
      if (from === undefined) return { after: this.readCounter('resourceVersion'), replay: [] };
      const compacted = this.readCounter('compactedThrough');
      if (Number(from) < compacted) {
        return new StoreError('Expired', `watch ${kind} from ${from}: changes up to ${compacted} are no longer kept`);
      }
      const replay = this.sql.changesAfter.all(kind, Number(from)).map((row) => ({ ...row, kind }));
      return { after: Number(from), replay };
    })();
    if (start instanceof StoreError) {
      watch.end(start);
    } else {
      watch.push(start.replay, start.after);
      this.watches.add(watch);
    }
    return watch;
  }

  async create<K extends Kind>(kind: K, input: CreateInput<K>): Promise<KindMap[K]> {
    this.assertOpen();
    return this.write((changes) => {
      const obj = validate(kind, {
        ...input,
        apiVersion: API_VERSION,
        kind,
        metadata: {
          ...input.metadata,
          uid: randomUUID(),
          resourceVersion: '',
          generation: 1,
          creationTimestamp: nowIso(),
          deletionTimestamp: undefined,
        },
      });
      if (this.load(kind, obj.metadata.name)) {
        throw new StoreError('AlreadyExists', `${kind} "${obj.metadata.name}" already exists`);
      }
      return this.put(kind, obj, 'ADDED', changes);
    }) as KindMap[K];
  }

  async update<K extends Kind>(kind: K, obj: KindMap[K]): Promise<KindMap[K]> {
    this.assertOpen();
    return this.write((changes) => {
      const cur = this.loadForWrite(kind, obj);
      const { labels, annotations, finalizers, ownerReferences } = obj.metadata;
      const next = validate(kind, {
        ...cur,
        metadata: { ...cur.metadata, labels, annotations, finalizers, ownerReferences },
        spec: obj.spec,
      });
      if (cur.metadata.deletionTimestamp) {
        const added = next.metadata.finalizers.filter((f) => !cur.metadata.finalizers.includes(f));
        if (added.length > 0) {
          throw new StoreError(
            'Invalid',
            `${kind} "${cur.metadata.name}" is being deleted: metadata.finalizers: cannot add ${added.join(', ')}`,
          );
        }
      }
      if (isDeepStrictEqual(next, cur)) return cur; // Nothing changed: no new version, no event (as Kubernetes).
      if (!isDeepStrictEqual(next.spec, cur.spec)) next.metadata.generation = cur.metadata.generation + 1;
      if (next.metadata.deletionTimestamp && next.metadata.finalizers.length === 0) {
        return this.removeNow(kind, next, changes);
      }
      return this.put(kind, next, 'MODIFIED', changes);
    }) as KindMap[K];
  }

  async updateStatus<K extends Kind>(kind: K, obj: KindMap[K]): Promise<KindMap[K]> {
    this.assertOpen();
    return this.write((changes) => {
      const cur = this.loadForWrite(kind, obj);
      const next = validate(kind, { ...cur, status: obj.status });
      if (isDeepStrictEqual(next, cur)) return cur;
      return this.put(kind, next, 'MODIFIED', changes);
    }) as KindMap[K];
  }

  async delete<K extends Kind>(kind: K, name: string, opts: { resourceVersion?: string } = {}): Promise<KindMap[K]> {
    this.assertOpen();
    return this.write((changes) => {
      const cur = this.load(kind, name);
      if (!cur) throw new StoreError('NotFound', `${kind} "${name}" not found`);
      if (opts.resourceVersion && opts.resourceVersion !== cur.metadata.resourceVersion) {
        throw conflict(kind, name, opts.resourceVersion, cur.metadata.resourceVersion);
      }
      return this.deleteObject(kind, cur, changes);
    }) as KindMap[K];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const watch of [...this.watches]) watch.end(new Error('store closed'), true);
    this.db.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('SqliteStore is closed');
  }

  private readCounter(name: 'resourceVersion' | 'compactedThrough'): number {
    return this.sql.counter.get(name)!.value;
  }

  /** Parsed from JSON, so every caller gets its own copy. */
  private load(kind: Kind, name: string): AnyResource | undefined {
    const row = this.sql.get.get(kind, name);
    return row ? (JSON.parse(row.json) as AnyResource) : undefined;
  }

  /** The stored object an update/updateStatus applies to, after the optimistic-concurrency checks. */
  private loadForWrite(kind: Kind, obj: AnyResource): AnyResource {
    const name = obj?.metadata?.name;
    if (typeof name !== 'string') throw new StoreError('Invalid', `${kind}: metadata.name: required`);
    const cur = this.load(kind, name);
    if (!cur) throw new StoreError('NotFound', `${kind} "${name}" not found`);
    const { resourceVersion, uid } = obj.metadata;
    if (resourceVersion && resourceVersion !== cur.metadata.resourceVersion) {
      throw conflict(kind, name, resourceVersion, cur.metadata.resourceVersion);
    }
    // Same name, other uid: the object was deleted and created again since the caller read it.
    if (uid && uid !== cur.metadata.uid) {
      throw new StoreError('Conflict', `${kind} "${name}": uid ${uid} is gone (now ${cur.metadata.uid})`);
    }
    return cur;
  }

  /**
   * Runs one write as an IMMEDIATE transaction (takes the write lock up front, so two connections never
   * deadlock upgrading a read lock) and hands its changes to the watches only once it has committed.
   */
  private write(fn: (changes: Change[]) => AnyResource): AnyResource {
    const changes: Change[] = [];
    const result = this.db
      .transaction(() => {
        const obj = fn(changes);
        this.pruneLog();
        return obj;
      })
      .immediate();
    for (const watch of this.watches) watch.push(changes.filter((c) => c.kind === watch.kind));
    return result;
  }

  private nextVersion(): number {
    const next = this.readCounter('resourceVersion') + 1;
    this.sql.setCounter.run(next, 'resourceVersion');
    return next;
  }

  /** Gives the object the next version and logs the change; returns what is stored, as JSON. */
  private logChange(kind: Kind, obj: AnyResource, type: WatchEventType, changes: Change[]): string {
    const resourceVersion = this.nextVersion();
    obj.metadata.resourceVersion = String(resourceVersion);
    const json = JSON.stringify(obj);
    this.sql.logChange.run(resourceVersion, kind, obj.metadata.name, type, json);
    changes.push({ resourceVersion, kind, type, json });
    return json;
  }

  private put(kind: Kind, obj: AnyResource, type: 'ADDED' | 'MODIFIED', changes: Change[]): AnyResource {
    const json = this.logChange(kind, obj, type, changes);
    const { name, uid, resourceVersion, ownerReferences } = obj.metadata;
    this.sql.upsert.run(kind, name, uid, Number(resourceVersion), json);
    this.sql.clearOwners.run(kind, name);
    for (const ref of ownerReferences) this.sql.addOwner.run(ref.uid, kind, name);
    return JSON.parse(json) as AnyResource;
  }

  /** delete's rule: finalizers left → mark (once) and keep; none → remove. */
  private deleteObject(kind: Kind, obj: AnyResource, changes: Change[]): AnyResource {
    if (obj.metadata.finalizers.length === 0) return this.removeNow(kind, obj, changes);
    if (obj.metadata.deletionTimestamp) return obj;
    obj.metadata.deletionTimestamp = nowIso();
    return this.put(kind, obj, 'MODIFIED', changes);
  }

  /**
   * Removes the object, then deletes its dependents (which may in turn keep theirs while they have
   * finalizers). The DELETED event carries the removal's own version, so a watch resuming from it
   * neither replays nor misses anything.
   */
  private removeNow(kind: Kind, obj: AnyResource, changes: Change[]): AnyResource {
    const json = this.logChange(kind, obj, 'DELETED', changes);
    this.sql.remove.run(kind, obj.metadata.name);
    this.sql.clearOwners.run(kind, obj.metadata.name);
    for (const dep of this.sql.dependents.all(obj.metadata.uid)) {
      const dependent = this.load(dep.kind, dep.name);
      if (dependent) this.deleteObject(dep.kind, dependent, changes);
    }
    return JSON.parse(json) as AnyResource;
  }

  private pruneLog(): void {
    const cutoff = this.readCounter('resourceVersion') - this.changeLogSize;
    if (cutoff <= this.readCounter('compactedThrough')) return;
    this.sql.prune.run(cutoff);
    this.sql.setCounter.run(cutoff, 'compactedThrough');
  }
}

/** Delivers one watch's events in version order, always from a microtask, never inside the writer's call. */
class SqliteWatch implements Watch {
  private queue: Change[] = [];
  private after = 0;
  private scheduled = false;
  private done = false;
  private endError: Error | undefined;
  /** The end is expected (the store closed): not worth an uncaught error when nobody listens for it. */
  private quietEnd = false;

  constructor(
    readonly kind: Kind,
    private readonly opts: WatchOptions<Kind>,
    private readonly detach: (watch: SqliteWatch) => void,
  ) {}

  /** Queues changes newer than the last one queued; `after` sets that mark (the watch's start). */
  push(changes: Change[], after?: number): void {
    if (after !== undefined) this.after = after;
    for (const change of changes) {
      if (change.resourceVersion <= this.after) continue;
      this.queue.push(change);
      this.after = change.resourceVersion;
    }
    this.schedule();
  }

  /** Ends the watch for a reason other than stop(): what is queued is delivered first, then onError. */
  end(err: Error, quiet = false): void {
    if (this.endError) return;
    this.endError = err;
    this.quietEnd = quiet;
    this.detach(this);
    this.schedule();
  }

  stop(): void {
    this.done = true;
    this.queue = [];
    this.detach(this);
  }

  private schedule(): void {
    if (this.scheduled || this.done || (this.queue.length === 0 && !this.endError)) return;
    this.scheduled = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    try {
      while (!this.done && this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        for (const change of batch) {
          if (this.done) return;
          this.opts.onEvent({ type: change.type, object: JSON.parse(change.json) as AnyResource });
        }
      }
    } catch (err) {
      // The handler threw: this watch cannot go on without losing that event, so end it loudly.
      this.stop();
      this.report(err instanceof Error ? err : new Error(String(err)));
      return;
    } finally {
      this.scheduled = false;
    }
    if (!this.done && this.endError) {
      this.done = true;
      if (this.opts.onError || !this.quietEnd) this.report(this.endError);
    }
  }

  /** To onError; without one, as an uncaught error: a watch must not end unnoticed. */
  private report(err: Error): void {
    if (this.opts.onError) this.opts.onError(err);
    else
      queueMicrotask(() => {
        throw err;
      });
  }
}

function conflict(kind: Kind, name: string, given: string, stored: string): StoreError {
  return new StoreError(
    'Conflict',
    `${kind} "${name}" was modified: resourceVersion ${given} is stale (now ${stored}); read it again`,
  );
}

/** parseResource with its ZodError turned into Invalid, naming each bad field. */
function validate<K extends Kind>(kind: K, input: object): AnyResource {
  if (!KINDS.includes(kind)) throw new StoreError('Invalid', `unknown kind "${String(kind)}"`);
  try {
    // Through JSON so the result compares equal to what the store reads back (no undefined-valued keys).
    return JSON.parse(JSON.stringify(parseResource(kind, input))) as AnyResource;
  } catch (err) {
    if (!(err instanceof ZodError)) throw err;
    const fields = err.issues.map((i) => `${i.path.map(String).join('.') || '(object)'}: ${i.message}`);
    const given = (input as { metadata?: { name?: unknown } }).metadata?.name;
    const name = typeof given === 'string' ? ` "${given}"` : '';
    throw new StoreError('Invalid', `${kind}${name} is invalid: ${fields.join('; ')}`, { cause: err });
  }
}
