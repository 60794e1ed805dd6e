// One client connection: negotiation, then pipelined transmission. Every request starts as soon as it
// is parsed and is answered when its device promise settles, in whatever order that happens.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { type BlockDevice, BlockDeviceError } from '../../block-device.js';
import { encodeExtents } from './block-status.js';
import { Cmd, CmdFlag, NbdErrno } from './constants.js';
import { messageOf, nbdErrnoOf } from './device-errors.js';
import { type ExportDescriptor, greeting, Handshake, type Session } from './handshake.js';
import { ReplyWriter } from './reply-writer.js';
import { NbdProtocolError, type NbdRequest, RequestParser } from './request-parser.js';
import { validateRequest } from './request-validator.js';

/** Stop reading new requests while this many are in flight, or this many bytes are. */
const MAX_INFLIGHT_REQUESTS = 1024;
const MAX_INFLIGHT_BYTES = 256 * 1024 * 1024;
/** Stop reading while the socket holds this many unsent reply bytes (a client that does not read). */
const WRITE_HIGH_WATER = 64 * 1024 * 1024;
/** After our FIN, how long the client gets to close its side before the socket is destroyed. */
const LINGER_MS = 5_000;
/** A client that has not finished negotiating by then is dropped. */
const NEGOTIATION_TIMEOUT_MS = 30_000;

/**
 * handshake → transmission → draining (DISC received, or server shutdown: answer what is in flight)
 * → closed (FIN sent or socket gone).
 */
type State = 'handshake' | 'transmission' | 'draining' | 'closed';

export class NbdConnection {
  /** Resolves once the socket is fully closed. */
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private state: State = 'handshake';
  private handshake: Handshake | null;
  private session: Session | null = null;
  private parser: RequestParser | null = null;
  private writer: ReplyWriter | null = null;
  private readonly batch: NbdRequest[] = [];
  private inflight = 0;
  private inflightBytes = 0;
  private readPaused = false;
  /** While draining for a server shutdown, requests that still arrive are answered ESHUTDOWN. */
  private refuseNew = false;
  private timer: NodeJS.Timeout | null = null;
  /** Last-resort handler for a bug in the reply path: log it and drop this connection, never the process. */
  private readonly onInternalError = (err: unknown) => {
    this.log.error({ err }, 'internal error; closing connection');
    this.destroy();
  };

  constructor(
    private readonly socket: Socket,
    private readonly device: BlockDevice,
    exp: ExportDescriptor,
    private readonly log: Logger,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.handshake = new Handshake(exp, (reply) => this.sendNegotiationReply(reply));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.updateFlow());
    socket.on('error', (err) => this.log.debug({ err }, 'socket error'));
    socket.on('close', () => this.onClose());
    socket.write(greeting());
    this.timer = setTimeout(() => {
      this.log.warn('negotiation timed out; closing connection');
      this.destroy();
    }, NEGOTIATION_TIMEOUT_MS).unref();
    log.debug('client connected');
  }

  /**
   * Graceful stop: a negotiating client is dropped; a transmitting one has its in-flight requests
   * answered (new ones get ESHUTDOWN), then the socket is closed. Resolves once closed.
   */
  shutdown(): Promise<void> {
    if (this.state === 'handshake') {
      this.state = 'closed';
      this.socket.destroy();
    } else if (this.state === 'transmission') {
      this.refuseNew = true;
      this.beginDrain();
    }
    return this.closed;
  }

  /** Hard stop. */
  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    try {
      if (this.state === 'transmission') this.onRequests(chunk);
      else if (this.state === 'handshake') this.onNegotiation(chunk);
      else if (this.state === 'draining' && this.refuseNew) this.onRequests(chunk);
    } catch (err) {
      this.onInternalError(err);
    }
  }

  private sendNegotiationReply(reply: Buffer): void {
    if (this.socket.writable) this.socket.write(reply);
  }

  private onNegotiation(chunk: Buffer): void {
    const outcome = this.handshake!.push(chunk);
    if (outcome === null) return;
    this.handshake = null;
    this.clearTimer();
    switch (outcome.kind) {
      case 'reject':
        this.log.warn({ reason: outcome.reason }, 'negotiation failed; closing connection');
        this.endSocket();
        return;
      case 'abort':
        this.log.debug('client aborted negotiation');
        this.endSocket();
        return;
      case 'transmission': {
        const { session } = outcome;
        this.session = session;
        this.parser = new RequestParser();
        this.writer = new ReplyWriter(this.socket, session.structuredReplies);
        this.writer.onFlush = () => this.updateFlow();
        this.state = 'transmission';
        this.log.debug(
          {
            export: session.exportName,
            size: session.size,
            structuredReplies: session.structuredReplies,
            baseAllocation: session.baseAllocationId !== null,
          },
          'negotiated; entering transmission',
        );
        if (outcome.rest.length > 0) this.onRequests(outcome.rest);
        return;
      }
    }
  }

  private onRequests(chunk: Buffer): void {
    const batch = this.batch;
    try {
      this.parser!.push(chunk, batch);
    } catch (err) {
      batch.length = 0;
      if (!(err instanceof NbdProtocolError)) throw err;
      this.log.warn({ reason: err.message }, 'protocol violation; closing connection');
      this.state = 'closed';
      this.destroy();
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      const req = batch[i]!;
      if (req.type === Cmd.DISC) {
        this.log.debug({ inflight: this.inflight }, 'client sent DISC');
        this.refuseNew = false;
        this.beginDrain();
        break;
      }
      if (this.refuseNew) this.writer!.error(req, NbdErrno.ESHUTDOWN, 'server is shutting down');
      else this.dispatch(req);
    }
    batch.length = 0;
    this.updateFlow();
  }

  private dispatch(req: NbdRequest): void {
    const writer = this.writer!;
    const rejection = validateRequest(req, this.session!);
    if (rejection !== null) {
      this.log.debug({ command: req.type, offset: req.offset, length: req.length, ...rejection }, 'request rejected');
      writer.error(req, rejection.errno, rejection.message);
      return;
    }
    this.inflight++;
    if (req.type === Cmd.READ || req.type === Cmd.WRITE) this.inflightBytes += req.length;
    if (req.type === Cmd.READ) {
      // The hot path: a callback instead of two promise hops, and the device's bytes copied straight
      // into the reply.
      this.device.readView(req.offset, req.length, (err, view) => this.readDone(req, writer, err, view));
      return;
    }
    this.execute(req, writer).catch(this.onInternalError);
  }

  private readDone(req: NbdRequest, writer: ReplyWriter, err: Error | null, view: Buffer | null): void {
    try {
      if (err === null && view !== null && view.length !== req.length) {
        err = new BlockDeviceError(`device returned ${view.length} bytes for a ${req.length}-byte read`);
      }
      if (err !== null || view === null) {
        this.log.debug({ err, command: req.type, offset: req.offset, length: req.length }, 'request failed');
        writer.error(req, nbdErrnoOf(err), messageOf(err));
      } else {
        writer.readData(req, req.offset, view, true);
      }
      this.finished(req);
    } catch (bug) {
      this.onInternalError(bug);
    }
  }

  private async execute(req: NbdRequest, writer: ReplyWriter): Promise<void> {
    const fua = (req.flags & CmdFlag.FUA) !== 0;
    try {
      switch (req.type) {
        case Cmd.WRITE: {
          const data = req.data!;
          req.data = null;
          await this.device.write(req.offset, data, fua);
          writer.ok(req);
          break;
        }
        case Cmd.FLUSH:
          await this.device.flush();
          writer.ok(req);
          break;
        case Cmd.TRIM:
          await this.device.trim(req.offset, req.length);
          if (fua) await this.device.flush();
          writer.ok(req);
          break;
        case Cmd.WRITE_ZEROES:
          await this.device.writeZeroes(req.offset, req.length, fua);
          writer.ok(req);
          break;
        case Cmd.BLOCK_STATUS: {
          const extents = await this.device.blockStatus(req.offset, req.length);
          const encoded = encodeExtents(extents, req.length, (req.flags & CmdFlag.REQ_ONE) !== 0);
          writer.blockStatus(req, this.session!.baseAllocationId!, encoded.values, encoded.count);
          break;
        }
      }
    } catch (err) {
      this.log.debug({ err, command: req.type, offset: req.offset, length: req.length }, 'request failed');
      writer.error(req, nbdErrnoOf(err), messageOf(err));
    } finally {
      this.finished(req);
    }
  }

  private finished(req: NbdRequest): void {
    this.inflight--;
    if (req.type === Cmd.READ || req.type === Cmd.WRITE) this.inflightBytes -= req.length;
    if (this.state === 'draining') {
      if (this.inflight === 0) this.finishDrain();
    } else if (this.readPaused) {
      this.updateFlow();
    }
  }

  private beginDrain(): void {
    if (this.state !== 'transmission') return;
    this.state = 'draining';
    if (this.refuseNew) {
      if (this.readPaused) this.socket.resume();
    } else {
      this.socket.pause();
    }
    if (this.inflight === 0) this.finishDrain();
  }

  private finishDrain(): void {
    this.writer?.flush();
    this.endSocket();
  }

  /** Sends FIN after everything queued; destroys the socket if the client does not close its side. */
  private endSocket(): void {
    this.state = 'closed';
    this.socket.end();
    this.clearTimer();
    this.timer = setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private updateFlow(): void {
    if (this.state !== 'transmission') return;
    const pause =
      this.inflight >= MAX_INFLIGHT_REQUESTS ||
      this.inflightBytes >= MAX_INFLIGHT_BYTES ||
      this.socket.writableLength >= WRITE_HIGH_WATER;
    if (pause && !this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    } else if (!pause && this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  private onClose(): void {
    this.state = 'closed';
    this.clearTimer();
    this.log.debug({ inflight: this.inflight }, 'connection closed');
    this.resolveClosed();
  }
}
