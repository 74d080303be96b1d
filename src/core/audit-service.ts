import type { z } from 'zod';
import {
  type AuditCheckpoint,
  type AuditPublicKey,
  type AuditRecord,
  type AuditVerifyResult,
  auditCheckpoint,
  type auditQuery,
  auditRecord,
} from '../contract/audit.js';
import { badRequest, isVaultError } from '../lib/errors.js';
import type { Store } from '../store/store.js';
import type { Access } from './access.js';
import {
  AUDIT_RECORDS_PER_READ,
  type ChainHead,
  createChainCheck,
  parseHead,
  recordHash,
  recordPrevHash,
  type VerifyOutcome,
} from './audit-chain.js';
import { checkpointSignedBy, signCheckpoint } from './audit-checkpoints.js';
import type { AuditIntegrity } from './audit-integrity.js';
import type { AuditKeyring, AuditKeys } from './audit-keys.js';
import type { AuditSink } from './audit-sink.js';
import type { CallContext } from './context.js';
import type { CoreDeps } from './deps.js';
import type { Fingerprints } from './fingerprints.js';
import { keys } from './keys.js';

const PAGE = AUDIT_RECORDS_PER_READ;

/** Raw records of the tenant in key order after `afterSeq`, a page at a time. */
export async function* rawAuditRecords(store: Store, tenant: string, afterSeq = 0) {
  let startAfter = afterSeq > 0 ? keys.auditRecord(tenant, afterSeq) : undefined;
  for (;;) {
    const page = await store.range(keys.auditRecords(tenant), {
      limit: PAGE,
      ...(startAfter ? { startAfter } : {}),
    });
    for (const kv of page.kvs) yield kv;
    if (!page.more || page.kvs.length === 0) return;
    startAfter = page.kvs.at(-1)!.key;
  }
}

/**
 * The tenant's audit records in chain order as served: a record that is not valid JSON or
 * does not match the schema is skipped (verification names it), and fields the hash does
 * not cover are dropped, so nothing unhashed is ever served.
 */
export async function* auditRecords(store: Store, tenant: string, afterSeq = 0): AsyncGenerator<AuditRecord> {
  for await (const kv of rawAuditRecords(store, tenant, afterSeq)) {
    const record = servedRecord(kv.value);
    if (record) yield record;
  }
}

/** A stored record as served, or undefined for one that is not valid (verification names it). */
function servedRecord(value: string): AuditRecord | undefined {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return undefined;
  }
  const parsed = auditRecord.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}

/** Checks the tenant's stored chain against its key, its head and optionally a checkpoint. */
export async function checkStoredChain(
  store: Store,
  tenant: string,
  key: Buffer | undefined,
  options: { since?: AuditCheckpoint; start?: ChainHead } = {},
): Promise<{ outcome: VerifyOutcome; tip: ChainHead }> {
  // Starting at a checkpoint, its own record is checked like the ones after it (its keyed
  // link recomputed, not only the hash it carries), from the link it names to the one before.
  let from: ChainHead | undefined;
  if (options.start && options.start.seq > 0) {
    const at = await store.get(keys.auditRecord(tenant, options.start.seq));
    const prevHash = at ? recordPrevHash(at.value) : undefined;
    if (!at || recordHash(at.value) !== options.start.hash || prevHash === undefined) {
      return {
        outcome: {
          ok: false,
          records: options.start.seq,
          brokenAt: options.start.seq,
          reason: `record ${options.start.seq} differs from the last checkpoint: the history was rewritten`,
        },
        tip: options.start,
      };
    }
    from = { seq: options.start.seq - 1, hash: prevHash };
  }
  const check = createChainCheck({
    tenant,
    key,
    recordKey: (seq) => keys.auditRecord(tenant, seq),
    ...(options.since || options.start ? { since: options.since ?? options.start! } : {}),
    ...(from ? { start: from } : {}),
  });
  // The head first, then the records up to it: records appended after the head was read (by
  // another replica, or this one) lie beyond this check. A record past the head that was
  // written before the head was is not an append: the head was rolled back, and finish says so.
  const head = await store.get(keys.auditHead(tenant));
  const headSeq = head ? parseHead(head.value)?.seq : undefined;
  for await (const kv of rawAuditRecords(store, tenant, from?.seq ?? 0)) {
    if (head && headSeq !== undefined && check.tip().seq >= headSeq && kv.modRevision > head.modRevision) {
      // Appended by a commit, which moved the head with it; with the head unmoved, the record
      // was written alone (planted) and is checked like the others.
      const now = await store.get(keys.auditHead(tenant));
      if (now?.modRevision !== head.modRevision) break;
    }
    if (!check.push(kv)) break;
  }
  return { outcome: check.finish(head?.value), tip: check.tip() };
}

export interface AuditServiceDeps extends CoreDeps {
  access: Access;
  fingerprints: Fingerprints;
  auditKeys: AuditKeyring;
  integrity: AuditIntegrity;
  sink: AuditSink;
}

export function createAuditService(deps: AuditServiceDeps) {
  const { store, access, committer, fingerprints, auditKeys, integrity, sink, clock, logger, config } = deps;
  /** The newest checkpoint this process signed or verified, per tenant: never signs a shorter one. */
  const latest = new Map<string, AuditCheckpoint>();
  const signing = new Map<string, Promise<AuditCheckpoint | undefined>>();

  const openKeys = async (tenant: string): Promise<AuditKeys | undefined> => auditKeys.load(tenant);

  /** The stored latest checkpoint, if its signature verifies (the store is not trusted for it). */
  async function storedCheckpoint(
    tenant: string,
    tenantKeys: AuditKeys,
  ): Promise<AuditCheckpoint | undefined> {
    const kv = await store.get(keys.auditCheckpoint(tenant));
    let found: AuditCheckpoint | undefined;
    if (kv) {
      try {
        const parsed = auditCheckpoint.safeParse(JSON.parse(kv.value));
        if (
          parsed.success &&
          parsed.data.tenant === tenant &&
          checkpointSignedBy(parsed.data, tenantKeys.publicKey)
        ) {
          found = parsed.data;
        }
      } catch {
        // not a checkpoint: ignored, the chain is verified from record 1
      }
    }
    const known = latest.get(tenant);
    return known && (!found || known.seq > found.seq) ? known : found;
  }

  /**
   * Verifies the chain since the last checkpoint and signs its head. A chain that fails is
   * tampered: the tenant's writes stop and nothing is signed.
   */
  async function signNow(tenant: string): Promise<AuditCheckpoint | undefined> {
    const tenantKeys = await openKeys(tenant);
    if (!tenantKeys) return undefined;
    const previous = await storedCheckpoint(tenant, tenantKeys);
    const { outcome, tip } = await checkStoredChain(
      store,
      tenant,
      tenantKeys.hmac,
      previous ? { since: previous, start: { seq: previous.seq, hash: previous.hash } } : {},
    );
    if (!outcome.ok) throw integrity.report(tenant, outcome.reason ?? 'verification failed');
    if (previous && tip.seq === previous.seq) {
      committer.saw(tenant, previous);
      return previous;
    }
    const checkpoint = signCheckpoint(tenantKeys, {
      tenant,
      seq: tip.seq,
      hash: tip.hash,
      time: clock().toISOString(),
    });
    latest.set(tenant, checkpoint);
    // A head set back below what was verified here is tampering from now on (committer.ts).
    committer.saw(tenant, checkpoint);
    await store.txn({
      success: [{ type: 'put', key: keys.auditCheckpoint(tenant), value: JSON.stringify(checkpoint) }],
    });
    sink.checkpoint?.(checkpoint);
    return checkpoint;
  }

  /** One signing at a time per tenant; callers arriving meanwhile share it. */
  function checkpoint(tenant: string): Promise<AuditCheckpoint | undefined> {
    const running = signing.get(tenant);
    if (running) return running;
    const started = signNow(tenant).finally(() => signing.delete(tenant));
    signing.set(tenant, started);
    return started;
  }

  /** Records the verification; a tampered chain cannot take the record, and the answer is still given. */
  async function recordVerification(ctx: CallContext, outcome: VerifyOutcome, action: string) {
    try {
      await committer.record(ctx, {
        action,
        resource: 'audit',
        outcome: 'allowed',
        reason: outcome.ok ? `${outcome.records} records verified` : `chain broken at ${outcome.brokenAt}`,
      });
    } catch (err) {
      if (!isVaultError(err) || err.code !== 'audit_unavailable') throw err;
      logger.warn({ tenant: ctx.tenant }, 'audit verification not recorded: the chain is tampered');
    }
  }

  /**
   * The newest `limit` records matching the filters with seq below `beforeSeq` (default: up to
   * the head), oldest first. Reads back from there a page at a time, at most
   * `auditScanBudget` records; `before` (when set) is the seq to continue further back from.
   */
  async function newest(
    tenant: string,
    query: z.output<typeof auditQuery>,
    sinceMs: number | undefined,
    untilMs: number | undefined,
  ): Promise<{ records: AuditRecord[]; before?: number }> {
    const head = await store.get(keys.auditHead(tenant));
    const headSeq = head ? (parseHead(head.value)?.seq ?? 0) : 0;
    // Records from `from` + 1 to `upper` are read next; older pages go before newer ones.
    let upper = Math.min(headSeq, (query.beforeSeq ?? headSeq + 1) - 1);
    const pages: AuditRecord[][] = [];
    let found = 0;
    let scanned = 0;
    const budget = Math.max(1, config.auditScanBudget);
    while (upper > 0 && found < query.limit && scanned < budget) {
      const from = Math.max(0, upper - Math.min(PAGE, budget - scanned));
      // Exactly the records from + 1 .. upper, in one read.
      const { kvs } = await store.range(keys.auditRecords(tenant), {
        limit: upper - from,
        ...(from > 0 ? { startAfter: keys.auditRecord(tenant, from) } : {}),
      });
      const page: AuditRecord[] = [];
      for (const kv of kvs) {
        const record = servedRecord(kv.value);
        if (record && record.seq <= upper && matches(record, query, sinceMs, untilMs)) page.push(record);
      }
      scanned += upper - from;
      pages.unshift(page);
      found += page.length;
      upper = from;
    }
    const records = pages.flat().slice(-query.limit);
    // Older matches were read and left out, or older records remain unread.
    if (found > query.limit) return { records, before: records[0]!.seq };
    return upper > 0 ? { records, before: upper + 1 } : { records };
  }

  /** Records committed since each tenant's last checkpoint in this process. */
  const since = new Map<string, number>();
  const background = (tenant: string): Promise<void> => {
    since.delete(tenant);
    return checkpoint(tenant).then(
      () => undefined,
      (err: unknown) => logger.warn({ tenant, err: (err as Error).message }, 'audit checkpoint not signed'),
    );
  };

  return {
    checkpoint,

    /** Counts committed records; every `every` records the tenant gets a checkpoint. */
    noteCommitted(tenant: string, seq: number, every: number) {
      const first = since.get(tenant) ?? seq;
      if (!since.has(tenant)) since.set(tenant, first);
      if (seq - first + 1 >= every) void background(tenant);
    },

    /** Checkpoints every tenant with records since its last checkpoint (run on a timer). */
    async checkpointDue(): Promise<void> {
      await Promise.all([...since.keys()].map(background));
    },

    /**
     * Records matching the filters, oldest first, reading at most `auditScanBudget` records
     * however few match: `next` (when set) is the seq to continue after, as `afterSeq`.
     */
    async query(
      ctx: CallContext,
      query: z.output<typeof auditQuery>,
    ): Promise<{ records: AuditRecord[]; next?: number; before?: number; through?: number }> {
      await access.check(ctx, 'admin', 'audit', undefined, 'audit.query');
      const since = query.since ? Date.parse(query.since) : undefined;
      const until = query.until ? Date.parse(query.until) : undefined;
      if (query.newest) {
        if (query.afterSeq !== undefined)
          throw badRequest('afterSeq reads forward; with newest=true use beforeSeq', { field: 'afterSeq' });
        return newest(ctx.tenant, query, since, until);
      }
      if (query.beforeSeq !== undefined)
        throw badRequest('beforeSeq goes with newest=true', { field: 'beforeSeq' });
      const found: AuditRecord[] = [];
      let scanned = 0;
      let through: number | undefined;
      for await (const record of auditRecords(store, ctx.tenant, query.afterSeq ?? 0)) {
        scanned += 1;
        through = record.seq;
        if (matches(record, query, since, until)) found.push(record);
        if (found.length >= query.limit || scanned >= config.auditScanBudget) {
          return { records: found, next: record.seq, through };
        }
      }
      return through === undefined ? { records: found } : { records: found, through };
    },

    /**
     * Verifies the whole chain (and that it still extends `since`, a checkpoint kept outside
     * the store); when intact, returns a checkpoint of the head signed now. With
     * `fromCheckpoint`, only the records after `since` (its own record must still hash to
     * it): bounded by what was appended since, not by the chain's length.
     */
    async verify(
      ctx: CallContext,
      since?: AuditCheckpoint,
      options: { fromCheckpoint?: boolean } = {},
    ): Promise<AuditVerifyResult> {
      await access.check(ctx, 'admin', 'audit', undefined, 'audit.verify');
      const tenant = ctx.tenant;
      let tenantKeys: AuditKeys | undefined;
      let result: AuditVerifyResult;
      try {
        tenantKeys = await openKeys(tenant);
      } catch {
        tenantKeys = undefined;
      }
      if (since && since.tenant !== tenant) {
        result = {
          ok: false,
          records: 0,
          headSeq: 0,
          reason: `the checkpoint is for tenant "${since.tenant}"`,
        };
      } else if (since && (!tenantKeys || !checkpointSignedBy(since, tenantKeys.publicKey))) {
        result = {
          ok: false,
          records: 0,
          headSeq: 0,
          reason: tenantKeys
            ? "the checkpoint's signature does not verify with this tenant's audit key"
            : 'the tenant has no audit key, but the checkpoint was signed with one: the key was removed',
        };
      } else {
        const start = since && options.fromCheckpoint ? { seq: since.seq, hash: since.hash } : undefined;
        const range = since ? { since, ...(start ? { start } : {}) } : {};
        let { outcome, tip } = await checkStoredChain(store, tenant, tenantKeys?.hmac, range);
        if (!outcome.ok && !tenantKeys) {
          // An unkeyed chain rekeyed by another replica while this one read: the key exists now.
          tenantKeys = await openKeys(tenant).catch(() => undefined);
          if (tenantKeys) ({ outcome, tip } = await checkStoredChain(store, tenant, tenantKeys.hmac, range));
        }
        result = { ...outcome, headSeq: tip.seq, ...(start ? { fromSeq: start.seq } : {}) };
        if (!outcome.ok) integrity.report(tenant, outcome.reason ?? 'verification failed');
        else if (tenantKeys && tip.seq > 0) {
          const signed = signCheckpoint(tenantKeys, {
            tenant,
            seq: tip.seq,
            hash: tip.hash,
            time: clock().toISOString(),
          });
          const known = latest.get(tenant);
          if (!known || known.seq < signed.seq) latest.set(tenant, signed);
          committer.saw(tenant, signed);
          result.checkpoint = signed;
        }
      }
      // The verification itself is recorded after reading, so it does not verify itself.
      await recordVerification(ctx, result, 'audit.verify');
      return result;
    },

    /** Signs a checkpoint of the head now (after verifying the records since the last one). */
    async createCheckpoint(ctx: CallContext): Promise<AuditCheckpoint | undefined> {
      await access.check(ctx, 'admin', 'audit', undefined, 'audit.checkpoint');
      const signed = await checkpoint(ctx.tenant);
      await committer.record(ctx, {
        action: 'audit.checkpoint',
        resource: 'audit',
        outcome: 'allowed',
        reason: signed ? `checkpoint at ${signed.seq}` : 'no keyed records yet',
      });
      return signed;
    },

    /** The tenant's checkpoint verification key; public, so anyone holding a checkpoint can check it. */
    async publicKey(tenant: string): Promise<AuditPublicKey | undefined> {
      const tenantKeys = await openKeys(tenant).catch(() => undefined);
      if (!tenantKeys) return undefined;
      return { tenant, algorithm: 'Ed25519', keyId: tenantKeys.keyId, publicKey: tenantKeys.publicKeyPem };
    },

    /**
     * Was this value ever issued? Compares keyed HMACs; the value itself is never stored. Every
     * match is counted, the first LOOKUP_RECORDS are returned: a static credential's leases
     * all share its value, so a million leases would be a million records in one answer.
     */
    async lookupValue(
      ctx: CallContext,
      value: string,
    ): Promise<{ issued: boolean; matches: number; records: AuditRecord[]; truncated: boolean }> {
      await access.check(ctx, 'admin', 'audit', undefined, 'audit.lookup');
      const hmac = await fingerprints.of(ctx.tenant, value);
      const records: AuditRecord[] = [];
      let matches = 0;
      for await (const record of auditRecords(store, ctx.tenant)) {
        if (record.valueHmac !== hmac) continue;
        matches++;
        if (records.length < LOOKUP_RECORDS) records.push(record);
      }
      await committer.record(ctx, {
        action: 'audit.lookup',
        resource: 'audit',
        outcome: 'allowed',
        reason: matches ? `${matches} matching records` : 'no match',
      });
      return { issued: matches > 0, matches, records, truncated: matches > records.length };
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;

/** The most matching records a value look-up answers with (all are counted). */
export const LOOKUP_RECORDS = 1_000;

function matches(
  record: AuditRecord,
  query: z.output<typeof auditQuery>,
  since: number | undefined,
  until: number | undefined,
): boolean {
  if (query.action && record.action !== query.action) return false;
  if (query.outcome && record.outcome !== query.outcome) return false;
  if (
    query.identityName &&
    record.actor.name !== query.identityName &&
    record.actingFor?.name !== query.identityName
  ) {
    return false;
  }
  if (query.resource && !record.resource.startsWith(query.resource)) return false;
  const time = Date.parse(record.time);
  if (since !== undefined && time < since) return false;
  if (until !== undefined && time > until) return false;
  return true;
}
