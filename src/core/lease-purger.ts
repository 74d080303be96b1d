import { getMany } from '../store/paged.js';
import { systemContext } from './context.js';
import { type CoreDeps, parseRecord } from './deps.js';
import { keys } from './keys.js';
import { leaseDeleteOps, leaseIndex, leasesPerTxn, timeKey } from './lease-index.js';
import type { LeaseRecord } from './lease-record.js';

export const purgerIdentity = { type: 'workload' as const, name: 'vault-lease-purger' };

/**
 * Lease records outlive their lease by `retentionMs` (so a holder still gets 410, and the
 * record can be looked up), then are deleted, a chunk per transaction with its audit
 * record; the audit trail of every lease stays. Driven by the time-ordered index: the
 * oldest `expiry/` and `revoked/` keys come first, so each round reads one small page and
 * stops at the first key inside the retention. Idempotent and safe to run on every replica
 * at once (each delete compares the record's revision); a crash loses nothing, the next run
 * starts where the index now begins.
 */
export function createLeasePurger(
  deps: Pick<CoreDeps, 'store' | 'committer' | 'clock' | 'config' | 'logger'>,
) {
  const { store, committer, clock, config } = deps;
  /** Records per transaction: up to six deletes each, with room for the audit record. */
  const chunk = leasesPerTxn(store);

  async function purgeIndex(tenant: string, prefix: string): Promise<number> {
    const ctx = systemContext(tenant, purgerIdentity, `purge-${clock().getTime()}`);
    let purged = 0;
    for (;;) {
      const { removed, more } = await committer.commit(ctx, async () => {
        const cutoff = clock().getTime() - config.leaseRetentionMs;
        const page = await store.range(prefix, { limit: chunk });
        const old = page.kvs.filter((kv) => leaseIndex.timeOf(kv.key) < cutoff);
        // The page's records in one read (one etcd request per 100 or more keys).
        const records = await getMany(
          store,
          old.map((kv) => keys.lease(tenant, leaseIndex.idOf(kv.key))),
        );
        const loaded = old.map((kv, i) => ({ kv, record: records[i] }));
        const compare = [];
        const ops = [];
        let count = 0;
        for (const { kv, record } of loaded) {
          const lease = record ? parseRecord<LeaseRecord>(record.value) : undefined;
          if (lease && record && timeKey(tenant, lease) === kv.key) {
            compare.push({ key: record.key, modRevision: record.modRevision });
            ops.push(...leaseDeleteOps(tenant, lease));
            count += 1;
          } else {
            // A key whose record is gone or has moved on: a leftover, not a lease.
            compare.push({ key: kv.key, modRevision: kv.modRevision });
            ops.push({ type: 'delete' as const, key: kv.key });
          }
        }
        return {
          compare,
          ops,
          audit:
            count > 0
              ? [
                  {
                    action: 'lease.purge',
                    resource: 'leases',
                    outcome: 'allowed' as const,
                    reason: `${count} lease records ended more than the retention period ago deleted`,
                  },
                ]
              : [],
          result: { removed: count, more: old.length === page.kvs.length && page.more },
        };
      });
      purged += removed;
      if (!more) return purged;
    }
  }

  const purgeTenant = async (tenant: string): Promise<number> =>
    (await purgeIndex(tenant, leaseIndex.expiry(tenant))) +
    (await purgeIndex(tenant, leaseIndex.revoked(tenant)));

  return {
    purgeTenant,
    /**
     * Every tenant; resolves with how many records went. A tenant whose commit fails (its
     * audit chain found tampered stops its writes) is logged and left for the next run, and
     * the tenants after it are purged all the same.
     */
    async purgeAll(): Promise<number> {
      let total = 0;
      let after: string | undefined;
      for (;;) {
        const page = await store.range(keys.tenants(), {
          limit: 500,
          ...(after !== undefined ? { startAfter: after } : {}),
        });
        for (const kv of page.kvs) {
          const tenant = kv.key.slice(keys.tenants().length);
          try {
            total += await purgeTenant(tenant);
          } catch (err) {
            deps.logger.warn(
              { tenant },
              `old lease records of the tenant not purged; retrying later: ${(err as Error).message}`,
            );
          }
          after = kv.key;
        }
        if (!page.more) return total;
      }
    },
  };
}

export type LeasePurger = ReturnType<typeof createLeasePurger>;
