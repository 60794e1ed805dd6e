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

export const notFound = (what: string, name: string) => new ApiError('NotFound', `${what} "${name}" not found`);
export const invalid = (field: string, reason: string) => new ApiError('ValidationError', `${field}: ${reason}`, field);
export const invalidState = (message: string) => new ApiError('InvalidState', message);
export const conflict = (message: string) => new ApiError('Conflict', message);
export const insufficientCapacity = (message: string) => new ApiError('InsufficientCapacity', message);
