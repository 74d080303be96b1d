/**
 * Secondary keys of lease records, so that no path reads a tenant's whole `leases/` prefix:
 *
 *   lease-idx/credential/<credential>/<id>     {v, s, e}   every lease of a credential
 *   lease-idx/identity/<type>/<name>/<id>      {v, s, e}   every lease held by an identity
 *   lease-idx/expiry/<expiresAt ms>/<id>       ""          leases not revoked, by expiry
 *   lease-idx/revoked/<revokedAt ms>/<id>      ""          revoked leases, by revocation
 *
 * Every write of a lease record writes its keys in the same transaction (`leaseWriteOps`,
 * `leaseDeleteOps`), so an index never disagrees with the records. The values of the first
 * two carry what bulk revocation filters on (version, written state, expiry), so walking
 * past leases already revoked or expired reads no record. Counting the time-ordered keys
 * gives the `vault_leases` gauge; walking them from the oldest drives the purger.
 * Pure key and op builders; no I/O.
 */
import type { Identity } from '../contract/common.js';
import type { Op, Store } from '../store/store.js';
import { dynamicDue } from './dynamic-due.js';
import { keys, lastSegment, timeBeforeLast, timeSegment } from './keys.js';
import type { LeaseRecord } from './lease-record.js';

/** What a credential or identity index entry says about its lease. */
export interface IndexEntry {
  /** Credential version. */
  v: number;
  /** State as written: active (perhaps expired by now) or revoked. */
  s: 'active' | 'revoked';
  /** Expiry, epoch ms. */
  e: number;
}

const seg = (part: string) => encodeURIComponent(part);
/** Sorts after every lease id (base64url: A-Z a-z 0-9 - _), so "startAfter" skips a whole ms. */
const AFTER_IDS = '~';

export const leaseIndex = {
  byCredential: (tenant: string, credential: string) =>
    `${keys.leaseIndex(tenant)}credential/${seg(credential)}/`,
  byIdentity: (tenant: string, identity: Identity) =>
    `${keys.leaseIndex(tenant)}identity/${seg(identity.type)}/${seg(identity.name)}/`,
  expiry: (tenant: string) => `${keys.leaseIndex(tenant)}expiry/`,
  revoked: (tenant: string) => `${keys.leaseIndex(tenant)}revoked/`,
  /** The key after which `expiry/` holds only leases that are still active at `now`. */
  expiryAfter: (tenant: string, now: Date) =>
    `${leaseIndex.expiry(tenant)}${timeSegment(now.getTime())}/${AFTER_IDS}`,
  /** The lease id at the end of any index key. */
  idOf: lastSegment,
  /** The time of an `expiry/` or `revoked/` key, epoch ms. */
  timeOf: timeBeforeLast,
};

const entry = (lease: LeaseRecord): string =>
  JSON.stringify({ v: lease.version, s: lease.state, e: Date.parse(lease.expiresAt) } satisfies IndexEntry);

export const parseEntry = (value: string): IndexEntry => JSON.parse(value) as IndexEntry;

/** When a lease ends (or ended): its revocation once revoked, its expiry before. */
const endOf = (lease: LeaseRecord): number =>
  Date.parse(lease.state === 'revoked' ? (lease.revokedAt ?? lease.expiresAt) : lease.expiresAt);

/** The time-ordered key of a lease: by revocation once revoked, by expiry before. */
export function timeKey(tenant: string, lease: LeaseRecord): string {
  const index = lease.state === 'revoked' ? leaseIndex.revoked(tenant) : leaseIndex.expiry(tenant);
  return `${index}${timeSegment(endOf(lease))}/${lease.id}`;
}

/** Every index key of a lease (the same for every version of its record but the time key). */
export function indexKeys(tenant: string, lease: LeaseRecord): string[] {
  return [
    leaseIndex.byCredential(tenant, lease.credentialName) + lease.id,
    leaseIndex.byIdentity(tenant, lease.identity) + lease.id,
    timeKey(tenant, lease),
  ];
}

/**
 * Writes `next` (a new lease, or a new version of `previous`) with its index keys: four
 * operations for a new lease, five for a change that moves its time key; a dynamic lease's
 * account due key (dynamic-due.ts) moves with its time key, two more.
 */
export function leaseWriteOps(tenant: string, previous: LeaseRecord | undefined, next: LeaseRecord): Op[] {
  const value = entry(next);
  const ops: Op[] = [
    { type: 'put', key: keys.lease(tenant, next.id), value: JSON.stringify(next) },
    { type: 'put', key: leaseIndex.byCredential(tenant, next.credentialName) + next.id, value },
    { type: 'put', key: leaseIndex.byIdentity(tenant, next.identity) + next.id, value },
  ];
  const nextTime = timeKey(tenant, next);
  const previousTime = previous ? timeKey(tenant, previous) : undefined;
  if (previousTime !== undefined && previousTime !== nextTime)
    ops.push({ type: 'delete', key: previousTime });
  ops.push({ type: 'put', key: nextTime, value: '' });
  if (next.dynamic && previousTime !== nextTime) {
    if (previous) ops.push({ type: 'delete', key: dynamicDue.key(tenant, next.id, endOf(previous)) });
    ops.push({ type: 'put', key: dynamicDue.key(tenant, next.id, endOf(next)), value: '' });
  }
  return ops;
}

/** Deletes a lease record and every index key it has. */
export function leaseDeleteOps(tenant: string, lease: LeaseRecord): Op[] {
  return [
    { type: 'delete', key: keys.lease(tenant, lease.id) },
    ...indexKeys(tenant, lease).map((key) => ({ type: 'delete' as const, key })),
    ...(lease.idempotency
      ? [{ type: 'delete' as const, key: keys.leaseIdempotency(tenant, lease.idempotency) }]
      : []),
    // A dynamic lease's own sealed value (already gone if it was revoked; deleting is harmless).
    ...(lease.dynamic ? [{ type: 'delete' as const, key: keys.leaseValue(tenant, lease.id) }] : []),
  ];
}

/**
 * Room kept in every transaction for what the committer adds to a chunk: the audit record,
 * the chain head, a tenant's first audit keys.
 */
export const TXN_RESERVED_OPS = 8;

/**
 * Operations one lease's revocation writes: five (the record, two index entries, its time
 * key moved); a dynamic lease's value deleted and its due key moved, three more.
 */
export const revokeOpsOf = (lease: Pick<LeaseRecord, 'dynamic'>): number => (lease.dynamic ? 8 : 5);

/**
 * Lease changes per transaction on `store`, for work that does not know which leases are
 * dynamic before it reads them (the purger): up to eight operations each, with room for the
 * audit record and chain head. On etcd's default of 128 operations, 15.
 */
export function leasesPerTxn(store: Pick<Store, 'maxTxnOps'>): number {
  return Math.max(1, Math.floor((store.maxTxnOps - TXN_RESERVED_OPS) / 8));
}
