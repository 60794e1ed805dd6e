// The rebuild copy path on its own: a real replica server (in-process, real TCP on 127.0.0.1) serving
// SyncRead on its data port and FileStat/FileChecksums over gRPC, against layer files laid down here.
import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unary } from '../../dataplane/grpc/unary.js';
import { sparse } from '../../dataplane/native/sparse.js';
import { SyncServiceClient } from '../../dataplane/proto/gen/sync.js';
import { encodeHeader, MessageType, readHeader } from '../../dataplane/protocol/frame.js';
import { type ReplicaServer, startReplicaServer } from '../../dataplane/replica/replica-server.js';
import { Replica } from '../../dataplane/replica/store/replica.js';
import { checkLayerName, encodeSyncRequest, pullSyncFile, SYNC_WINDOW } from '../../dataplane/sync/sync-stream.js';
import { patternBytes } from '../fixtures/longhorn-replica-dir.js';

const MiB = 1024 * 1024;
const SIZE = 32 * MiB;
const SNAP = 'volume-snap-s1.img';

/** Bytes in data extents (st_blocks would also count the extent tree of a fragmented file). */
function dataBytes(path: string): number {
  const fd = openSync(path, 'r');
  try {
    const extents = sparse.dataExtents(fd, 0, statSync(path).size);
    let total = 0;
    for (let i = 1; i < extents.length; i += 2) total += extents[i]!;
    return total;
  } finally {
    closeSync(fd);
  }
}

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

describe('rebuild copy path (SyncRead on the data port, SyncService over gRPC)', () => {
  let root: string;
  let server: ReplicaServer;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'shorthorn-sync-'));
    const dir = join(root, 'source');
    Replica.create(dir, SIZE);
    const r = Replica.open(dir);
    // Fragmented over the first 16 MiB (4 KiB data / 4 KiB hole), then one 3 MiB run straddling a
    // window boundary, then nothing.
    for (let b = 0; b < 4096; b += 2) r.write(b * 4096, patternBytes(4096, b + 1));
    r.write(SYNC_WINDOW * 2 + 5 * MiB, patternBytes(3 * MiB, 7));
    r.snapshot('s1', { userCreated: true, created: '2026-11-29T00:00:00Z', labels: {} });
    await r.close();
    server = await startReplicaServer({ dir, port: 0, logger: pino({ level: 'silent' }) });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('copies a fragmented file byte for byte, holes staying holes, with only the data on the wire', async () => {
    const out = join(root, 'copy.img');
    const fd = openSync(out, 'w');
    let reported = 0;
    try {
      ftruncateSync(fd, SIZE);
      const bytes = await pullSyncFile('127.0.0.1', server.dataPort, { file: SNAP, ranges: [] }, fd, (n) => {
        reported += n;
      });
      expect(bytes).toBe(8 * MiB + 3 * MiB);
      expect(reported).toBe(bytes);
    } finally {
      closeSync(fd);
    }
    const src = join(server.dir, SNAP);
    expect(sha(out)).toBe(sha(src));
    expect(dataBytes(out)).toBe(dataBytes(src));
    expect(dataBytes(out)).toBe(11 * MiB);
  });

  it('copies only the ranges asked for', async () => {
    const out = join(root, 'ranges.img');
    const fd = openSync(out, 'w');
    try {
      ftruncateSync(fd, SIZE);
      const bytes = await pullSyncFile(
        '127.0.0.1',
        server.dataPort,
        { file: SNAP, ranges: [{ offset: 0, length: 16 * 4096 }] },
        fd,
        () => {},
      );
      expect(bytes).toBe(8 * 4096);
    } finally {
      closeSync(fd);
    }
    expect(dataBytes(out)).toBe(8 * 4096);
  });

  it('refuses other paths, missing files and garbage with an error, and the connection keeps serving', async () => {
    const sock = connect({ host: '127.0.0.1', port: server.dataPort });
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    const answers: { seq: number; type: number; text: string }[] = [];
    let pending = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 26) {
        const h = readHeader(pending, 0);
        if (pending.length < 26 + h.dataLength) break;
        answers.push({ seq: h.seq, type: h.type, text: pending.subarray(26, 26 + h.dataLength).toString() });
        pending = pending.subarray(26 + h.dataLength);
      }
    });
    sock.write(encodeSyncRequest(1, { file: '../../etc/passwd', ranges: [] }));
    sock.write(encodeSyncRequest(2, { file: 'volume-snap-missing.img', ranges: [] }));
    const junk = Buffer.from('{"file": 3}');
    sock.write(
      Buffer.concat([
        encodeHeader({ seq: 3, type: MessageType.SyncRead, offset: 0, size: 0, dataLength: junk.length }),
        junk,
      ]),
    );
    sock.write(encodeHeader({ seq: 4, type: MessageType.Ping, offset: 0, size: 0, dataLength: 0 }));
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`answers so far: ${JSON.stringify(answers)}`)), 5000);
      const check = setInterval(() => {
        if (answers.length >= 4) {
          clearInterval(check);
          clearTimeout(deadline);
          resolve();
        }
      }, 10);
    });
    sock.destroy();
    const bySeq = Object.fromEntries(answers.map((a) => [a.seq, a]));
    expect(bySeq[1]).toMatchObject({ type: MessageType.Error });
    expect(bySeq[1]!.text).toMatch(/not a layer file name/);
    expect(bySeq[2]).toMatchObject({ type: MessageType.Error });
    expect(bySeq[2]!.text).toMatch(/ENOENT|no such file/);
    expect(bySeq[3]!.text).toMatch(/needs "file"/);
    expect(bySeq[4]).toMatchObject({ type: MessageType.Response });
  });

  it('answers block checksums and sizes over gRPC, matching the file', async () => {
    const c = new SyncServiceClient(`127.0.0.1:${server.grpcPort}`, credentials.createInsecure());
    try {
      const stat = await unary(c.fileStat, c, { name: SNAP });
      // allocated is st_blocks (as du): the 11 MiB of data plus the file's few extent-tree blocks.
      expect(stat.size).toBe(SIZE);
      expect(stat.allocated).toBeGreaterThanOrEqual(11 * MiB);
      expect(stat.allocated).toBeLessThan(11 * MiB + 256 * 1024);
      const sums = await unary(c.fileChecksums, c, { name: SNAP, offset: 0, length: 8 * 4096, blockSize: 4096 });
      expect([...sums.present]).toEqual([1, 0, 1, 0, 1, 0, 1, 0]);
      expect(sums.sums.readBigUInt64LE(8)).toBe(0n);
      expect(sums.sums.readBigUInt64LE(0)).not.toBe(0n);
      const again = await unary(c.fileChecksums, c, { name: SNAP, offset: 0, length: 8 * 4096, blockSize: 4096 });
      expect(Buffer.compare(again.sums, sums.sums)).toBe(0);
      await expect(unary(c.fileChecksums, c, { name: SNAP, offset: 1, length: 4096, blockSize: 4096 })).rejects.toThrow(
        /aligned/,
      );
      await expect(unary(c.fileStat, c, { name: 'volume.meta' })).rejects.toThrow(/not a layer file name/);
    } finally {
      c.close();
    }
  });
});

describe('sync request encoding', () => {
  it('round-trips through the frame header', () => {
    const frame = encodeSyncRequest(9, { file: SNAP, ranges: [{ offset: 4096, length: 8192 }] });
    const h = readHeader(frame, 0);
    expect(h).toMatchObject({ seq: 9, type: MessageType.SyncRead, dataLength: frame.length - 26 });
    expect(JSON.parse(frame.subarray(26).toString())).toEqual({ file: SNAP, ranges: [[4096, 8192]] });
  });

  it('never serves the head of an open replica, nor anything but a layer file', () => {
    expect(() => checkLayerName('volume-head-003.img', 'volume-head-003.img')).toThrow(/is the head/);
    expect(() => checkLayerName('volume-head-002.img', 'volume-head-003.img')).not.toThrow();
    for (const bad of ['volume.meta', 'volume-snap-a.img.meta', 'volume-snap-../x.img', '/etc/passwd']) {
      expect(() => checkLayerName(bad, null)).toThrow(/not a layer file name/);
    }
  });
});
