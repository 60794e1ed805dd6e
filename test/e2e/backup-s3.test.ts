// Backups end to end through GraphQL on a real control plane (2 nodes: instance managers, engines,
// replicas) against a real S3 server (moto_server): back up, restore into a new volume (byte-identical
// over NBD), an incremental backup uploads only changed blocks (objects counted in the bucket), a
// standby volume follows new backups and, activated, holds the newest data; deleting the first backup
// keeps the second restorable and removes only blocks nobody needs; S3 killed mid-backup → the backup
// is Error with the reason, the target Available=False, the volume still serves; S3 back → the next
// backup completes.
import { readFileSync } from 'node:fs';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { readBackupConfig } from '../../dataplane/backupstore/inspect.js';
import { openTarget } from '../../dataplane/backupstore/open-target.js';
import { createShorthornYoga } from '../../schema/yoga.js';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { MOTO_ANY_CREDENTIAL, type MotoServer, startMoto } from '../helpers/moto.js';
import { MiB, python, volumeSha256, waitFor } from '../helpers/volume-tools.js';

let cp: TestControlPlane | undefined;
let moto: MotoServer | undefined;
afterEach(async () => {
  await cp?.stop();
  await moto?.stop();
  cp = undefined;
  moto = undefined;
});

// biome-ignore lint/suspicious/noExplicitAny: GraphQL answers are checked field by field
type Json = any;

const ERR = '... on Error { __typename code message }';
const BACKUP = 'name state progress url error volumeName snapshotName isIncremental size';
const VOLUME =
  'name state robustness endpoint fromBackup standby isStandby restoreRequired lastRestoredBackup restoreProgress conditions { type status reason message }';

function managerLog(): string {
  if (!cp) return '';
  return readFileSync(cp.logFile, 'utf8')
    .split('\n')
    .filter((l) => /"level":(40|50)/.test(l))
    .slice(-30)
    .join('\n');
}

/** Write random bytes at each [offset, length) over NBD (in 4 MiB requests) and flush. */
async function writeRandom(uri: string, ranges: [number, number][]) {
  const r = await python(
    `import nbd, sys, os, json\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nfor off, n in json.loads(sys.argv[2]):\n    for o in range(off, off + n, 4 << 20):\n        h.pwrite(os.urandom(min(4 << 20, off + n - o)), o)\nh.flush()`,
    [uri, JSON.stringify(ranges)],
  );
  expect(r.code, r.stderr).toBe(0);
}

describe('backups to S3 through GraphQL', () => {
  it('backup, restore, incremental, standby + activate, delete, and S3 going away mid-backup', async () => {
    moto = await startMoto({ bucket: 'backups' });
    cp = await startControlPlane({ nodes: 2 });
    const yoga = createShorthornYoga({ store: cp.store, api: cp.manager.api, anonymousRole: 'admin' });
    const gql = async (query: string, variables?: Record<string, unknown>): Promise<Json> => {
      const res = await yoga.fetch('http://shorthorn/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await res.json()) as Json;
      if (body.errors) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
      return body.data;
    };
    const until = async <T>(what: string, read: () => Promise<T>, check: (x: T) => boolean, timeoutMs = 90_000) => {
      let last: T | undefined;
      const ok = await waitFor(async () => {
        last = await read();
        return check(last);
      }, timeoutMs);
      if (!ok) throw new Error(`${what} not reached; last: ${JSON.stringify(last)}\n${managerLog()}`);
      return last as T;
    };
    const volume = async (name: string) => (await gql(`{ volume(name: "${name}") { ${VOLUME} } }`)).volume;
    const backup = async (name: string) => (await gql(`{ backup(name: "${name}") { ${BACKUP} } }`)).backup;
    const target = async () =>
      (await gql('{ backupTarget(name: "default") { url available conditions { type status message } } }'))
        .backupTarget;
    const attach = async (name: string) => {
      const r = await gql(`mutation { attachVolume(name: "${name}", node: "node-1") { __typename ${ERR} } }`);
      expect(r.attachVolume.__typename).toBe('Volume');
      return (
        await until(
          `${name} attached`,
          () => volume(name),
          (v) => v.state === 'attached' && !!v.endpoint,
        )
      ).endpoint as string;
    };
    const detach = async (name: string) => {
      await gql(`mutation { detachVolume(name: "${name}") { __typename ${ERR} } }`);
      await until(
        `${name} detached`,
        () => volume(name),
        (v) => v.state === 'detached',
      );
    };
    const takeBackup = async (vol: string) => {
      const r = await gql(`mutation { createBackup(volume: "${vol}") { __typename ... on Backup { name } ${ERR} } }`);
      expect(r.createBackup.__typename, JSON.stringify(r)).toBe('Backup');
      return r.createBackup.name as string;
    };
    const completed = (name: string) =>
      until(
        `backup ${name} Completed`,
        () => backup(name),
        (b) => b?.state === 'Completed' || b?.state === 'Error',
      );
    const s3 = new S3Client({
      region: 'us-east-1',
      endpoint: moto.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    });
    const blockKeys = async () => {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3.send(
          new ListObjectsV2Command({ Bucket: 'backups', Prefix: 'store/', ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) if (o.Key?.endsWith('.blk')) keys.push(o.Key);
        token = page.NextContinuationToken;
      } while (token);
      return keys.sort();
    };
    const restoreInto = async (url: string, name: string, standby = false) => {
      const r = await gql(
        `mutation { restoreBackup(backupURL: "${url}", name: "${name}", standby: ${standby}, numberOfReplicas: 2) { __typename ${ERR} } }`,
      );
      expect(r.restoreBackup.__typename, JSON.stringify(r)).toBe('Volume');
    };

    // The target: S3 at moto, credentials in the target's secret; available once listed.
    const targetUrl = 's3://backups@us-east-1/store/';
    const set = await gql(
      `mutation ($c: JSON) { setBackupTarget(input: { url: "${targetUrl}", pollInterval: 2, credential: $c }) { __typename ${ERR} } }`,
      { c: { ...MOTO_ANY_CREDENTIAL, AWS_ENDPOINTS: moto.endpoint } },
    );
    expect(set.setBackupTarget.__typename, JSON.stringify(set)).toBe('BackupTarget');
    await until('target available', target, (t) => t.available === true);

    // A source volume with data in its first 40 MiB (the rest holes), backed up and restored.
    await gql(`mutation { createVolume(input: {name: "src", size: ${64 * MiB}, numberOfReplicas: 2}) { __typename } }`);
    await until(
      'src detached',
      () => volume('src'),
      (v) => v.state === 'detached',
    );
    const srcUri = await attach('src');
    await writeRandom(srcUri, [[0, 40 * MiB]]);
    const sha1 = await volumeSha256(srcUri);
    const b1 = await takeBackup('src');
    const done1 = await completed(b1);
    expect(done1.state, JSON.stringify(done1)).toBe('Completed');
    expect(done1.url).toBe(`${targetUrl}?backup=${b1}&volume=src`);
    expect(done1.isIncremental).toBe(false);
    const blocksAfter1 = await blockKeys();
    expect(blocksAfter1.length).toBe(20); // 40 MiB of data = 20 blocks of 2 MiB; holes are not uploaded

    await restoreInto(done1.url, 'dst');
    const early = await gql(`mutation { attachVolume(name: "dst", node: "node-1") { __typename ${ERR} } }`);
    expect(early.attachVolume).toMatchObject({
      __typename: 'InvalidState',
      message: expect.stringMatching(/being restored/),
    });
    const restored = await until(
      'dst restored and detached',
      () => volume('dst'),
      (v) => v.lastRestoredBackup === b1 && !v.restoreRequired && v.state === 'detached',
    );
    expect(restored.conditions.find((c: Json) => c.type === 'Restore')?.status).toBe('True');
    expect(await volumeSha256(await attach('dst'))).toBe(sha1);
    await detach('dst');

    // A standby volume takes the first backup and keeps following.
    await restoreInto(done1.url, 'dr', true);
    await until(
      'dr standing by on b1',
      () => volume('dr'),
      (v) => v.lastRestoredBackup === b1 && v.isStandby,
    );
    const standbyAttach = await gql(`mutation { attachVolume(name: "dr", node: "node-1") { __typename ${ERR} } }`);
    expect(standbyAttach.attachVolume).toMatchObject({
      __typename: 'InvalidState',
      message: expect.stringMatching(/standby/),
    });

    // ~5% more (3 MiB in three places): the incremental backup uploads only the blocks that changed.
    await writeRandom(srcUri, [
      [1 * MiB, 1 * MiB],
      [20 * MiB, 1 * MiB],
      [50 * MiB, 1 * MiB],
    ]);
    const sha2 = await volumeSha256(srcUri);
    const b2 = await takeBackup('src');
    const done2 = await completed(b2);
    expect(done2.state, JSON.stringify(done2)).toBe('Completed');
    expect(done2.isIncremental).toBe(true);
    const blocksAfter2 = await blockKeys();
    expect(blocksAfter2.length - blocksAfter1.length).toBe(3); // three changed 2 MiB blocks, nothing else
    await until(
      'dr follows b2',
      () => volume('dr'),
      (v) => v.lastRestoredBackup === b2,
    );

    // Another change and backup; the standby follows, then is activated and holds the newest data.
    await writeRandom(srcUri, [[30 * MiB, 4096]]);
    const sha3 = await volumeSha256(srcUri);
    const b3 = await takeBackup('src');
    expect((await completed(b3)).state).toBe('Completed');
    await until(
      'dr follows b3',
      () => volume('dr'),
      (v) => v.lastRestoredBackup === b3,
    );
    const act = await gql(`mutation { activateVolume(name: "dr") { __typename ${ERR} } }`);
    expect(act.activateVolume.__typename, JSON.stringify(act)).toBe('Volume');
    await until(
      'dr activated and detached',
      () => volume('dr'),
      (v) => !v.isStandby && !v.restoreRequired && v.state === 'detached',
    );
    expect(await volumeSha256(await attach('dr'))).toBe(sha3);
    await detach('dr');

    // Delete the first backup: the second still restores; blocks only b1 used are gone, none b2/b3 need.
    const del = await gql(`mutation { deleteBackup(name: "${b1}") { __typename ${ERR} } }`);
    expect(del.deleteBackup.__typename, JSON.stringify(del)).toBe('Backup');
    await until(
      'b1 gone',
      () => backup(b1),
      (b) => b === null,
    );
    const driver = openTarget(targetUrl, { ...MOTO_ANY_CREDENTIAL, AWS_ENDPOINTS: moto.endpoint });
    const needed = new Set<string>();
    for (const name of [b2, b3])
      for (const blk of (await readBackupConfig(driver, 'src', name)).blocks) needed.add(blk.checksum);
    await driver.close();
    const left = (await blockKeys()).map((k) => k.slice(k.lastIndexOf('/') + 1, -'.blk'.length));
    expect(new Set(left)).toEqual(needed);
    expect(left.length).toBeLessThan(blocksAfter2.length + 1); // b1's own blocks were collected
    await restoreInto(done2.url, 'dst2');
    await until(
      'dst2 restored',
      () => volume('dst2'),
      (v) => v.lastRestoredBackup === b2 && v.state === 'detached',
    );
    expect(await volumeSha256(await attach('dst2'))).toBe(sha2);
    await detach('dst2');

    // S3 goes away in the middle of a backup (after its first new block landed).
    await gql('mutation { updateSetting(name: "backup-concurrent-limit", value: "1") { __typename } }');
    await writeRandom(srcUri, [[0, 48 * MiB]]);
    const before = (await blockKeys()).length;
    const b4 = await takeBackup('src');
    const landed = await waitFor(async () => (await blockKeys()).length > before, 60_000, 20);
    expect(landed, 'the backup uploaded nothing').toBe(true);
    await moto.stop();
    const failed = await until(
      'b4 Error',
      () => backup(b4),
      (b) => b.state === 'Error' || b.state === 'Completed',
    );
    expect(failed.state, JSON.stringify(failed)).toBe('Error');
    expect(failed.error).toMatch(/unreachable|ECONNREFUSED/);
    const down = await until('target unavailable', target, (t) => t.available === false);
    expect(down.conditions.find((c: Json) => c.type === 'Available')).toMatchObject({ status: 'False' });
    // The volume serves on: a write and a read over NBD.
    await writeRandom(srcUri, [[60 * MiB, 4096]]);
    const sha5 = await volumeSha256(srcUri);
    expect(sha5).toMatch(/^[0-9a-f]{64}$/);
    expect((await volume('src')).robustness).toBe('healthy');

    // S3 back (empty: moto keeps nothing): the target recovers and the next backup completes.
    await moto.restart();
    await until('target available again', target, (t) => t.available === true);
    const b5 = await takeBackup('src');
    const done5 = await completed(b5);
    expect(done5.state, JSON.stringify(done5)).toBe('Completed');

    // Deleting the backup volume takes every backup and block of src from the target.
    const delVol = await gql(`mutation { deleteBackupVolume(name: "src") { __typename ${ERR} } }`);
    expect(delVol.deleteBackupVolume.__typename, JSON.stringify(delVol)).toBe('BackupVolume');
    await until(
      'backup volume src gone',
      async () => (await gql('{ backupVolumes { name } backups(volume: "src") { name } }')) as Json,
      (d) => d.backupVolumes.length === 0 && d.backups.length === 0,
    );
    expect(await blockKeys()).toEqual([]);
    s3.destroy();
  }, 420_000);
});
