import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  NbdErrno,
  ReplyFlag,
  ReplyType,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
} from '../../dataplane/frontend/nbd/constants.js';
import { type ReplySink, ReplyWriter } from '../../dataplane/frontend/nbd/reply-writer.js';

class CollectingSink implements ReplySink {
  writable = true;
  corked = 0;
  writes: Buffer[] = [];
  /** Snapshot of the bytes at write time, to catch buffers mutated after they were handed over. */
  snapshots: Buffer[] = [];
  cork(): void {
    this.corked++;
  }
  uncork(): void {
    this.corked--;
  }
  write(chunk: Buffer): boolean {
    this.writes.push(chunk);
    this.snapshots.push(Buffer.from(chunk));
    return true;
  }
}

type Reply =
  | { kind: 'ok'; cookie: number }
  | { kind: 'read'; cookie: number; offset: number; data: string }
  | { kind: 'error'; cookie: number; errno: number; message: string };

function target(cookie: number) {
  return { cookieHi: 0, cookieLo: cookie };
}

/** Decodes a reply stream; READ replies in simple mode need the expected length, given by `readLength`. */
function decode(stream: Buffer, readLength: (cookie: number) => number): Reply[] {
  const out: Reply[] = [];
  let p = 0;
  while (p < stream.length) {
    const magic = stream.readUInt32BE(p);
    if (magic === SIMPLE_REPLY_MAGIC) {
      const errno = stream.readUInt32BE(p + 4);
      const cookie = stream.readUInt32BE(p + 12);
      p += 16;
      const n = errno === 0 ? readLength(cookie) : 0;
      if (errno !== 0) out.push({ kind: 'error', cookie, errno, message: '' });
      else if (n > 0) out.push({ kind: 'read', cookie, offset: -1, data: stream.toString('base64', p, p + n) });
      else out.push({ kind: 'ok', cookie });
      p += n;
    } else {
      expect(magic).toBe(STRUCTURED_REPLY_MAGIC);
      const flags = stream.readUInt16BE(p + 4);
      const type = stream.readUInt16BE(p + 6);
      const cookie = stream.readUInt32BE(p + 12);
      const length = stream.readUInt32BE(p + 16);
      const payload = stream.subarray(p + 20, p + 20 + length);
      expect(flags & ReplyFlag.DONE).toBe(ReplyFlag.DONE);
      if (type === ReplyType.OFFSET_DATA) {
        out.push({
          kind: 'read',
          cookie,
          offset: Number(payload.readBigUInt64BE(0)),
          data: payload.toString('base64', 8),
        });
      } else {
        expect(type).toBe(ReplyType.ERROR);
        const mlen = payload.readUInt16BE(4);
        out.push({
          kind: 'error',
          cookie,
          errno: payload.readUInt32BE(0),
          message: payload.toString('utf8', 6, 6 + mlen),
        });
      }
      p += 20 + length;
    }
  }
  return out;
}

const replyArb = fc.oneof(
  fc.record({ kind: fc.constant('ok' as const) }),
  fc.record({
    kind: fc.constant('read' as const),
    offset: fc.maxSafeInteger().map(Math.abs),
    // Sizes around the copy limit; the writer under test uses a 4 KiB slab so that slabs roll over often.
    data: fc
      .oneof(fc.integer({ min: 1, max: 5000 }), fc.constantFrom(4096, 16 * 1024, 16 * 1024 + 1, 40_000))
      .chain((n) => fc.integer({ min: 0, max: 255 }).map((seed) => Buffer.alloc(n, seed))),
  }),
  fc.record({
    kind: fc.constant('error' as const),
    errno: fc.constantFrom(...Object.values(NbdErrno)),
    message: fc.string(),
  }),
);

describe('ReplyWriter', () => {
  for (const structured of [true, false]) {
    it(`encodes every reply intact across flushes and slab changes (structured=${structured})`, () => {
      fc.assert(
        fc.property(
          fc.array(fc.tuple(replyArb, fc.boolean()), { minLength: 1, maxLength: 80, size: 'large' }),
          (items) => {
            const sink = new CollectingSink();
            const writer = new ReplyWriter(sink, structured, 4096);
            const expected: Reply[] = [];
            const lengths = new Map<number, number>();
            items.forEach(([r, flushAfter], i) => {
              const cookie = i + 1;
              if (r.kind === 'ok') {
                writer.ok(target(cookie));
                expected.push({ kind: 'ok', cookie });
              } else if (r.kind === 'read') {
                writer.readData(target(cookie), r.offset, r.data);
                lengths.set(cookie, r.data.length);
                expected.push({
                  kind: 'read',
                  cookie,
                  offset: structured ? r.offset : -1,
                  data: r.data.toString('base64'),
                });
              } else {
                writer.error(target(cookie), r.errno, r.message);
                expected.push({
                  kind: 'error',
                  cookie,
                  errno: r.errno,
                  message: structured ? Buffer.from(r.message).subarray(0, 4096).toString() : '',
                });
              }
              if (flushAfter) writer.flush();
            });
            writer.flush();
            expect(sink.corked).toBe(0);
            // Bytes handed to the socket must not change afterwards (the socket writes them later).
            for (const [i, w] of sink.writes.entries()) expect(w.equals(sink.snapshots[i]!)).toBe(true);
            const decoded = decode(Buffer.concat(sink.writes), (c) => lengths.get(c) ?? 0);
            expect(decoded).toEqual(expected);
          },
        ),
        { numRuns: 200 },
      );
    });
  }

  it('batches everything queued in one turn into a single corked write burst', async () => {
    const sink = new CollectingSink();
    const writer = new ReplyWriter(sink, true);
    for (let i = 0; i < 32; i++) writer.readData(target(i), i * 4096, Buffer.alloc(4096, i));
    expect(sink.writes).toHaveLength(0);
    await new Promise((r) => setImmediate(r));
    // Small reads are packed with their headers into the slab: one buffer for the whole batch.
    expect(sink.writes).toHaveLength(1);
    expect(sink.writes[0]!.length).toBe(32 * (28 + 4096));
  });

  it('sends large read payloads without copying them', () => {
    const sink = new CollectingSink();
    const writer = new ReplyWriter(sink, true);
    const data = Buffer.alloc(1 << 20, 1);
    writer.readData(target(1), 0, data);
    writer.flush();
    expect(sink.writes).toHaveLength(2);
    expect(sink.writes[1]).toBe(data);
  });

  it('copies a transient payload of any size before the call returns (the device reuses that memory)', () => {
    const sink = new CollectingSink();
    const writer = new ReplyWriter(sink, true);
    const small = Buffer.alloc(4096, 2);
    const large = Buffer.alloc(1 << 20, 3);
    writer.readData(target(1), 0, small, true);
    writer.readData(target(2), 4096, large, true);
    small.fill(0xee);
    large.fill(0xee);
    writer.flush();
    const replies = decode(Buffer.concat(sink.snapshots), () => 0);
    expect(replies).toEqual([
      { kind: 'read', cookie: 1, offset: 0, data: Buffer.alloc(4096, 2).toString('base64') },
      { kind: 'read', cookie: 2, offset: 4096, data: Buffer.alloc(1 << 20, 3).toString('base64') },
    ]);
  });

  it('reuses a full slab only after the socket reports its bytes written', () => {
    // A sink that, like a socket, keeps chunks until "written": at that moment their bytes must still
    // be what was handed over. The writer may then refill the slab.
    const pending: { chunk: Buffer; snapshot: Buffer }[] = [];
    const callbacks: (() => void)[] = [];
    let verified = 0;
    const sink: ReplySink = {
      writable: true,
      cork() {},
      uncork() {},
      write(chunk, done) {
        pending.push({ chunk, snapshot: Buffer.from(chunk) });
        if (done) callbacks.push(done);
        return true;
      },
    };
    const socketWritesEverything = () => {
      for (const p of pending.splice(0)) {
        expect(p.chunk.equals(p.snapshot)).toBe(true);
        verified++;
      }
      for (const cb of callbacks.splice(0)) cb();
    };
    const writer = new ReplyWriter(sink, true, 8192);
    const slabs = new Set<ArrayBufferLike>();
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 5; i++) writer.readData(target(round * 5 + i), i * 4096, Buffer.alloc(2048, round * 5 + i));
      writer.flush();
      for (const p of pending) slabs.add(p.chunk.buffer);
      // Half the rounds the socket lags one flush behind: unwritten slabs must not be touched.
      if (round % 2 === 1) socketWritesEverything();
    }
    socketWritesEverything();
    expect(verified).toBeGreaterThan(20);
    // 20 rounds × ~10 KiB through 8 KiB slabs: recycling keeps the number of distinct slabs small.
    expect(slabs.size).toBeLessThan(8);
  });

  it('drops replies once the socket is no longer writable', () => {
    const sink = new CollectingSink();
    const writer = new ReplyWriter(sink, false);
    sink.writable = false;
    writer.ok(target(1));
    writer.flush();
    expect(sink.writes).toHaveLength(0);
  });
});
