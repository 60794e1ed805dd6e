import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cmd, REQUEST_HEADER_SIZE, REQUEST_MAGIC } from '../../dataplane/frontend/nbd/constants.js';
import { NbdProtocolError, type NbdRequest, RequestParser } from '../../dataplane/frontend/nbd/request-parser.js';

interface Spec {
  flags: number;
  type: number;
  cookieHi: number;
  cookieLo: number;
  offset: number;
  length: number;
  data: Buffer | null;
}

function encode(s: Spec): Buffer {
  const payload = s.type === Cmd.WRITE ? s.data! : Buffer.alloc(0);
  const b = Buffer.alloc(REQUEST_HEADER_SIZE + payload.length);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(s.flags, 4);
  b.writeUInt16BE(s.type, 6);
  b.writeUInt32BE(s.cookieHi, 8);
  b.writeUInt32BE(s.cookieLo, 12);
  b.writeUInt32BE(Math.floor(s.offset / 2 ** 32), 16);
  b.writeUInt32BE(s.offset >>> 0, 20);
  b.writeUInt32BE(s.length, 24);
  payload.copy(b, REQUEST_HEADER_SIZE);
  return b;
}

function plain(r: NbdRequest): Spec {
  return {
    flags: r.flags,
    type: r.type,
    cookieHi: r.cookieHi,
    cookieLo: r.cookieLo,
    offset: r.offset,
    length: r.length,
    data: r.type === Cmd.WRITE ? Buffer.from(r.data!) : null,
  };
}

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const common = {
  flags: fc.integer({ min: 0, max: 0xffff }),
  cookieHi: u32,
  cookieLo: u32,
  offset: fc.maxSafeInteger().map((n) => Math.abs(n)),
};
const writeRequest = fc
  .record({
    ...common,
    type: fc.constant<number>(Cmd.WRITE),
    data: fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
  })
  .map((r): Spec => ({ ...r, length: r.data.length }));
const otherRequest = fc
  .record({
    ...common,
    type: fc.integer({ min: 0, max: 0xffff }).filter((t) => t !== Cmd.WRITE),
    length: u32,
  })
  .map((r): Spec => ({ ...r, data: null }));
const requests = fc.array(fc.oneof(writeRequest, otherRequest), { minLength: 1, maxLength: 40 });

/** Cuts `stream` at the given (sorted, deduplicated) positions. */
function split(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, stream.length]) {
    // Copy each chunk so views into it are distinguishable from views into the whole stream.
    chunks.push(Buffer.from(stream.subarray(prev, p)));
    prev = p;
  }
  return chunks;
}

function parseAll(chunks: Buffer[], parser = new RequestParser()): NbdRequest[] {
  const out: NbdRequest[] = [];
  for (const c of chunks) parser.push(c, out);
  return out;
}

describe('RequestParser', () => {
  it('parses any split of a stream of valid requests exactly like the requests that were encoded', () => {
    fc.assert(
      fc.property(requests, fc.array(fc.nat(), { maxLength: 60 }), (specs, cuts) => {
        const stream = Buffer.concat(specs.map(encode));
        const parser = new RequestParser();
        const parsed = parseAll(split(stream, cuts), parser);
        expect(parsed.map(plain)).toEqual(specs);
        expect(parser.idle).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('parses byte-by-byte delivery', () => {
    fc.assert(
      fc.property(requests, (specs) => {
        const stream = Buffer.concat(specs.map(encode));
        const chunks = Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
        expect(parseAll(chunks).map(plain)).toEqual(specs);
      }),
      { numRuns: 50 },
    );
  });

  it('hands out WRITE payloads that arrive whole as views into the received chunk (no copy)', () => {
    fc.assert(
      fc.property(
        fc.array(
          writeRequest.filter((w) => w.length > 0),
          { minLength: 1, maxLength: 10 },
        ),
        (specs) => {
          const chunk = Buffer.concat(specs.map(encode));
          const out = parseAll([chunk]);
          expect(out).toHaveLength(specs.length);
          for (const r of out) {
            expect(r.data!.buffer).toBe(chunk.buffer);
            expect(r.data!.byteOffset).toBeGreaterThanOrEqual(chunk.byteOffset);
          }
        },
      ),
    );
  });

  it('reports everything before garbage, then a protocol error, and stays failed', () => {
    fc.assert(
      fc.property(
        requests,
        fc.uint8Array({ minLength: 4, maxLength: 64 }).filter((g) => Buffer.from(g).readUInt32BE(0) !== REQUEST_MAGIC),
        fc.array(fc.nat(), { maxLength: 20 }),
        (specs, garbage, cuts) => {
          const stream = Buffer.concat([...specs.map(encode), Buffer.from(garbage)]);
          const garbageAt = stream.length - garbage.length;
          const parser = new RequestParser();
          const out: NbdRequest[] = [];
          let error: unknown;
          for (const c of split(stream, cuts)) {
            try {
              parser.push(c, out);
            } catch (err) {
              error = err;
              break;
            }
          }
          // Garbage shorter than a header may simply wait for more bytes; it must never parse as a request.
          if (garbage.length >= REQUEST_HEADER_SIZE) expect(error).toBeInstanceOf(NbdProtocolError);
          expect(out.map(plain)).toEqual(specs);
          expect(garbageAt).toBeGreaterThan(0);
          if (error) expect(() => parser.push(encode(specs[0]!), [])).toThrow(NbdProtocolError);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('rejects random bytes that do not start with the request magic', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: REQUEST_HEADER_SIZE, maxLength: 512 }), (bytes) => {
        fc.pre(Buffer.from(bytes).readUInt32BE(0) !== REQUEST_MAGIC);
        expect(() => new RequestParser().push(Buffer.from(bytes), [])).toThrow(NbdProtocolError);
      }),
    );
  });

  it('treats a WRITE announcing more than the maximum payload as a protocol error', () => {
    const header = encode({
      flags: 0,
      type: Cmd.WRITE,
      cookieHi: 0,
      cookieLo: 1,
      offset: 0,
      length: 0,
      data: Buffer.alloc(0),
    });
    header.writeUInt32BE(1025, 24);
    expect(() => new RequestParser(1024).push(header, [])).toThrow(/exceeds the maximum/);
    const ok = Buffer.from(header);
    ok.writeUInt32BE(1024, 24);
    const out: NbdRequest[] = [];
    new RequestParser(1024).push(Buffer.concat([ok, Buffer.alloc(1024, 7)]), out);
    expect(out).toHaveLength(1);
    expect(out[0]!.data!.equals(Buffer.alloc(1024, 7))).toBe(true);
  });

  it('accepts large READ lengths (validated later, not a framing error)', () => {
    const out: NbdRequest[] = [];
    new RequestParser().push(
      encode({ flags: 0, type: Cmd.READ, cookieHi: 0, cookieLo: 1, offset: 0, length: 0xffff_ffff, data: null }),
      out,
    );
    expect(out[0]!.length).toBe(0xffff_ffff);
  });
});
