// The data port (ReplicaDataServer ↔ ReplicaDataClient over real TCP on 127.0.0.1) against an
// in-memory replica whose flushes the test holds and releases, so ordering is checked exactly.
import { connect } from 'node:net';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeHeader, MAX_PAYLOAD, MessageType } from '../../dataplane/protocol/frame.js';
import { ReplicaDataClient, ReplicaIoError } from '../../dataplane/replica/data-client.js';
import { ReplicaDataServer, type ReplicaIo } from '../../dataplane/replica/data-server.js';

const MiB = 1024 * 1024;

class MemReplica implements ReplicaIo {
  readonly buf: Buffer;
  flushCalls = 0;
  /** Flushes wait here until release() while `hold` is set. */
  hold = false;
  private waiting: (() => void)[] = [];
  failWith: Error | null = null;
  log: string[] = [];
  /**
   * Reads at these offsets act as page-cache misses: readToCached returns a promise that the test
   * settles with finishSlowRead (the bytes are copied then, as a thread-pool read would read them).
   */
  slowReadsAt = new Set<number>();
  private slowReads = new Map<number, { fill: () => void; fail: (err: Error) => void }>();

  constructor(readonly size: number) {
    this.buf = Buffer.alloc(size);
  }

  private check(): void {
    if (this.failWith) throw this.failWith;
  }
  readToCached(target: Buffer, offset: number): Promise<void> | undefined {
    this.check();
    this.log.push(`read@${offset}`);
    if (this.slowReadsAt.has(offset)) {
      return new Promise((resolve, reject) => {
        this.slowReads.set(offset, {
          fill: () => {
            this.buf.copy(target, 0, offset, offset + target.length);
            resolve();
          },
          fail: reject,
        });
      });
    }
    this.buf.copy(target, 0, offset, offset + target.length);
    return undefined;
  }
  get pendingSlowReads(): number {
    return this.slowReads.size;
  }
  finishSlowRead(offset: number, err?: Error): void {
    const read = this.slowReads.get(offset);
    if (read === undefined) throw new Error(`no slow read waits at ${offset}`);
    this.slowReads.delete(offset);
    if (err) read.fail(err);
    else read.fill();
  }
  write(offset: number, data: Buffer): void {
    this.check();
    this.log.push(`write@${offset}`);
    data.copy(this.buf, offset);
  }
  writeZeroes(offset: number, length: number): void {
    this.check();
    this.buf.fill(0, offset, offset + length);
  }
  unmap(offset: number, length: number): number {
    this.check();
    this.buf.fill(0, offset, offset + length);
    return length;
  }
  blockStatus(_offset: number, length: number): { length: number; flags: number }[] {
    return [
      { length: length / 2, flags: 0 },
      { length: length / 2, flags: 3 },
    ];
  }
  flush(): Promise<void> {
    this.flushCalls++;
    this.log.push('flush');
    if (!this.hold) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  get heldFlushes(): number {
    return this.waiting.length;
  }
  release(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const r of w) r();
  }
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

describe('replica data port', () => {
  const logger = pino({ level: 'silent' });
  let replica: MemReplica | null = new MemReplica(64 * MiB);
  const server = new ReplicaDataServer({ getReplica: () => replica, logger });
  let port = 0;
  let client: ReplicaDataClient;

  beforeAll(async () => {
    port = await server.listen(0, '127.0.0.1');
    client = await ReplicaDataClient.connect('127.0.0.1', port, { connections: 2 });
  });
  afterEach(() => {
    if (replica) {
      replica.hold = false;
      replica.release();
      replica.failWith = null;
    }
  });
  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it('keeps answering a connection while its flush waits, and answers the flush after', async () => {
    const r = replica!;
    r.hold = true;
    // One connection: the flush and everything after it share the socket.
    const one = await ReplicaDataClient.connect('127.0.0.1', port, { connections: 1 });
    try {
      await one.write(0, Buffer.alloc(4096, 1));
      let flushed = false;
      const flush = one.flush().then(() => {
        flushed = true;
      });
      await one.write(4096, Buffer.alloc(4096, 2));
      expect((await one.read(0, 8192)).equals(Buffer.concat([Buffer.alloc(4096, 1), Buffer.alloc(4096, 2)]))).toBe(
        true,
      );
      await one.ping();
      expect(flushed).toBe(false);
      expect(one.inFlight).toBe(1);
      r.release();
      await flush;
      expect(one.inFlight).toBe(0);
    } finally {
      await one.close();
    }
  });

  it('answers WriteFua only once the flush after the write is done', async () => {
    const r = replica!;
    r.hold = true;
    r.log = [];
    let done = false;
    const fua = client.writeFua(8192, Buffer.alloc(4096, 7)).then(() => {
      done = true;
    });
    await tick();
    expect(r.log).toEqual(['write@8192', 'flush']);
    expect(done).toBe(false);
    r.release();
    await fua;
    expect(r.buf[8192]).toBe(7);
  });

  it('never lets a flush ride on an fdatasync that started before it; joins the ones that wait', async () => {
    const r = replica!;
    r.hold = true;
    const calls0 = r.flushCalls;
    const first = client.flush();
    await tick();
    expect(r.flushCalls - calls0).toBe(1);
    // Three more arrive while the first runs: they need a new sync, and share it.
    const more = [client.flush(), client.flush(), client.flush()];
    await tick();
    expect(r.flushCalls - calls0).toBe(1);
    r.release(); // the first ends, the shared second starts
    await first;
    await tick();
    expect(r.flushCalls - calls0).toBe(2);
    expect(r.heldFlushes).toBe(1);
    r.release();
    await Promise.all(more);
    expect(r.flushCalls - calls0).toBe(2);
  });

  it('passes store errors back as answers: ENOSPC flagged, the connection kept', async () => {
    const r = replica!;
    const failed: Error[] = [];
    client.on('failed', (e: Error) => failed.push(e));
    r.failWith = Object.assign(new Error('no space left on device, write'), { code: 'ENOSPC' });
    const e1 = await client.write(0, Buffer.alloc(4096)).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ReplicaIoError);
    expect((e1 as ReplicaIoError).enospc).toBe(true);
    expect((e1 as ReplicaIoError).message).toMatch(/no space left/);
    r.failWith = new Error('disk on fire');
    const e2 = (await client.read(0, 4096).catch((e: unknown) => e)) as ReplicaIoError;
    expect(e2).toBeInstanceOf(ReplicaIoError);
    expect(e2.enospc).toBe(false);
    expect(e2.message).toBe('disk on fire');
    r.failWith = null;
    await client.ping();
    expect(failed).toEqual([]);
    client.removeAllListeners('failed');
  });

  it('answers other requests while a read waits for the disk, then that read with its bytes', async () => {
    const r = replica!;
    r.buf.fill(5, 0, 4096);
    r.buf.fill(6, 4096, 8192);
    r.slowReadsAt = new Set([0, 4096]);
    // One connection, so the slow reads and the requests after them share one socket and one stream.
    const one = await ReplicaDataClient.connect('127.0.0.1', port, { connections: 1 });
    try {
      const answered: string[] = [];
      const slow = one.read(0, 4096).then((b) => {
        answered.push('slow');
        return Buffer.from(b);
      });
      const failing = one.read(4096, 4096).then(
        () => 'answered',
        (err: Error) => err,
      );
      await one.write(65536, Buffer.alloc(4096, 9));
      const fast = await one.read(65536, 4096);
      answered.push('fast');
      expect(fast.equals(Buffer.alloc(4096, 9))).toBe(true);
      await one.ping();
      expect(r.pendingSlowReads).toBe(2);
      expect(answered).toEqual(['fast']);
      // The read answers with the bytes as they are when it is served, not when it was sent.
      r.buf.fill(7, 0, 4096);
      r.finishSlowRead(0);
      expect((await slow).equals(Buffer.alloc(4096, 7))).toBe(true);
      expect(answered).toEqual(['fast', 'slow']);
      r.finishSlowRead(4096, new Error('EIO: simulated read error'));
      const err = await failing;
      expect(err).toBeInstanceOf(ReplicaIoError);
      expect((err as Error).message).toMatch(/EIO: simulated read error/);
      // The connection goes on after a failed slow read.
      expect((await one.read(65536, 4096)).equals(Buffer.alloc(4096, 9))).toBe(true);
    } finally {
      r.slowReadsAt = new Set();
      await one.close();
    }
  });

  it('readView hands each answer over as a view, and every failure to the same callback', async () => {
    const r = replica!;
    r.buf.fill(4, 0, 8192);
    const got = await new Promise<Buffer>((resolve, reject) =>
      client.readView(0, 8192, (err, view) => (err ? reject(err) : resolve(Buffer.from(view!)))),
    );
    expect(got.equals(Buffer.alloc(8192, 4))).toBe(true);
    // The replica's Error answer, a bad range found before sending, and a broken connection.
    r.failWith = new Error('EIO: disk gone');
    const answered = await new Promise<Error | null>((resolve) => client.readView(0, 4096, (err) => resolve(err)));
    expect(answered).toBeInstanceOf(ReplicaIoError);
    expect(answered!.message).toMatch(/EIO: disk gone/);
    r.failWith = null;
    const refused = await new Promise<Error | null>((resolve) => client.readView(-1, 4096, (err) => resolve(err)));
    expect(refused).toBeInstanceOf(RangeError);
    const one = await ReplicaDataClient.connect('127.0.0.1', port, { connections: 1 });
    r.slowReadsAt = new Set([12288]);
    try {
      const broken = new Promise<Error | null>((resolve) => one.readView(12288, 4096, (err) => resolve(err)));
      await one.ping();
      one.fail(new Error('connection cut by the test'));
      expect((await broken)?.message).toBe('connection cut by the test');
      const after = await new Promise<Error | null>((resolve) => one.readView(0, 4096, (err) => resolve(err)));
      expect(after?.message).toBe('connection cut by the test');
    } finally {
      r.finishSlowRead(12288);
      r.slowReadsAt = new Set();
      await one.close();
    }
  });

  it('answers a burst of reads of every size with each its own bytes (answers share slabs)', async () => {
    // 600 reads in one turn, 4 KiB to 64 KiB: more than one answer slab, several early flushes.
    const base = 32 * MiB;
    for (let i = 0; i < 8 * MiB; i += 4) replica!.buf.writeUInt32LE((i * 2654435761) >>> 0, base + i);
    const reads = Array.from({ length: 600 }, (_, i) => ({
      offset: base + ((i * 7919) % 1900) * 4096,
      length: 4096 * (1 + (i % 16)),
    }));
    const answers = await Promise.all(reads.map((r) => client.read(r.offset, r.length)));
    const wrong = reads.filter(
      (r, i) => !answers[i]!.equals(replica!.buf.subarray(r.offset, r.offset + r.length)),
    ).length;
    expect(wrong).toBe(0);
  });

  it('carries maximum-size payloads both ways and decodes block status', async () => {
    const big = Buffer.alloc(MAX_PAYLOAD);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE((i ^ 0x9e3779b9) >>> 0, i);
    await client.write(16 * MiB, big);
    expect(replica!.buf.subarray(16 * MiB, 16 * MiB + MAX_PAYLOAD).equals(big)).toBe(true);
    expect((await client.read(16 * MiB, MAX_PAYLOAD)).equals(big)).toBe(true);
    await expect(client.write(0, Buffer.alloc(MAX_PAYLOAD + 1))).rejects.toThrow(RangeError);
    expect(await client.blockStatus(0, 8192)).toEqual([
      { length: 4096, flags: 0 },
      { length: 4096, flags: 3 },
    ]);
    expect(await client.unmap(0, 4096)).toBe(4096);
  });

  it('answers requests it cannot serve with Error, over a raw socket', async () => {
    const raw = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve) => raw.once('connect', resolve));
    const got: Buffer[] = [];
    raw.on('data', (c: Buffer) => got.push(c));
    const badWrite = encodeHeader({ seq: 11, type: MessageType.Write, offset: 0, size: 8, dataLength: 4 });
    const unknown = encodeHeader({ seq: 12, type: 99, offset: 0, size: 0, dataLength: 0 });
    const ping = encodeHeader({ seq: 13, type: MessageType.Ping, offset: 0, size: 0, dataLength: 0 });
    raw.write(Buffer.concat([badWrite, Buffer.alloc(4), unknown, ping]));
    await tick(100);
    const all = Buffer.concat(got);
    const answers: { seq: number; type: number; text: string }[] = [];
    for (let at = 0; at < all.length; ) {
      const len = all.readUInt32LE(at + 22);
      answers.push({
        seq: all.readUInt32LE(at + 2),
        type: all.readUInt32LE(at + 6),
        text: all.subarray(at + 26, at + 26 + len).toString(),
      });
      at += 26 + len;
    }
    expect(answers).toEqual([
      { seq: 11, type: MessageType.Error, text: 'write size 8 does not match its 4 payload bytes' },
      { seq: 12, type: MessageType.Error, text: 'unsupported request type 99' },
      { seq: 13, type: MessageType.Response, text: '' },
    ]);
    // Close from the client: the replica hangs up, and applies nothing sent after the Close.
    const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
    const at = 60 * MiB;
    raw.write(
      Buffer.concat([
        encodeHeader({ seq: 0, type: MessageType.Close, offset: 0, size: 0, dataLength: 0 }),
        encodeHeader({ seq: 14, type: MessageType.Write, offset: at, size: 4, dataLength: 4 }),
        Buffer.from([1, 2, 3, 4]),
      ]),
    );
    await closed;
    expect(replica!.buf.readUInt32LE(at)).toBe(0);
  });

  it('says "replica is not open" while there is no replica', async () => {
    const saved = replica;
    replica = null;
    try {
      await expect(client.read(0, 4096)).rejects.toThrow(new ReplicaIoError('replica is not open'));
      await client.ping();
    } finally {
      replica = saved;
    }
  });

  it('fails everything in flight once when the connection breaks', async () => {
    const r = replica!;
    r.hold = true;
    const c = await ReplicaDataClient.connect('127.0.0.1', port, { connections: 2 });
    const events: Error[] = [];
    c.on('failed', (e: Error) => events.push(e));
    const inflight = [c.flush(), c.flush(), c.flush()].map((p) => p.catch((e: Error) => e));
    await tick();
    expect(c.inFlight).toBe(3);
    // The replica process dies: every socket of the data port is cut.
    const victims = await cutConnections(server);
    expect(victims).toBeGreaterThanOrEqual(2);
    const errors = await Promise.all(inflight);
    for (const e of errors) expect(e).toBeInstanceOf(Error);
    expect(c.inFlight).toBe(0);
    expect(events).toHaveLength(1);
    expect(errors[0]).toBe(events[0]);
    await expect(c.read(0, 1)).rejects.toBe(events[0]);
    await c.close();
    r.release();
    // The shared client lost its connections too; reconnect it for the remaining tests.
    client = await ReplicaDataClient.connect('127.0.0.1', port);
  });

  it('refuses to connect to a port nobody listens on, with the address in the message', async () => {
    const s = new ReplicaDataServer({ getReplica: () => null, logger });
    const p = await s.listen(0, '127.0.0.1');
    await s.close();
    await expect(ReplicaDataClient.connect('127.0.0.1', p)).rejects.toThrow(`127.0.0.1:${p}`);
  });

  it('sends Close to its clients when it shuts down', async () => {
    const s = new ReplicaDataServer({ getReplica: () => replica, logger });
    const p = await s.listen(0, '127.0.0.1');
    const c = await ReplicaDataClient.connect('127.0.0.1', p);
    const failed = new Promise<Error>((resolve) => c.once('failed', resolve));
    await c.ping();
    await s.close();
    expect((await failed).message).toBe(`replica 127.0.0.1:${p} closed the data connection`);
  });
});

/** Destroys every connection the server holds (as if the process died); returns how many. */
async function cutConnections(server: ReplicaDataServer): Promise<number> {
  const conns = (server as unknown as { connections: Set<{ socket: import('node:net').Socket }> }).connections;
  const n = conns.size;
  for (const c of conns) c.socket.destroy();
  await tick();
  return n;
}
