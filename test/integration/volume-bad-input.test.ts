// Hostile and malformed input: out-of-range and bad-flag NBD requests answered with errors on a
// connection that keeps working, garbage on the NBD port and on a replica's data port closing just that
// connection, while other clients go on and every process of the volume stays up with all replicas RW.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startVolume, type TestVolume } from '../helpers/cluster.js';
import { requireTool } from '../helpers/tools.js';
import {
  NBD,
  nbdHandshake,
  nbdOption,
  nbdRequest,
  RawSocket,
  readOptionReply,
  readSimpleReply,
} from '../helpers/volume-raw-socket.js';
import {
  deadProcesses,
  expectedModes,
  FIO,
  fio,
  fioProblems,
  MiB,
  PYTHON,
  python,
  replicaModes,
  sleep,
  volumeLogs,
} from '../helpers/volume-tools.js';

const SIZE = 64 * MiB;

/** `n` random bytes starting with a fixed prefix (so no magic number can match by chance). */
const garbage = (prefix: number[], n: number) => Buffer.concat([Buffer.from(prefix), randomBytes(n - prefix.length)]);

/** A python nbd session that prints one JSON line of results. */
async function py(script: string, uri: string) {
  const r = await python(`import nbd, sys, json, errno\nh = nbd.NBD()\n${script}`, [uri], 60_000);
  expect(r.code, `python failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

/** Write and read back 1 MiB through a fresh libnbd connection. */
async function volumeWorks(uri: string, offset: number) {
  const out = await py(
    `h.connect_uri(sys.argv[1])
data = bytes(range(256)) * 4096
h.pwrite(data, ${offset})
h.flush()
print(json.dumps({"ok": h.pread(len(data), ${offset}) == data}))`,
    uri,
  );
  return out['ok'];
}

describe('bad input does not hurt the volume', () => {
  let vol: TestVolume | undefined;
  const sockets: RawSocket[] = [];

  beforeAll(async () => {
    requireTool(PYTHON);
    requireTool(FIO);
    vol = await startVolume({ size: SIZE, replicas: 3 });
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await vol?.destroy();
  });

  async function raw(port: number) {
    const s = await RawSocket.open(port);
    sockets.push(s);
    return s;
  }

  test('out-of-range reads and writes get EINVAL from the server; the connection keeps working', async () => {
    const out = await py(
      `h.set_strict_mode(0)
h.connect_uri(sys.argv[1])
size = h.get_size()
res = {"size": size}
def attempt(name, fn):
    try:
        fn()
        res[name] = "no error"
    except nbd.Error as e:
        res[name] = e.errno if isinstance(e.errno, str) else errno.errorcode.get(e.errno, str(e.errno))
attempt("read_past_end", lambda: h.pread(4096, size))
attempt("read_straddling_end", lambda: h.pread(8192, size - 4096))
attempt("read_far_beyond", lambda: h.pread(512, 1 << 50))
attempt("write_past_end", lambda: h.pwrite(b"x" * 4096, size))
attempt("write_straddling_end", lambda: h.pwrite(b"x" * 8192, size - 4096))
attempt("trim_past_end", lambda: h.trim(4096, size))
attempt("zero_past_end", lambda: h.zero(4096, size))
data = b"still fine" * 100
h.pwrite(data, 12345)
res["after"] = h.pread(len(data), 12345) == data
res["last_block"] = h.pread(4096, size - 4096) == bytes(4096)
print(json.dumps(res))`,
      vol!.uri,
    );
    // the NBD spec: EINVAL for reads beyond the end; ENOSPC is what it recommends for writes (EINVAL accepted)
    const writeErr = (v: unknown) => (v === 'ENOSPC' || v === 'EINVAL' ? 'ENOSPC|EINVAL' : v);
    expect({
      ...out,
      write_past_end: writeErr(out['write_past_end']),
      write_straddling_end: writeErr(out['write_straddling_end']),
      trim_past_end: writeErr(out['trim_past_end']),
      zero_past_end: writeErr(out['zero_past_end']),
    }).toEqual({
      size: SIZE,
      read_past_end: 'EINVAL',
      read_straddling_end: 'EINVAL',
      read_far_beyond: 'EINVAL',
      write_past_end: 'ENOSPC|EINVAL',
      write_straddling_end: 'ENOSPC|EINVAL',
      trim_past_end: 'ENOSPC|EINVAL',
      zero_past_end: 'ENOSPC|EINVAL',
      after: true,
      last_block: true,
    });
  });

  test('requests with unknown or misplaced flags get an error reply; the connection keeps working', async () => {
    const out = await py(
      `h.set_strict_mode(0)
h.connect_uri(sys.argv[1])
res = {}
def attempt(name, fn):
    try:
        fn()
        res[name] = "no error"
    except nbd.Error as e:
        res[name] = e.errno if isinstance(e.errno, str) else errno.errorcode.get(e.errno, str(e.errno))
attempt("read_unknown_flag", lambda: h.pread(4096, 0, 1 << 12))
attempt("write_unknown_flag", lambda: h.pwrite(b"y" * 4096, 0, 1 << 13))
attempt("flush_unknown_flag", lambda: h.flush(1 << 14))
# REQ_ONE only belongs to BLOCK_STATUS, NO_HOLE only to WRITE_ZEROES
attempt("read_req_one", lambda: h.pread(4096, 0, nbd.CMD_FLAG_REQ_ONE))
attempt("write_no_hole", lambda: h.pwrite(b"y" * 4096, 0, nbd.CMD_FLAG_NO_HOLE))
data = b"flags ok" * 512
h.pwrite(data, 65536)
res["after"] = h.pread(len(data), 65536) == data
print(json.dumps(res))`,
      vol!.uri,
    );
    // the spec says SHOULD EINVAL; any error reply passes, success or a dropped connection does not
    const failed = (v: unknown) => (typeof v === 'string' && /^E[A-Z]+$/.test(v) ? 'error reply' : v);
    expect(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, k === 'after' ? v : failed(v)]))).toEqual({
      read_unknown_flag: 'error reply',
      write_unknown_flag: 'error reply',
      flush_unknown_flag: 'error reply',
      read_req_one: 'error reply',
      write_no_hole: 'error reply',
      after: true,
    });
  });

  test('garbage instead of the handshake closes that connection; another client keeps working', async () => {
    const v = vol!;
    // a client in transmission the whole time: it must not notice the hostile neighbours
    const live = await raw(v.nbdPort);
    await nbdHandshake(live, v.name);

    // 1. garbage right away (the client flags and option are random bytes)
    const a = await raw(v.nbdPort);
    await a.read(18);
    a.write(garbage([0xff, 0xff, 0xff, 0xff], 4096));
    expect(await a.closedWithin(5000), 'server kept a connection that sent garbage options').toBe(true);

    // 2. valid client flags, then an option with a bad IHAVEOPT magic
    const b = await raw(v.nbdPort);
    await b.read(18);
    const bad = nbdOption(7, Buffer.alloc(0));
    bad.writeUInt32BE(0xdeadbeef, 0);
    b.write(Buffer.from([0, 0, 0, NBD.FLAG_FIXED_NEWSTYLE | NBD.FLAG_NO_ZEROES]));
    b.write(bad);
    expect(await b.closedWithin(5000), 'server kept a connection with a bad option magic').toBe(true);

    // 3. an NBD_OPT_GO carrying 4 MiB of junk: answered with an error reply (bit 31) or a hang-up, never
    // accepted; the server must not take in the junk as a request either
    const c = await raw(v.nbdPort);
    await c.read(18);
    c.write(Buffer.from([0, 0, 0, NBD.FLAG_FIXED_NEWSTYLE | NBD.FLAG_NO_ZEROES]));
    c.write(nbdOption(7, garbage([0xff], 4 * MiB)));
    const reply = await readOptionReply(c, 10_000).catch((err: Error) => err);
    if (reply instanceof Error) {
      expect(c.isClosed, `neither an option reply nor a close: ${reply.message}`).toBe(true);
    } else {
      expect(reply.option).toBe(7);
      expect(reply.type >>> 31, `option reply type 0x${reply.type.toString(16)} is not an error`).toBe(1);
    }
    c.destroy();

    // 4. an export that does not exist, chosen with NBD_OPT_EXPORT_NAME: the server must hang up
    const d = await raw(v.nbdPort);
    await d.read(18);
    d.write(Buffer.from([0, 0, 0, NBD.FLAG_FIXED_NEWSTYLE | NBD.FLAG_NO_ZEROES]));
    d.write(nbdOption(NBD.OPT_EXPORT_NAME, Buffer.from('no-such-volume')));
    expect(await d.closedWithin(5000), 'server accepted an unknown export').toBe(true);

    // 5. a client that goes away halfway through the greeting
    const e = await raw(v.nbdPort);
    e.write(Buffer.from([0, 0]));
    e.destroy();

    live.write(nbdRequest(NBD.CMD_READ, { cookie: 9n, offset: 0n, length: 65536 }));
    expect(await readSimpleReply(live)).toEqual({ error: 0, cookie: 9n });
    expect((await live.read(65536)).length).toBe(65536);
    expect(live.isClosed).toBe(false);
    expect(await volumeWorks(v.uri, 0)).toBe(true);
  });

  test('garbage after the handshake closes that connection while fio keeps working on another', async () => {
    const v = vol!;
    const fioRun = fio(
      [
        '--ioengine=nbd',
        `--uri=${v.uri}`,
        '--name=bystander',
        '--rw=randwrite',
        '--bs=16k',
        '--offset=32M',
        '--size=16M',
        '--iodepth=4',
        '--verify=crc32c',
        '--verify_backlog=64',
        '--verify_fatal=1',
        // time-based so the load overlaps every hostile connection below
        '--time_based',
        '--runtime=5',
      ],
      60_000,
    );
    let fioRunning = true;
    const fioDone = () => {
      fioRunning = false;
    };
    fioRun.then(fioDone, fioDone);

    // a working raw session first: the handshake and a read answered with the right cookie
    const s = await raw(v.nbdPort);
    const info = await nbdHandshake(s, v.name);
    expect(info.size).toBe(BigInt(SIZE));
    s.write(nbdRequest(NBD.CMD_READ, { cookie: 77n, offset: 0n, length: 4096 }));
    expect(await readSimpleReply(s)).toEqual({ error: 0, cookie: 77n });
    await s.read(4096);

    // an unknown command type must not succeed: an error reply (then the connection still works) or a close
    s.write(nbdRequest(0x55, { cookie: 78n, offset: 0n, length: 0 }));
    const unknown = await readSimpleReply(s, 5000).catch((err: Error) => err);
    if (unknown instanceof Error) {
      expect(s.isClosed, `neither a reply nor a close for an unknown command: ${unknown.message}`).toBe(true);
    } else {
      expect(unknown.cookie).toBe(78n);
      expect(unknown.error).not.toBe(0);
      s.write(nbdRequest(NBD.CMD_READ, { cookie: 79n, offset: 4096n, length: 512 }));
      expect(await readSimpleReply(s)).toEqual({ error: 0, cookie: 79n });
      await s.read(512);
    }

    // garbage where a request header belongs: the server closes the connection
    const g = await raw(v.nbdPort);
    await nbdHandshake(g, v.name);
    g.write(garbage([0xde, 0xad, 0xbe, 0xef], 28 * 4));
    expect(await g.closedWithin(5000), 'server kept a connection that sent a garbage request').toBe(true);

    // a write request announcing more than any payload the server accepts (4 GiB - 1)
    const h = await raw(v.nbdPort);
    await nbdHandshake(h, v.name);
    h.write(nbdRequest(NBD.CMD_WRITE, { cookie: 5n, offset: 0n, length: 0xffffffff }));
    h.write(randomBytes(1024));
    const hugeWrite = await Promise.race([
      h.closed.then(() => 'closed'),
      readSimpleReply(h, 5000).then(
        (rep) => (rep.error !== 0 ? 'error reply' : 'success'),
        () => (h.isClosed ? 'closed' : 'nothing'),
      ),
    ]);
    expect(['closed', 'error reply']).toContain(hugeWrite);

    // a client dying in the middle of a write payload
    const m = await raw(v.nbdPort);
    await nbdHandshake(m, v.name);
    m.write(nbdRequest(NBD.CMD_WRITE, { cookie: 6n, offset: 1048576n, length: 1048576 }));
    m.write(randomBytes(1000));
    await sleep(100);
    m.destroy();

    expect(fioRunning, 'fio ended before the hostile connections were done').toBe(true);
    const r = await fioRun;
    expect(fioProblems(r, { expectJobs: 1 }), volumeLogs(v)).toEqual([]);
    expect(await volumeWorks(v.uri, 4 * MiB)).toBe(true);
  });

  test("garbage on a replica's data port closes that connection; the volume keeps working", async () => {
    const v = vol!;
    const dataPort = v.replicas[0]!.port + 1;
    const a = await raw(dataPort);
    a.write(garbage([0xff, 0xff], 4096));
    expect(await a.closedWithin(5000), 'replica kept a connection that sent garbage').toBe(true);

    // a well-formed header (magic 0x1b01) announcing a payload beyond the 32 MiB limit
    const b = await raw(dataPort);
    const frame = Buffer.alloc(26);
    frame.writeUInt16LE(0x1b01, 0);
    frame.writeUInt32LE(1, 2);
    frame.writeUInt32LE(1, 6); // Write
    frame.writeBigUInt64LE(0n, 10);
    frame.writeUInt32LE(0xffffffff, 18);
    frame.writeUInt32LE(0xffffffff, 22);
    b.write(frame);
    expect(await b.closedWithin(5000), 'replica kept a connection announcing a 4 GiB payload').toBe(true);

    // garbage to the replica's gRPC port too (it is HTTP/2): the replica must survive it
    const c = await raw(v.replicas[1]!.port);
    c.write(randomBytes(4096));
    await c.closedWithin(5000);
    c.destroy();

    expect(await volumeWorks(v.uri, 8 * MiB)).toBe(true);
    // only the offending connections were closed: the engine's own data connections to the replica are fine
    await sleep(1000);
    expect(await replicaModes(v), volumeLogs(v)).toEqual(expectedModes(v, ['RW', 'RW', 'RW']));
  });

  test('after all of it every process runs and all replicas are RW', async () => {
    const v = vol!;
    await sleep(500);
    expect(deadProcesses(v), volumeLogs(v)).toEqual([]);
    expect(await replicaModes(v)).toEqual(expectedModes(v, ['RW', 'RW', 'RW']));
    expect(await volumeWorks(v.uri, 16 * MiB)).toBe(true);
  });
});
