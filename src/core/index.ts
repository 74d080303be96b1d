import type { EngineRegistry } from '../engines/engine.js';
import { type Clock, systemClock } from '../lib/clock.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import type { Store } from '../store/store.js';
import { createAccess } from './access.js';
import { createAdminService } from './admin.js';
import { createAuditIntegrity } from './audit-integrity.js';
import { createAuditKeys } from './audit-keys.js';
import { type AuditService, createAuditService } from './audit-service.js';
import { type AuditSink, nullAuditSink } from './audit-sink.js';
import { createCommitter } from './committer.js';
import { createCredentialService } from './credentials.js';
import { type CoreConfig, type CoreDeps, defaultCoreConfig, type KeyringPort } from './deps.js';
import { createDynamicAccounts, type DynamicConfig, type DynamicObserver } from './dynamic-accounts.js';
import { createExpiryFeed } from './expiry-feed.js';
import { createFingerprints } from './fingerprints.js';
import { createLeaseChanges } from './lease-changes.js';
import { createLeaseIndexBackfill } from './lease-index-backfill.js';
import { createLeasePurger } from './lease-purger.js';
import { createLeaseRevoker } from './lease-revoker.js';
import { createLeaseService } from './leases.js';
import { createRecordCache, createSealedCache } from './record-cache.js';
import { createTenantService } from './tenants.js';
import { createTokenService } from './tokens.js';

export type { AuditSink } from './audit-sink.js';
export { jsonLinesAuditSink, nullAuditSink } from './audit-sink.js';
export type { CallContext, Principal } from './context.js';
export { systemContext } from './context.js';
export type { CoreConfig, KeyringPort } from './deps.js';
export { ROOT_POLICY } from './policy-engine.js';

export interface VaultCoreDeps {
  store: Store;
  keyring: KeyringPort;
  clock?: Clock;
  logger?: Logger;
  auditSink?: AuditSink;
  config?: Partial<CoreConfig>;
  /** Dynamic secrets engines this server runs (none: dynamic credentials are refused). */
  engines?: EngineRegistry;
  dynamic?: Partial<DynamicConfig>;
  dynamicObserver?: DynamicObserver;
}

/** The Vault core: every service, wired to one store, keyring and audit chain. No HTTP, no k8s. */
export function createVaultCore(options: VaultCoreDeps) {
  const clock = options.clock ?? systemClock;
  const config = { ...defaultCoreConfig, ...options.config };
  const logger = options.logger ?? silentLogger;
  const sink = options.auditSink ?? nullAuditSink;
  const auditKeys = createAuditKeys({ store: options.store, keyring: options.keyring });
  const integrity = createAuditIntegrity({ clock, logger });
  let audit: AuditService | undefined;
  const records = createRecordCache(options.store, config.recordCacheTtlMs);
  const committer = createCommitter({
    store: options.store,
    clock,
    sink,
    auditKeys,
    integrity,
    onTokenGone: (key) => records.invalidate(key),
    onCommitted: (tenant, seq) => audit?.noteCommitted(tenant, seq, config.auditCheckpointEvery),
    enabled: config.audit,
  });
  const deps: CoreDeps = {
    store: options.store,
    keyring: options.keyring,
    clock,
    logger,
    committer,
    config,
    records,
    sealed: createSealedCache(options.store),
  };
  const access = createAccess(deps);
  const fingerprints = createFingerprints(deps);
  const tokens = createTokenService({ ...deps, access });
  const dynamic = createDynamicAccounts({
    store: deps.store,
    committer,
    keyring: deps.keyring,
    clock,
    logger: deps.logger,
    engines: options.engines ?? {},
    ...(options.dynamic ? { config: options.dynamic } : {}),
    ...(options.dynamicObserver ? { observer: options.dynamicObserver } : {}),
  });
  const revokeWhere = createLeaseRevoker({ ...deps, afterRevoke: () => void dynamic.kick() });
  const credentials = createCredentialService({ ...deps, access, fingerprints, revokeWhere, dynamic });
  const expiryFeed = createExpiryFeed({ store: options.store, clock, logger });
  const leaseChanges = createLeaseChanges({ store: options.store, logger });
  const leases = createLeaseService({
    ...deps,
    access,
    fingerprints,
    credentials,
    revokeWhere,
    dynamic,
    expiryFeed,
    leaseChanges,
  });
  const admin = createAdminService({ ...deps, access, fingerprints });
  audit = createAuditService({ ...deps, access, fingerprints, auditKeys, integrity, sink });
  return {
    store: options.store,
    committer,
    access,
    tenants: createTenantService({ ...deps, tokens }),
    tokens,
    credentials,
    leases,
    policies: admin.policies,
    identities: admin.identities,
    audit,
    /** Tenants whose audit chain failed an integrity check (their writes are stopped). */
    auditIntegrity: integrity,
    /** Each tenant's audit keys (the stream checks links and checkpoint signatures with them). */
    auditKeys,
    fingerprints,
    purger: createLeasePurger(deps),
    leaseIndex: createLeaseIndexBackfill(deps),
    dynamic,
  };
}

export type VaultCore = ReturnType<typeof createVaultCore>;
