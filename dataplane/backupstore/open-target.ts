// One entry from a target URL (as stored on a BackupTarget) to a driver, so callers never branch on
// the scheme themselves.
import { createFileDriver } from './file-driver.js';
import { createS3Driver } from './s3-driver.js';
import { parseTargetUrl } from './target-url.js';
import type { BackupStoreDriver, TargetCredential } from './types.js';

export function openTarget(url: string, credential: TargetCredential = {}): BackupStoreDriver {
  // s3://bucket/path/ takes its region from the credential, as Longhorn's AWS_REGION does.
  const location = parseTargetUrl(url, credential['AWS_REGION']);
  switch (location.kind) {
    case 'file':
      return createFileDriver(location);
    case 's3':
      return createS3Driver(location, credential);
  }
}
