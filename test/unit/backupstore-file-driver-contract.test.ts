// The backup driver contract (test/contract/backup-driver-contract.ts) on the file:// driver, each test
// on a fresh temporary directory. The same contract runs on S3 in test/integration/backupstore-s3.test.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileDriver } from '../../dataplane/backupstore/file-driver.js';
import { backupDriverContract } from '../contract/backup-driver-contract.js';

backupDriverContract('file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shorthorn-file-target-'));
  return {
    driver: createFileDriver({ kind: 'file', url: `file://${dir}`, dir }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
