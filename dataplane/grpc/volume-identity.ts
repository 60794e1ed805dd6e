// Which volume a replica belongs to, checked on every control call (Longhorn's identity interceptor):
// an engine, or a rebuilding replica, that reaches a replica of another volume — a stale address, a
// reused port — is refused instead of mixing two volumes' data. Checked only when both sides know
// their volume, so replicas started without --volume keep working.
import { InterceptingCall, type Interceptor, type Metadata, status } from '@grpc/grpc-js';
import { statusError } from './status-error.js';

export const VOLUME_NAME_METADATA = 'volume-name';

/** Client side: every call carries the caller's volume name. */
export function volumeNameInterceptor(volume: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set(VOLUME_NAME_METADATA, volume);
        next(metadata, listener);
      },
    });
}

/** Server side: refuses a call from another volume's engine or replica. */
export function checkVolumeName(metadata: Metadata, mine: string | undefined): void {
  const theirs = metadata.get(VOLUME_NAME_METADATA)[0];
  if (mine === undefined || mine === '' || theirs === undefined || theirs === '') return;
  if (String(theirs) !== mine) {
    throw statusError(
      status.FAILED_PRECONDITION,
      `this replica belongs to volume ${mine}, not ${String(theirs)}: check the address`,
    );
  }
}
