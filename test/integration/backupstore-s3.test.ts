// The s3:// backup driver against a real S3 server (moto_server): the driver contract, the key layout,
// and the failures an operator meets — endpoint down, bucket missing, credentials refused — each as a
// BackupTargetError that says which, quickly.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Driver, type S3TargetLocation } from '../../dataplane/backupstore/s3-driver.js';
import {
  BackupNotFoundError,
  type BackupStoreDriver,
  BackupTargetError,
  type TargetCredential,
} from '../../dataplane/backupstore/types.js';
import { backupDriverContract } from '../contract/backup-driver-contract.js';
import { MOTO_ANY_CREDENTIAL, type MotoServer, startMoto } from '../helpers/moto.js';
import { requireTool, runOk } from '../helpers/tools.js';

let moto: MotoServer;
let seq = 0;

beforeAll(async () => {
  moto = await startMoto();
}, 60_000);
afterAll(async () => {
  await moto?.stop();
});

function location(prefix: string, bucket = moto.bucket): S3TargetLocation {
  const path = prefix === '' ? '' : `${prefix}/`;
  return { kind: 's3', url: `s3://${bucket}@us-east-1/${path}`, bucket, region: 'us-east-1', prefix };
}

function credential(extra: TargetCredential = {}): TargetCredential {
  return { ...MOTO_ANY_CREDENTIAL, AWS_ENDPOINTS: moto.endpoint, ...extra };
}

/** Every key in the bucket, read with a plain client (what the driver really wrote). */
async function rawKeys(prefix = ''): Promise<string[]> {
  const s3 = new S3Client({
    endpoint: moto.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'raw', secretAccessKey: 'raw' },
  });
  try {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: moto.bucket, Prefix: prefix }));
    return (out.Contents ?? []).map((c) => c.Key ?? '').sort();
  } finally {
    s3.destroy();
  }
}

async function targetError(promise: Promise<unknown>): Promise<BackupTargetError> {
  const err = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BackupTargetError);
  expect((err as BackupTargetError).code).toBe('TARGET_UNAVAILABLE');
  return err as BackupTargetError;
}

/** Every driver method (started one at a time by the caller), each expected to fail the same way. */
function everyOperation(d: BackupStoreDriver): [string, () => Promise<unknown>][] {
  return [
    ['exists', () => d.exists('backupstore/volumes/ab/cd/vol1/volume.cfg')],
    ['read', () => d.read('backupstore/volumes/ab/cd/vol1/volume.cfg')],
    ['write', () => d.write('backupstore/volumes/ab/cd/vol1/volume.cfg', Buffer.from('x'))],
    ['list', () => d.list('backupstore/volumes')],
    ['mtime', () => d.mtime('backupstore/volumes/ab/cd/vol1/volume.cfg')],
    ['remove', () => d.remove('backupstore/volumes/ab/cd/vol1/volume.cfg')],
    ['remove prefix', () => d.remove('backupstore/volumes/ab/cd/vol1/')],
  ];
}

/**
 * An HTTP proxy in front of moto that records the number of keys in each DeleteObjects request, and
 * with `refuseMultiDelete` answers it like a server without multi-object delete (501 NotImplemented).
 */
async function countingProxy(refuseMultiDelete: boolean) {
  const batches: number[] = [];
  const upstream = new URL(moto.endpoint);
  const proxy = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST' && /[?&]delete(=|&|$)/.test(req.url ?? '')) {
        batches.push((body.toString().match(/<Key>/g) ?? []).length);
        if (refuseMultiDelete) {
          res.writeHead(501, { 'content-type': 'application/xml' });
          res.end(
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>no</Message></Error>',
          );
          return;
        }
      }
      const fwd = httpRequest(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      fwd.on('error', () => res.destroy());
      fwd.end(body);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const port = (proxy.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    multiDeletes: () => [...batches],
    close: async () => {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}

// Each contract test gets its own prefix in the shared bucket: an empty target without a moto reset.
backupDriverContract('s3 on moto_server', () => createS3Driver(location(`contract-${++seq}/shorthorn`), credential()));

describe('s3 driver on moto_server', () => {
  it('keys are <prefix>/<path>, and plain <path> at the bucket root', async () => {
    const prefixed = createS3Driver(location('cluster-a/backups'), credential());
    const root = createS3Driver(location(''), credential());
    try {
      await prefixed.write('backupstore/volumes/ab/cd/vol1/volume.cfg', Buffer.from('a'));
      await root.write('backupstore/volumes/ab/cd/vol2/volume.cfg', Buffer.from('b'));
      expect(await rawKeys('cluster-a/')).toEqual(['cluster-a/backups/backupstore/volumes/ab/cd/vol1/volume.cfg']);
      expect(await rawKeys('backupstore/')).toEqual(['backupstore/volumes/ab/cd/vol2/volume.cfg']);
      // The root driver sees the prefixed one's objects as a directory, and nothing leaks the other way.
      expect(await root.list('')).toEqual(expect.arrayContaining(['backupstore', 'cluster-a']));
      expect(await prefixed.list('')).toEqual(['backupstore']);
      expect(await prefixed.list('backupstore/volumes/ab/cd')).toEqual(['vol1']);
      expect(prefixed.kind).toBe('s3');
      expect(prefixed.url).toBe(`s3://${moto.bucket}@us-east-1/cluster-a/backups/`);
    } finally {
      await prefixed.close();
      await root.close();
    }
  });

  it('a bucket that does not exist: every operation fails with "bucket … does not exist"', async () => {
    const d = createS3Driver(location('p', 'no-such-bucket'), credential());
    try {
      for (const [op, start] of everyOperation(d)) {
        const err = await targetError(start());
        expect(err.message, op).toMatch(/bucket no-such-bucket does not exist/);
      }
    } finally {
      await d.close();
    }
  });

  it('a stopped server: every operation fails fast with "unreachable (ECONNREFUSED)"; after a restart it works again', async () => {
    const d = createS3Driver(location(`down-${++seq}`), credential());
    try {
      await d.write('backupstore/a', Buffer.from('before'));
      await moto.stop();
      for (const [op, start] of everyOperation(d)) {
        const started = Date.now();
        const err = await targetError(start());
        expect(Date.now() - started, op).toBeLessThan(10_000);
        expect(err.message, op).toContain(`S3 endpoint ${moto.endpoint} unreachable (ECONNREFUSED)`);
        expect(err.message, op).not.toContain(MOTO_ANY_CREDENTIAL.AWS_SECRET_ACCESS_KEY);
      }
      await moto.restart();
      // moto came back empty (in-memory), with the bucket re-created: the same driver works again.
      expect(await d.exists('backupstore/a')).toBe(false);
      await d.write('backupstore/a', Buffer.from('after'));
      expect((await d.read('backupstore/a')).toString()).toBe('after');
    } finally {
      await d.close();
    }
  }, 60_000);

  it('a server that accepts but never answers: the request timeout turns into "unreachable (request timed out)"', async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const d = createS3Driver(
      location('p'),
      { ...MOTO_ANY_CREDENTIAL, AWS_ENDPOINTS: `http://127.0.0.1:${port}` },
      { requestTimeoutMs: 500, maxAttempts: 2 },
    );
    try {
      const started = Date.now();
      const err = await targetError(d.read('backupstore/x'));
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(err.message).toContain(`S3 endpoint http://127.0.0.1:${port} unreachable (request timed out)`);
    } finally {
      await d.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('a host name that does not resolve fails with "unreachable (ENOTFOUND)"', async () => {
    const d = createS3Driver(location('p'), {
      ...MOTO_ANY_CREDENTIAL,
      AWS_ENDPOINTS: 'http://no-such-host.invalid:9000',
    });
    try {
      const err = await targetError(d.list('backupstore'));
      expect(err.message).toMatch(
        /S3 endpoint http:\/\/no-such-host\.invalid:9000 unreachable \((ENOTFOUND|EAI_AGAIN)\)/,
      );
    } finally {
      await d.close();
    }
  });

  // moto 5.2.1's signature check has a flaw: a correctly signed request whose query string holds a '/'
  // (ListObjectsV2 with Delimiter '/' or a Prefix like 'a/b') is refused with SignatureDoesNotMatch, while
  // the same request without '/' passes (checked with a bare S3Client). Listing therefore cannot be shown
  // working with auth on; the tests below use the operations whose requests carry no such query.
  describe('with moto authentication on', () => {
    let good: { accessKeyId: string; secretAccessKey: string };
    let noPolicy: { accessKeyId: string; secretAccessKey: string };
    beforeAll(async () => {
      good = await moto.createUser('backup-good');
      noPolicy = await moto.createUser('backup-nopolicy', { allowS3: false });
      await moto.enableAuth();
    });
    afterAll(async () => {
      await moto.disableAuth();
    });

    const driverWith = (id: string, secret: string) =>
      createS3Driver(location(`auth-${++seq}`), {
        AWS_ACCESS_KEY_ID: id,
        AWS_SECRET_ACCESS_KEY: secret,
        AWS_ENDPOINTS: moto.endpoint,
      });

    it('valid keys work', async () => {
      const d = driverWith(good.accessKeyId, good.secretAccessKey);
      try {
        await d.write('backupstore/x', Buffer.from('ok'));
        expect((await d.read('backupstore/x')).toString()).toBe('ok');
        expect(await d.exists('backupstore/x')).toBe(true);
        expect(await d.mtime('backupstore/x')).toBeInstanceOf(Date);
        await d.remove('backupstore/x');
        expect(await d.read('backupstore/x').catch((e: unknown) => e)).toBeInstanceOf(BackupNotFoundError);
      } finally {
        await d.close();
      }
    });

    it('an unknown access key: every operation fails with "refused the credentials (InvalidAccessKeyId)"', async () => {
      const d = driverWith('AKIANOSUCHKEY0000000', 'whatever');
      try {
        for (const [op, start] of everyOperation(d)) {
          const err = await targetError(start());
          expect(err.message, op).toContain('S3 refused the credentials (InvalidAccessKeyId)');
          expect(err.message, op).not.toContain('whatever');
        }
      } finally {
        await d.close();
      }
    });

    it('a wrong secret: every operation fails with "refused the credentials (SignatureDoesNotMatch)"', async () => {
      const d = driverWith(good.accessKeyId, 'not-the-secret');
      try {
        for (const [op, start] of everyOperation(d)) {
          const err = await targetError(start());
          expect(err.message, op).toContain('S3 refused the credentials (SignatureDoesNotMatch)');
        }
      } finally {
        await d.close();
      }
    });

    it('keys without S3 permission: "S3 denied … (AccessDenied)"', async () => {
      const d = driverWith(noPolicy.accessKeyId, noPolicy.secretAccessKey);
      try {
        // Not exists/mtime/list: a HEAD's 403 has no body, so the driver asks a listing why, and
        // moto's flaw above answers that listing with SignatureDoesNotMatch.
        const ops: [string, () => Promise<unknown>][] = [
          ['read', () => d.read('backupstore/volumes/ab/cd/vol1/volume.cfg')],
          ['write', () => d.write('backupstore/volumes/ab/cd/vol1/volume.cfg', Buffer.from('x'))],
          ['remove', () => d.remove('backupstore/volumes/ab/cd/vol1/volume.cfg')],
        ];
        for (const [op, start] of ops) {
          const err = await targetError(start());
          expect(err.message, op).toMatch(
            /^S3 denied \w+ on s3:\/\/shorthorn-backups\/auth-\d+\/backupstore\/volumes\/ab\/cd\/vol1\/volume\.cfg \(AccessDenied\)/,
          );
        }
      } finally {
        await d.close();
      }
    });
  });

  it('removes a prefix with DeleteObjects in batches of at most 1000 keys', async () => {
    const proxy = await countingProxy(false);
    const prefix = `batch-${++seq}`;
    const d = createS3Driver(location(prefix), credential({ AWS_ENDPOINTS: proxy.endpoint }));
    try {
      const names = Array.from({ length: 1001 }, (_, i) => `backupstore/blocks/${String(i).padStart(4, '0')}.blk`);
      for (let i = 0; i < names.length; i += 50) {
        await Promise.all(names.slice(i, i + 50).map((n) => d.write(n, Buffer.from('b'))));
      }
      await d.remove('backupstore/');
      expect(proxy.multiDeletes()).toEqual([1000, 1]);
      expect(await rawKeys(`${prefix}/`)).toEqual([]);
    } finally {
      await d.close();
      await proxy.close();
    }
  }, 120_000);

  it('falls back to single DeleteObject calls when the server has no DeleteObjects (501 NotImplemented)', async () => {
    const proxy = await countingProxy(true);
    const prefix = `single-${++seq}`;
    const d = createS3Driver(location(prefix), credential({ AWS_ENDPOINTS: proxy.endpoint }));
    try {
      await Promise.all(Array.from({ length: 30 }, (_, i) => d.write(`backupstore/a/${i}.blk`, Buffer.from('a'))));
      await Promise.all(Array.from({ length: 5 }, (_, i) => d.write(`backupstore/b/${i}.blk`, Buffer.from('b'))));
      await d.remove('backupstore/a/');
      expect(proxy.multiDeletes().length).toBeGreaterThanOrEqual(1);
      expect(await rawKeys(`${prefix}/`)).toHaveLength(5);
      // The driver remembers: the next prefix removal goes straight to single deletes.
      const refusedBefore = proxy.multiDeletes().length;
      await d.remove('backupstore/');
      expect(proxy.multiDeletes().length).toBe(refusedBefore);
      expect(await rawKeys(`${prefix}/`)).toEqual([]);
    } finally {
      await d.close();
      await proxy.close();
    }
  });

  it('a missing object on a reachable bucket is BackupNotFoundError, not a target error', async () => {
    const d = createS3Driver(location(`nf-${++seq}`), credential());
    try {
      const err = await d.read('backupstore/none').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BackupNotFoundError);
      expect((err as Error).message).toContain(`s3://${moto.bucket}/nf-${seq}/backupstore/none`);
    } finally {
      await d.close();
    }
  });
  it('moto reset() empties the server and re-creates the bucket', async () => {
    const d = createS3Driver(location(`reset-${++seq}`), credential());
    try {
      await d.write('backupstore/x', Buffer.from('x'));
      await moto.reset();
      expect(await d.exists('backupstore/x')).toBe(false);
      expect(await rawKeys()).toEqual([]);
      await d.write('backupstore/y', Buffer.from('y'));
      expect(await d.list('backupstore')).toEqual(['y']);
    } finally {
      await d.close();
    }
  });
});

describe('s3 driver over https with a private CA (AWS_CERT)', () => {
  let tlsMoto: MotoServer;
  let dir: string;
  let ca: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shorthorn-s3-tls-'));
    const certFile = join(dir, 'server.crt');
    const keyFile = join(dir, 'server.key');
    // Self-signed for 127.0.0.1: its own CA, as a private S3 endpoint's certificate would be.
    await runOk(requireTool('/usr/bin/openssl'), [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ]);
    ca = await readFile(certFile, 'utf8');
    tlsMoto = await startMoto({ tls: { certFile, keyFile, ca } });
  }, 60_000);
  afterAll(async () => {
    await tlsMoto?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const tlsLocation = (): S3TargetLocation => ({
    kind: 's3',
    url: `s3://${tlsMoto.bucket}@us-east-1/tls/`,
    bucket: tlsMoto.bucket,
    region: 'us-east-1',
    prefix: 'tls',
  });

  it('without AWS_CERT the endpoint is not trusted, with it the driver works', async () => {
    const untrusted = createS3Driver(tlsLocation(), { ...MOTO_ANY_CREDENTIAL, AWS_ENDPOINTS: tlsMoto.endpoint });
    const trusted = createS3Driver(tlsLocation(), {
      ...MOTO_ANY_CREDENTIAL,
      AWS_ENDPOINTS: tlsMoto.endpoint,
      AWS_CERT: ca,
    });
    try {
      expect(tlsMoto.endpoint).toMatch(/^https:/);
      const err = await targetError(untrusted.write('backupstore/x', Buffer.from('x')));
      expect(err.message).toContain(`S3 endpoint ${tlsMoto.endpoint} has a TLS certificate this node does not trust`);
      expect(err.message).toContain('AWS_CERT');
      await trusted.write('backupstore/x', Buffer.from('over tls'));
      expect((await trusted.read('backupstore/x')).toString()).toBe('over tls');
      expect(await trusted.list('backupstore')).toEqual(['x']);
    } finally {
      await untrusted.close();
      await trusted.close();
    }
  });
});
