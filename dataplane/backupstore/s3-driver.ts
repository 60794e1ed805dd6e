// The s3:// backup target: every path is one object `<prefix>/<path>` in the bucket (Longhorn's S3 store,
// reference/longhorn-engine.md §5.9). Credentials use Longhorn's secret keys (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINTS, VIRTUAL_HOSTED_STYLE, AWS_REGION, AWS_CERT).
// Every failure that is not "this object is missing" becomes a BackupTargetError whose message names
// the cause the operator has to fix: the endpoint is unreachable, the credentials are refused, the
// bucket does not exist.
import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import {
  BackupNotFoundError,
  type BackupStoreDriver,
  BackupTargetError,
  type BackupTargetLocation,
  type DriverStats,
  type TargetCredential,
} from './types.js';

export type S3TargetLocation = Extract<BackupTargetLocation, { kind: 's3' }>;

/** Tunables; the defaults make a dead endpoint fail within seconds instead of the SDK's minutes. */
export interface S3DriverOptions {
  /** TCP (and TLS) connect limit per attempt. Default 3000 ms. */
  connectionTimeoutMs?: number;
  /** Whole-request limit per attempt (a 2 MiB block must fit). Default 30000 ms. */
  requestTimeoutMs?: number;
  /** Attempts per request, first one included (the SDK retries network errors, 5xx and throttling). Default 3. */
  maxAttempts?: number;
}

/** S3's DeleteObjects takes at most 1000 keys per request. */
const DELETE_BATCH = 1000;
/** Parallel single DeleteObject calls when the server has no DeleteObjects. */
const SINGLE_DELETE_CONCURRENCY = 16;

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EPIPE',
]);
const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'InvalidClientTokenId',
]);
/** Answers from servers that have no multi-object delete (or insist on Content-MD5 for it). */
const NO_MULTI_DELETE = new Set(['NotImplemented', 'MethodNotAllowed', 'MissingContentMD5', 'InvalidDigest']);

/** The fields of an SDK or Node error that the translation looks at. */
interface ErrorFields {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
  errors?: unknown[];
}

function fields(err: unknown): ErrorFields {
  return typeof err === 'object' && err !== null ? (err as ErrorFields) : { message: String(err) };
}

/** Node's socket error code, also inside the AggregateError that happy-eyeballs connects throw. */
function socketCode(err: ErrorFields): string | undefined {
  if (err.code !== undefined) return err.code;
  for (const inner of err.errors ?? []) {
    const code = fields(inner).code;
    if (code !== undefined) return code;
  }
  return undefined;
}

function first(value: string | undefined): string | undefined {
  const v = value?.split(',')[0]?.trim();
  return v === undefined || v === '' ? undefined : v;
}

/**
 * A BackupStoreDriver on an S3 bucket (AWS or any S3-compatible server through AWS_ENDPOINTS).
 * `location` comes from parseTargetUrl (target-url.ts); `credential` is the target's secret.
 */
export function createS3Driver(
  location: S3TargetLocation,
  credential: TargetCredential,
  options: S3DriverOptions = {},
): BackupStoreDriver {
  return new S3Driver(location, credential, options);
}

class S3Driver implements BackupStoreDriver {
  readonly kind = 's3' as const;
  readonly url: string;
  readonly stats: DriverStats = { puts: 0, gets: 0, bytesWritten: 0, bytesRead: 0 };
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  /** For messages: the custom endpoint, or AWS's regional one. */
  private readonly endpoint: string;
  private readonly connectionTimeoutMs: number;
  private readonly httpsAgent: HttpsAgent | undefined;
  /** Set once a listing of the bucket succeeded: from then on a HEAD 404 means the object is missing. */
  private bucketSeen = false;
  /** Set when the server answered DeleteObjects with "not implemented": use single deletes from then on. */
  private singleDeletes = false;

  constructor(location: S3TargetLocation, credential: TargetCredential, options: S3DriverOptions) {
    this.url = location.url;
    this.bucket = location.bucket;
    this.prefix = location.prefix.replace(/^\/+|\/+$/g, '');
    const region = location.region || credential['AWS_REGION'] || 'us-east-1';
    const customEndpoint = first(credential['AWS_ENDPOINTS']);
    const endpoint =
      customEndpoint === undefined
        ? undefined
        : /^[a-z][a-z0-9+.-]*:\/\//i.test(customEndpoint)
          ? customEndpoint
          : `https://${customEndpoint}`;
    this.endpoint = (endpoint ?? `https://s3.${region}.amazonaws.com`).replace(/\/+$/, '');
    this.connectionTimeoutMs = options.connectionTimeoutMs ?? 3000;

    // Longhorn adds AWS_CERT to the system roots (it does not replace them), so do the same.
    const cert = credential['AWS_CERT']?.trim();
    this.httpsAgent =
      cert === undefined || cert === ''
        ? undefined
        : new HttpsAgent({ keepAlive: true, maxSockets: 50, ca: [...rootCertificates, cert] });

    const accessKeyId = credential['AWS_ACCESS_KEY_ID'];
    const secretAccessKey = credential['AWS_SECRET_ACCESS_KEY'];
    const sessionToken = credential['AWS_SESSION_TOKEN'];
    const config: S3ClientConfig = {
      region,
      // A custom endpoint (MinIO, Ceph, moto…) is addressed path-style unless the secret asks for
      // virtual-hosted style; AWS itself is virtual-hosted.
      forcePathStyle: endpoint !== undefined && credential['VIRTUAL_HOSTED_STYLE']?.toLowerCase() !== 'true',
      // SDK >= 3.729 adds a CRC32 to every PutObject by default, which S3-compatible servers reject.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: options.maxAttempts ?? 3,
      // The options form of the client's own NodeHttpHandler (@smithy/node-http-handler): no import of
      // that package (not a direct dependency) is needed to bound the timeouts or pass the CA agent.
      requestHandler: {
        connectionTimeout: this.connectionTimeoutMs,
        requestTimeout: options.requestTimeoutMs ?? 30_000,
        // Without this the request timeout only logs a warning and the request waits on.
        throwOnRequestTimeout: true,
        ...(this.httpsAgent === undefined ? {} : { httpsAgent: this.httpsAgent }),
      },
    };
    if (endpoint !== undefined) config.endpoint = endpoint;
    // Without keys the SDK's default chain applies (environment, web identity, instance role), as in Longhorn.
    if (accessKeyId !== undefined && accessKeyId !== '' && secretAccessKey !== undefined) {
      config.credentials = {
        accessKeyId,
        secretAccessKey,
        ...(sessionToken === undefined || sessionToken === '' ? {} : { sessionToken }),
      };
    }
    // The SDK is pinned to a release that supports Node 20 (package.json); its notice that later
    // releases will not would otherwise land in every manager and replica log.
    process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
    this.client = new S3Client(config);
  }

  /** `<prefix>/<path>`, or just `<path>` at the bucket root; never a leading '/'. */
  private key(path: string): string {
    const p = path.replace(/^\/+/, '');
    return this.prefix === '' ? p : `${this.prefix}/${p}`;
  }

  async exists(path: string): Promise<boolean> {
    return (await this.head(path)) !== undefined;
  }

  /** S3 has strong read-after-write and list consistency (AWS since December 2020; MinIO and Ceph RGW too). */
  async consistentListing(): Promise<boolean> {
    return true;
  }

  async mtime(path: string): Promise<Date | undefined> {
    return (await this.head(path))?.LastModified;
  }

  async read(path: string): Promise<Buffer> {
    const key = this.key(path);
    let body: Uint8Array;
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      body = (await out.Body?.transformToByteArray()) ?? new Uint8Array(0);
    } catch (err) {
      const e = fields(err);
      if (e.name === 'NoSuchKey') throw new BackupNotFoundError(`${this.describe(key)} does not exist`);
      throw this.translate(err, 'GetObject', key);
    }
    this.stats.gets++;
    this.stats.bytesRead += body.byteLength;
    return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  }

  async write(path: string, data: Buffer): Promise<void> {
    const key = this.key(path);
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: data, ContentLength: data.byteLength }),
      );
    } catch (err) {
      throw this.translate(err, 'PutObject', key);
    }
    this.stats.puts++;
    this.stats.bytesWritten += data.byteLength;
  }

  async remove(path: string): Promise<void> {
    if (path.endsWith('/')) {
      // Like the file driver: never everything at once (with prefix '' that would be the whole bucket).
      if (path.replace(/^\/+/, '') === '') throw new Error(`refusing to remove the backup target root ${this.url}`);
      await this.removePrefix(this.key(path));
      return;
    }
    const key = this.key(path);
    try {
      // S3 answers 204 for a missing key too, so "missing is not an error" comes for free.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      throw this.translate(err, 'DeleteObject', key);
    }
  }

  async list(dir: string): Promise<string[]> {
    const d = dir.replace(/^\/+|\/+$/g, '');
    const prefix = d === '' ? (this.prefix === '' ? '' : `${this.prefix}/`) : `${this.key(d)}/`;
    const names = new Set<string>();
    for await (const page of this.pages(prefix, '/')) {
      for (const cp of page.CommonPrefixes ?? []) {
        const name = cp.Prefix?.slice(prefix.length).replace(/\/$/, '');
        if (name) names.add(name);
      }
      for (const obj of page.Contents ?? []) {
        // A "directory marker" object `dir/` itself has an empty name here: skip it.
        const name = obj.Key?.slice(prefix.length);
        if (name) names.add(name);
      }
    }
    this.bucketSeen = true;
    return [...names].sort();
  }

  async close(): Promise<void> {
    this.client.destroy();
    this.httpsAgent?.destroy();
  }

  /** Pages of ListObjectsV2 under `prefix` (S3 returns at most 1000 entries per page). */
  private async *pages(prefix: string, delimiter?: string): AsyncGenerator<ListObjectsV2CommandOutput> {
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            ...(delimiter === undefined ? {} : { Delimiter: delimiter }),
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
      } catch (err) {
        throw this.translate(err, 'ListObjectsV2', prefix);
      }
      yield page;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /**
   * HeadObject, undefined when the object is missing. A HEAD answer has no body, so a 404 cannot tell
   * a missing key from a missing bucket and a 403 does not say why: in both cases a listing (whose
   * errors do carry the code) is asked once to find out.
   */
  private async head(path: string): Promise<HeadObjectCommandOutput | undefined> {
    const key = this.key(path);
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      const status = fields(err).$metadata?.httpStatusCode;
      if (status === 404) {
        if (!this.bucketSeen) await this.probe(key);
        return undefined;
      }
      if (status !== undefined && status >= 300 && status < 500) await this.probe(key);
      throw this.translate(err, 'HeadObject', key);
    }
  }

  /** A one-entry listing at `key`: throws the translated error if the bucket is missing or refused. */
  private async probe(key: string): Promise<void> {
    try {
      await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: key, MaxKeys: 1 }));
    } catch (err) {
      throw this.translate(err, 'ListObjectsV2', key);
    }
    this.bucketSeen = true;
  }

  private async removePrefix(prefix: string): Promise<void> {
    // Collect first, then delete: deleting under a live continuation token is not safe on every server.
    const keys: string[] = [];
    for await (const page of this.pages(prefix)) {
      for (const obj of page.Contents ?? []) if (obj.Key !== undefined) keys.push(obj.Key);
    }
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      await this.deleteBatch(keys.slice(i, i + DELETE_BATCH));
    }
  }

  private async deleteBatch(keys: string[]): Promise<void> {
    if (!this.singleDeletes) {
      try {
        const out = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
          }),
        );
        const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
        if (failed.length > 0) {
          const f = failed[0]!;
          throw new BackupTargetError(
            `S3 could not delete ${failed.length} of ${keys.length} objects, e.g. ${this.describe(f.Key ?? '?')}: ${f.Code} ${f.Message ?? ''}`.trim(),
          );
        }
        return;
      } catch (err) {
        const e = fields(err);
        const status = e.$metadata?.httpStatusCode;
        if (!(NO_MULTI_DELETE.has(e.name ?? '') || status === 501 || status === 405)) {
          throw err instanceof BackupTargetError ? err : this.translate(err, 'DeleteObjects', keys[0] ?? '');
        }
        this.singleDeletes = true;
      }
    }
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const key = keys[next++]!;
        try {
          await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
        } catch (err) {
          throw this.translate(err, 'DeleteObject', key);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(SINGLE_DELETE_CONCURRENCY, keys.length) }, worker));
  }

  private describe(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  /** Any SDK or socket error → a BackupTargetError an operator can act on (cause kept). */
  private translate(err: unknown, op: string, key: string): BackupTargetError {
    if (err instanceof BackupTargetError) return err;
    const e = fields(err);
    const name = e.name ?? 'Error';
    const status = e.$metadata?.httpStatusCode;
    const attempts = e.$metadata?.attempts;
    const tries = attempts !== undefined && attempts > 1 ? ` after ${attempts} attempts` : '';
    const code = socketCode(e);
    let message: string;
    if (name === 'TimeoutError' || code === 'ETIMEDOUT') {
      const what = /establish a connection/.test(e.message ?? '')
        ? `no connection within ${this.connectionTimeoutMs} ms`
        : 'request timed out';
      message = `S3 endpoint ${this.endpoint} unreachable (${what})${tries}`;
    } else if (code !== undefined && NETWORK_CODES.has(code)) {
      const hint = code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? ': host name does not resolve' : '';
      message = `S3 endpoint ${this.endpoint} unreachable (${code})${hint}${tries}`;
    } else if (code !== undefined && TLS_CODES.has(code)) {
      message = `S3 endpoint ${this.endpoint} has a TLS certificate this node does not trust (${code}); put the CA in the target secret's AWS_CERT`;
    } else if (CREDENTIAL_CODES.has(name)) {
      message = `S3 refused the credentials (${name}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY${name.includes('Token') ? ' / AWS_SESSION_TOKEN' : ''} of the backup target`;
    } else if (name === 'CredentialsProviderError') {
      message = `no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the backup target's secret (${e.message ?? ''})`;
    } else if (name === 'NoSuchBucket') {
      message = `bucket ${this.bucket} does not exist at ${this.endpoint}`;
    } else if (name === 'AccessDenied' || name === 'AllAccessDisabled' || name === 'AccountProblem') {
      message = `S3 denied ${op} on ${this.describe(key)} (${name}): the credentials lack permission on bucket ${this.bucket}`;
    } else if (
      name === 'PermanentRedirect' ||
      name === 'AuthorizationHeaderMalformed' ||
      name === 'IllegalLocationConstraintException' ||
      status === 301
    ) {
      message = `bucket ${this.bucket} is not in this region (${name}: ${e.message ?? ''}); write its region in the target URL (s3://${this.bucket}@<region>/) or AWS_REGION`;
    } else if (status !== undefined && status >= 500) {
      message = `S3 endpoint ${this.endpoint} failed ${op} on ${this.describe(key)}: ${status} ${name}${tries}`;
    } else {
      const detail = e.message && e.message !== 'UnknownError' ? `: ${e.message}` : '';
      message = `S3 ${op} on ${this.describe(key)} failed (${status ?? code ?? 'no response'} ${name})${detail}`;
    }
    return new BackupTargetError(message, { cause: err });
  }
}
