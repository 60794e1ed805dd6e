// ReplicaService (dataplane/proto/replica.proto): the control port of one replica process. The
// replica stays closed until an engine opens it (Longhorn semantics); opening an open replica just
// reports it, so an engine that restarts takes over the same replica process.
import { type handleUnaryCall, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { statusError } from '../grpc/status-error.js';
import type {
  DiskInfo as DiskInfoMessage,
  Replica as ReplicaMessage,
  ReplicaServiceServer,
} from '../proto/gen/replica.js';
import { Replica, type ReplicaInfo } from './store/replica.js';

/** A control request that failed, with the gRPC status it maps to. */
export class ReplicaControlError extends Error {
  constructor(
    message: string,
    readonly code: status,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface ReplicaControlOptions {
  dir: string;
  logger: Logger;
}

/**
 * Owns the one replica of this process: which Replica object is open (the data port asks it) and the
 * create/open/close transitions, run one at a time.
 */
export class ReplicaControl {
  readonly dir: string;
  /** Reported in every Replica message; set once the data port listens. */
  dataPort = 0;
  private current: Replica | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly logger: Logger;

  constructor(opts: ReplicaControlOptions) {
    this.dir = opts.dir;
    this.logger = opts.logger;
  }

  /** The open replica, or null while closed. */
  get replica(): Replica | null {
    return this.current;
  }

  get(): ReplicaMessage {
    let info: ReplicaInfo;
    try {
      info = this.current !== null ? this.current.info() : Replica.describe(this.dir);
    } catch (err) {
      throw new ReplicaControlError(`cannot read the replica in ${this.dir}: ${messageOf(err)}`, status.INTERNAL, {
        cause: err,
      });
    }
    return toMessage(info, this.dataPort, this.dir);
  }

  create(size: number): Promise<ReplicaMessage> {
    return this.exclusive(() => {
      checkSize(size);
      const state = this.current !== null ? 'open' : Replica.describe(this.dir).state;
      if (state !== 'initial') {
        throw new ReplicaControlError(
          `a replica already exists in ${this.dir} (state ${state})`,
          status.ALREADY_EXISTS,
        );
      }
      try {
        Replica.create(this.dir, size);
      } catch (err) {
        throw new ReplicaControlError(`cannot create a replica in ${this.dir}: ${messageOf(err)}`, status.INTERNAL, {
          cause: err,
        });
      }
      this.logger.info({ dir: this.dir, size }, 'replica created');
      return this.get();
    });
  }

  open(): Promise<ReplicaMessage> {
    return this.exclusive(() => {
      if (this.current !== null) return this.get();
      const info = Replica.describe(this.dir);
      if (info.state === 'initial') {
        throw new ReplicaControlError(
          `there is no replica in ${this.dir}; call ReplicaCreate first`,
          status.FAILED_PRECONDITION,
        );
      }
      if (info.state === 'error') {
        throw new ReplicaControlError(
          `the replica in ${this.dir} is in error: ${info.error}`,
          status.FAILED_PRECONDITION,
        );
      }
      try {
        this.current = Replica.open(this.dir);
      } catch (err) {
        throw new ReplicaControlError(`cannot open the replica in ${this.dir}: ${messageOf(err)}`, status.INTERNAL, {
          cause: err,
        });
      }
      this.logger.info({ dir: this.dir, revisionCounter: this.current.revisionCounter }, 'replica opened');
      return this.get();
    });
  }

  /** Persists the revision counter, marks the meta clean, closes the layers. A closed replica is left as is. */
  close(): Promise<ReplicaMessage> {
    return this.exclusive(async () => {
      const r = this.current;
      if (r === null) return this.get();
      // From here on the data port answers "not open"; the object is not used again even if close fails.
      this.current = null;
      try {
        await r.close();
      } catch (err) {
        throw new ReplicaControlError(`cannot close the replica in ${this.dir}: ${messageOf(err)}`, status.INTERNAL, {
          cause: err,
        });
      }
      this.logger.info({ dir: this.dir, revisionCounter: r.revisionCounter }, 'replica closed');
      return this.get();
    });
  }

  private exclusive<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.then(
      () => {},
      () => {},
    );
    return run;
  }
}

/** The gRPC handlers of ReplicaService over a ReplicaControl. */
export function createReplicaService(control: ReplicaControl, logger: Logger): ReplicaServiceServer {
  const handle =
    <Req, Res>(name: string, fn: (req: Req) => Res | Promise<Res>): handleUnaryCall<Req, Res> =>
    (call, callback) => {
      Promise.resolve()
        .then(() => fn(call.request))
        .then(
          (res) => callback(null, res),
          (err: unknown) => {
            const code = err instanceof ReplicaControlError ? err.code : status.INTERNAL;
            if (code === status.INTERNAL) logger.error({ err, rpc: name }, 'replica control request failed');
            callback(statusError(code, messageOf(err)), null);
          },
        );
    };
  return {
    replicaCreate: handle('ReplicaCreate', (req) => control.create(req.size)),
    replicaOpen: handle('ReplicaOpen', () => control.open()),
    replicaClose: handle('ReplicaClose', () => control.close()),
    replicaGet: handle('ReplicaGet', () => control.get()),
  };
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
    throw new ReplicaControlError(
      `replica size must be a positive multiple of 4096 bytes, got ${size}`,
      status.INVALID_ARGUMENT,
    );
  }
}

function toMessage(info: ReplicaInfo, dataPort: number, dir: string): ReplicaMessage {
  const disks: Record<string, DiskInfoMessage> = {};
  for (const [name, d] of Object.entries(info.disks)) {
    disks[name] = {
      name: d.name,
      parent: d.parent,
      children: [...d.children],
      removed: d.removed,
      userCreated: d.userCreated,
      created: d.created,
      size: d.size,
      labels: { ...d.labels },
    };
  }
  return {
    state: info.state,
    dirty: info.dirty,
    rebuilding: info.rebuilding,
    head: info.head,
    parent: info.parent,
    size: info.size,
    sectorSize: info.sectorSize,
    chain: [...info.chain],
    disks,
    revisionCounter: info.revisionCounter,
    headFileSize: info.headFileSize,
    error: info.error,
    dataPort,
    dir,
  };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
