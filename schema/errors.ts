// Expected failures as typed results (errors plugin): every mutation returns its resource or one of
// these, each with a message a person can act on. Anything else stays masked by yoga.
import {
  type ApiError,
  ConflictError,
  InsufficientCapacityError,
  InvalidStateError,
  NotFoundError,
  ValidationError,
} from '../controllers/api-errors.js';
import { builder } from './builder.js';

export const ErrorInterface = builder.interfaceRef<ApiError>('Error').implement({
  description: 'An expected failure: what went wrong and the code to switch on',
  fields: (t) => ({
    message: t.exposeString('message'),
    code: t.string({ resolve: (e) => e.code }),
  }),
});

builder.objectType(NotFoundError, {
  name: 'NotFound',
  interfaces: [ErrorInterface],
  fields: (t) => ({
    kind: t.exposeString('kind'),
    name: t.string({ resolve: (e) => e.resourceName }),
  }),
});
builder.objectType(ValidationError, {
  name: 'ValidationError',
  interfaces: [ErrorInterface],
  fields: (t) => ({
    field: t.string({ resolve: (e) => e.field ?? '' }),
    reason: t.exposeString('reason'),
  }),
});
builder.objectType(ConflictError, { name: 'Conflict', interfaces: [ErrorInterface] });
builder.objectType(InsufficientCapacityError, { name: 'InsufficientCapacity', interfaces: [ErrorInterface] });
builder.objectType(InvalidStateError, { name: 'InvalidState', interfaces: [ErrorInterface] });

/** The error types of every mutation: `errors: { types: API_ERRORS, directResult: true }`. */
export const API_ERRORS = [NotFoundError, ValidationError, ConflictError, InsufficientCapacityError, InvalidStateError];
