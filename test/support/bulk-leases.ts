/**
 * Many lease records written straight into a store, through the core's own op builder (the
 * record and its three index keys, no audit records), for tests and benchmarks that need a
 * large tenant without issuing every lease through the API. Every lease is a copy of
 * `template` (a record issued through the API) with its own id, issued now, active for a day.
 */
import { randomBytes } from 'node:crypto';
import { leaseWriteOps } from '../../src/core/lease-index.js';
import type { LeaseRecord } from '../../src/core/lease-record.js';
import type { Store } from '../../src/store/store.js';

export async function writeLeases(
  store: Store,
  tenant: string,
  template: LeaseRecord,
  credential: string,
  count: number,
  /** The n-th lease's id (default: random, as the server makes them). */
  idOf: (n: number) => string = () => `lease_${randomBytes(16).toString('base64url')}`,
): Promise<void> {
  const now = Date.now();
  const perTxn = 25;
  const txns: Array<() => Promise<unknown>> = [];
  for (let done = 0; done < count; done += perTxn) {
    const ops = Array.from({ length: Math.min(perTxn, count - done) }, (_, i) => {
      const lease: LeaseRecord = {
        ...template,
        id: idOf(done + i),
        credentialName: credential,
        issuedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + 86_400_000).toISOString(),
        maxExpiresAt: new Date(now + 86_400_000).toISOString(),
      };
      return leaseWriteOps(tenant, undefined, lease);
    }).flat();
    txns.push(() => store.txn({ success: ops }));
  }
  for (let i = 0; i < txns.length; i += 8) await Promise.all(txns.slice(i, i + 8).map((run) => run()));
}
