// Checks a well-framed request against the negotiated session before it reaches the device. A rejected
// request gets an error reply and the connection goes on.

import { Cmd, CmdFlag, MAX_PAYLOAD, NbdErrno } from './constants.js';
import type { NbdRequest } from './request-parser.js';

export interface Rejection {
  errno: number;
  message: string;
}

export interface ValidationContext {
  readonly size: number;
  readonly structuredReplies: boolean;
  readonly baseAllocationId: number | null;
}

const READ_FLAGS = CmdFlag.FUA | CmdFlag.DF;
const WRITE_FLAGS = CmdFlag.FUA;
const ZERO_FLAGS = CmdFlag.FUA | CmdFlag.NO_HOLE;
const STATUS_FLAGS = CmdFlag.FUA | CmdFlag.REQ_ONE;

export function validateRequest(req: NbdRequest, ctx: ValidationContext): Rejection | null {
  switch (req.type) {
    case Cmd.READ:
      if ((req.flags & ~(ctx.structuredReplies ? READ_FLAGS : CmdFlag.FUA)) !== 0) return badFlags(req);
      if (req.length > MAX_PAYLOAD) {
        return reject(
          ctx.structuredReplies ? NbdErrno.EOVERFLOW : NbdErrno.EINVAL,
          `read of ${req.length} bytes exceeds the maximum payload of ${MAX_PAYLOAD}`,
        );
      }
      return checkRange(req, ctx.size, NbdErrno.EINVAL);
    case Cmd.WRITE:
      if ((req.flags & ~WRITE_FLAGS) !== 0) return badFlags(req);
      return checkRange(req, ctx.size, NbdErrno.ENOSPC);
    case Cmd.WRITE_ZEROES:
      if ((req.flags & ~ZERO_FLAGS) !== 0) return badFlags(req);
      return checkRange(req, ctx.size, NbdErrno.ENOSPC);
    case Cmd.TRIM:
      if ((req.flags & ~WRITE_FLAGS) !== 0) return badFlags(req);
      return checkRange(req, ctx.size, NbdErrno.EINVAL);
    case Cmd.FLUSH:
      if ((req.flags & ~CmdFlag.FUA) !== 0) return badFlags(req);
      if (req.offset !== 0 || req.length !== 0) return reject(NbdErrno.EINVAL, 'flush offset and length must be 0');
      return null;
    case Cmd.BLOCK_STATUS:
      if ((req.flags & ~STATUS_FLAGS) !== 0) return badFlags(req);
      if (ctx.baseAllocationId === null) return reject(NbdErrno.EINVAL, 'no metadata context was negotiated');
      return checkRange(req, ctx.size, NbdErrno.EINVAL);
    default:
      // The spec asks for EINVAL on unknown commands (CACHE and RESIZE are not advertised, so unknown too).
      return reject(NbdErrno.EINVAL, `unsupported command ${req.type}`);
  }
}

function checkRange(req: NbdRequest, size: number, errno: number): Rejection | null {
  if (req.length === 0) return reject(NbdErrno.EINVAL, 'zero-length request');
  if (req.offset > size || req.offset + req.length > size) {
    return reject(errno, `request [${req.offset}, +${req.length}) is beyond the end of the export (${size} bytes)`);
  }
  return null;
}

function badFlags(req: NbdRequest): Rejection {
  return reject(NbdErrno.EINVAL, `flags 0x${req.flags.toString(16)} are not valid for command ${req.type}`);
}

function reject(errno: number, message: string): Rejection {
  return { errno, message };
}
