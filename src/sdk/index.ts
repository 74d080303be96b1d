/**
 * `@ghoststack/vault-sdk`: a typed, promise-based client for the Vault API, with no runtime
 * dependencies beyond `fetch`.
 *
 * @example
 * import { Vault } from '@ghoststack/vault-sdk';
 * const vault = await Vault.connect({ tenant: 'my-org', token: process.env.VAULT_TOKEN });
 * const lease = await vault.leases.create({ credentialName: 'stripe-api-key', ttl: '15m' });
 * lease.value; lease.expiresAt; // a Date
 *
 * @packageDocumentation
 */
export type { AuditApi, IdentitiesApi, KeysApi, PoliciesApi, TenantsApi, TokensApi } from './admin.js';
export { checkpointSignedBy } from './checkpoint.js';
export type { CredentialsApi } from './credentials.js';
export {
  AuditUnavailableError,
  BadRequestError,
  ConflictError,
  type ConnectionFailure,
  InternalError,
  LeaseExpiredError,
  LeaseRevokedError,
  NotFoundError,
  OutcomeUnknownError,
  PayloadTooLargeError,
  PermissionDeniedError,
  RateLimitedError,
  StoreUnavailableError,
  UnauthenticatedError,
  UpstreamFailedError,
  VaultApiError,
  type VaultApiErrorInit,
  VaultConnectionError,
  type VaultErrorCode,
} from './errors.js';
export type { FetchLike } from './http.js';
export type { KeepAliveOptions, LeaseEnd, LeaseEndReason, LeaseKeepAlive } from './keep-alive.js';
export type { LeasesApi } from './leases.js';
export type * from './types.js';
export { type ConnectOptions, defaultAddr, resolveConnectOptions, Vault } from './vault.js';
