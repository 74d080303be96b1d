import { type ErrorCode, VaultError } from '../lib/errors.js';

/**
 * Why a cryptographic operation failed. Messages built for these name keys by id and
 * version and records by store key; they never carry key material or plaintext.
 */
export type CryptoErrorReason =
  /** A blob is malformed, was tampered with, is bound to another record, or the key is wrong. */
  | 'decrypt_failed'
  /** A key given to the blob layer is not 32 bytes. */
  | 'bad_key'
  /** A root key source (file, environment variable) is missing, malformed or too open. */
  | 'bad_root_key'
  /** A tenant key is wrapped by a root key this process was not given. */
  | 'root_key_unavailable'
  /** The tenant's keys were deleted by shredTenant: its values are gone for good. */
  | 'key_destroyed'
  /** A tenant key version that never existed (or a tenant without keys). */
  | 'key_not_found'
  /** A tenant name, credential name or version that cannot be used to place a key or value. */
  | 'bad_reference'
  /** Another rotation is in progress, or the store kept changing under a compare-and-swap. */
  | 'rotation_conflict';

const errorCodeFor: Record<CryptoErrorReason, ErrorCode> = {
  decrypt_failed: 'internal',
  bad_key: 'internal',
  bad_root_key: 'bad_request',
  root_key_unavailable: 'internal',
  key_destroyed: 'not_found',
  key_not_found: 'internal',
  bad_reference: 'bad_request',
  rotation_conflict: 'conflict',
};

export class CryptoError extends VaultError {
  readonly reason: CryptoErrorReason;

  constructor(reason: CryptoErrorReason, message: string) {
    super(errorCodeFor[reason], message, { reason });
    this.name = 'CryptoError';
    this.reason = reason;
  }
}

export const isCryptoError = (err: unknown, reason?: CryptoErrorReason): err is CryptoError =>
  err instanceof CryptoError && (reason === undefined || err.reason === reason);
