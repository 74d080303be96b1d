import type { Logger } from '../lib/logger.js';
import type { Op, Store } from '../store/store.js';
import { parseRecord } from './deps.js';
import { keys } from './keys.js';
import { leaseWriteOps } from './lease-index.js';
import type { LeaseRecord } from './lease-record.js';

/** The marker of a tenant whose leases are all indexed. */
export const leaseIndexComplete = { version: 1, done: true };

/** Records per transaction: three index puts each plus the progress marker, under 128. */
const PAGE = 40;
const INDEX_VERSION = leaseIndexComplete.version;

interface BackfillState {
  version: number;
  done: boolean;
  /** The last lease key indexed, relative to the tenant's `leases/` prefix. */
  after?: string;
}

/**
 * Writes the index keys of lease records written before leases were indexed (stores from
 * earlier versions). A page of records per transaction, together with the tenant's progress
 * marker, so a crash resumes after the last committed page; each transaction compares the
 * records it indexes, so a lease changed meanwhile (and thereby indexed by its writer) is
 * read again. Index keys are pure functions of the record: writing one twice is harmless.
 * Runs before the server listens; once a tenant is marked done it costs one read.
 */
export function createLeaseIndexBackfill(deps: { store: Store; logger: Logger }) {
  const { store, logger } = deps;

  async function backfillTenant(tenant: string): Promise<number> {
    const marker = keys.leaseIndexState(tenant);
    const prefix = keys.leases(tenant);
    let state = await store.get(marker);
    let parsed = state ? parseRecord<BackfillState>(state.value) : undefined;
    if (parsed?.done && parsed.version >= INDEX_VERSION) return 0;
    let indexed = 0;
    for (;;) {
      const after = parsed?.after;
      const page = await store.range(prefix, {
        limit: PAGE,
        ...(after !== undefined ? { startAfter: prefix + after } : {}),
      });
      const ops: Op[] = [];
      for (const kv of page.kvs) {
        const lease = parseRecord<LeaseRecord>(kv.value);
        // The record itself is left as it is: only its index keys are written.
        ops.push(...leaseWriteOps(tenant, undefined, lease).slice(1));
      }
      const last = page.kvs.at(-1)?.key.slice(prefix.length) ?? after;
      const next: BackfillState = {
        version: INDEX_VERSION,
        done: !page.more,
        ...(last !== undefined ? { after: last } : {}),
      };
      const result = await store.txn({
        compare: [
          { key: marker, modRevision: state?.modRevision ?? 0 },
          ...page.kvs.map((kv) => ({ key: kv.key, modRevision: kv.modRevision })),
        ],
        success: [...ops, { type: 'put', key: marker, value: JSON.stringify(next) }],
      });
      if (result.succeeded) indexed += page.kvs.length;
      // Lost a race (a record changed, or another replica moved the marker): re-read both.
      state = await store.get(marker);
      parsed = state ? parseRecord<BackfillState>(state.value) : undefined;
      if (parsed?.done) {
        if (indexed > 0) logger.info({ tenant, indexed }, 'lease index backfilled');
        return indexed;
      }
    }
  }

  return {
    backfillTenant,
    /** Every tenant, a page of tenants at a time; resolves with how many records were indexed. */
    async backfillAll(): Promise<number> {
      let total = 0;
      let after: string | undefined;
      for (;;) {
        const page = await store.range(keys.tenants(), {
          limit: 500,
          ...(after !== undefined ? { startAfter: after } : {}),
        });
        for (const kv of page.kvs) {
          total += await backfillTenant(kv.key.slice(keys.tenants().length));
          after = kv.key;
        }
        if (!page.more) return total;
      }
    },
  };
}

export type LeaseIndexBackfill = ReturnType<typeof createLeaseIndexBackfill>;
