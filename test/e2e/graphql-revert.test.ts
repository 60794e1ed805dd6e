// Snapshot, detach, revert, attach — through GraphQL alone, on a real control plane (2 nodes, real
// instance managers, engines and replicas): the content read back over NBD after the revert is the
// snapshot's, not what was written after it. Purge runs on an attached volume and is refused otherwise.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createShorthornYoga, type ShorthornYoga } from '../../schema/yoga.js';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.js';
import { MiB, python, waitFor } from '../helpers/volume-tools.js';

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

// biome-ignore lint/suspicious/noExplicitAny: GraphQL answers are checked field by field
type Json = any;

function managerLog(): string {
  if (!cp) return '';
  return readFileSync(cp.logFile, 'utf8')
    .split('\n')
    .filter((l) => /"level":(40|50)/.test(l))
    .slice(-30)
    .join('\n');
}

const ERR = '... on Error { __typename code message }';
const VOLUME =
  'name state robustness endpoint revertRequestedTo purgeRequested conditions { type status reason message }';

describe('revert through GraphQL', () => {
  it('snapshot, overwrite, detach, revert, attach: the volume reads back the snapshot; purge needs it attached', async () => {
    cp = await startControlPlane({ nodes: 2 });
    const yoga: ShorthornYoga = createShorthornYoga({ store: cp.store, api: cp.manager.api, anonymousRole: 'admin' });
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
    const volume = async () => (await gql(`{ volume(name: "rv") { ${VOLUME} } }`)).volume;
    const waitVolume = async (what: string, check: (v: Json) => boolean, timeoutMs = 60_000) => {
      let last: Json;
      const ok = await waitFor(async () => {
        last = await volume();
        return check(last);
      }, timeoutMs);
      if (!ok) throw new Error(`volume rv: ${what} not reached; last: ${JSON.stringify(last)}\n${managerLog()}`);
      return last;
    };
    const condition = (v: Json, type: string) => v.conditions.find((c: Json) => c.type === type);
    const sha = async (uri: string, writeByte?: number) => {
      const write = writeByte === undefined ? '' : `h.pwrite(bytes([${writeByte}]) * (4 << 20), 0)\nh.flush()\n`;
      const r = await python(
        `import nbd, sys, hashlib\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\n${write}print(hashlib.sha256(h.pread(4 << 20, 0)).hexdigest())`,
        [uri],
      );
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim();
    };

    const created = await gql(
      `mutation { createVolume(input: {name: "rv", size: ${32 * MiB}, numberOfReplicas: 2}) { __typename ${ERR} } }`,
    );
    expect(created.createVolume.__typename).toBe('Volume');
    await waitVolume('detached', (v) => v.state === 'detached');
    await gql(`mutation { attachVolume(name: "rv", node: "node-1") { __typename ${ERR} } }`);
    const attached = await waitVolume('attached and healthy', (v) => v.robustness === 'healthy' && v.endpoint !== '');
    const shaA = await sha(attached.endpoint, 7);

    const snap = await gql(
      `mutation { createSnapshot(volume: "rv", name: "snap-a") { __typename ... on Snapshot { name } ${ERR} } }`,
    );
    expect(snap.createSnapshot).toEqual({ __typename: 'Snapshot', name: 'snap-a' });
    const ready = await waitFor(async () => {
      const s = (await gql(`{ snapshots(volume: "rv") { name readyToUse } }`)).snapshots as Json[];
      return s.some((x) => x.name === 'snap-a' && x.readyToUse);
    }, 30_000);
    expect(ready, managerLog()).toBe(true);
    const shaB = await sha(attached.endpoint, 9);
    expect(shaB).not.toBe(shaA);

    // Purge runs on the attached volume's engine and reports in the Purge condition.
    const purge = await gql(
      `mutation { purgeSnapshots(volume: "rv") { __typename ... on Volume { purgeRequested } ${ERR} } }`,
    );
    expect(purge.purgeSnapshots).toEqual({ __typename: 'Volume', purgeRequested: true });
    const purged = await waitVolume('purged', (v) => !v.purgeRequested, 30_000);
    expect(condition(purged, 'Purge')).toMatchObject({ status: 'True', reason: 'Purged' });

    // Revert is refused while attached, with what to do.
    const early = await gql(`mutation { revertSnapshot(volume: "rv", name: "snap-a") { __typename ${ERR} } }`);
    expect(early.revertSnapshot).toMatchObject({ __typename: 'InvalidState', code: 'InvalidState' });
    expect(early.revertSnapshot.message).toContain('detach it before reverting');

    await gql(`mutation { detachVolume(name: "rv") { __typename ${ERR} } }`);
    await waitVolume('detached', (v) => v.state === 'detached' && v.endpoint === '');
    const refusedPurge = await gql(`mutation { purgeSnapshots(volume: "rv") { __typename ${ERR} } }`);
    expect(refusedPurge.purgeSnapshots).toMatchObject({ __typename: 'InvalidState' });
    expect(refusedPurge.purgeSnapshots.message).toContain('attach it to purge');

    // Revert, and ask for the volume on the other node at once: that ticket waits for the revert.
    const revert = await gql(
      `mutation { revertSnapshot(volume: "rv", name: "snap-a") { __typename ... on Volume { revertRequestedTo } ${ERR} } }`,
    );
    expect(revert.revertSnapshot).toEqual({ __typename: 'Volume', revertRequestedTo: 'snap-a' });
    const attach = await gql(`mutation { attachVolume(name: "rv", node: "node-2") { __typename ${ERR} } }`);
    expect(attach.attachVolume.__typename).toBe('Volume');
    const back = await waitVolume(
      'reverted and attached on node-2',
      (v) => v.revertRequestedTo === null && v.state === 'attached' && v.endpoint !== '' && v.robustness === 'healthy',
      120_000,
    );
    expect(condition(back, 'Revert')).toMatchObject({ status: 'True', reason: 'Reverted' });
    expect(back.endpoint).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\/rv$/);
    const node = (await gql(`{ volume(name: "rv") { currentNodeID } }`)).volume.currentNodeID;
    expect(node).toBe('node-2');
    expect(await sha(back.endpoint)).toBe(shaA);
    const events = (await cp.store.list('Event')).items
      .filter((e) => e.spec.involvedObject.name === 'rv')
      .map((e) => e.spec.reason);
    expect(events).toEqual(expect.arrayContaining(['Reverted', 'Detached', 'Attached']));

    // The revert's ticket is gone; only the API's remains.
    const va = await cp.store.get('VolumeAttachment', 'rv');
    expect(Object.keys(va!.spec.attachmentTickets)).toEqual(['shorthorn-api-node-2']);
  }, 240_000);
});
