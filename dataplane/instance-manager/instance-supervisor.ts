// The processes of one node: starts engine and replica processes, watches them, stops them, and after
// its own restart adopts those still running. The instance record (state-file.ts) is the single truth
// for each instance; every change is persisted and announced to watchers.
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { isAbsolute, join, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { InstanceError } from './instance-error.js';
import { logSize, printedReady, tailLog } from './instance-log.js';
import { adoptInstance, type InstanceProcess, type Launcher, spawnInstance } from './instance-process.js';
import { instanceArgs, instanceEndpoint, specProblems } from './instance-spec.js';
import type { InstanceCreateSpec, InstanceInfo } from './instance-types.js';
import { PortAllocator, type PortRange } from './port-allocator.js';
import { processAlive, processCommandLine } from './proc-info.js';
import { type InstanceRecord, StateFile } from './state-file.js';

export interface SupervisorOptions {
  dataDir: string;
  /** the address instances listen on and are reached at */
  host: string;
  portRange: PortRange;
  launcher: Launcher;
  logger: Logger;
  readyTimeoutMs?: number;
  stopGraceMs?: number;
}

interface Entry {
  record: InstanceRecord;
  proc?: InstanceProcess;
  /** why a start was given up (timeout), reported when the killed process is seen gone */
  failure?: string;
  starting?: Promise<void>;
  deleting?: Promise<InstanceInfo>;
}

const READY_POLL_MS = 200;
const ERROR_LOG_LINES = 20;

export class InstanceSupervisor {
  readonly ports: PortAllocator;
  private readonly entries = new Map<string, Entry>();
  private readonly events = new EventEmitter();
  private readonly stateFile: StateFile;
  private readonly logDir: string;
  private readonly readyTimeoutMs: number;
  private readonly stopGraceMs: number;
  private closing = false;

  constructor(private readonly opts: SupervisorOptions) {
    this.ports = new PortAllocator(opts.portRange, opts.host);
    this.stateFile = new StateFile(opts.dataDir);
    this.logDir = join(opts.dataDir, 'logs');
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
    this.stopGraceMs = opts.stopGraceMs ?? 10_000;
    // One listener per open watch stream; more than ten watchers is normal, not a leak.
    this.events.setMaxListeners(0);
    mkdirSync(this.logDir, { recursive: true });
    this.adoptFromStateFile();
  }

  list(): InstanceInfo[] {
    return [...this.entries.values()].map((e) => this.info(e));
  }

  get(name: string): InstanceInfo | undefined {
    const entry = this.entries.get(name);
    return entry && this.info(entry);
  }

  /** Call `fn` after every change; returns the unsubscribe function. */
  onChange(fn: () => void): () => void {
    this.events.on('change', fn);
    return () => this.events.off('change', fn);
  }

  logs(name: string, lines: number): string {
    if (!this.entries.has(name)) throw new InstanceError('not-found', `no instance ${name}`);
    return tailLog(this.logPath(name), lines);
  }

  /** Start an instance and resolve once it is RUNNING or ERROR (see instance.proto for idempotency). */
  async create(spec: InstanceCreateSpec): Promise<InstanceInfo> {
    const problems = specProblems(spec);
    if (problems.length > 0) throw new InstanceError('invalid', `invalid instance spec: ${problems.join('; ')}`);
    if (this.closing) throw new InstanceError('busy', 'the instance manager is shutting down');
    const existing = this.entries.get(spec.name);
    if (existing?.record.state === 'running') return this.info(existing);
    if (existing?.record.state === 'starting') {
      await existing.starting;
      return this.info(existing);
    }
    if (existing?.record.state === 'stopping')
      throw new InstanceError('busy', `instance ${spec.name} is being deleted; create it again once it is gone`);

    // A new name, or an ERROR/STOPPED instance (its process is gone) replaced by a new process, on the same
    // ports when they are still free so that its address does not change.
    const previousPort = existing?.record.port || undefined;
    if (previousPort !== undefined) this.ports.release(previousPort);
    const entry: Entry = {
      record: {
        name: spec.name,
        spec,
        state: 'starting',
        pid: 0,
        startTime: '',
        port: 0,
        endpoint: '',
        errorMsg: '',
        startedAt: new Date().toISOString(),
        logOffset: 0,
      },
    };
    this.entries.set(spec.name, entry);
    entry.starting = this.start(entry, previousPort);
    try {
      await entry.starting;
    } catch (err) {
      // Out of ports, or the spawn itself failed: leave nothing running or reserved behind.
      entry.proc?.signal('SIGKILL');
      if (entry.record.port) this.ports.release(entry.record.port);
      if (this.entries.get(spec.name) === entry) this.entries.delete(spec.name);
      this.changed();
      throw err;
    }
    return this.info(entry);
  }

  /** SIGTERM, SIGKILL after the grace period; resolves with the STOPPED instance, no longer listed. */
  async delete(name: string, opts: { cleanupDataDir?: boolean } = {}): Promise<InstanceInfo> {
    const entry = this.entries.get(name);
    if (!entry) throw new InstanceError('not-found', `no instance ${name}`);
    // Checked before stopping anything: a refused cleanup must not leave a half-done delete behind.
    const dir = opts.cleanupDataDir ? this.removableDataDir(entry.record.spec) : undefined;
    entry.deleting ??= this.stop(entry);
    const info = await entry.deleting;
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    return info;
  }

  /**
   * Removes a replica directory that no listed instance uses. It must look like one (a Longhorn
   * volume.meta inside, or empty) so that a wrong path can never wipe anything else.
   */
  removeReplicaDataDir(path: string): void {
    if (!isAbsolute(path)) throw new InstanceError('invalid', `data_dir must be an absolute path, got "${path}"`);
    const dir = this.removableDataDir({ type: 'replica', dataDir: path, name: '', volumeName: '', volumeSize: 0 });
    if (dir === undefined) return;
    const user = [...this.entries.values()].find(
      (e) => e.record.spec.dataDir && resolve(e.record.spec.dataDir) === dir,
    );
    if (user) throw new InstanceError('invalid', `${dir} is in use by instance ${user.record.name}`);
    if (!existsSync(dir)) return;
    const files = readdirSync(dir);
    if (files.length > 0 && !files.includes('volume.meta'))
      throw new InstanceError('invalid', `refusing to remove ${dir}: it is not a replica directory (no volume.meta)`);
    rmSync(dir, { recursive: true, force: true });
  }

  /** Clean shutdown of the node's instance manager: engines first (they flush to replicas), then replicas. */
  async stopAll(): Promise<void> {
    this.closing = true;
    for (const type of ['engine', 'replica']) {
      const names = [...this.entries.values()].filter((e) => e.record.spec.type === type).map((e) => e.record.name);
      await Promise.all(names.map((n) => this.delete(n).catch(() => {})));
    }
  }

  private logPath(name: string): string {
    return join(this.logDir, `${name}.log`);
  }

  private info(entry: Entry): InstanceInfo {
    const r = entry.record;
    return {
      name: r.name,
      type: r.spec.type,
      state: r.state,
      volumeName: r.spec.volumeName,
      pid: r.pid,
      port: r.port,
      endpoint: r.endpoint,
      errorMsg: r.errorMsg,
      startedAt: r.startedAt,
    };
  }

  private changed(): void {
    this.stateFile.write([...this.entries.values()].map((e) => e.record));
    this.events.emit('change');
  }

  private async start(entry: Entry, preferredPort: number | undefined): Promise<void> {
    const r = entry.record;
    let port: number;
    try {
      port = await this.ports.allocate(preferredPort);
    } catch (err) {
      throw new InstanceError('no-ports', (err as Error).message);
    }
    if (this.entries.get(r.name) !== entry || r.state !== 'starting') {
      // Deleted while the ports were probed.
      this.ports.release(port);
      return;
    }
    r.port = port;
    r.endpoint = instanceEndpoint(r.spec, this.opts.host, port);
    r.logOffset = logSize(this.logPath(r.name));
    // Persisted before the spawn: if we die right after it, the next instance manager still knows these
    // ports are taken and that something may be running on them.
    this.changed();
    const args = instanceArgs(r.spec, this.opts.host, port);
    this.opts.logger.info({ instance: r.name, args }, 'starting instance');
    const proc = spawnInstance(this.opts.launcher, args, this.logPath(r.name));
    entry.proc = proc;
    r.pid = proc.pid;
    r.startTime = proc.startTime;
    this.changed();
    this.watch(entry, proc);
    await this.untilReady(entry, proc);
  }

  /** Poll the log for the ready line until the instance is RUNNING, failed, deleted or timed out. */
  private async untilReady(entry: Entry, proc: InstanceProcess): Promise<void> {
    const r = entry.record;
    const deadline = Date.now() + this.readyTimeoutMs;
    while (r.state === 'starting' && entry.proc === proc) {
      if (proc.isGone()) {
        // watch() reports it: wait for that rather than racing it.
        await proc.exited;
        await new Promise((res) => setImmediate(res));
        continue;
      }
      if (printedReady(this.logPath(r.name), r.logOffset)) {
        r.state = 'running';
        this.opts.logger.info({ instance: r.name, pid: r.pid, endpoint: r.endpoint }, 'instance running');
        this.changed();
        return;
      }
      if (Date.now() > deadline) {
        entry.failure = `not ready after ${this.readyTimeoutMs / 1000} s, killed`;
        proc.signal('SIGKILL');
        await proc.exited;
        continue;
      }
      await new Promise((res) => setTimeout(res, READY_POLL_MS));
    }
  }

  /** When the process ends on its own (not deleted), the instance goes ERROR and stays listed. */
  private watch(entry: Entry, proc: InstanceProcess): void {
    void proc.exited.then((how) => {
      const r = entry.record;
      if (entry.proc !== proc || (r.state !== 'starting' && r.state !== 'running')) return;
      if (r.state === 'starting') {
        const tail = tailLog(this.logPath(r.name), ERROR_LOG_LINES);
        r.errorMsg = `${entry.failure ?? `${how} before it was ready`}; last log lines:\n${tail}`;
      } else {
        r.errorMsg = how;
      }
      r.state = 'error';
      this.opts.logger.warn({ instance: r.name, pid: r.pid, how }, 'instance failed');
      this.changed();
    });
  }

  private async stop(entry: Entry): Promise<InstanceInfo> {
    const r = entry.record;
    r.state = 'stopping';
    this.changed();
    const proc = entry.proc;
    if (proc && !proc.isGone()) {
      proc.signal('SIGTERM');
      const timer = setTimeout(() => proc.signal('SIGKILL'), this.stopGraceMs);
      await proc.exited;
      clearTimeout(timer);
    }
    r.state = 'stopped';
    // Watchers see it STOPPED once, then gone; its ports are free again only now that the process is.
    this.events.emit('change');
    if (this.entries.get(r.name) === entry) this.entries.delete(r.name);
    if (r.port) this.ports.release(r.port);
    this.changed();
    this.opts.logger.info({ instance: r.name, pid: r.pid }, 'instance stopped');
    return this.info(entry);
  }

  /**
   * The data dir a delete may remove: only a replica's own, as given at its creation (an engine has none:
   * nothing to clean), and never one that holds the instance manager's data dir (`/`, or a parent of it).
   */
  private removableDataDir(spec: InstanceCreateSpec): string | undefined {
    if (spec.type !== 'replica' || !spec.dataDir) return undefined;
    const dir = resolve(spec.dataDir);
    const own = resolve(this.opts.dataDir);
    if (dir === sep || own === dir || own.startsWith(dir + sep))
      throw new InstanceError('invalid', `refusing to remove ${dir}: it holds the instance manager's data dir`);
    return dir;
  }

  /** At start: adopt the processes the previous instance manager left running, report the others. */
  private adoptFromStateFile(): void {
    for (const r of this.stateFile.read()) {
      const entry: Entry = { record: r };
      this.entries.set(r.name, entry);
      if (r.port) this.ports.reserve(r.port);
      if (r.state === 'error') continue;
      if (r.pid && processAlive(r.pid, r.startTime) && this.isOurs(r)) {
        const proc = adoptInstance(r.pid, r.startTime);
        entry.proc = proc;
        this.watch(entry, proc);
        this.opts.logger.info({ instance: r.name, pid: r.pid, state: r.state }, 'adopted instance');
        if (r.state === 'starting') entry.starting = this.untilReady(entry, proc);
        else if (r.state === 'stopping' || r.state === 'stopped') {
          r.state = 'running';
          void this.delete(r.name).catch(() => {});
        }
      } else if (r.state === 'stopping' || r.state === 'stopped') {
        // It was being deleted and is gone: the delete is done.
        this.entries.delete(r.name);
        if (r.port) this.ports.release(r.port);
      } else {
        r.state = 'error';
        r.errorMsg = r.pid
          ? `process ${r.pid} exited while the instance manager was down`
          : 'the instance manager went down before it started the process';
      }
    }
    this.changed();
  }

  /** The PID still names the process we started: a shorthorn of that kind listening on that port. */
  private isOurs(r: InstanceRecord): boolean {
    const cmd = processCommandLine(r.pid);
    const at = cmd.indexOf('--listen');
    const listen = at < 0 ? '' : (cmd[at + 1] ?? '');
    return (
      cmd.some((a) => /(^|\/)shorthorn(\.js)?$/.test(a)) && cmd.includes(r.spec.type) && listen.endsWith(`:${r.port}`)
    );
  }
}
