// A replica server in-process on 127.0.0.1 with a real store in a temp dir, driven the way an engine
// drives it: ReplicaService over gRPC, block I/O through ReplicaDataClient on the data port.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXTENT_HOLE, EXTENT_ZERO } from '../../dataplane/block-device.js';
import { unary } from '../../dataplane/grpc/unary.js';
import { type Replica as ReplicaMessage, ReplicaServiceClient } from '../../dataplane/proto/gen/replica.js';
import { encodeHeader, MessageType } from '../../dataplane/protocol/frame.js';
import { ReplicaDataClient, ReplicaIoError } from '../../dataplane/replica/data-client.js';
import { ReplicaControl } from '../../dataplane/replica/grpc-service.js';
import { type ReplicaServer, startReplicaServer } from '../../dataplane/replica/replica-server.js';
import { type ReplicaProcess, startReplica } from '../helpers/cluster.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;

interface Harness {
  server: ReplicaServer;
  grpc: ReplicaServiceClient;
  get(): Promise<ReplicaMessage>;
  open(): Promise<ReplicaMessage>;
  close(): Promise<ReplicaMessage>;
  create(size: number): Promise<ReplicaMessage>;
}

const logs: { level: number; msg: string }[] = [];
const logger = pino(
  { level: 'debug' },
  {
    write(line: string) {
      const o = JSON.parse(line) as { level: number; msg: string };
      logs.push(o);
    },
  },
);

async function harness(dir: string, size = SIZE): Promise<Harness> {
  const server = await startReplicaServer({ dir, size, host: '127.0.0.1', port: 0, logger });
  const grpc = new ReplicaServiceClient(`127.0.0.1:${server.grpcPort}`, credentials.createInsecure());
  return {
    server,
    grpc,
    get: () => unary(grpc.replicaGet, grpc, {}, 10_000),
    open: () => unary(grpc.replicaOpen, grpc, {}, 10_000),
    close: () => unary(grpc.replicaClose, grpc, {}, 10_000),
    create: (s: number) => unary(grpc.replicaCreate, grpc, { size: s }, 10_000),
  };
}

function volumeMeta(dir: string): { Dirty: boolean; Size: number } {
  return JSON.parse(readFileSync(join(dir, 'volume.meta'), 'utf8'));
}

function revisionCounterFile(dir: string): number {
  return Number(readFileSync(join(dir, 'revision.counter'), 'latin1').replace(/\0+$/, ''));
}

/** Deterministic pseudo-random bytes (xorshift), so a failure reproduces. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function randomBytes(next: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n + 3);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE(next(), i);
  return b.subarray(0, n);
}

function grpcCode(p: Promise<unknown>): Promise<number> {
  return p.then(
    () => -1,
    (err: ServiceError) => err.code,
  );
}

describe('replica server (in-process)', () => {
  const root = mkdtempSync(join(tmpdir(), 'shorthorn-replica-server-'));
  const dir = join(root, 'r0');
  let h: Harness;
  let client: ReplicaDataClient;
  /** Mirror of the volume's contents as the writes below leave it. */
  const model = Buffer.alloc(SIZE);
  /** Writes, write-zeroes and unmaps sent since the replica was first opened. */
  let mutations = 0;

  beforeAll(async () => {
    h = await harness(dir);
  });
  afterAll(async () => {
    await client?.close().catch(() => {});
    h?.grpc.close();
    await h?.server.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('creates the replica on start and leaves it closed until an engine opens it', async () => {
    expect(h.server.dataPort).toBe(h.server.grpcPort + 1);
    const info = await h.get();
    expect(info.state).toBe('closed');
    expect(info.size).toBe(SIZE);
    expect(info.dataPort).toBe(h.server.dataPort);
    expect(info.dir).toBe(dir);
    expect(info.revisionCounter).toBe(0);
    expect(info.head).toBe('volume-head-000.img');
    expect(volumeMeta(dir)).toMatchObject({ Size: SIZE, Dirty: false });
  });

  it('refuses ReplicaCreate on an existing replica and a size that is not whole blocks', async () => {
    expect(await grpcCode(h.create(SIZE))).toBe(status.ALREADY_EXISTS);
    expect(await grpcCode(h.create(1000))).toBe(status.INVALID_ARGUMENT);
  });

  it('answers I/O before ReplicaOpen with an error, keeping the connection', async () => {
    client = await ReplicaDataClient.connect('127.0.0.1', h.server.dataPort, { connections: 2 });
    const failed: Error[] = [];
    client.on('failed', (e: Error) => failed.push(e));
    await expect(client.read(0, 4096)).rejects.toThrow(ReplicaIoError);
    await expect(client.write(0, Buffer.alloc(4096, 1))).rejects.toThrow('replica is not open');
    await expect(client.flush()).rejects.toThrow('replica is not open');
    await client.ping(); // liveness does not need an open replica
    expect(failed).toEqual([]);
    expect(client.inFlight).toBe(0);
  });

  it('opens, and opening again only reports the state (an engine taking over)', async () => {
    const opened = await h.open();
    expect(opened.state).toBe('open');
    expect(opened.dataPort).toBe(h.server.dataPort);
    expect(volumeMeta(dir).Dirty).toBe(true);
    const again = await h.open();
    expect(again.state).toBe('open');
    expect((await h.get()).state).toBe('open');
  });

  it('takes 200 pipelined random writes over 2 connections and reads them back', async () => {
    const next = rng(42);
    // 200 disjoint slots in the first half (the engine never has overlapping writes in flight); random
    // unaligned ranges. The second half is left to the tests below (48 MiB and up is never written).
    const slot = Math.floor(SIZE / 2 / 200);
    const writes: { offset: number; data: Buffer }[] = [];
    for (let i = 0; i < 200; i++) {
      const len = 1 + (next() % (slot - 1));
      const offset = i * slot + (next() % (slot - len));
      writes.push({ offset, data: randomBytes(next, len) });
    }
    const sent = writes.map((w) => client.write(w.offset, w.data));
    expect(client.inFlight).toBe(200);
    await Promise.all(sent);
    mutations += writes.length;
    for (const w of writes) w.data.copy(model, w.offset);
    expect(client.inFlight).toBe(0);

    const reads = await Promise.all(writes.map((w) => client.read(w.offset, w.data.length)));
    for (let i = 0; i < writes.length; i++) expect(reads[i]!.equals(writes[i]!.data)).toBe(true);
    // Ranges across slot borders, aligned and not, against the model (holes read as zeros).
    const ranges = Array.from({ length: 100 }, () => {
      const len = 1 + (next() % (2 * slot));
      return { offset: next() % (SIZE - len), len };
    });
    ranges.push({ offset: 0, len: 4 * MiB }, { offset: SIZE - 4096, len: 4096 });
    const got = await Promise.all(ranges.map((r) => client.read(r.offset, r.len)));
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i]!;
      expect(got[i]!.equals(model.subarray(r.offset, r.offset + r.len))).toBe(true);
    }
  });

  it('answers out of order: reads sent after a flush complete before it', async () => {
    const next = rng(7);
    // Dirty a few MiB so the fdatasync has something to do.
    const big = randomBytes(next, 4 * MiB);
    await Promise.all([0, 1, 2, 3].map((i) => client.write(i * MiB, big.subarray(i * MiB, (i + 1) * MiB))));
    mutations += 4;
    big.copy(model, 0);
    const order: string[] = [];
    const flush = client.flush().then(() => order.push('flush'));
    const reads = Array.from({ length: 20 }, (_, i) =>
      client.read(i * 4096, 4096).then((b) => {
        order.push(`read${i}`);
        return b;
      }),
    );
    const wf = client.writeFua(8 * MiB, Buffer.alloc(8192, 0x5a)).then(() => order.push('fua'));
    expect(client.inFlight).toBe(22);
    const got = await Promise.all(reads);
    await Promise.all([flush, wf]);
    mutations += 1;
    model.fill(0x5a, 8 * MiB, 8 * MiB + 8192);
    for (let i = 0; i < 20; i++) expect(got[i]!.equals(model.subarray(i * 4096, (i + 1) * 4096))).toBe(true);
    expect(order.indexOf('flush')).toBeGreaterThan(order.indexOf('read19'));
    expect(order.indexOf('fua')).toBeGreaterThan(order.indexOf('read19'));
    expect((await client.read(8 * MiB, 8192)).equals(model.subarray(8 * MiB, 8 * MiB + 8192))).toBe(true);
  });

  it('serves write-zeroes, unmap and block status', async () => {
    const base = 32 * MiB;
    await client.write(base, Buffer.alloc(MiB, 0xab));
    model.fill(0xab, base, base + MiB);
    // Zero an unaligned middle part: reads as zeros, the rest untouched.
    await client.writeZeroes(base + 1000, 300 * 1024);
    model.fill(0, base + 1000, base + 1000 + 300 * 1024);
    expect((await client.read(base, MiB)).equals(model.subarray(base, base + MiB))).toBe(true);
    mutations += 2;

    // Data, then (the whole blocks zeroed) holes, then data again.
    const status1 = await client.blockStatus(base, MiB);
    expect(status1.reduce((n, r) => n + r.length, 0)).toBe(MiB);
    expect(status1[0]).toEqual({ length: 4096, flags: 0 });
    expect(status1.some((r) => r.flags === (EXTENT_HOLE | EXTENT_ZERO))).toBe(true);
    expect(status1.at(-1)!.flags).toBe(0);
    // Never written: one hole reading as zeros.
    expect(await client.blockStatus(48 * MiB, 4 * MiB)).toEqual([
      { length: 4 * MiB, flags: EXTENT_HOLE | EXTENT_ZERO },
    ]);

    const freed = await client.unmap(base + 512 * 1024, 256 * 1024);
    mutations += 1;
    expect(freed).toBe(256 * 1024);
    model.fill(0, base + 512 * 1024, base + 768 * 1024); // a single-layer replica reads holes as zeros
    const after = await client.blockStatus(base + 512 * 1024, 256 * 1024);
    expect(after).toEqual([{ length: 256 * 1024, flags: EXTENT_HOLE | EXTENT_ZERO }]);
    expect(await client.unmap(48 * MiB, 4096)).toBe(0);
    mutations += 1;
  });

  it('answers a bad request with an error and keeps serving', async () => {
    await expect(client.read(SIZE - 4096, 8192)).rejects.toThrow(/beyond the end of the volume/);
    await expect(client.write(SIZE, Buffer.alloc(1))).rejects.toThrow(ReplicaIoError);
    await expect(client.unmap(SIZE, 4096)).rejects.toThrow(ReplicaIoError);
    await expect(client.read(0, 64 * MiB)).rejects.toThrow(RangeError); // refused before sending
    expect((await client.read(0, 4096)).equals(model.subarray(0, 4096))).toBe(true);
    expect(client.broken).toBe(false);
  });

  it('persists the revision counter at flush and reports it in ReplicaGet', async () => {
    await client.flush();
    const info = await h.get();
    expect(info.revisionCounter).toBe(mutations);
    expect(revisionCounterFile(dir)).toBe(mutations);
    expect(info.headFileSize).toBeGreaterThan(0);
    expect(Object.keys(info.disks)).toContain('volume-head-000.img');
  });

  it('closes a connection that sends garbage and keeps serving the others', async () => {
    const other = await ReplicaDataClient.connect('127.0.0.1', h.server.dataPort, { connections: 1 });
    const otherFailed = new Promise<Error>((resolve) => other.once('failed', resolve));
    const raw = connect({ host: '127.0.0.1', port: h.server.dataPort });
    await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
    const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
    raw.on('error', () => {});
    const good = encodeHeader({ seq: 1, type: MessageType.Ping, offset: 0, size: 0, dataLength: 0 });
    const answers: Buffer[] = [];
    raw.on('data', (c: Buffer) => answers.push(c));
    raw.write(Buffer.concat([good, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]));
    await closed;
    // The ping before the garbage was answered (seq 1, Response) before the connection was cut.
    const answer = Buffer.concat(answers);
    expect(answer.length).toBeGreaterThanOrEqual(26);
    expect(answer.readUInt32LE(2)).toBe(1);
    expect(answer.readUInt32LE(6)).toBe(MessageType.Response);
    expect(logs.some((l) => l.level === 40 && /malformed frame/.test(l.msg))).toBe(true);

    await other.write(40 * MiB, Buffer.alloc(4096, 9));
    mutations += 1;
    model.fill(9, 40 * MiB, 40 * MiB + 4096);
    expect((await client.read(40 * MiB, 4096)).equals(model.subarray(40 * MiB, 40 * MiB + 4096))).toBe(true);
    expect(client.broken).toBe(false);
    await other.close();
    const race = await Promise.race([otherFailed, new Promise((r) => setTimeout(() => r('none'), 100))]);
    expect(race).toBe('none'); // a deliberate close is not a failure
  });

  it('fails everything in flight, once, when the client is failed', async () => {
    const c = await ReplicaDataClient.connect('127.0.0.1', h.server.dataPort);
    const events: Error[] = [];
    c.on('failed', (e: Error) => events.push(e));
    const before = c.lastReceivedAt;
    await c.ping();
    expect(c.lastReceivedAt).toBeGreaterThan(before);
    const inflight = [c.read(0, 4096), c.flush(), c.write(44 * MiB, Buffer.alloc(4096))];
    const reason = new Error('engine gave up on this replica');
    c.fail(reason);
    c.fail(new Error('second'));
    for (const p of inflight) await expect(p).rejects.toBe(reason);
    await expect(c.ping()).rejects.toBe(reason);
    expect(c.inFlight).toBe(0);
    expect(events).toEqual([reason]);
    await c.close();
  });

  it('closes through ReplicaClose: clean meta, I/O refused, then reopens with data and counter', async () => {
    const closed = await h.close();
    expect(closed.state).toBe('closed');
    expect(closed.revisionCounter).toBe(mutations);
    expect(volumeMeta(dir).Dirty).toBe(false);
    expect(revisionCounterFile(dir)).toBe(mutations);
    expect((await h.get()).state).toBe('closed');
    await expect(client.read(0, 4096)).rejects.toThrow('replica is not open');
    // Closing a closed replica is harmless.
    expect((await h.close()).state).toBe('closed');

    const reopened = await h.open();
    expect(reopened.revisionCounter).toBe(mutations);
    const all = await Promise.all(Array.from({ length: 16 }, (_, i) => client.read(i * 4 * MiB, 4 * MiB)));
    expect(Buffer.concat(all).equals(model)).toBe(true);
  });

  it('tells connected clients Close when the server stops, and closes the replica cleanly', async () => {
    const failed = new Promise<Error>((resolve) => client.once('failed', resolve));
    const pending = client.flush().then(
      () => 'answered',
      () => 'failed',
    );
    await h.server.close();
    const err = await failed;
    expect(err.message).toMatch(/closed/);
    expect(['answered', 'failed']).toContain(await pending);
    expect(volumeMeta(dir).Dirty).toBe(false);
    expect(revisionCounterFile(dir)).toBe(mutations);
    await expect(client.read(0, 4096)).rejects.toThrow();
  });

  it('restarts on the same directory, refusing another size', async () => {
    await expect(startReplicaServer({ dir, size: SIZE * 2, port: 0, logger })).rejects.toThrow(
      /has size 67108864 bytes, not the requested 134217728/,
    );
    const again = await harness(dir);
    try {
      const info = await again.get();
      expect(info.state).toBe('closed');
      expect(info.revisionCounter).toBe(mutations);
      await again.open();
      const c = await ReplicaDataClient.connect('127.0.0.1', again.server.dataPort);
      expect((await c.read(40 * MiB, 4096)).equals(model.subarray(40 * MiB, 40 * MiB + 4096))).toBe(true);
      await c.close();
    } finally {
      again.grpc.close();
      await again.server.close();
    }
    expect(volumeMeta(dir).Dirty).toBe(false);
  });

  it('refuses to start without a size when there is no replica; open before create is FAILED_PRECONDITION', async () => {
    const empty = join(root, 'empty');
    await expect(startReplicaServer({ dir: empty, port: 0, logger })).rejects.toThrow(/no size/);
    expect(existsSync(join(empty, 'volume.meta'))).toBe(false);

    const control = new ReplicaControl({ dir: empty, logger });
    expect(control.get().state).toBe('initial');
    await expect(control.open()).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
    await expect(control.create(12345)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    expect((await control.create(4 * MiB)).state).toBe('closed');
    await expect(control.create(4 * MiB)).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
    expect((await control.open()).state).toBe('open');
    await expect(control.create(4 * MiB)).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
    expect((await control.close()).state).toBe('closed');
    expect(volumeMeta(empty)).toMatchObject({ Dirty: false, Size: 4 * MiB });
  });
});

describe('replica process (shorthorn replica)', () => {
  const root = mkdtempSync(join(tmpdir(), 'shorthorn-replica-proc-'));
  const dir = join(root, 'r0');
  const procs: ReplicaProcess[] = [];
  const clients: ReplicaDataClient[] = [];
  const grpcs: ReplicaServiceClient[] = [];

  async function start(port?: number): Promise<{ p: ReplicaProcess; grpc: ReplicaServiceClient }> {
    const p = await startReplica(dir, SIZE, port);
    procs.push(p);
    expect(p.proc.ready['dataPort']).toBe(p.port + 1);
    const grpc = new ReplicaServiceClient(`127.0.0.1:${p.port}`, credentials.createInsecure());
    grpcs.push(grpc);
    return { p, grpc };
  }

  afterAll(async () => {
    for (const c of clients) c.fail(new Error('test over'));
    for (const g of grpcs) g.close();
    await Promise.all(procs.map((p) => p.proc.stop(5000).catch(() => p.proc.kill9())));
    rmSync(root, { recursive: true, force: true });
  });

  it('keeps every acknowledged write across a SIGKILL and persists the counter at flush', async () => {
    const { p, grpc } = await start();
    expect((await unary(grpc.replicaGet, grpc, {}, 10_000)).state).toBe('closed');
    await unary(grpc.replicaOpen, grpc, {}, 10_000);
    const c = await ReplicaDataClient.connect('127.0.0.1', p.port + 1);
    clients.push(c);
    const failed = new Promise<Error>((resolve) => c.once('failed', resolve));
    const next = rng(99);
    const blocks = Array.from({ length: 64 }, () => randomBytes(next, 64 * 1024));
    await Promise.all(blocks.slice(0, 32).map((b, i) => c.write(i * MiB, b)));
    await c.flush();
    await Promise.all(blocks.slice(32).map((b, i) => c.write((32 + i) * MiB, b)));
    await p.proc.kill9();
    await failed;
    expect(volumeMeta(dir).Dirty).toBe(true); // not closed cleanly
    // The counter on disk covers at least what was flushed, never more than what was written.
    expect(revisionCounterFile(dir)).toBeGreaterThanOrEqual(32);
    expect(revisionCounterFile(dir)).toBeLessThanOrEqual(64);

    const again = await start(p.port);
    const info = await unary(again.grpc.replicaGet, again.grpc, {}, 10_000);
    expect(info.state).toBe('closed');
    expect(info.dirty).toBe(true);
    await unary(again.grpc.replicaOpen, again.grpc, {}, 10_000);
    const c2 = await ReplicaDataClient.connect('127.0.0.1', again.p.port + 1);
    clients.push(c2);
    const back = await Promise.all(blocks.map((_, i) => c2.read(i * MiB, 64 * 1024)));
    for (let i = 0; i < blocks.length; i++) expect(back[i]!.equals(blocks[i]!)).toBe(true);
    await c2.write(0, Buffer.alloc(4096, 1));
    const counter = (await unary(again.grpc.replicaGet, again.grpc, {}, 10_000)).revisionCounter;

    // SIGTERM: a clean close (Dirty=false, counter persisted) and exit code 0.
    const closed = new Promise<Error>((resolve) => c2.once('failed', resolve));
    expect(await again.p.proc.stop(10_000)).toBe(0);
    await closed;
    expect(volumeMeta(dir).Dirty).toBe(false);
    expect(revisionCounterFile(dir)).toBe(counter);
  });
});
