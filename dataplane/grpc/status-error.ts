// Errors a gRPC handler returns to its caller: a status code plus a message a person can act on.
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';

export function statusError(code: status, message: string): ServiceError {
  return Object.assign(new Error(message), { code, details: message, metadata: new Metadata() });
}

/** Map a thrown error to a ServiceError: keep one that already carries a code, else INTERNAL. */
export function toServiceError(err: unknown): ServiceError {
  if (err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number') return err as ServiceError;
  const message = err instanceof Error ? err.message : String(err);
  return statusError(status.INTERNAL, message);
}

/** Adapt an async handler to grpc-js's callback signature. */
export function handleUnary<Req, Res>(fn: (req: Req) => Promise<Res> | Res) {
  return (call: { request: Req }, callback: (err: ServiceError | null, res?: Res) => void): void => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (res) => callback(null, res),
        (err: unknown) => callback(toServiceError(err)),
      );
  };
}
