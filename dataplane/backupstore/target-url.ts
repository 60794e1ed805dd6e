// Backup target URLs and backup URLs in Longhorn's spelling (reference/longhorn-engine.md §5.9, §5.5),
// so a target configured for Longhorn works here unchanged and a backup URL names the same backup.
import { isValidName } from './layout.js';
import type { BackupTargetLocation } from './types.js';

/**
 * `file:///abs/dir` (a mounted NFS/CIFS share or a local directory; `vfs:///` is Longhorn's spelling for
 * tests and means the same) or `s3://bucket@region/path/`, `s3://bucket/path/` with the region from
 * `defaultRegion` (the credential's AWS_REGION).
 */
export function parseTargetUrl(url: string, defaultRegion?: string): BackupTargetLocation {
  const text = url.trim();
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(text)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    throw new Error(
      `invalid backup target ${JSON.stringify(url)}: expected file:///<dir> or s3://<bucket>@<region>/<path>/`,
    );
  }
  const rest = text.slice(scheme.length + 3);
  switch (scheme) {
    case 'file':
    case 'vfs':
      return parseFileTarget(text, rest);
    case 's3':
      return parseS3Target(text, rest, defaultRegion);
    case 'nfs':
    case 'cifs':
      throw new Error(
        `unsupported backup target scheme ${scheme}: ${text}; mount the share on every node and use file://<mount point>`,
      );
    case 'azblob':
      throw new Error(
        `unsupported backup target scheme azblob: ${text}; use an S3-compatible endpoint (s3://) instead`,
      );
    default:
      throw new Error(
        `unsupported backup target scheme ${scheme}: ${text}; use file:///<dir> or s3://<bucket>@<region>/<path>/`,
      );
  }
}

function parseFileTarget(url: string, rest: string): BackupTargetLocation {
  if (rest.includes('?') || rest.includes('#')) {
    throw new Error(`invalid backup target ${url}: a file:// target takes no query or fragment`);
  }
  // file:///dir has an empty host; file://localhost/dir is the same place. Anything else would be a
  // remote host, which only a mount can reach.
  const slash = rest.indexOf('/');
  const host = slash < 0 ? rest : rest.slice(0, slash);
  if (host !== '' && host !== 'localhost') {
    throw new Error(
      `invalid backup target ${url}: file:// takes an absolute local path (file:///mnt/backups), not host ${host}`,
    );
  }
  if (slash < 0) throw new Error(`invalid backup target ${url}: missing the directory (file:///mnt/backups)`);
  let dir: string;
  try {
    dir = decodeURIComponent(rest.slice(slash));
  } catch {
    throw new Error(`invalid backup target ${url}: bad percent-encoding in the path`);
  }
  if (dir.split('/').some((segment) => segment === '..' || segment === '.')) {
    throw new Error(`invalid backup target ${url}: the path must not contain '.' or '..'`);
  }
  dir = dir.replace(/\/+$/, '') || '/';
  return { kind: 'file', url, dir };
}

const BUCKET_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const REGION_PATTERN = /^[a-z0-9][a-z0-9-]*$/;

function parseS3Target(url: string, rest: string, defaultRegion: string | undefined): BackupTargetLocation {
  if (rest.includes('?') || rest.includes('#')) {
    throw new Error(`invalid backup target ${url}: an s3:// target takes no query or fragment`);
  }
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash + 1);
  const at = authority.indexOf('@');
  const bucket = at < 0 ? authority : authority.slice(0, at);
  const region = at < 0 ? (defaultRegion ?? '') : authority.slice(at + 1);
  if (bucket === '')
    throw new Error(`invalid backup target ${url}: missing the bucket (s3://<bucket>@<region>/<path>/)`);
  if (!BUCKET_PATTERN.test(bucket))
    throw new Error(`invalid backup target ${url}: ${bucket} is not a valid S3 bucket name`);
  if (region === '') {
    throw new Error(
      `invalid backup target ${url}: no region; write s3://${bucket}@<region>/${path} or set AWS_REGION in the target's credential`,
    );
  }
  if (!REGION_PATTERN.test(region)) throw new Error(`invalid backup target ${url}: ${region} is not a valid region`);
  const prefix = path.replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((segment) => segment === '..' || segment === '.')) {
    throw new Error(`invalid backup target ${url}: the path must not contain '.' or '..'`);
  }
  return { kind: 's3', url, bucket, region, prefix };
}

/**
 * Longhorn's EncodeBackupURL: the target URL with `backup` and `volume` as query parameters, keys in
 * the order Go's url.Values.Encode sorts them.
 */
export function encodeBackupUrl(targetUrl: string, backupName: string, volumeName: string): string {
  const query = new URLSearchParams([
    ['backup', backupName],
    ['volume', volumeName],
  ]);
  return `${targetUrl}?${query.toString()}`;
}

export interface DecodedBackupUrl {
  targetUrl: string;
  backupName: string;
  volumeName: string;
}

export function decodeBackupUrl(url: string): DecodedBackupUrl {
  const q = url.indexOf('?');
  if (q < 0) throw new Error(`invalid backup URL ${url}: expected <target>?backup=<name>&volume=<volume>`);
  const targetUrl = url.slice(0, q);
  const query = new URLSearchParams(url.slice(q + 1));
  const backupName = query.get('backup') ?? '';
  const volumeName = query.get('volume') ?? '';
  if (targetUrl === '') throw new Error(`invalid backup URL ${url}: missing the target before '?'`);
  if (volumeName === '') throw new Error(`invalid backup URL ${url}: missing volume=<volume>`);
  if (backupName === '') throw new Error(`invalid backup URL ${url}: missing backup=<name>`);
  if (!isValidName(volumeName)) throw new Error(`invalid backup URL ${url}: bad volume name ${volumeName}`);
  if (!isValidName(backupName)) throw new Error(`invalid backup URL ${url}: bad backup name ${backupName}`);
  return { targetUrl, backupName, volumeName };
}
