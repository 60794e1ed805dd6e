// Fixed newstyle negotiation for one export. Pure state machine: bytes in, reply buffers out through
// `send`, and an outcome once the client enters transmission, aborts, or breaks the protocol.

import {
  BASE_ALLOCATION,
  BASE_ALLOCATION_ID,
  ClientFlag,
  HandshakeFlag,
  IHAVEOPT,
  Info,
  MAX_OPTION_LENGTH,
  MAX_PAYLOAD,
  MIN_BLOCK_SIZE,
  NBDMAGIC,
  OPTION_REPLY_MAGIC,
  Opt,
  PREFERRED_BLOCK_SIZE,
  Rep,
  TransmissionFlag,
} from './constants.js';

export interface ExportDescriptor {
  readonly name: string;
  readonly description: string | undefined;
  /** Read at every INFO/GO/EXPORT_NAME, so a grown volume shows on reconnect. */
  size(): number;
}

export interface Session {
  readonly exportName: string;
  readonly size: number;
  readonly transmissionFlags: number;
  readonly structuredReplies: boolean;
  /** Context id of base:allocation if the client selected it, else null. */
  readonly baseAllocationId: number | null;
}

export type HandshakeOutcome =
  /** Negotiation finished; `rest` holds bytes the client already sent for the transmission phase. */
  | { kind: 'transmission'; session: Session; rest: Buffer }
  /** The client sent NBD_OPT_ABORT (acknowledged). */
  | { kind: 'abort' }
  /** Protocol violation or an EXPORT_NAME for an unknown export: close without further replies. */
  | { kind: 'reject'; reason: string };

const BASE_TRANSMISSION_FLAGS =
  TransmissionFlag.HAS_FLAGS |
  TransmissionFlag.SEND_FLUSH |
  TransmissionFlag.SEND_FUA |
  TransmissionFlag.SEND_TRIM |
  TransmissionFlag.SEND_WRITE_ZEROES |
  TransmissionFlag.CAN_MULTI_CONN;

const OPTION_HEADER_SIZE = 16;
const KNOWN_CLIENT_FLAGS = ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES;

type Phase = 'client-flags' | 'option-header' | 'option-data' | 'skip';

export function greeting(): Buffer {
  const b = Buffer.allocUnsafe(18);
  b.writeBigUInt64BE(NBDMAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES, 16);
  return b;
}

export class Handshake {
  private buf: Buffer = Buffer.alloc(0);
  private phase: Phase = 'client-flags';
  private option = 0;
  private optionLength = 0;
  private skipRemaining = 0;
  private noZeroes = false;
  private structured = false;
  private baseAllocation = false;

  constructor(
    private readonly exp: ExportDescriptor,
    private readonly send: (reply: Buffer) => void,
  ) {}

  /** Feeds received bytes; returns an outcome once negotiation ends, null while it goes on. */
  push(chunk: Buffer): HandshakeOutcome | null {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      switch (this.phase) {
        case 'client-flags': {
          if (this.buf.length < 4) return null;
          const flags = this.buf.readUInt32BE(0);
          this.consume(4);
          if ((flags & ~KNOWN_CLIENT_FLAGS) !== 0) {
            return { kind: 'reject', reason: `unknown client flags 0x${flags.toString(16)}` };
          }
          this.noZeroes = (flags & ClientFlag.NO_ZEROES) !== 0;
          this.phase = 'option-header';
          break;
        }
        case 'option-header': {
          if (this.buf.length < OPTION_HEADER_SIZE) return null;
          if (this.buf.readBigUInt64BE(0) !== IHAVEOPT) return { kind: 'reject', reason: 'bad option magic' };
          this.option = this.buf.readUInt32BE(8);
          this.optionLength = this.buf.readUInt32BE(12);
          this.consume(OPTION_HEADER_SIZE);
          if (this.optionLength > MAX_OPTION_LENGTH) {
            if (this.option === Opt.EXPORT_NAME) return { kind: 'reject', reason: 'oversized EXPORT_NAME' };
            this.skipRemaining = this.optionLength;
            this.phase = 'skip';
          } else {
            this.phase = 'option-data';
          }
          break;
        }
        case 'option-data': {
          if (this.buf.length < this.optionLength) return null;
          const data = this.buf.subarray(0, this.optionLength);
          this.consume(this.optionLength);
          this.phase = 'option-header';
          const outcome = this.handleOption(this.option, data);
          if (outcome) return outcome;
          break;
        }
        case 'skip': {
          const n = Math.min(this.skipRemaining, this.buf.length);
          this.consume(n);
          this.skipRemaining -= n;
          if (this.skipRemaining > 0) return null;
          this.phase = 'option-header';
          this.reply(this.option, Rep.ERR_TOO_BIG, 'option too long');
          break;
        }
      }
    }
  }

  private consume(n: number): void {
    this.buf = this.buf.subarray(n);
  }

  private handleOption(option: number, data: Buffer): HandshakeOutcome | null {
    switch (option) {
      case Opt.EXPORT_NAME:
        return this.exportName(data);
      case Opt.ABORT:
        this.reply(option, Rep.ACK);
        return { kind: 'abort' };
      case Opt.LIST:
        this.list(data);
        return null;
      case Opt.INFO:
      case Opt.GO:
        return this.infoOrGo(option, data);
      case Opt.STRUCTURED_REPLY:
        if (data.length !== 0) {
          this.reply(option, Rep.ERR_INVALID, 'STRUCTURED_REPLY takes no data');
        } else {
          this.structured = true;
          this.reply(option, Rep.ACK);
        }
        return null;
      case Opt.LIST_META_CONTEXT:
      case Opt.SET_META_CONTEXT:
        this.metaContext(option, data);
        return null;
      case Opt.STARTTLS:
        this.reply(option, Rep.ERR_UNSUP, 'TLS is not supported');
        return null;
      default:
        this.reply(option, Rep.ERR_UNSUP, `option ${option} is not supported`);
        return null;
    }
  }

  private exportName(data: Buffer): HandshakeOutcome {
    const name = data.toString('utf8');
    if (!this.matches(name)) return { kind: 'reject', reason: `EXPORT_NAME for unknown export '${name}'` };
    const session = this.session();
    const b = Buffer.alloc(this.noZeroes ? 10 : 134);
    b.writeBigUInt64BE(BigInt(session.size), 0);
    b.writeUInt16BE(session.transmissionFlags, 8);
    this.send(b);
    return { kind: 'transmission', session, rest: this.buf };
  }

  private list(data: Buffer): void {
    if (data.length !== 0) {
      this.reply(Opt.LIST, Rep.ERR_INVALID, 'LIST takes no data');
      return;
    }
    const name = Buffer.from(this.exp.name, 'utf8');
    const details = Buffer.from(this.exp.description ?? '', 'utf8');
    const payload = Buffer.allocUnsafe(4 + name.length + details.length);
    payload.writeUInt32BE(name.length, 0);
    name.copy(payload, 4);
    details.copy(payload, 4 + name.length);
    this.reply(Opt.LIST, Rep.SERVER, payload);
    this.reply(Opt.LIST, Rep.ACK);
  }

  private infoOrGo(option: number, data: Buffer): HandshakeOutcome | null {
    if (data.length < 6) return this.invalid(option, 'truncated request');
    const nameLength = data.readUInt32BE(0);
    if (nameLength > data.length - 6) return this.invalid(option, 'name length past the end');
    const name = data.toString('utf8', 4, 4 + nameLength);
    const count = data.readUInt16BE(4 + nameLength);
    if (data.length !== 6 + nameLength + 2 * count) return this.invalid(option, 'wrong information request count');
    if (!this.matches(name)) {
      this.reply(option, Rep.ERR_UNKNOWN, `unknown export '${name}'`);
      return null;
    }
    const requested = new Set<number>();
    for (let i = 0; i < count; i++) requested.add(data.readUInt16BE(6 + nameLength + 2 * i));

    const session = this.session();
    const exportInfo = Buffer.allocUnsafe(12);
    exportInfo.writeUInt16BE(Info.EXPORT, 0);
    exportInfo.writeBigUInt64BE(BigInt(session.size), 2);
    exportInfo.writeUInt16BE(session.transmissionFlags, 10);
    this.reply(option, Rep.INFO, exportInfo);
    if (requested.has(Info.NAME)) {
      this.reply(option, Rep.INFO, Buffer.concat([u16(Info.NAME), Buffer.from(this.exp.name, 'utf8')]));
    }
    if (requested.has(Info.DESCRIPTION) && this.exp.description !== undefined) {
      this.reply(option, Rep.INFO, Buffer.concat([u16(Info.DESCRIPTION), Buffer.from(this.exp.description, 'utf8')]));
    }
    const blockSize = Buffer.allocUnsafe(14);
    blockSize.writeUInt16BE(Info.BLOCK_SIZE, 0);
    blockSize.writeUInt32BE(MIN_BLOCK_SIZE, 2);
    blockSize.writeUInt32BE(PREFERRED_BLOCK_SIZE, 6);
    blockSize.writeUInt32BE(MAX_PAYLOAD, 10);
    this.reply(option, Rep.INFO, blockSize);
    this.reply(option, Rep.ACK);
    return option === Opt.GO ? { kind: 'transmission', session, rest: this.buf } : null;
  }

  private metaContext(option: number, data: Buffer): void {
    if (!this.structured) {
      this.reply(option, Rep.ERR_INVALID, 'negotiate structured replies first');
      return;
    }
    const parsed = parseMetaContextRequest(data);
    if (parsed === null) {
      this.reply(option, Rep.ERR_INVALID, 'malformed meta context request');
      return;
    }
    if (!this.matches(parsed.exportName)) {
      this.reply(option, Rep.ERR_UNKNOWN, `unknown export '${parsed.exportName}'`);
      return;
    }
    if (option === Opt.LIST_META_CONTEXT) {
      const all = parsed.queries.length === 0;
      if (all || parsed.queries.some((q) => q === 'base:' || q === BASE_ALLOCATION)) {
        this.reply(option, Rep.META_CONTEXT, metaContextPayload(0, BASE_ALLOCATION));
      }
    } else {
      this.baseAllocation = parsed.queries.includes(BASE_ALLOCATION);
      if (this.baseAllocation) {
        this.reply(option, Rep.META_CONTEXT, metaContextPayload(BASE_ALLOCATION_ID, BASE_ALLOCATION));
      }
    }
    this.reply(option, Rep.ACK);
  }

  private invalid(option: number, message: string): null {
    this.reply(option, Rep.ERR_INVALID, message);
    return null;
  }

  private matches(name: string): boolean {
    return name === '' || name === this.exp.name;
  }

  private session(): Session {
    return {
      exportName: this.exp.name,
      size: this.exp.size(),
      transmissionFlags: BASE_TRANSMISSION_FLAGS | (this.structured ? TransmissionFlag.SEND_DF : 0),
      structuredReplies: this.structured,
      baseAllocationId: this.structured && this.baseAllocation ? BASE_ALLOCATION_ID : null,
    };
  }

  private reply(option: number, type: number, payload?: Buffer | string): void {
    const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : (payload ?? Buffer.alloc(0));
    const header = Buffer.allocUnsafe(20);
    header.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(type, 12);
    header.writeUInt32BE(data.length, 16);
    this.send(data.length === 0 ? header : Buffer.concat([header, data]));
  }
}

export interface MetaContextRequest {
  exportName: string;
  queries: string[];
}

/** Parses LIST/SET_META_CONTEXT data; null when the lengths do not add up. */
export function parseMetaContextRequest(data: Buffer): MetaContextRequest | null {
  if (data.length < 8) return null;
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 8) return null;
  const exportName = data.toString('utf8', 4, 4 + nameLength);
  const count = data.readUInt32BE(4 + nameLength);
  let p = 8 + nameLength;
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (data.length - p < 4) return null;
    const length = data.readUInt32BE(p);
    if (length > data.length - p - 4) return null;
    queries.push(data.toString('utf8', p + 4, p + 4 + length));
    p += 4 + length;
  }
  return p === data.length ? { exportName, queries } : null;
}

function metaContextPayload(id: number, name: string): Buffer {
  const text = Buffer.from(name, 'utf8');
  const b = Buffer.allocUnsafe(4 + text.length);
  b.writeUInt32BE(id, 0);
  text.copy(b, 4);
  return b;
}

function u16(v: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(v, 0);
  return b;
}
