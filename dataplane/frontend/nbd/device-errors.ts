// Maps a failure from the BlockDevice (or anything it let through) to an NBD error number.

import { NbdErrno } from './constants.js';

const SYSTEM_CODES: Record<string, number> = {
  EDQUOT: NbdErrno.ENOSPC,
  EFBIG: NbdErrno.ENOSPC,
  EROFS: NbdErrno.EPERM,
  EACCES: NbdErrno.EPERM,
  EOPNOTSUPP: NbdErrno.ENOTSUP,
};

/** BlockDeviceError.errno names map directly; Node system error codes are honoured too; anything else is EIO. */
export function nbdErrnoOf(err: unknown): number {
  if (typeof err === 'object' && err !== null) {
    const { errno, code } = err as { errno?: unknown; code?: unknown };
    if (typeof errno === 'string' && Object.hasOwn(NbdErrno, errno)) return NbdErrno[errno as keyof typeof NbdErrno];
    if (typeof code === 'string') {
      if (Object.hasOwn(NbdErrno, code)) return NbdErrno[code as keyof typeof NbdErrno];
      if (Object.hasOwn(SYSTEM_CODES, code)) return SYSTEM_CODES[code]!;
    }
  }
  return NbdErrno.EIO;
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
