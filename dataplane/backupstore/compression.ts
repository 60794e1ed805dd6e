// Block compression and checksums as Longhorn's util package does them (reference §5.2): a block is
// named by the SHA-512 of its *uncompressed* bytes, so the name survives a change of compression and
// a restore can prove it got back what was backed up.
import { createHash, webcrypto } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { compressFrame, decompressFrame } from 'lz4-napi';
import type { CompressionMethod } from './types.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export const COMPRESSION_METHODS: readonly CompressionMethod[] = ['none', 'gzip', 'lz4'];

export function isCompressionMethod(value: string): value is CompressionMethod {
  return (COMPRESSION_METHODS as readonly string[]).includes(value);
}

/** hex(SHA-512(data))[:64] — Longhorn's util.GetChecksum (its comment says SHA-256; the code is SHA-512). */
export function blockChecksum(data: Uint8Array): string {
  return createHash('sha512').update(data).digest('hex').slice(0, 64);
}

/**
 * blockChecksum computed on the libuv thread pool (WebCrypto's digest runs there), so hashing a 2 MiB
 * block (~4 ms) does not hold the event loop: a backup's blocks in flight hash and compress in parallel
 * instead of taking turns on the main thread. The same value as blockChecksum.
 */
export async function blockChecksumAsync(data: Uint8Array): Promise<string> {
  const digest = await webcrypto.subtle.digest('SHA-512', data);
  return Buffer.from(digest, 0, 32).toString('hex');
}

/**
 * lz4 is the LZ4 *frame* format (magic 04 22 4D 18), what pierrec/lz4's Writer and the `lz4` tool
 * produce; not the raw block format, which Longhorn could not read.
 */
export async function compressBlock(method: CompressionMethod, data: Buffer): Promise<Buffer> {
  switch (method) {
    case 'none':
      return data;
    case 'gzip':
      return gzipAsync(data);
    case 'lz4':
      return compressFrame(data);
  }
}

export async function decompressBlock(method: CompressionMethod, data: Buffer): Promise<Buffer> {
  switch (method) {
    case 'none':
      return data;
    case 'gzip':
      return gunzipAsync(data);
    case 'lz4':
      return decompressFrame(data);
  }
}

/**
 * Decompress and check the result against the name the block is stored under. `what` names the block
 * in errors (volume, offset, file) so a corrupt or truncated object can be found and dealt with.
 */
export async function decompressAndVerify(
  method: CompressionMethod,
  data: Buffer,
  expectedChecksum: string,
  what: string,
): Promise<Buffer> {
  let plain: Buffer;
  try {
    plain = await decompressBlock(method, data);
  } catch (cause) {
    throw new Error(`${what}: cannot ${method}-decompress ${data.length} bytes: ${(cause as Error).message}`, {
      cause,
    });
  }
  const actual = blockChecksum(plain);
  if (actual !== expectedChecksum) {
    throw new Error(
      `${what}: checksum mismatch after ${method} decompression: expected ${expectedChecksum}, got ${actual} (${plain.length} bytes)`,
    );
  }
  return plain;
}
