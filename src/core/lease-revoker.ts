import type { CallContext } from './context.js';
import { type CoreDeps, parseRecord } from './deps.js';
import { keys } from './keys.js';
import { effectiveState, type LeaseRecord, revokeOps } from './lease-record.js';

/** Leases per transaction: etcd accepts at most 128 operations in one. */
const CHUNK = 100;

/**
 * Revokes every active lease of the tenant that `filter` selects, a chunk per transaction
 * (each with its audit record), scanning afresh each time, so leases committed before the
 * call — also through other replicas — are all found. Idempotent: rerunning it after a
 * crash finishes the job.
 */
export function createLeaseRevoker(
  deps: Pick<CoreDeps, 'store' | 'committer' | 'clock'> & { afterRevoke?: () => void },
) {
  const { store, committer, clock } = deps;
  return async function revokeWhere(
    ctx: CallContext,
    filter: (lease: LeaseRecord) => boolean,
    audit: { action: string; resource: string; reason: string },
  ): Promise<{ revoked: number; leaseIds: string[] }> {
    const leaseIds: string[] = [];
    for (let round = 0; ; round++) {
      const chunk = await committer.commit(ctx, async () => {
        const now = clock();
        const { kvs } = await store.range(keys.leases(ctx.tenant));
        const found = kvs
          .map((kv) => ({ kv, lease: parseRecord<LeaseRecord>(kv.value) }))
          .filter(({ lease }) => effectiveState(lease, now) === 'active' && filter(lease))
          .slice(0, CHUNK);
        const records =
          found.length > 0 || round === 0
            ? [
                {
                  ...audit,
                  outcome: 'allowed' as const,
                  reason: `${found.length} leases revoked: ${audit.reason}`,
                },
              ]
            : [];
        return {
          exclusive: true,
          compare: found.map(({ kv }) => ({ key: kv.key, modRevision: kv.modRevision })),
          ops: found.flatMap(({ lease }) => revokeOps(ctx.tenant, lease, now, audit.reason)),
          audit: records,
          result: found.map(({ lease }) => lease.id),
        };
      });
      leaseIds.push(...chunk);
      // Dynamic leases among them: their upstream accounts go now.
      if (chunk.length > 0) deps.afterRevoke?.();
      if (chunk.length < CHUNK) return { revoked: leaseIds.length, leaseIds };
    }
  };
}

export type LeaseRevoker = ReturnType<typeof createLeaseRevoker>;
