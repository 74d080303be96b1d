/** The store's key layout, in one place. Every tenant's records live under its own prefix. */

const root = '/vault';

/** A time in a key: epoch ms at a fixed width, so key order is time order (until year 33658). */
export const timeSegment = (time: number): string => String(Math.max(0, Math.floor(time))).padStart(15, '0');
/** The last segment of a key (a lease id, an accessor). */
export const lastSegment = (key: string): string => key.slice(key.lastIndexOf('/') + 1);
/** The time segment just before the last one (`…/<ms>/<id>`), epoch ms. */
export const timeBeforeLast = (key: string): number => Number(key.split('/').at(-2));

export const keys = {
  tenant: (tenant: string) => `${root}/tenants/${tenant}`,
  tenants: () => `${root}/tenants/`,
  /**
   * Touched by every tenant a cluster's controller creates, so two creations racing past its
   * quota compare the same revision and one counts again (`-`: the unnamed cluster, a name no
   * cluster can have).
   */
  clusterTenantQuota: (cluster: string | undefined) => `${root}/cluster-tenant-quota/${cluster ?? '-'}`,
  token: (hash: string) => `${root}/tokens/${hash}`,
  tokens: () => `${root}/tokens/`,
  accessor: (accessor: string) => `${root}/accessors/${accessor}`,
  /** Tokens minted with a token: revoking the parent revokes them. */
  tokenChild: (parent: string, child: string) => `${root}/token-children/${parent}/${child}`,
  tokenChildren: (parent: string) => `${root}/token-children/${parent}/`,
  /**
   * Tokens by expiry (value: hash, tenant and parent accessor), walked from the oldest by the
   * token purger; written with the token.
   */
  tokenExpiry: (expiresAtMs: number, accessor: string) =>
    `${root}/token-expiry/${timeSegment(expiresAtMs)}/${accessor}`,
  tokenExpiries: () => `${root}/token-expiry/`,
  /** Set once every token written before the expiry index has its key there. */
  tokenExpiryState: () => `${root}/token-expiry-state`,
  hmacKey: (tenant: string) => `${root}/t/${tenant}/hmac-key`,

  tenantPrefix: (tenant: string) => `${root}/t/${tenant}/`,
  credential: (tenant: string, name: string) => `${root}/t/${tenant}/credentials/${name}`,
  credentials: (tenant: string) => `${root}/t/${tenant}/credentials/`,
  value: (tenant: string, name: string, version: number) =>
    `${root}/t/${tenant}/values/${name}/${String(version).padStart(10, '0')}`,
  values: (tenant: string, name: string) => `${root}/t/${tenant}/values/${name}/`,
  lease: (tenant: string, id: string) => `${root}/t/${tenant}/leases/${id}`,
  leases: (tenant: string) => `${root}/t/${tenant}/leases/`,
  /** Secondary keys of leases (see lease-index.ts), written in the lease's own transactions. */
  leaseIndex: (tenant: string) => `${root}/t/${tenant}/lease-idx/`,
  /** A lease creation's Idempotency-Key (hashed with the caller): the lease it issued. */
  leaseIdempotency: (tenant: string, hash: string) => `${root}/t/${tenant}/lease-idem/${hash}`,
  /** How far the backfill of a tenant's lease index got (existing stores). */
  leaseIndexState: (tenant: string) => `${root}/t/${tenant}/lease-idx-state`,
  /** A dynamic lease's own value (its upstream credential), sealed. */
  leaseValue: (tenant: string, id: string) => `${root}/t/${tenant}/lease-values/${id}`,
  /** Upstream accounts issued for dynamic leases, until the engine has removed them. */
  dynamicAccount: (tenant: string, leaseId: string) => `${root}/t/${tenant}/dynamic-accounts/${leaseId}`,
  dynamicAccounts: (tenant: string) => `${root}/t/${tenant}/dynamic-accounts/`,
  /** The same accounts by credential (empty values), so one credential's are counted alone. */
  dynamicAccountOf: (tenant: string, name: string, leaseId: string) =>
    `${root}/t/${tenant}/dynamic-accounts-of/${name}/${leaseId}`,
  dynamicAccountsOf: (tenant: string, name: string) => `${root}/t/${tenant}/dynamic-accounts-of/${name}/`,
  /** Accounts whose removal failed and is being retried, by credential (present only while failing). */
  dynamicRetry: (tenant: string, name: string, leaseId: string) =>
    `${root}/t/${tenant}/dynamic-retries/${name}/${leaseId}`,
  dynamicRetries: (tenant: string, name: string) => `${root}/t/${tenant}/dynamic-retries/${name}/`,
  policy: (tenant: string, name: string) => `${root}/t/${tenant}/policies/${name}`,
  policies: (tenant: string) => `${root}/t/${tenant}/policies/`,
  identity: (tenant: string, type: string, name: string) => `${root}/t/${tenant}/identities/${type}/${name}`,
  identities: (tenant: string) => `${root}/t/${tenant}/identities/`,
  auditHead: (tenant: string) => `${root}/t/${tenant}/audit-head`,
  /** Bumped by a replica that lost the chain head twice in a row: the others wait a moment. */
  auditTurn: (tenant: string) => `${root}/t/${tenant}/audit-turn`,
  auditRecord: (tenant: string, seq: number) => `${root}/t/${tenant}/audit/${String(seq).padStart(16, '0')}`,
  auditRecords: (tenant: string) => `${root}/t/${tenant}/audit/`,
  /** The tenant's audit HMAC and checkpoint signing keys, sealed (audit-keys.ts). */
  auditKeys: (tenant: string) => `${root}/t/${tenant}/audit-keys`,
  /** The latest checkpoint this store has seen signed: a convenience, never trusted by verification. */
  auditCheckpoint: (tenant: string) => `${root}/t/${tenant}/audit-checkpoint`,
  /** A named audit stream's cursor and the claim of its one writer (audit-stream-claim.ts). */
  auditStream: (name: string) => `${root}/audit-streams/${name}`,
};

/** Records holding sealed values (a top-level `sealed` field), re-wrapped by tenant key rotation. */
export const sealedPrefixes = (tenant: string) => [
  `${root}/t/${tenant}/values/`,
  `${root}/t/${tenant}/lease-values/`,
  `${root}/t/${tenant}/hmac-key`,
  `${root}/t/${tenant}/audit-keys`,
];
