// A real S3 peer for the backup tests: moto's standalone server (`moto_server`, pip package
// "moto[server]", preinstalled through pyenv on these machines; reference/test-peers.md §3). One
// process per test file on a free port, killed by PID. moto keeps everything in memory: a restart
// (same port) comes back empty, so the helper re-creates the bucket.
//
// Credentials: by default moto accepts any access key. `enableAuth()` switches on its IAM check
// (POST /moto-api/reset-auth with 0 = "authenticate every request from now on"): unknown keys are
// then refused with InvalidAccessKeyId, a wrong secret with SignatureDoesNotMatch, and only keys made
// by `createUser()` pass (with s3:* unless `allowS3: false`, which gives AccessDenied).
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { delimiter, join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePorts } from './ports.js';

export const MOTO_INSTALL = 'pip install "moto[server]"';
/** Keys for tests while auth is off (moto accepts anything then). */
export const MOTO_ANY_CREDENTIAL = { AWS_ACCESS_KEY_ID: 'shorthorn-test', AWS_SECRET_ACCESS_KEY: 'shorthorn-secret' };

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

export interface MotoUser {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface MotoOptions {
  /** Bucket to create (default `shorthorn-backups`). */
  bucket?: string;
  /** Serve HTTPS with this certificate and key (PEM file paths); `ca` (PEM text) is what the helper trusts. */
  tls?: { certFile: string; keyFile: string; ca: string };
}

export interface MotoServer {
  /** `http://127.0.0.1:<port>` (https with `tls`), for AWS_ENDPOINTS. */
  readonly endpoint: string;
  readonly port: number;
  /** PID of the running moto_server, undefined while stopped. */
  readonly pid: number | undefined;
  /** The bucket created at start (and after every restart and reset). */
  readonly bucket: string;
  /** SIGKILL by PID and wait for the exit. */
  stop(): Promise<void>;
  /** Start again on the same port (empty: moto keeps state in memory) and re-create the bucket. */
  restart(): Promise<void>;
  /** Drop every bucket, object and IAM user (POST /moto-api/reset), turn auth off, re-create the bucket. */
  reset(): Promise<void>;
  /** Create an IAM user with an access key (s3:* allowed unless `allowS3` is false). */
  createUser(name: string, opts?: { allowS3?: boolean }): Promise<MotoUser>;
  /** From now on every request must be signed by a key from createUser(). */
  enableAuth(): Promise<void>;
  /** Back to "any key is accepted". */
  disableAuth(): Promise<void>;
  /** The server's recent log, for failure messages. */
  output(): string;
}

/** moto_server from PATH (pyenv's shim; /usr/bin/python3 has no moto), or a loud failure. */
export function findMotoServer(): string {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'moto_server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new Error(
    `moto_server is not on PATH: install it with \`${MOTO_INSTALL}\` (npm test's pretest does it as root: python3 -m pip install "moto[server]==5.2.1")`,
  );
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) if (child.pid !== undefined && child.exitCode === null) child.kill('SIGKILL');
  });
}

interface Reply {
  status: number;
  body: string;
}

/** One HTTP(S) request to moto, bounded by `timeoutMs`; `ca` is trusted for https. */
function call(
  url: string,
  opts: { method?: string; body?: string; headers?: Record<string, string>; ca?: string; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      u,
      {
        method: opts.method ?? 'GET',
        headers: opts.headers,
        timeout: opts.timeoutMs ?? 10_000,
        ...(opts.ca === undefined ? {} : { ca: opts.ca }),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${opts.method ?? 'GET'} ${url} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function answers(endpoint: string, ca: string | undefined): Promise<boolean> {
  try {
    return (await call(`${endpoint}/moto-api/`, { ca, timeoutMs: 1000 })).status === 200;
  } catch {
    return false;
  }
}

async function callOk(what: string, url: string, opts: Parameters<typeof call>[1]): Promise<string> {
  const r = await call(url, opts);
  if (r.status < 200 || r.status > 299) throw new Error(`moto ${what} → ${r.status}: ${r.body}`);
  return r.body;
}

/** moto's IAM API needs no valid signature while auth is off, only a credential scope naming iam. */
function iam(endpoint: string, ca: string | undefined, params: Record<string, string>): Promise<string> {
  return callOk(`IAM ${params['Action']}`, `${endpoint}/`, {
    method: 'POST',
    ca,
    body: new URLSearchParams({ Version: '2010-05-08', ...params }).toString(),
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization:
        'AWS4-HMAC-SHA256 Credential=setup/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0',
    },
  });
}

export async function startMoto(opts: MotoOptions = {}): Promise<MotoServer> {
  const bin = findMotoServer();
  const bucket = opts.bucket ?? 'shorthorn-backups';
  const scheme = opts.tls === undefined ? 'http' : 'https';
  const ca = opts.tls?.ca;
  const tlsArgs = opts.tls === undefined ? [] : ['-s', '-c', opts.tls.certFile, '-k', opts.tls.keyFile];
  killAllOnExit();

  let child: ChildProcess | undefined;
  let log = '';
  let authOn = false;

  const spawnOn = async (port: number): Promise<boolean> => {
    const endpoint = `${scheme}://127.0.0.1:${port}`;
    const proc = spawn(bin, ['-H', '127.0.0.1', '-p', String(port), ...tlsArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
    });
    live.add(proc);
    const append = (c: Buffer) => {
      log = (log + c.toString()).slice(-64 * 1024);
    };
    proc.stdout?.on('data', append);
    proc.stderr?.on('data', append);
    let exited = false;
    proc.once('exit', () => {
      exited = true;
      live.delete(proc);
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (exited) return false;
      if (await answers(endpoint, ca)) {
        child = proc;
        authOn = false;
        return true;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await killAndWait(proc);
    throw new Error(`moto_server on port ${port} did not answer within ${START_TIMEOUT_MS} ms\n${log}`);
  };

  const createBucket = async (endpoint: string) => {
    const s3 = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'setup', secretAccessKey: 'setup' },
      maxAttempts: 1,
      ...(ca === undefined ? {} : { requestHandler: { httpsAgent: new HttpsAgent({ ca }) } }),
    });
    try {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    } finally {
      s3.destroy();
    }
  };

  // The port is free when probed but another program may take it first: try a few ports.
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    port = await freePorts(1);
    if (await spawnOn(port)) break;
    if (attempt >= 4) throw new Error(`moto_server would not start (last port ${port})\n${log}`);
  }
  const endpoint = `${scheme}://127.0.0.1:${port}`;
  await createBucket(endpoint);

  const setAuth = async (on: boolean) => {
    await callOk('reset-auth', `${endpoint}/moto-api/reset-auth`, { method: 'POST', body: on ? '0' : 'inf', ca });
    authOn = on;
  };

  const server: MotoServer = {
    endpoint,
    port,
    bucket,
    get pid() {
      return child?.exitCode === null ? child.pid : undefined;
    },
    async stop() {
      if (child !== undefined) await killAndWait(child);
      child = undefined;
    },
    async restart() {
      await server.stop();
      // The same port: the old listener is gone once the process has exited; allow a short retry.
      for (let attempt = 0; ; attempt++) {
        if (await spawnOn(port)) break;
        if (attempt >= 20) throw new Error(`moto_server would not restart on port ${port}\n${log}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      await createBucket(endpoint);
    },
    async reset() {
      if (authOn) await setAuth(false);
      await callOk('reset', `${endpoint}/moto-api/reset`, { method: 'POST', ca });
      await createBucket(endpoint);
    },
    async createUser(name, userOpts = {}) {
      const wasOn = authOn;
      if (wasOn) await setAuth(false);
      try {
        await iam(endpoint, ca, { Action: 'CreateUser', UserName: name });
        const key = await iam(endpoint, ca, { Action: 'CreateAccessKey', UserName: name });
        const accessKeyId = /<AccessKeyId>([^<]+)<\/AccessKeyId>/.exec(key)?.[1];
        const secretAccessKey = /<SecretAccessKey>([^<]+)<\/SecretAccessKey>/.exec(key)?.[1];
        if (accessKeyId === undefined || secretAccessKey === undefined) {
          throw new Error(`moto CreateAccessKey: unexpected answer ${key}`);
        }
        if (userOpts.allowS3 ?? true) {
          await iam(endpoint, ca, {
            Action: 'PutUserPolicy',
            UserName: name,
            PolicyName: 's3-all',
            PolicyDocument: JSON.stringify({
              Version: '2012-10-17',
              Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }],
            }),
          });
        }
        return { accessKeyId, secretAccessKey };
      } finally {
        if (wasOn) await setAuth(true);
      }
    },
    enableAuth: () => setAuth(true),
    disableAuth: () => setAuth(false),
    output: () => log,
  };
  return server;
}

async function killAndWait(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  if (proc.pid !== undefined) {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`moto_server (PID ${proc.pid}) did not exit within ${STOP_TIMEOUT_MS} ms`)),
      STOP_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
