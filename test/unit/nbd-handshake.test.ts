import { describe, expect, it } from 'vitest';
import { IHAVEOPT, OPTION_REPLY_MAGIC, Opt, Rep } from '../../dataplane/frontend/nbd/constants.js';
import { Handshake, type HandshakeOutcome } from '../../dataplane/frontend/nbd/handshake.js';

const exp = { name: 'vol', description: 'a volume', size: () => 1 << 20 };

function option(opt: number, data: Buffer = Buffer.alloc(0), announcedLength = data.length): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(IHAVEOPT, 0);
  h.writeUInt32BE(opt, 8);
  h.writeUInt32BE(announcedLength, 12);
  return Buffer.concat([h, data]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function metaRequest(name: string, queries: string[]): Buffer {
  return Buffer.concat([
    u32(Buffer.byteLength(name)),
    Buffer.from(name),
    u32(queries.length),
    ...queries.flatMap((q) => [u32(Buffer.byteLength(q)), Buffer.from(q)]),
  ]);
}

function goRequest(name: string, infos: number[] = []): Buffer {
  const b = Buffer.alloc(4 + Buffer.byteLength(name) + 2 + 2 * infos.length);
  b.writeUInt32BE(Buffer.byteLength(name), 0);
  b.write(name, 4);
  b.writeUInt16BE(infos.length, 4 + Buffer.byteLength(name));
  infos.forEach((t, i) => {
    b.writeUInt16BE(t, 6 + Buffer.byteLength(name) + 2 * i);
  });
  return b;
}

interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

function decodeReplies(bytes: Buffer): OptionReply[] {
  const out: OptionReply[] = [];
  let p = 0;
  while (p < bytes.length) {
    expect(bytes.readBigUInt64BE(p)).toBe(OPTION_REPLY_MAGIC);
    const len = bytes.readUInt32BE(p + 16);
    out.push({
      option: bytes.readUInt32BE(p + 8),
      type: bytes.readUInt32BE(p + 12),
      data: bytes.subarray(p + 20, p + 20 + len),
    });
    p += 20 + len;
  }
  return out;
}

/** Runs a negotiation from the client-flags word on, delivering the bytes in `chunkSize` pieces. */
function negotiate(messages: Buffer[], chunkSize = Number.POSITIVE_INFINITY) {
  const sent: Buffer[] = [];
  const hs = new Handshake(exp, (b) => sent.push(b));
  const stream = Buffer.concat([u32(0b11), ...messages]);
  let outcome: HandshakeOutcome | null = null;
  for (let p = 0; p < stream.length && outcome === null; p += Math.min(chunkSize, stream.length)) {
    outcome = hs.push(stream.subarray(p, p + Math.min(chunkSize, stream.length)));
  }
  return { outcome, replies: decodeReplies(Buffer.concat(sent)) };
}

describe('Handshake', () => {
  it('negotiates byte by byte exactly like in one piece', () => {
    const msgs = [
      option(Opt.STRUCTURED_REPLY),
      option(Opt.SET_META_CONTEXT, metaRequest('vol', ['base:allocation'])),
      option(Opt.GO, goRequest('vol', [1, 2, 3])),
      Buffer.from('rest'),
    ];
    const whole = negotiate(msgs);
    const bytewise = negotiate(msgs, 1);
    expect(bytewise.replies).toEqual(whole.replies);
    expect(whole.outcome).toMatchObject({
      kind: 'transmission',
      session: { structuredReplies: true, baseAllocationId: 1, size: 1 << 20 },
    });
    if (whole.outcome?.kind === 'transmission') expect(whole.outcome.rest.toString()).toBe('rest');
    expect(whole.replies.map((r) => r.type)).toEqual([
      Rep.ACK,
      Rep.META_CONTEXT,
      Rep.ACK,
      Rep.INFO,
      Rep.INFO,
      Rep.INFO,
      Rep.INFO,
      Rep.ACK,
    ]);
  });

  it('refuses meta contexts before structured replies, and on malformed data', () => {
    const { replies } = negotiate([
      option(Opt.LIST_META_CONTEXT, metaRequest('vol', [])),
      option(Opt.STRUCTURED_REPLY),
      option(Opt.SET_META_CONTEXT, Buffer.concat([metaRequest('vol', ['base:allocation']), Buffer.from('x')])),
      option(Opt.SET_META_CONTEXT, metaRequest('other', ['base:allocation'])),
    ]);
    expect(replies.map((r) => r.type)).toEqual([Rep.ERR_INVALID, Rep.ACK, Rep.ERR_INVALID, Rep.ERR_UNKNOWN]);
  });

  it('lists base:allocation for an empty query or "base:", ignores unknown contexts when setting', () => {
    const { replies, outcome } = negotiate([
      option(Opt.STRUCTURED_REPLY),
      option(Opt.LIST_META_CONTEXT, metaRequest('', [])),
      option(Opt.LIST_META_CONTEXT, metaRequest('vol', ['base:', 'qemu:dirty-bitmap:x'])),
      option(Opt.SET_META_CONTEXT, metaRequest('vol', ['base:allocation'])),
      option(Opt.SET_META_CONTEXT, metaRequest('vol', ['x-unknown:thing'])),
      option(Opt.GO, goRequest('')),
    ]);
    expect(replies.map((r) => [r.type, r.data.subarray(4).toString()])).toEqual([
      [Rep.ACK, ''],
      [Rep.META_CONTEXT, 'base:allocation'],
      [Rep.ACK, ''],
      [Rep.META_CONTEXT, 'base:allocation'],
      [Rep.ACK, ''],
      [Rep.META_CONTEXT, 'base:allocation'],
      [Rep.ACK, ''],
      [Rep.ACK, ''], // the second SET selected nothing: it replaces the first
      [Rep.INFO, expect.any(String)],
      [Rep.INFO, expect.any(String)],
      [Rep.ACK, ''],
    ]);
    expect(outcome).toMatchObject({ kind: 'transmission', session: { baseAllocationId: null } });
  });

  it('answers malformed INFO/GO with ERR_INVALID, unknown names with ERR_UNKNOWN, and goes on', () => {
    const bad = goRequest('vol', [1]);
    const { replies, outcome } = negotiate([
      option(Opt.INFO, bad.subarray(0, bad.length - 1)),
      option(Opt.GO, goRequest('missing')),
      option(Opt.INFO, goRequest('vol', [2])),
    ]);
    expect(replies.map((r) => r.type)).toEqual([
      Rep.ERR_INVALID,
      Rep.ERR_UNKNOWN,
      Rep.INFO,
      Rep.INFO,
      Rep.INFO,
      Rep.ACK,
    ]);
    expect(replies[3]!.data.subarray(2).toString()).toBe('a volume');
    expect(outcome).toBeNull();
  });

  it('skips an oversized option with ERR_TOO_BIG, rejects LIST with data, answers unknown options ERR_UNSUP', () => {
    const { replies } = negotiate([
      option(Opt.LIST, Buffer.alloc(100_000), 100_000),
      option(Opt.LIST, Buffer.from('x')),
      option(99),
      option(Opt.STARTTLS),
      option(Opt.LIST),
    ]);
    expect(replies.map((r) => r.type)).toEqual([
      Rep.ERR_TOO_BIG,
      Rep.ERR_INVALID,
      Rep.ERR_UNSUP,
      Rep.ERR_UNSUP,
      Rep.SERVER,
      Rep.ACK,
    ]);
  });

  it('ABORT is acknowledged; unknown client flags and a bad option magic are rejected', () => {
    expect(negotiate([option(Opt.ABORT)])).toMatchObject({ outcome: { kind: 'abort' }, replies: [{ type: Rep.ACK }] });
    const flags = new Handshake(exp, () => {}).push(u32(0b111));
    expect(flags).toMatchObject({ kind: 'reject' });
    const magic = new Handshake(exp, () => {}).push(Buffer.concat([u32(0), Buffer.alloc(16, 0xee)]));
    expect(magic).toMatchObject({ kind: 'reject' });
  });
});
