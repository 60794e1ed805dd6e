// The engine side of a restore, on the engine controller's polls: when spec.requestedBackupRestore
// names a backup the engine has not restored, start the restore in the engine (incremental on top of
// status.lastRestoredBackup when there is one) and follow it into status. A failed restore is retried
// after a pause; the data it half wrote is overwritten by the retry (restores write whole blocks).
import { unary } from '../../dataplane/grpc/unary.js';
import type { ControllerServiceClient } from '../../dataplane/proto/gen/engine.js';
import type { Engine, EngineStatus } from '../../model/engine.js';
import type { ControllerContext } from '../context.js';
import { targetAccess } from './target-access.js';

const CALL_MS = 15_000;
const RETRY_AFTER_MS = 10_000;
const lastFailure = new Map<string, number>();

/** Status fields to merge into the engine's status after this poll (empty when nothing to do). */
export async function engineRestoreStep(
  ctx: ControllerContext,
  e: Engine,
  client: ControllerServiceClient,
): Promise<Partial<EngineStatus>> {
  const want = e.spec.requestedBackupRestore;
  if (!want || want === e.status.lastRestoredBackup) return {};
  const st = await unary(client.backupRestoreStatus, client, {}, CALL_MS);
  const restoreStatus = { state: st.state, backupName: st.backupName, progress: st.progress, error: st.error };
  if (st.backupName === want && st.state === 'complete') {
    lastFailure.delete(e.metadata.name);
    return { lastRestoredBackup: want, restoreStatus };
  }
  if (st.state === 'in_progress') return { restoreStatus };
  if (st.state === 'error' && st.backupName === want) {
    const failedAt = lastFailure.get(e.metadata.name) ?? Date.now();
    lastFailure.set(e.metadata.name, failedAt);
    if (Date.now() - failedAt < RETRY_AFTER_MS) return { restoreStatus };
  }
  lastFailure.delete(e.metadata.name);
  const access = targetAccess(ctx);
  if ('error' in access)
    return { restoreStatus: { ...restoreStatus, state: 'error', backupName: want, error: access.error } };
  const volume = await unary(client.volumeGet, client, {}, CALL_MS);
  // A restore writes with no one reading: Longhorn restores with the frontend off.
  if (volume.frontendState === 'up') await unary(client.volumeFrontendShutdown, client, {}, CALL_MS);
  try {
    const started = await unary(
      client.backupRestore,
      client,
      {
        backupUrl: e.spec.requestedBackupRestoreURL,
        credential: access.credential,
        lastRestoredBackupName: e.status.lastRestoredBackup,
        concurrency: ctx.settings.int('restore-concurrent-limit'),
      },
      CALL_MS,
    );
    ctx.events.normal(
      e,
      'RestoreStarted',
      `restoring backup ${want} into ${e.spec.volumeName}${e.status.lastRestoredBackup ? ` on top of ${e.status.lastRestoredBackup}` : ''}`,
    );
    return {
      restoreStatus: { state: started.state, backupName: want, progress: started.progress, error: started.error },
    };
  } catch (err) {
    lastFailure.set(e.metadata.name, Date.now());
    return { restoreStatus: { state: 'error', backupName: want, progress: 0, error: (err as Error).message } };
  }
}
