// Turns a device's extent list into BLOCK_STATUS descriptors: clipped to the request, merged when
// neighbours share flags, limited to one descriptor for REQ_ONE and to MAX_EXTENTS otherwise.

import { EXTENT_HOLE, EXTENT_ZERO, type Extent } from '../../block-device.js';
import { MAX_EXTENTS } from './constants.js';

export interface EncodedExtents {
  /** (length, flags) pairs. */
  values: Uint32Array;
  count: number;
}

const KNOWN_FLAGS = EXTENT_HOLE | EXTENT_ZERO;

export function encodeExtents(extents: readonly Extent[], length: number, reqOne: boolean): EncodedExtents {
  const limit = reqOne ? 1 : MAX_EXTENTS;
  const values = new Uint32Array(2 * Math.max(1, Math.min(extents.length, limit)));
  let count = 0;
  let remaining = length;
  for (let i = 0; i < extents.length && remaining > 0; i++) {
    const extent = extents[i]!;
    const len = Math.min(Math.floor(extent.length), remaining);
    if (!(len > 0)) continue;
    const flags = extent.flags & KNOWN_FLAGS;
    if (count > 0 && values[2 * count - 1] === flags) {
      values[2 * count - 2]! += len;
    } else {
      if (count === limit) break;
      values[2 * count] = len;
      values[2 * count + 1] = flags;
      count++;
    }
    remaining -= len;
  }
  if (count === 0) {
    // Nothing usable from the device: status 0 ("allocated, contents unknown") is always a safe answer.
    values[0] = length;
    values[1] = 0;
    count = 1;
  }
  return { values, count };
}
