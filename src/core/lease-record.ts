import type { Identity } from '../contract/common.js';
import type { Lease, LeaseState } from '../contract/leases.js';
import type { Op } from '../store/store.js';
import { keys } from './keys.js';
import { leaseWriteOps } from './lease-index.js';

/** A lease as stored. `state` is what was written; expiry is derived at read time. */
export interface LeaseRecord {
  id: string;
  tenant: string;
  credentialName: string;
  version: number;
  identity: Identity;
  issuedBy: Identity;
  issuedAt: string;
  expiresAt: string;
  maxExpiresAt: string;
  ttlMs: number;
  renewable: boolean;
  renewCount: number;
  state: 'active' | 'revoked';
  revokedAt?: string;
  revokeReason?: string;
  labels?: Record<string, string>;
  /** The hash naming its Idempotency-Key record, deleted with it. */
  idempotency?: string;
  /** Set for a dynamic credential's lease: its own upstream account. */
  dynamic?: { engine: string; username: string };
}

/** The state a reader sees: an active lease past its expiry is expired, by the server clock. */
export function effectiveState(lease: LeaseRecord, now: Date): LeaseState {
  if (lease.state === 'revoked') return 'revoked';
  return Date.parse(lease.expiresAt) <= now.getTime() ? 'expired' : 'active';
}

export function toLease(lease: LeaseRecord, now: Date): Lease {
  const { ttlMs: _ttl, idempotency: _idempotency, ...rest } = lease;
  return { ...rest, state: effectiveState(lease, now) };
}

export function revokeOps(tenant: string, lease: LeaseRecord, now: Date, reason: string): Op[] {
  const revoked: LeaseRecord = {
    ...lease,
    state: 'revoked',
    revokedAt: now.toISOString(),
    revokeReason: reason,
  };
  const ops = leaseWriteOps(tenant, lease, revoked);
  // A dynamic lease's value is its own; it is never read again once the lease is revoked.
  if (lease.dynamic) ops.push({ type: 'delete', key: keys.leaseValue(tenant, lease.id) });
  return ops;
}
