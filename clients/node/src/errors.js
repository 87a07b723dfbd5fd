'use strict';
// Typed errors for the failures a caller handles differently. A denial is not an error: it is a
// normal `{ allowed: false }` result. Messages carry the server's explanation and the method, never a
// token: the client scrubs every token it sent from the text before building one of these.

const { status } = require('@grpc/grpc-js');

/** Any failure of a gatehouse call. */
class GatehouseError extends Error {
  /**
   * @param {string} message
   * @param {{ code?: string, grpcCode?: number, method?: string, attempts?: number, details?: string }} [info]
   */
  constructor(message, info = {}) {
    super(message);
    this.name = new.target.name;
    /** The gRPC status name, e.g. `UNAVAILABLE`. */
    this.code = info.code ?? 'UNKNOWN';
    /** The numeric gRPC status. */
    this.grpcCode = info.grpcCode ?? status.UNKNOWN;
    /** The RPC, e.g. `Check`. */
    this.method = info.method;
    /** How many times the call was sent (more than 1 only after UNAVAILABLE). */
    this.attempts = info.attempts ?? 1;
    /** The server's own explanation, e.g. `token expired`, without the method and code around it. */
    this.details = info.details ?? message;
  }
}

/** The token is missing, malformed, expired, badly signed or revoked (gRPC UNAUTHENTICATED). */
class Unauthenticated extends GatehouseError {}
/** The caller's credentials may not make this call, e.g. IssueToken with a user token (PERMISSION_DENIED). */
class PermissionDenied extends GatehouseError {}
/** The request cannot be decided as written: no action, no resource kind, too many items (INVALID_ARGUMENT). */
class InvalidRequest extends GatehouseError {}
/** Gatehouse could not be reached, after the allowed retries (UNAVAILABLE). */
class Unavailable extends GatehouseError {}
/** No answer within the call's deadline (DEADLINE_EXCEEDED). */
class DeadlineExceeded extends GatehouseError {}

const BY_CODE = new Map([
  [status.UNAUTHENTICATED, Unauthenticated],
  [status.PERMISSION_DENIED, PermissionDenied],
  [status.INVALID_ARGUMENT, InvalidRequest],
  [status.UNAVAILABLE, Unavailable],
  [status.DEADLINE_EXCEEDED, DeadlineExceeded],
]);

const NAME_BY_CODE = new Map(Object.entries(status).map(([name, code]) => [code, name]));

/**
 * Replaces every secret in `text` with `[redacted]`. The server promises never to echo a token, and
 * grpc-js does not either; this holds the promise on our side too, whatever a future message says.
 * @param {string} text
 * @param {string[]} secrets
 */
function scrub(text, secrets) {
  let out = String(text ?? '');
  for (const secret of secrets) {
    if (secret) out = out.split(secret).join('[redacted]');
  }
  return out;
}

/**
 * Turns a grpc-js error into the matching GatehouseError subclass.
 * @param {{ code?: number, details?: string, message?: string }} err
 * @param {string} method
 * @param {string[]} secrets the tokens sent with the call
 * @param {number} attempts
 */
function fromGrpcError(err, method, secrets, attempts) {
  const grpcCode = typeof err.code === 'number' ? err.code : status.UNKNOWN;
  const code = NAME_BY_CODE.get(grpcCode) ?? 'UNKNOWN';
  const Class = BY_CODE.get(grpcCode) ?? GatehouseError;
  // grpc-js ends connection failures with an empty "Resolution note:"; it says nothing.
  const details = scrub(err.details || err.message || 'no details', secrets).replace(/\.?\s*Resolution note:\s*$/, '');
  const tries = attempts > 1 ? ` (after ${attempts} attempts)` : '';
  return new Class(`gatehouse ${method}: ${code}: ${details}${tries}`, { code, grpcCode, method, attempts, details });
}

module.exports = {
  GatehouseError,
  Unauthenticated,
  PermissionDenied,
  InvalidRequest,
  Unavailable,
  DeadlineExceeded,
  fromGrpcError,
  scrub,
};
