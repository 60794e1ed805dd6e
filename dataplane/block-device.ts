// What a frontend (NBD today) needs from a volume. The engine implements it; the NBD server only
// speaks to this interface, so it can be tested and benchmarked on its own.

/** NBD base:allocation flags, shared with the replica data protocol's BlockStatus answer. */
export const EXTENT_HOLE = 1;
export const EXTENT_ZERO = 2;

export interface Extent {
  length: number;
  /** EXTENT_HOLE | EXTENT_ZERO bits; 0 = allocated data. */
  flags: number;
}

/** An I/O failure a frontend should report with a specific errno (EIO unless said otherwise). */
export class BlockDeviceError extends Error {
  constructor(
    message: string,
    readonly errno: 'EIO' | 'EINVAL' | 'ENOSPC' | 'EPERM' | 'ENOTSUP' | 'ESHUTDOWN' | 'EOVERFLOW' = 'EIO',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * How readView reports: an error, or the bytes as a view that is valid only until the callback
 * returns (the device may reuse the memory right after). Called exactly once, possibly before
 * readView returns (an error found at once).
 */
export type DeviceReadCallback = (err: Error | null, view: Buffer | null) => void;

export interface BlockDevice {
  /** Current size in bytes; frontends read it at every handshake, so a grown volume shows on reconnect. */
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * read() for a frontend's hot path, without a promise or a copy: the frontend copies the view into
   * its reply as soon as it gets it. `done` must not throw.
   */
  readView(offset: number, length: number, done: DeviceReadCallback): void;
  /** `fua`: resolve only once the data is on stable storage everywhere. */
  write(offset: number, data: Buffer, fua: boolean): Promise<void>;
  /** Resolve once every write that resolved before this call is on stable storage. */
  flush(): Promise<void>;
  /** Discard; the range may read back as anything until rewritten. */
  trim(offset: number, length: number): Promise<void>;
  /** The range reads back as zeros afterwards. */
  writeZeroes(offset: number, length: number, fua: boolean): Promise<void>;
  /** Runs of allocation covering [offset, offset+length) from `offset` (the last may run past the end). */
  blockStatus(offset: number, length: number): Promise<Extent[]>;
}
