// Failures of a supervisor call that the caller can act on; the gRPC service maps `reason` to a status
// code, so the supervisor itself knows nothing of gRPC.
export type InstanceErrorReason = 'invalid' | 'not-found' | 'busy' | 'no-ports';

export class InstanceError extends Error {
  constructor(
    readonly reason: InstanceErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'InstanceError';
  }
}
