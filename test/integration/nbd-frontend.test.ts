// The NBD server driven by real NBD clients (libnbd tools, qemu-img, fio) and by raw sockets, over a
// MemoryBlockDevice test double. A missing client tool fails the test (spawn ENOENT), it never skips.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockDeviceError } from '../../dataplane/block-device.js';
import { NbdServer } from '../../dataplane/frontend/nbd/server.js';
import { MemoryBlockDevice } from '../helpers/memory-device.js';

const MiB = 1024 * 1024;
const EXPORT = 'vol';

// ---------------------------------------------------------------------------------------------------
// Child processes: every one is tracked and killed by PID in afterAll.

const children = new Set<ChildProcess>();

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => {
      stdout += d;
    });
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      children.delete(child);
      reject(new Error(`cannot run '${cmd}' (is it installed?): ${err.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

async function runOk(cmd: string, args: string[], opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** nbdsh must run on the system python (a pyenv python3 without the nbd module comes first on PATH). */
const nbdshEnv = { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` };
function nbdsh(uri: string, script: string) {
  return runOk('nbdsh', ['-u', uri, '-c', script], { env: nbdshEnv });
}

// ---------------------------------------------------------------------------------------------------
// Servers under test, with their warn-level log lines captured.

interface Harness {
  device: MemoryBlockDevice;
  server: NbdServer;
  port: number;
  socketPath: string;
  tcpUri: string;
  unixUri: string;
  warnings: string[];
}

const servers: NbdServer[] = [];
let dir: string;
let nextSocket = 0;

async function startServer(size: number): Promise<Harness> {
  const device = new MemoryBlockDevice(size);
  const warnings: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) {
        if (line && JSON.parse(line).level >= 40) warnings.push(line);
      }
      cb();
    },
  });
  const logger = pino({ level: process.env.NBD_TEST_LOG ?? 'warn' }, sink);
  const server = new NbdServer({ exportName: EXPORT, description: 'shorthorn test volume', device, logger });
  servers.push(server);
  const { port } = await server.listenTcp('127.0.0.1', 0);
  const socketPath = join(dir, `nbd-${nextSocket++}.sock`);
  await server.listenUnix(socketPath);
  return {
    device,
    server,
    port,
    socketPath,
    tcpUri: `nbd://127.0.0.1:${port}/${EXPORT}`,
    unixUri: `nbd+unix:///${EXPORT}?socket=${socketPath}`,
    warnings,
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shorthorn-nbd-'));
});

afterAll(async () => {
  for (const child of children) {
    if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  }
  await Promise.all(servers.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------
// A minimal raw NBD client for the cases real clients will not produce.

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const OPT = { EXPORT_NAME: 1, LIST: 3, GO: 7, STRUCTURED_REPLY: 8 };
const REP = { ACK: 1, SERVER: 2, INFO: 3, ERR_UNSUP: 0x8000_0001, ERR_UNKNOWN: 0x8000_0006 };
const CMD = { READ: 0, WRITE: 1, DISC: 2 };

class RawClient {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiter?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.ended = true;
        this.waiter?.();
        resolve();
      });
    });
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.ended) throw new Error(`connection closed while waiting for ${n} bytes`);
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
      this.waiter = null;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  send(b: Buffer): void {
    this.socket.write(b);
  }

  /** Reads the greeting and answers with client flags. */
  async greet(clientFlags = 0b11): Promise<void> {
    const g = await this.read(18);
    expect(g.readBigUInt64BE(0)).toBe(NBDMAGIC);
    expect(g.readBigUInt64BE(8)).toBe(IHAVEOPT);
    expect(g.readUInt16BE(16)).toBe(0b11);
    const f = Buffer.alloc(4);
    f.writeUInt32BE(clientFlags);
    this.send(f);
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(IHAVEOPT, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(data.length, 12);
    this.send(Buffer.concat([h, data]));
  }

  async optionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const h = await this.read(20);
    expect(h.readBigUInt64BE(0)).toBe(REPLY_MAGIC);
    const data = Buffer.from(await this.read(h.readUInt32BE(16)));
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data };
  }

  /** GO for `name`; returns the final reply type (ACK or an error) and the export size if given. */
  async go(name: string): Promise<{ type: number; size?: number }> {
    const n = Buffer.from(name);
    const d = Buffer.alloc(4 + n.length + 2);
    d.writeUInt32BE(n.length, 0);
    n.copy(d, 4);
    this.sendOption(OPT.GO, d);
    let size: number | undefined;
    for (;;) {
      const r = await this.optionReply();
      if (r.type === REP.INFO && r.data.readUInt16BE(0) === 0) size = Number(r.data.readBigUInt64BE(2));
      if (r.type !== REP.INFO) return { type: r.type, size };
    }
  }

  async negotiate(): Promise<void> {
    await this.greet();
    expect((await this.go(EXPORT)).type).toBe(REP.ACK);
  }

  request(type: number, cookie: number, offset: number, length: number, data?: Buffer, flags = 0): void {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(REQUEST_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(BigInt(cookie), 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    this.send(data ? Buffer.concat([h, data]) : h);
  }

  /** A simple reply (no structured replies negotiated); `dataLength` bytes follow a successful READ. */
  async simpleReply(dataLength = 0): Promise<{ errno: number; cookie: number; data: Buffer }> {
    const h = await this.read(16);
    expect(h.readUInt32BE(0)).toBe(SIMPLE_REPLY_MAGIC);
    const errno = h.readUInt32BE(4);
    const data = errno === 0 && dataLength > 0 ? Buffer.from(await this.read(dataLength)) : Buffer.alloc(0);
    return { errno, cookie: Number(h.readBigUInt64BE(8)), data };
  }

  destroy(): void {
    this.socket.destroy();
  }
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------------------------------------------

describe('NBD frontend with real clients', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startServer(64 * MiB);
  });

  it('nbdinfo reports size, flags, block sizes and base:allocation over TCP and unix sockets', async () => {
    for (const uri of [h.tcpUri, h.unixUri]) {
      const info = JSON.parse((await runOk('nbdinfo', ['--json', uri])).stdout);
      expect(info.protocol).toBe('newstyle-fixed');
      expect(info.structured).toBe(true);
      const e = info.exports[0];
      expect(e['export-name']).toBe(EXPORT);
      expect(e.description).toBe('shorthorn test volume');
      expect(e['export-size']).toBe(64 * MiB);
      expect(e.contexts).toEqual(['base:allocation']);
      expect(e).toMatchObject({
        is_read_only: false,
        can_flush: true,
        can_fua: true,
        can_trim: true,
        can_zero: true,
        can_multi_conn: true,
        block_size_minimum: 1,
        block_size_preferred: 4096,
        block_size_maximum: 32 * MiB,
      });
    }
  });

  it('nbdinfo --list lists the export with its description; an unknown export name is refused', async () => {
    const list = JSON.parse((await runOk('nbdinfo', ['--list', '--json', `nbd://127.0.0.1:${h.port}`])).stdout);
    expect(list.exports.map((e: { 'export-name': string }) => e['export-name'])).toEqual([EXPORT]);
    expect(list.exports[0].description).toBe('shorthorn test volume');

    const wrong = await run('nbdinfo', [`nbd://127.0.0.1:${h.port}/nope`]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/nope/);
  });

  it('nbdinfo --map shows holes and data as written', async () => {
    const m = await startServer(8 * MiB);
    await m.device.write(0, Buffer.alloc(8192, 1), false);
    await m.device.write(4 * MiB, Buffer.alloc(4096, 2), false);
    const { stdout } = await runOk('nbdinfo', ['--map', m.unixUri]);
    const rows = stdout
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/));
    expect(rows).toEqual([
      ['0', '8192', '0', 'data'],
      ['8192', String(4 * MiB - 8192), '3', 'hole,zero'],
      [String(4 * MiB), '4096', '0', 'data'],
      [String(4 * MiB + 4096), String(4 * MiB - 4096), '3', 'hole,zero'],
    ]);
  });

  it('nbdcopy copies 16 MiB of random data in and out intact; qemu-img compare agrees', async () => {
    const c = await startServer(16 * MiB);
    const src = join(dir, 'random.bin');
    const out = join(dir, 'copy.bin');
    await writeFile(src, randomBytes(16 * MiB));
    await runOk('nbdcopy', [src, c.tcpUri]);
    await runOk('nbdcopy', [c.unixUri, out]);
    await runOk('cmp', [src, out]);
    const cmp = await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, c.tcpUri]);
    expect(cmp.stdout).toMatch(/identical/);
    // A changed byte must be noticed: the comparison is real.
    await c.device.write(5 * MiB, Buffer.from([0x55]), false);
    const differ = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, c.tcpUri]);
    expect(differ.code).toBe(1);
  });

  it('fio randrw with crc32c verification reports no errors', async () => {
    const f = await startServer(32 * MiB);
    const { stdout } = await runOk(
      'fio',
      [
        '--name=verify',
        '--ioengine=nbd',
        `--uri=${f.tcpUri}`,
        '--rw=randrw',
        '--bs=4k',
        '--iodepth=32',
        '--size=32M',
        '--verify=crc32c',
        '--verify_state_save=0',
        '--runtime=3',
        '--time_based',
        '--output-format=normal',
      ],
      { timeoutMs: 30_000 },
    );
    expect(stdout).toMatch(/err= 0/);
    expect(stdout).not.toMatch(/verify: bad/);
    expect(stdout).toMatch(/read: IOPS=/);
    expect(stdout).toMatch(/write: IOPS=/);
  });

  it('nbdsh: bad requests get errors (EINVAL, ENOSPC, EOVERFLOW) and the same handle keeps working', async () => {
    const script = `
import errno, nbd
h.set_strict_mode(0)
size = h.get_size()
def err(fn):
    try:
        fn()
    except nbd.Error as e:
        return e.errno if isinstance(e.errno, str) else errno.errorcode[e.errno]
    return 'no error'
got = {
  'read_oob': err(lambda: h.pread(4096, size - 1024)),
  'write_oob': err(lambda: h.pwrite(b'x' * 4096, size)),
  'read_too_big': err(lambda: h.pread(33 * 1024 * 1024, 0)),
  'unknown_flag': err(lambda: h.pread(4096, 0, flags=1 << 6)),
  'zero_length': err(lambda: h.pread(0, 0)),
  'no_meta_context': err(lambda: h.block_status(4096, 0, lambda *a: 0)),
}
expected = {'read_oob': 'EINVAL', 'write_oob': 'ENOSPC', 'read_too_big': 'EOVERFLOW',
            'unknown_flag': 'EINVAL', 'zero_length': 'EINVAL', 'no_meta_context': 'EINVAL'}
assert got == expected, got
h.pwrite(b'A' * 4096, 8192, nbd.CMD_FLAG_FUA)
assert h.pread(4096, 8192) == b'A' * 4096
h.flush()
print('OK')
`;
    expect((await nbdsh(h.tcpUri, script)).stdout.trim()).toBe('OK');
  });

  it('nbdsh: writes, FUA, flush, trim, write-zeroes and block status with REQ_ONE reach the device', async () => {
    const d = await startServer(4 * MiB);
    d.device.record = true;
    const script = `
import nbd
h2 = nbd.NBD()
h2.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h2.connect_uri(${JSON.stringify(d.unixUri)})
assert h2.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h2.pwrite(b'B' * 65536, 0)
h2.pwrite(b'C' * 4096, 1048576, nbd.CMD_FLAG_FUA)
h2.zero(8192, 0, nbd.CMD_FLAG_FUA)
h2.trim(16384, 32768)
h2.flush()
assert h2.pread(65536, 0) == b'\\0' * 8192 + b'B' * 24576 + b'\\0' * 16384 + b'B' * 16384
ext = []
h2.block_status(4 * 1048576, 0, lambda ctx, off, e, err: ext.append((ctx, list(e))) or 0)
one = []
h2.block_status(4 * 1048576, 0, lambda ctx, off, e, err: one.append(list(e)) or 0, nbd.CMD_FLAG_REQ_ONE)
print(ext)
print(one)
h2.shutdown()
`;
    const { stdout } = await nbdsh(d.tcpUri, script);
    const [all, one] = stdout.trim().split('\n');
    // The 8 KiB zeroed at offset 0 and the 32 KiB trimmed at 16 KiB are holes; the 4 KiB at 1 MiB is data.
    expect(all).toBe("[('base:allocation', [8192, 3, 24576, 0, 16384, 3, 16384, 0, 983040, 3, 4096, 0, 3141632, 3])]");
    expect(one).toBe('[[8192, 3]]');
    const ops = d.device.calls.map((c) => `${c.op}${c.fua ? '+fua' : ''}`);
    expect(ops).toEqual(
      expect.arrayContaining(['write', 'write+fua', 'writeZeroes+fua', 'trim', 'flush', 'blockStatus']),
    );
  });

  it('device errors reach the client with their errno', async () => {
    const e = await startServer(4 * MiB);
    e.device.failWith = (call) => {
      if (call.op === 'read' && call.offset === MiB) return new BlockDeviceError('disk on fire');
      if (call.op === 'write' && call.offset === 2 * MiB) return new BlockDeviceError('full', 'ENOSPC');
      if (call.op === 'flush') return new Error('not a BlockDeviceError') as BlockDeviceError;
      return undefined;
    };
    const script = `
import errno, nbd
def err(fn):
    try:
        fn()
    except nbd.Error as e:
        return e.errno if isinstance(e.errno, str) else errno.errorcode[e.errno]
    return 'no error'
print(err(lambda: h.pread(4096, 1048576)), err(lambda: h.pwrite(b'x' * 512, 2 * 1048576)), err(lambda: h.flush()))
assert h.pread(4, 0) == b'\\0' * 4
`;
    expect((await nbdsh(e.tcpUri, script)).stdout.trim()).toBe('EIO ENOSPC EIO');
  });
});

describe('NBD frontend negotiation and robustness (raw sockets)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startServer(1 * MiB);
  });

  it('answers an unknown option with ERR_UNSUP and negotiation continues', async () => {
    const c = await RawClient.connect(h.port);
    await c.greet();
    c.sendOption(0x1234, Buffer.from('whatever'));
    const r = await c.optionReply();
    expect(r).toMatchObject({ option: 0x1234, type: REP.ERR_UNSUP });
    c.sendOption(OPT.LIST);
    const server = await c.optionReply();
    expect(server.type).toBe(REP.SERVER);
    expect(server.data.toString('utf8', 4, 4 + server.data.readUInt32BE(0))).toBe(EXPORT);
    expect((await c.optionReply()).type).toBe(REP.ACK);
    expect(await c.go('nope')).toEqual({ type: REP.ERR_UNKNOWN, size: undefined });
    expect(await c.go(EXPORT)).toEqual({ type: REP.ACK, size: MiB });
    c.request(CMD.READ, 7, 0, 512);
    expect(await c.simpleReply(512)).toMatchObject({ errno: 0, cookie: 7, data: Buffer.alloc(512) });
    c.destroy();
  });

  it('legacy EXPORT_NAME: size and flags, 124 zero bytes unless NO_ZEROES; unknown name closes', async () => {
    for (const [flags, replyLength] of [
      [0b11, 10],
      [0b01, 134],
    ] as const) {
      const c = await RawClient.connect(h.port);
      await c.greet(flags);
      c.sendOption(OPT.EXPORT_NAME, Buffer.from(EXPORT));
      const r = await c.read(replyLength);
      expect(Number(r.readBigUInt64BE(0))).toBe(MiB);
      expect(r.readUInt16BE(8) & 0x16d).toBe(0x16d); // HAS_FLAGS|FLUSH|FUA|TRIM|WRITE_ZEROES|MULTI_CONN
      c.request(CMD.WRITE, 1, 4096, 4, Buffer.from('abcd'));
      expect(await c.simpleReply()).toMatchObject({ errno: 0, cookie: 1 });
      c.destroy();
    }
    const bad = await RawClient.connect(h.port);
    await bad.greet();
    bad.sendOption(OPT.EXPORT_NAME, Buffer.from('nope'));
    await bad.closed;
  });

  it('closes a connection that sends garbage; another client keeps working', async () => {
    const good = await RawClient.connect(h.port);
    await good.negotiate();
    const evil = await RawClient.connect(h.port);
    await evil.negotiate();
    await until(() => h.server.connectionCount === 2, 'two connections');
    evil.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n this is not NBD at all'));
    await evil.closed;
    await until(() => h.server.connectionCount === 1, 'the bad connection to go');
    expect(h.warnings.some((w) => w.includes('protocol violation'))).toBe(true);

    good.request(CMD.WRITE, 1, 0, 8, Buffer.from('survived'));
    expect(await good.simpleReply()).toMatchObject({ errno: 0, cookie: 1 });
    good.request(CMD.READ, 2, 0, 8);
    expect((await good.simpleReply(8)).data.toString()).toBe('survived');
    good.destroy();
  });

  it('closes a connection whose WRITE announces more than the maximum payload', async () => {
    const c = await RawClient.connect(h.port);
    await c.negotiate();
    c.request(CMD.WRITE, 1, 0, 32 * MiB + 1);
    await c.closed;
  });

  it('answers bad but well-formed requests with errors in simple mode and goes on', async () => {
    const c = await RawClient.connect(h.port);
    await c.negotiate();
    c.request(CMD.READ, 1, MiB - 100, 200); // past the end
    c.request(42, 2, 0, 0); // unknown command
    c.request(CMD.READ, 3, 0, 33 * MiB); // too large (no structured replies: EINVAL, no payload)
    c.request(CMD.READ, 4, 0, 4096, undefined, 0x40); // unknown flag
    c.request(CMD.READ, 5, 0, 16);
    const replies = [];
    for (let i = 0; i < 4; i++) replies.push(await c.simpleReply());
    expect(replies.map((r) => [r.cookie, r.errno])).toEqual([
      [1, 22],
      [2, 22],
      [3, 22],
      [4, 22],
    ]);
    expect(await c.simpleReply(16)).toMatchObject({ errno: 0, cookie: 5 });
    c.destroy();
  });

  it('pipelines requests and answers them as they complete (out of order)', async () => {
    const p = await startServer(MiB);
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const device = p.device;
    const read = device.read.bind(device);
    device.read = async (offset, length) => {
      if (offset === 0) await held;
      return read(offset, length);
    };
    const c = await RawClient.connect(p.port);
    await c.negotiate();
    c.request(CMD.READ, 1, 0, 512);
    c.request(CMD.READ, 2, 4096, 512);
    expect((await c.simpleReply(512)).cookie).toBe(2);
    release();
    expect((await c.simpleReply(512)).cookie).toBe(1);
    c.destroy();
  });

  it('DISC: answers the requests before it, then closes', async () => {
    const c = await RawClient.connect(h.port);
    await c.negotiate();
    c.request(CMD.WRITE, 1, 8192, 4, Buffer.from('disc'));
    c.request(CMD.DISC, 2, 0, 0);
    expect(await c.simpleReply()).toMatchObject({ errno: 0, cookie: 1 });
    await c.closed;
    expect((await h.device.read(8192, 4)).toString()).toBe('disc');
  });

  it('close() answers in-flight requests (new ones get ESHUTDOWN), then closes connections', async () => {
    const s = await startServer(MiB);
    let release!: () => void;
    s.device.gate = new Promise<void>((r) => {
      release = r;
    });
    s.device.record = true;
    const c = await RawClient.connect(s.port);
    await c.negotiate();
    c.request(CMD.READ, 9, 0, 64);
    await until(() => s.device.calls.some((call) => call.op === 'read'), 'the read to reach the device');
    let closed = false;
    const closing = s.server.close().then(() => {
      closed = true;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toBe(false);
    // A request arriving during shutdown is refused with ESHUTDOWN (108) while the held one is still pending.
    c.request(CMD.READ, 10, 0, 64);
    expect(await c.simpleReply()).toMatchObject({ errno: 108, cookie: 10 });
    release();
    expect(await c.simpleReply(64)).toMatchObject({ errno: 0, cookie: 9 });
    await c.closed;
    await closing;
    expect(s.server.connectionCount).toBe(0);
    const refused = connect({ host: '127.0.0.1', port: s.port });
    await new Promise<void>((resolve) => refused.once('error', () => resolve()));
  });
});
