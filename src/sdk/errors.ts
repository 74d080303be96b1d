/**
 * One error class per API error code, so callers can `catch (e) { if (e instanceof
 * LeaseRevokedError) ... }`. Messages come from the server and never carry a secret value.
 */

/** Every error code the Vault API answers with. */
export type VaultErrorCode =
  | 'bad_request'
  | 'unauthenticated'
  | 'permission_denied'
  | 'not_found'
  | 'conflict'
  | 'lease_expired'
  | 'lease_revoked'
  | 'payload_too_large'
  | 'rate_limited'
  | 'internal'
  | 'upstream_failed'
  | 'store_unavailable'
  | 'outcome_unknown'
  | 'audit_unavailable';

/** Fields of a {@link VaultApiError}. */
export interface VaultApiErrorInit {
  /** HTTP status of the response (0 when the error was raised before any request). */
  status: number;
  /** The server's request id, for its logs and audit records. */
  requestId?: string;
  /** Structured details, such as which fields were invalid. */
  details?: Record<string, unknown>;
  /** Seconds to wait before retrying, from `Retry-After`. */
  retryAfterSeconds?: number;
}

/** An error answered by the Vault API. */
export class VaultApiError extends Error {
  /** The stable error code. */
  readonly code: VaultErrorCode;
  /** HTTP status of the response. */
  readonly status: number;
  /** The server's request id, when the server answered. */
  readonly requestId: string | undefined;
  /** Structured details, such as which fields were invalid. */
  readonly details: Record<string, unknown> | undefined;
  /** Seconds to wait before retrying, when the server said. */
  readonly retryAfterSeconds: number | undefined;

  /** Builds an error; prefer the subclass for the code. */
  constructor(code: VaultErrorCode, message: string, init: VaultApiErrorInit) {
    super(message);
    this.name = 'VaultApiError';
    this.code = code;
    this.status = init.status;
    this.requestId = init.requestId;
    this.details = init.details;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }
}

/** 400: the request is invalid; `details` says which fields. */
export class BadRequestError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('bad_request', message, init);
    this.name = 'BadRequestError';
  }
}

/** 401: no token, or the token is unknown, expired or revoked. */
export class UnauthenticatedError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('unauthenticated', message, init);
    this.name = 'UnauthenticatedError';
  }
}

/** 403: the token's policies do not allow this. */
export class PermissionDeniedError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('permission_denied', message, init);
    this.name = 'PermissionDeniedError';
  }
}

/** 404: no such credential, lease, token, policy, identity or tenant. */
export class NotFoundError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('not_found', message, init);
    this.name = 'NotFoundError';
  }
}

/** 409: it already exists, or it changed concurrently. */
export class ConflictError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('conflict', message, init);
    this.name = 'ConflictError';
  }
}

/** 410: the lease ran out; lease the credential again. */
export class LeaseExpiredError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('lease_expired', message, init);
    this.name = 'LeaseExpiredError';
  }
}

/** 410: the lease was revoked. */
export class LeaseRevokedError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('lease_revoked', message, init);
    this.name = 'LeaseRevokedError';
  }
}

/** 413: the request body is too large. */
export class PayloadTooLargeError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('payload_too_large', message, init);
    this.name = 'PayloadTooLargeError';
  }
}

/** 429: too many requests; wait `retryAfterSeconds`. */
export class RateLimitedError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('rate_limited', message, init);
    this.name = 'RateLimitedError';
  }
}

/** 500: a bug in the server; its logs carry the request id. */
export class InternalError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('internal', message, init);
    this.name = 'InternalError';
  }
}

/** 502: a dynamic credential's upstream system (e.g. PostgreSQL) refused or could not be reached. */
export class UpstreamFailedError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('upstream_failed', message, init);
    this.name = 'UpstreamFailedError';
  }
}

/** 503: the server's store is unreachable; retry later. */
export class StoreUnavailableError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('store_unavailable', message, init);
    this.name = 'StoreUnavailableError';
  }
}

/**
 * 503: the server's store did not answer a write in time: it may or may not have been
 * applied. `leases.create` retries these itself with the same Idempotency-Key.
 */
export class OutcomeUnknownError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('outcome_unknown', message, init);
    this.name = 'OutcomeUnknownError';
  }
}

/** 503: the audit log cannot be written, so the server refused to act (fail closed); retry later. */
export class AuditUnavailableError extends VaultApiError {
  /** @param message what is wrong @param init response fields */
  constructor(message: string, init: VaultApiErrorInit) {
    super('audit_unavailable', message, init);
    this.name = 'AuditUnavailableError';
  }
}

/**
 * Why a {@link VaultConnectionError} happened: `unreachable` (refused, reset, no such host),
 * `timeout`, `tls` (a certificate was refused or the TLS handshake failed) or `not-vault`
 * (something answered, but not this product's API: another server at `VAULT_ADDR`).
 */
export type ConnectionFailure = 'unreachable' | 'timeout' | 'tls' | 'not-vault';

/** The server could not be reached, or answered something that is not the Vault API. */
export class VaultConnectionError extends Error {
  /** The address that was called. */
  readonly addr: string;
  /** Why: unreachable, timeout, tls or not-vault. */
  readonly reason: ConnectionFailure;

  /**
   * @param message what went wrong @param addr the server address @param cause the underlying
   * error @param reason why (default `unreachable`)
   */
  constructor(message: string, addr: string, cause?: unknown, reason: ConnectionFailure = 'unreachable') {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'VaultConnectionError';
    this.addr = addr;
    this.reason = reason;
  }
}

type ErrorClass = new (message: string, init: VaultApiErrorInit) => VaultApiError;

const classes: Record<VaultErrorCode, ErrorClass> = {
  bad_request: BadRequestError,
  unauthenticated: UnauthenticatedError,
  permission_denied: PermissionDeniedError,
  not_found: NotFoundError,
  conflict: ConflictError,
  lease_expired: LeaseExpiredError,
  lease_revoked: LeaseRevokedError,
  payload_too_large: PayloadTooLargeError,
  rate_limited: RateLimitedError,
  internal: InternalError,
  upstream_failed: UpstreamFailedError,
  store_unavailable: StoreUnavailableError,
  outcome_unknown: OutcomeUnknownError,
  audit_unavailable: AuditUnavailableError,
};

const codeByStatus: Record<number, VaultErrorCode> = {
  400: 'bad_request',
  401: 'unauthenticated',
  403: 'permission_denied',
  404: 'not_found',
  409: 'conflict',
  410: 'lease_expired',
  413: 'payload_too_large',
  429: 'rate_limited',
  503: 'store_unavailable',
};

const isCode = (code: unknown): code is VaultErrorCode => typeof code === 'string' && code in classes;

/**
 * Builds the typed error for an error response. Uses the body's `error.code` when it is a
 * known code, else falls back on the HTTP status (a proxy may answer instead of Vault).
 */
export function errorFromResponse(
  status: number,
  body: unknown,
  extra: { requestId?: string; retryAfterSeconds?: number } = {},
): VaultApiError {
  const error =
    typeof body === 'object' && body !== null && 'error' in body && typeof body.error === 'object'
      ? (body.error as Record<string, unknown> | null)
      : null;
  const rawCode = error?.code;
  const code: VaultErrorCode = isCode(rawCode) ? rawCode : (codeByStatus[status] ?? 'internal');
  const message =
    typeof error?.message === 'string' && error.message !== ''
      ? error.message
      : `the server answered HTTP ${status} without an error message`;
  const requestId = typeof error?.requestId === 'string' ? error.requestId : extra.requestId;
  const details =
    typeof error?.details === 'object' && error.details !== null
      ? (error.details as Record<string, unknown>)
      : undefined;
  const ErrorType = classes[code];
  return new ErrorType(message, {
    status,
    ...(requestId !== undefined && { requestId }),
    ...(details !== undefined && { details }),
    ...(extra.retryAfterSeconds !== undefined && { retryAfterSeconds: extra.retryAfterSeconds }),
  });
}
