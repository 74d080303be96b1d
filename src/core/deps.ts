import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { Store } from '../store/store.js';
import type { Committer } from './committer.js';
import type { RecordCache, SealedCache } from './record-cache.js';

/**
 * What the core needs of the keyring (src/crypto/keyring.ts): sealed values are opaque
 * JSON that the core stores inside its own records and hands back to open.
 */
export interface KeyringPort {
  ensureTenantKey(tenant: string): Promise<unknown>;
  sealValue(tenant: string, credential: string, version: number, plaintext: Buffer): Promise<unknown>;
  openValue(tenant: string, credential: string, version: number, sealed: never): Promise<Buffer>;
}

export interface CoreConfig {
  /** Used when neither the request nor the credential names a TTL. */
  defaultLeaseTtlMs: number;
  /** No lease outlives this, whatever policies say. */
  maxLeaseTtlMs: number;
  /** A system token may address a tenant that does not exist yet (vault dev). */
  autoCreateTenants: boolean;
  /**
   * The most tenants a cluster's controller brings into being (`<cluster>.<namespace>`, or every
   * tenant for the unnamed cluster, whose tenants share names with the API's): a stolen
   * controller token cannot fill the store with tenants.
   */
  maxTenantsPerCluster: number;
  /**
   * Write audit records. Only the benchmark turns this off, to measure what auditing
   * costs; no flag or setting of the server exposes it.
   */
  audit: boolean;
  /** How long token, identity and policy records are cached (another replica's change shows within it). */
  recordCacheTtlMs: number;
  /** How long a lease record is kept after the lease ended (expired or revoked). */
  leaseRetentionMs: number;
  /** A tenant's audit chain gets a signed checkpoint every this many records (and on a timer, and on demand). */
  auditCheckpointEvery: number;
  /**
   * Audit records one `GET /v1/audit` reads at most, matching or not; a filtered query that
   * has not found `limit` records by then answers with what it found and where to go on.
   */
  auditScanBudget: number;
}

export const defaultCoreConfig: CoreConfig = {
  defaultLeaseTtlMs: 15 * 60_000,
  maxLeaseTtlMs: 24 * 3_600_000,
  autoCreateTenants: false,
  maxTenantsPerCluster: 10_000,
  audit: true,
  recordCacheTtlMs: 1000,
  leaseRetentionMs: 24 * 3_600_000,
  auditCheckpointEvery: 1000,
  auditScanBudget: 10_000,
};

export interface CoreDeps {
  store: Store;
  keyring: KeyringPort;
  clock: Clock;
  logger: Logger;
  committer: Committer;
  config: CoreConfig;
  records: RecordCache;
  sealed: SealedCache;
}

export const parseRecord = <T>(value: string): T => JSON.parse(value) as T;
