/**
 * Typed errors with stable codes. Each surface maps them once: HTTP statuses in
 * server/error-handler.ts, admission responses in the webhook, MCP tool errors and CLI exit
 * codes. Messages say what went wrong and how to fix it, and never carry a secret value.
 */

export const errorCodes = {
  bad_request: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  conflict: 409,
  lease_expired: 410,
  lease_revoked: 410,
  payload_too_large: 413,
  rate_limited: 429,
  internal: 500,
  /** A dynamic credential's upstream system refused or could not be reached. */
  upstream_failed: 502,
  store_unavailable: 503,
  outcome_unknown: 503,
  audit_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof errorCodes;

export class VaultError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'VaultError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return errorCodes[this.code];
  }
}

export const badRequest = (message: string, details?: Record<string, unknown>) =>
  new VaultError('bad_request', message, details);
export const unauthenticated = (message: string) => new VaultError('unauthenticated', message);
export const permissionDenied = (message: string) => new VaultError('permission_denied', message);
export const notFound = (message: string) => new VaultError('not_found', message);
export const conflict = (message: string) => new VaultError('conflict', message);

export class StoreUnavailableError extends VaultError {
  constructor(message = 'the store is unavailable; retry once it is reachable again', cause?: unknown) {
    super('store_unavailable', message);
    this.name = 'StoreUnavailableError';
    if (cause !== undefined) this.cause = cause;
  }
}

/**
 * A write was sent and its answer never came (the store timed out): it may or may not have
 * been applied. Distinct from StoreUnavailableError, which means nothing was written. Retry
 * with the same idempotency key, or look the result up.
 */
export class OutcomeUnknownError extends VaultError {
  constructor(message: string, cause?: unknown) {
    super('outcome_unknown', message);
    this.name = 'OutcomeUnknownError';
    if (cause !== undefined) this.cause = cause;
  }
}

/**
 * Whether a failed write may have been applied all the same: its answer was lost
 * (`outcome_unknown`), or the store broke off while it was on its way (`store_unavailable`).
 */
export const mayHaveBeenApplied = (err: unknown): boolean =>
  err instanceof VaultError && (err.code === 'outcome_unknown' || err.code === 'store_unavailable');

export const isVaultError = (err: unknown): err is VaultError => err instanceof VaultError;
