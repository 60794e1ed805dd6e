// Expected failures of control-plane actions, typed so the API can turn each into a result a person
// can act on (issue 5 maps them to GraphQL error types).
export type ApiErrorCode = 'NotFound' | 'Conflict' | 'ValidationError' | 'InsufficientCapacity' | 'InvalidState';

export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    /** For ValidationError: the input field at fault. */
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = code;
  }
}

/** One class per code, so the API can map each to its own result type. */
export class NotFoundError extends ApiError {
  constructor(
    readonly kind: string,
    readonly resourceName: string,
    /** What to do about it, when there is something (e.g. "sync the backup target"). */
    hint?: string,
  ) {
    super('NotFound', `${kind} "${resourceName}" not found${hint ? `; ${hint}` : ''}`);
  }
}
export class ValidationError extends ApiError {
  constructor(
    field: string,
    readonly reason: string,
  ) {
    super('ValidationError', `${field}: ${reason}`, field);
  }
}
export class InvalidStateError extends ApiError {
  constructor(message: string) {
    super('InvalidState', message);
  }
}
export class ConflictError extends ApiError {
  constructor(message: string) {
    super('Conflict', message);
  }
}
export class InsufficientCapacityError extends ApiError {
  constructor(message: string) {
    super('InsufficientCapacity', message);
  }
}

export const notFound = (what: string, name: string, hint?: string) => new NotFoundError(what, name, hint);
export const invalid = (field: string, reason: string) => new ValidationError(field, reason);
export const invalidState = (message: string) => new InvalidStateError(message);
export const conflict = (message: string) => new ConflictError(message);
export const insufficientCapacity = (message: string) => new InsufficientCapacityError(message);
