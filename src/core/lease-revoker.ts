import type { Identity } from '../contract/common.js';
import { getMany } from '../store/paged.js';
import type { CallContext } from './context.js';
import { type CoreDeps, parseRecord } from './deps.js';
import { keys } from './keys.js';
import { type IndexEntry, leaseIndex, parseEntry, revokeOpsOf, TXN_RESERVED_OPS } from './lease-index.js';
import { effectiveState, type LeaseRecord, revokeOps } from './lease-record.js';

/** Index keys read per page while looking for leases to revoke (small keys: far below 4 MiB). */
const INDEX_PAGE = 1000;

/** Which leases a bulk revocation takes, as an index walk. */
export type RevokeSelection =
  | { credentialName: string; belowVersion?: number }
  | { identity: Identity }
  | { all: true };

/** Pure: where to walk and what an index entry must say for its lease to be taken. */
export function selectionWalk(tenant: string, selection: RevokeSelection, now: Date) {
  const live = (entry: IndexEntry) => entry.s === 'active' && entry.e > now.getTime();
  if ('credentialName' in selection) {
    const below = selection.belowVersion;
    return {
      prefix: leaseIndex.byCredential(tenant, selection.credentialName),
      startAfter: undefined,
      take: (value: string) => {
        const entry = parseEntry(value);
        return live(entry) && (below === undefined || entry.v < below);
      },
      matches: (lease: LeaseRecord) =>
        lease.credentialName === selection.credentialName && (below === undefined || lease.version < below),
    };
  }
  if ('identity' in selection) {
    const { type, name } = selection.identity;
    return {
      prefix: leaseIndex.byIdentity(tenant, selection.identity),
      startAfter: undefined,
      take: (value: string) => live(parseEntry(value)),
      matches: (lease: LeaseRecord) => lease.identity.type === type && lease.identity.name === name,
    };
  }
  // Every lease not revoked that expires after now.
  return {
    prefix: leaseIndex.expiry(tenant),
    startAfter: leaseIndex.expiryAfter(tenant, now),
    take: () => true,
    matches: () => true,
  };
}

/**
 * Revokes every active lease the selection names by walking its index a page at a time, as
 * many leases per transaction as the store's max-txn-ops holds (each chunk with its audit
 * record: 24 static or 15 dynamic leases at etcd's default of 128), so no request reads more
 * than a page and no transaction passes the limit. Each transaction compares the records it
 * changes, so a lease renewed or revoked meanwhile is re-read. Resumable: after a crash,
 * running it again skips what is already revoked by the index entry alone and finishes the
 * job. A lease committed before the call is in the index (same transaction), so it is found.
 *
 * Pipelined: while one transaction commits, the next chunk's index entries and lease
 * records are read. A transaction that finds a record changed since is built again from a
 * fresh read (the committer retries it), so reading ahead never revokes on stale data.
 */
export function createLeaseRevoker(
  deps: Pick<CoreDeps, 'store' | 'committer' | 'clock'> & { afterRevoke?: () => void },
) {
  const { store, committer, clock } = deps;
  const budget = Math.max(8, store.maxTxnOps - TXN_RESERVED_OPS);
  /** Leases read per chunk: as many as fit if none is dynamic. */
  const readPerTxn = Math.max(1, Math.floor(budget / revokeOpsOf({})));
  return async function revokeWhere(
    ctx: CallContext,
    selection: RevokeSelection,
    audit: { action: string; resource: string; reason: string },
  ): Promise<{ revoked: number; leaseIds: string[]; truncated: boolean }> {
    // Ids of the first BULK_RESULT_IDS leases revoked: a million would not fit an answer.
    const leaseIds: string[] = [];
    let count = 0;
    const walk = selectionWalk(ctx.tenant, selection, clock());
    // Lease ids taken from the index and not yet in a chunk, and where the index read stopped.
    const taken: string[] = [];
    let after = walk.startAfter;
    let exhausted = false;

    /**
     * The next chunk: ids read from the index a page at a time and their records, cut where
     * their operations would pass the budget (the rest go first into the next chunk).
     */
    const nextChunk = async () => {
      while (taken.length < readPerTxn && !exhausted) {
        const page = await store.range(walk.prefix, {
          limit: INDEX_PAGE,
          ...(after !== undefined ? { startAfter: after } : {}),
        });
        for (const kv of page.kvs) {
          after = kv.key;
          if (walk.take(kv.value)) taken.push(leaseIndex.idOf(kv.key));
        }
        if (!page.more) exhausted = true;
      }
      const ids = taken.splice(0, readPerTxn);
      const loaded = await getMany(
        store,
        ids.map((id) => keys.lease(ctx.tenant, id)),
      );
      let ops = 0;
      let fits = 0;
      for (const kv of loaded) {
        const cost = kv ? revokeOpsOf(parseRecord<LeaseRecord>(kv.value)) : 0;
        if (fits > 0 && ops + cost > budget) break;
        ops += cost;
        fits += 1;
      }
      taken.unshift(...ids.slice(fits));
      return {
        ids: ids.slice(0, fits),
        loaded: loaded.slice(0, fits),
        done: exhausted && taken.length === 0,
      };
    };

    let next = await nextChunk();
    for (let round = 0; ; round++) {
      const chunk = next;
      const ahead = chunk.done ? undefined : nextChunk();
      ahead?.catch(() => undefined);
      let attempt = 0;
      const revoked = await committer.commit(ctx, async () => {
        const now = clock();
        const loaded =
          attempt++ === 0
            ? chunk.loaded
            : await getMany(
                store,
                chunk.ids.map((id) => keys.lease(ctx.tenant, id)),
              );
        const found = loaded
          .filter((kv) => kv !== undefined)
          .map((kv) => ({ kv, lease: parseRecord<LeaseRecord>(kv.value) }))
          .filter(({ lease }) => effectiveState(lease, now) === 'active' && walk.matches(lease));
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
          compare: found.map(({ kv }) => ({ key: kv.key, modRevision: kv.modRevision })),
          ops: found.flatMap(({ lease }) => revokeOps(ctx.tenant, lease, now, audit.reason)),
          audit: records,
          result: found.map(({ lease }) => lease.id),
        };
      });
      count += revoked.length;
      leaseIds.push(...revoked.slice(0, BULK_RESULT_IDS - leaseIds.length));
      // Dynamic leases among them: their upstream accounts go now.
      if (revoked.length > 0) deps.afterRevoke?.();
      if (!ahead) return { revoked: count, leaseIds, truncated: count > leaseIds.length };
      next = await ahead;
    }
  };
}

export type LeaseRevoker = ReturnType<typeof createLeaseRevoker>;

/** How many revoked lease ids a bulk revocation's answer lists; the count is always whole. */
export const BULK_RESULT_IDS = 1_000;
