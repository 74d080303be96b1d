import { systemContext } from './context.js';
import { type CoreDeps, parseRecord } from './deps.js';
import { keys } from './keys.js';
import { effectiveState, type LeaseRecord } from './lease-record.js';

/** Records per transaction: etcd accepts at most 128 operations in one. */
const CHUNK = 50;

export const purgerIdentity = { type: 'workload' as const, name: 'vault-lease-purger' };

/**
 * Lease records outlive their lease by `retentionMs` (so a holder still gets 410, and the
 * record can be looked up), then are deleted, a chunk per transaction with its audit
 * record; the audit trail of every lease stays. Idempotent and safe to run on every
 * replica at once: each delete compares the record's revision.
 */
export function createLeasePurger(deps: Pick<CoreDeps, 'store' | 'committer' | 'clock' | 'config'>) {
  const { store, committer, clock, config } = deps;

  const endedAt = (lease: LeaseRecord, now: Date): number | undefined => {
    const state = effectiveState(lease, now);
    if (state === 'revoked') return Date.parse(lease.revokedAt ?? lease.expiresAt);
    if (state === 'expired') return Date.parse(lease.expiresAt);
    return undefined;
  };

  async function purgeTenant(tenant: string): Promise<number> {
    const ctx = systemContext(tenant, purgerIdentity, `purge-${clock().getTime()}`);
    let purged = 0;
    for (;;) {
      const removed = await committer.commit(ctx, async () => {
        const now = clock();
        const cutoff = now.getTime() - config.leaseRetentionMs;
        const { kvs } = await store.range(keys.leases(tenant));
        const old = kvs
          .filter((kv) => {
            const ended = endedAt(parseRecord<LeaseRecord>(kv.value), now);
            return ended !== undefined && ended < cutoff;
          })
          .slice(0, CHUNK);
        return {
          exclusive: true,
          compare: old.map((kv) => ({ key: kv.key, modRevision: kv.modRevision })),
          ops: old.flatMap((kv) => [
            { type: 'delete' as const, key: kv.key },
            ...(parseRecord<LeaseRecord>(kv.value).dynamic
              ? [
                  {
                    type: 'delete' as const,
                    key: keys.leaseValue(tenant, parseRecord<LeaseRecord>(kv.value).id),
                  },
                ]
              : []),
          ]),
          audit:
            old.length > 0
              ? [
                  {
                    action: 'lease.purge',
                    resource: 'leases',
                    outcome: 'allowed' as const,
                    reason: `${old.length} lease records ended more than the retention period ago deleted`,
                  },
                ]
              : [],
          result: old.length,
        };
      });
      purged += removed;
      if (removed < CHUNK) return purged;
    }
  }

  return {
    purgeTenant,
    /** Every tenant; resolves with how many records went. */
    async purgeAll(): Promise<number> {
      const { kvs } = await store.range(keys.tenants());
      let total = 0;
      for (const kv of kvs) total += await purgeTenant(kv.key.slice(keys.tenants().length));
      return total;
    },
  };
}

export type LeasePurger = ReturnType<typeof createLeasePurger>;
