import type { z } from 'zod';
import type { AuditRecord, AuditVerifyResult, auditQuery } from '../contract/audit.js';
import type { Store } from '../store/store.js';
import type { Access } from './access.js';
import { verifyChain } from './audit-chain.js';
import type { CallContext } from './context.js';
import { type CoreDeps, parseRecord } from './deps.js';
import type { Fingerprints } from './fingerprints.js';
import { keys } from './keys.js';

const PAGE = 1000;

/** Reads the tenant's audit records in chain order, a page at a time. */
export async function* auditRecords(store: Store, tenant: string, afterSeq = 0): AsyncGenerator<AuditRecord> {
  let startAfter = afterSeq > 0 ? keys.auditRecord(tenant, afterSeq) : undefined;
  for (;;) {
    const page = await store.range(keys.auditRecords(tenant), {
      limit: PAGE,
      ...(startAfter ? { startAfter } : {}),
    });
    for (const kv of page.kvs) yield parseRecord<AuditRecord>(kv.value);
    if (!page.more || page.kvs.length === 0) return;
    startAfter = page.kvs.at(-1)!.key;
  }
}

export function createAuditService(deps: CoreDeps & { access: Access; fingerprints: Fingerprints }) {
  const { store, access, committer, fingerprints } = deps;

  return {
    async query(ctx: CallContext, query: z.output<typeof auditQuery>): Promise<AuditRecord[]> {
      await access.check(ctx, 'admin', 'audit', undefined, 'audit.query');
      const since = query.since ? Date.parse(query.since) : undefined;
      const until = query.until ? Date.parse(query.until) : undefined;
      const found: AuditRecord[] = [];
      for await (const record of auditRecords(store, ctx.tenant, query.afterSeq ?? 0)) {
        if (query.action && record.action !== query.action) continue;
        if (query.outcome && record.outcome !== query.outcome) continue;
        if (
          query.identityName &&
          record.actor.name !== query.identityName &&
          record.actingFor?.name !== query.identityName
        ) {
          continue;
        }
        if (query.resource && !record.resource.startsWith(query.resource)) continue;
        const time = Date.parse(record.time);
        if (since !== undefined && time < since) continue;
        if (until !== undefined && time > until) continue;
        found.push(record);
        if (found.length >= query.limit) break;
      }
      return found;
    },

    async verify(ctx: CallContext): Promise<AuditVerifyResult> {
      await access.check(ctx, 'admin', 'audit', undefined, 'audit.verify');
      const headKv = await store.get(keys.auditHead(ctx.tenant));
      const head = headKv ? parseRecord<{ seq: number; hash: string }>(headKv.value) : undefined;
      const records: AuditRecord[] = [];
      for await (const record of auditRecords(store, ctx.tenant)) records.push(record);
      const outcome = verifyChain(records, head);
      // The verification itself is recorded after reading, so it does not verify itself.
      await committer.record(ctx, {
        action: 'audit.verify',
        resource: 'audit',
        outcome: 'allowed',
        reason: outcome.ok ? `${outcome.records} records verified` : `chain broken at ${outcome.brokenAt}`,
      });
      return { ...outcome, headSeq: head?.seq ?? 0 };
    },

    /** Was this value ever issued? Compares keyed HMACs; the value itself is never stored. */
    async lookupValue(ctx: CallContext, value: string): Promise<{ issued: boolean; records: AuditRecord[] }> {
      await access.check(ctx, 'admin', 'audit', undefined, 'audit.lookup');
      const hmac = await fingerprints.of(ctx.tenant, value);
      const records: AuditRecord[] = [];
      for await (const record of auditRecords(store, ctx.tenant)) {
        if (record.valueHmac === hmac) records.push(record);
      }
      await committer.record(ctx, {
        action: 'audit.lookup',
        resource: 'audit',
        outcome: 'allowed',
        reason: records.length ? `${records.length} matching records` : 'no match',
      });
      return { issued: records.length > 0, records };
    },
  };
}
