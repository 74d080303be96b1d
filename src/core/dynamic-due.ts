/**
 * When the dynamic sweep must next look at an upstream account, across every tenant:
 *
 *   /vault/dynamic-due/<ms>/<tenant>/<lease id>    ""
 *
 * One time-ordered prefix for the whole store, so a sweep reads exactly what is due with one
 * small range however many tenants and accounts there are (10,000 leases ending in the same
 * second are 10,000 keys read once; a million accounts that are not due cost nothing).
 *
 * A dynamic lease's key mirrors its time key (expiry while active, revocation once revoked):
 * `leaseWriteOps` moves it in every write of the lease, so bulk revocation, renewal and
 * expiry need no read of the account. An account recorded before its lease commits is due at
 * the end of the issue grace; a failed removal at its next attempt. The sweep deletes a key
 * once it handled it (or moves it to when it must look again), and a key whose account is gone
 * is a leftover it deletes. Extra keys therefore cost one read; a missing key (a store written
 * before this index) is found by the full walk on start and every `fullSweepIntervalMs`.
 * Pure key builders; no I/O.
 */

import { timeSegment } from './keys.js';

const prefix = '/vault/dynamic-due/';

export const dynamicDue = {
  prefix,
  key: (tenant: string, leaseId: string, at: number) =>
    `${prefix}${timeSegment(at)}/${encodeURIComponent(tenant)}/${leaseId}`,
  /** What a key names: its time (epoch ms), tenant and lease. */
  parse(key: string): { at: number; tenant: string; leaseId: string } {
    const [at, tenant, leaseId] = key.slice(prefix.length).split('/');
    return { at: Number(at), tenant: decodeURIComponent(tenant ?? ''), leaseId: leaseId ?? '' };
  },
};
