// The data protocol codec (dataplane/protocol/frame.ts) and the batched writer beside it.
import type { Socket } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  encodeHeader,
  type Frame,
  FrameDecoder,
  type FrameHeader,
  HEADER_SIZE,
  MAGIC_VERSION,
  MAX_PAYLOAD,
  MessageType,
  ProtocolError,
  readHeader,
  writeFrameHeader,
  writeHeader,
} from '../../dataplane/protocol/frame.js';
import { FrameWriter } from '../../dataplane/protocol/frame-writer.js';

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const offsetArb = fc.oneof(
  fc.integer({ min: 0, max: 0xffff_ffff }),
  fc.constantFrom(0, 0xffff_ffff, 0x1_0000_0000, 2 ** 40 + 4096, Number.MAX_SAFE_INTEGER),
  fc.maxSafeNat(),
);
const headerArb: fc.Arbitrary<FrameHeader> = fc.record({
  seq: u32,
  type: u32,
  offset: offsetArb,
  size: u32,
  dataLength: fc.integer({ min: 0, max: MAX_PAYLOAD }),
});

interface TestFrame {
  seq: number;
  type: number;
  offset: number;
  size: number;
  data: Uint8Array;
}
const frameArb: fc.Arbitrary<TestFrame> = fc.record({
  seq: u32,
  type: fc.integer({ min: 0, max: 12 }),
  offset: offsetArb,
  size: u32,
  data: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 300 })),
});

function encodeFrame(f: TestFrame): Buffer {
  const b = Buffer.alloc(HEADER_SIZE + f.data.length);
  writeFrameHeader(b, 0, f.seq, f.type, f.offset, f.size, f.data.length);
  b.set(f.data, HEADER_SIZE);
  return b;
}

/** Plain copies of what the decoder handed out (its views may share memory). */
function collect(): { frames: TestFrame[]; decoder: FrameDecoder } {
  const frames: TestFrame[] = [];
  const decoder = new FrameDecoder((f: Frame) => {
    expect(f.data.length).toBe(f.dataLength);
    frames.push({ seq: f.seq, type: f.type, offset: f.offset, size: f.size, data: new Uint8Array(f.data) });
  });
  return { frames, decoder };
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, buf.length]) {
    // Fresh buffers per chunk, like a socket: nothing may depend on chunks sharing memory.
    chunks.push(Buffer.from(buf.subarray(prev, p)));
    prev = p;
  }
  return chunks;
}

describe('frame header', () => {
  it('round-trips every field, at any position in a buffer', () => {
    fc.assert(
      fc.property(headerArb, fc.nat({ max: 64 }), (h, at) => {
        const b = Buffer.alloc(at + HEADER_SIZE + 7, 0xee);
        writeHeader(b, at, h);
        expect(readHeader(b, at)).toEqual(h);
        expect(readHeader(encodeHeader(h), 0)).toEqual(h);
        // Nothing written outside the 26 header bytes.
        expect(b.subarray(0, at).every((x) => x === 0xee)).toBe(true);
        expect(b.subarray(at + HEADER_SIZE).every((x) => x === 0xee)).toBe(true);
      }),
    );
  });

  it("keeps Longhorn's dataconn layout (little-endian, 26 bytes)", () => {
    const b = encodeHeader({ seq: 0x01020304, type: MessageType.Write, offset: 2 ** 32 + 5, size: 9, dataLength: 9 });
    expect(b.toString('hex')).toBe(
      ['011b', '04030201', '01000000', '0500000001000000', '09000000', '09000000'].join(''),
    );
    expect(b.length).toBe(HEADER_SIZE);
  });

  it('refuses a bad magic', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }).filter((m) => m !== MAGIC_VERSION),
        headerArb,
        (magic, h) => {
          const b = encodeHeader(h);
          b.writeUInt16LE(magic, 0);
          expect(() => readHeader(b, 0)).toThrow(ProtocolError);
        },
      ),
    );
  });

  it('refuses a payload beyond MAX_PAYLOAD and an offset beyond 2^53', () => {
    fc.assert(
      fc.property(headerArb, fc.integer({ min: MAX_PAYLOAD + 1, max: 0xffff_ffff }), (h, len) => {
        const b = encodeHeader(h);
        b.writeUInt32LE(len, 22);
        expect(() => readHeader(b, 0)).toThrow(ProtocolError);
      }),
    );
    const b = encodeHeader({ seq: 1, type: 0, offset: 0, size: 0, dataLength: 0 });
    b.writeUInt32LE(0x20_0000, 14);
    expect(() => readHeader(b, 0)).toThrow(ProtocolError);
    b.writeUInt32LE(0xffff_ffff, 14);
    expect(() => readHeader(b, 0)).toThrow(ProtocolError);
  });

  it('refuses to encode fields that do not fit rather than truncating them', () => {
    const b = Buffer.alloc(HEADER_SIZE);
    expect(() => writeFrameHeader(b, 0, 1, 0, -1, 0, 0)).toThrow(RangeError);
    expect(() => writeFrameHeader(b, 0, 1, 0, 1.5, 0, 0)).toThrow(RangeError);
    expect(() => writeFrameHeader(b, 0, 1, 0, 2 ** 53, 0, 0)).toThrow(RangeError);
    expect(() => writeFrameHeader(b, 0, 1, 0, 0, 2 ** 32, 0)).toThrow(RangeError);
    expect(() => writeFrameHeader(b, 0, 2 ** 32, 0, 0, 0, 0)).toThrow(RangeError);
  });
});

describe('FrameDecoder', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('decodes a stream split at arbitrary points exactly as the frames were sent', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, cuts) => {
        const stream = Buffer.concat(frames.map(encodeFrame));
        const { frames: got, decoder } = collect();
        for (const chunk of splitAt(stream, cuts)) decoder.push(chunk);
        expect(got).toEqual(frames);
        expect(decoder.pendingBytes).toBe(0);
      }),
    );
  });

  it('decodes chunks that live in one reused receive buffer (transient), as a socket onread gives them', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, cuts) => {
        const stream = Buffer.concat(frames.map(encodeFrame));
        const { frames: got, decoder } = collect();
        const receive = Buffer.alloc(stream.length + 1);
        for (const chunk of splitAt(stream, cuts)) {
          chunk.copy(receive);
          decoder.push(receive.subarray(0, chunk.length), true);
          // The next read overwrites the buffer: anything the decoder kept must have been copied.
          receive.fill(0xa5);
        }
        expect(got).toEqual(frames);
        expect(decoder.pendingBytes).toBe(0);
      }),
    );
  });

  it('decodes a stream fed one byte at a time', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 5 }), (frames) => {
        const stream = Buffer.concat(frames.map(encodeFrame));
        const { frames: got, decoder } = collect();
        for (let i = 0; i < stream.length; i++) decoder.push(stream.subarray(i, i + 1));
        expect(got).toEqual(frames);
      }),
      { numRuns: 30 },
    );
  });

  it('holds a partial frame back until its last byte arrives', () => {
    const f: TestFrame = {
      seq: 7,
      type: MessageType.Write,
      offset: 4096,
      size: 100,
      data: new Uint8Array(100).fill(3),
    };
    const enc = encodeFrame(f);
    const { frames: got, decoder } = collect();
    decoder.push(enc.subarray(0, HEADER_SIZE + 99));
    expect(got).toEqual([]);
    expect(decoder.pendingBytes).toBe(HEADER_SIZE + 99);
    decoder.push(enc.subarray(HEADER_SIZE + 99));
    expect(got).toEqual([f]);
  });

  it('hands out payloads of a whole chunk as views, without copying', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((f) => frames.push(f));
    const chunk = Buffer.concat([
      encodeFrame({ seq: 1, type: 1, offset: 0, size: 4, data: Buffer.from('abcd') }),
      encodeFrame({ seq: 2, type: 1, offset: 4, size: 4, data: Buffer.from('efgh') }),
    ]);
    decoder.push(chunk);
    expect(frames.map((f) => f.data.toString())).toEqual(['abcd', 'efgh']);
    for (const f of frames) expect(f.data.buffer).toBe(chunk.buffer);
  });

  it('joins a large payload split into many chunks with a bounded number of copies', () => {
    const payload = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4096) payload.writeUInt32LE(i, i);
    const enc = encodeFrame({ seq: 9, type: 1, offset: 0, size: payload.length, data: payload });
    const concat = vi.spyOn(Buffer, 'concat');
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((f) => frames.push(f));
    for (let at = 0; at < enc.length; at += 65536) decoder.push(Buffer.from(enc.subarray(at, at + 65536)));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.data.equals(payload)).toBe(true);
    // One copy when the frame completes (two at most), not one per 64 KiB chunk (64 here).
    expect(concat.mock.calls.length).toBeLessThanOrEqual(2);
  });

  it('throws ProtocolError on garbage, as soon as a header is complete', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: HEADER_SIZE, maxLength: 200 }), (bytes) => {
        fc.pre(Buffer.from(bytes).readUInt16LE(0) !== MAGIC_VERSION);
        const decoder = new FrameDecoder(() => {
          throw new Error('no frame expected');
        });
        expect(() => decoder.push(Buffer.from(bytes))).toThrow(ProtocolError);
      }),
    );
    // A bad header after good frames: the good ones are delivered first.
    const { frames: got, decoder } = collect();
    const good = encodeFrame({ seq: 1, type: MessageType.Ping, offset: 0, size: 0, data: new Uint8Array(0) });
    const bad = encodeHeader({ seq: 2, type: 0, offset: 0, size: 0, dataLength: 0 });
    bad.writeUInt16LE(0xdead, 0);
    decoder.push(Buffer.concat([good, bad.subarray(0, 10)]));
    expect(got).toHaveLength(1);
    expect(() => decoder.push(bad.subarray(10))).toThrow(/bad magic/);
  });

  it('refuses an oversized payload before receiving it', () => {
    const decoder = new FrameDecoder(() => {});
    const h = encodeHeader({ seq: 1, type: MessageType.Write, offset: 0, size: 0, dataLength: 0 });
    h.writeUInt32LE(MAX_PAYLOAD + 1, 22);
    expect(() => decoder.push(h)).toThrow(ProtocolError);
  });

  it('keeps the frames after one whose handler threw for the next push', () => {
    const frames = [1, 2, 3].map((seq) => ({ seq, type: 6, offset: 0, size: 0, data: Buffer.from([seq]) }));
    const seen: number[] = [];
    let throwOn = 2;
    const decoder = new FrameDecoder((f) => {
      seen.push(f.seq);
      if (f.seq === throwOn) {
        throwOn = -1;
        throw new Error('handler failed');
      }
    });
    expect(() => decoder.push(Buffer.concat(frames.map(encodeFrame)))).toThrow('handler failed');
    expect(seen).toEqual([1, 2]);
    decoder.push(Buffer.alloc(0));
    expect(seen).toEqual([1, 2, 3]);
  });
});

class FakeSocket {
  destroyed = false;
  writable = true;
  writableNeedDrain = false;
  corked = 0;
  batches: Buffer[][] = [];
  private current: Buffer[] | null = null;

  cork(): void {
    this.corked++;
    this.current ??= [];
  }
  uncork(): void {
    this.corked--;
    if (this.corked === 0 && this.current) {
      this.batches.push(this.current);
      this.current = null;
    }
  }
  write(b: Buffer): boolean {
    if (this.current) this.current.push(b);
    else this.batches.push([b]);
    return true;
  }
}

describe('FrameWriter', () => {
  it('sends everything queued in one event-loop turn as one batch, payloads uncopied after their headers', async () => {
    const sock = new FakeSocket();
    const w = new FrameWriter(sock as unknown as Socket);
    const p1 = Buffer.from('payload-one');
    const p2 = Buffer.from('two');
    w.push(1, MessageType.Response, 0, 0);
    w.push(2, MessageType.Response, 4096, p1.length, p1);
    w.push(3, MessageType.Response, 0, 0);
    w.push(4, MessageType.Response, 0, 0);
    w.push(5, MessageType.Response, 8192, p2.length, p2);
    expect(sock.batches).toHaveLength(0);
    await new Promise((r) => setImmediate(r));
    expect(sock.batches).toHaveLength(1);
    const batch = sock.batches[0]!;
    // Headers side by side, payloads as the very buffers given: [h1 h2] p1 [h3 h4 h5] p2.
    expect(batch).toHaveLength(4);
    expect(batch[1]).toBe(p1);
    expect(batch[3]).toBe(p2);
    expect(batch[0]!.length).toBe(2 * HEADER_SIZE);
    expect(batch[2]!.length).toBe(3 * HEADER_SIZE);
    const { frames, decoder } = collect();
    decoder.push(Buffer.concat(batch));
    expect(frames.map((f) => [f.seq, f.offset, Buffer.from(f.data).toString()])).toEqual([
      [1, 0, ''],
      [2, 4096, 'payload-one'],
      [3, 0, ''],
      [4, 0, ''],
      [5, 8192, 'two'],
    ]);
    w.push(6, MessageType.Response, 0, 0);
    await new Promise((r) => setImmediate(r));
    expect(sock.batches).toHaveLength(2);
  });

  it('never overwrites headers already handed to the socket', async () => {
    const sock = new FakeSocket();
    const w = new FrameWriter(sock as unknown as Socket);
    // More headers than one scratch buffer holds, over several ticks.
    const sent: number[] = [];
    for (let tick = 0; tick < 5; tick++) {
      for (let i = 0; i < 400; i++) {
        const seq = tick * 1000 + i;
        sent.push(seq);
        w.push(seq, MessageType.Response, seq * 4096, i);
      }
      await new Promise((r) => setImmediate(r));
    }
    const { frames, decoder } = collect();
    for (const batch of sock.batches) for (const b of batch) decoder.push(b);
    expect(frames.map((f) => f.seq)).toEqual(sent);
    expect(frames.every((f) => f.offset === f.seq * 4096)).toBe(true);
  });

  it('with flushEvery N, writes every N frames at once and the rest at the end of the turn', async () => {
    const sock = new FakeSocket();
    const w = new FrameWriter(sock as unknown as Socket, undefined, 3);
    const payload = Buffer.from('data');
    for (let seq = 1; seq <= 7; seq++) {
      w.push(seq, MessageType.Response, seq * 4096, seq % 2 ? payload.length : 0, seq % 2 ? payload : undefined);
      // Frames 1-3 and 4-6 leave as soon as the third of each is queued, inside this turn.
      expect(sock.batches).toHaveLength(Math.floor(seq / 3));
    }
    await new Promise((r) => setImmediate(r));
    expect(sock.batches).toHaveLength(3);
    const { frames, decoder } = collect();
    for (const batch of sock.batches) for (const b of batch) decoder.push(b);
    expect(frames.map((f) => [f.seq, Buffer.from(f.data).toString()])).toEqual([
      [1, 'data'],
      [2, ''],
      [3, 'data'],
      [4, ''],
      [5, 'data'],
      [6, ''],
      [7, 'data'],
    ]);
  });

  it('reports a saturated socket and writes nothing to a destroyed one', async () => {
    const sock = new FakeSocket();
    const saturated = vi.fn();
    const w = new FrameWriter(sock as unknown as Socket, saturated);
    sock.writableNeedDrain = true;
    w.push(1, MessageType.Response, 0, 0);
    expect(w.flush()).toBe(false);
    expect(saturated).toHaveBeenCalledTimes(1);
    sock.destroyed = true;
    w.push(2, MessageType.Response, 0, 0);
    expect(w.flush()).toBe(false);
    expect(sock.batches).toHaveLength(1);
  });
});
