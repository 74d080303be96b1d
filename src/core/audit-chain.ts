/**
 * The audit chain, as pure functions: how a record's link is computed and how a stored
 * chain is checked, record by record, against the tenant's key, its head and (optionally)
 * a checkpoint someone kept outside the store.
 *
 * Links are HMAC-SHA256 under the tenant's audit key (audit-keys.ts), which is sealed in the
 * store, so someone who can write the store but does not hold the root key cannot compute a
 * valid link: an edited, forged or re-hashed record fails. Deletions at the end, a wiped or
 * rolled-back log, and a rewritten head all produce a chain that is valid on its own; those
 * are caught by comparing with a signed checkpoint (audit-checkpoints.ts).
 *
 * Chains written before keyed links existed are plain SHA-256 links; the first keyed record
 * of such a chain is an `audit.rekey` record, whose keyed link also pins everything before it.
 */
import { createHash, createHmac } from 'node:crypto';
import { type AuditCheckpoint, type AuditRecord, storedAuditRecord } from '../contract/audit.js';
import type { Identity } from '../contract/common.js';

export const GENESIS_HASH = '0'.repeat(64);
/**
 * Records per read of a chain (the audit readers, the stream, a lost commit's catch-up): a
 * record's reason and resource are clipped (committer.ts), so a record stays under about
 * 27 KB and this many stay under etcd's 4 MiB answer limit.
 */
export const AUDIT_RECORDS_PER_READ = 128;
export const REKEY_ACTION = 'audit.rekey';

export type UnsignedRecord = Omit<AuditRecord, 'hash'>;

const identityKey = (identity: Identity | undefined) =>
  identity ? `${identity.type}:${identity.name}` : null;

/** Every field but the hash, in a fixed order; the strict record schema rejects any other field. */
const canonical = (record: UnsignedRecord) =>
  JSON.stringify([
    record.seq,
    record.time,
    record.requestId,
    record.tenant,
    identityKey(record.actor),
    identityKey(record.actingFor),
    record.action,
    record.resource,
    record.outcome,
    record.reason ?? null,
    record.source ?? null,
    record.valueHmac ?? null,
    identityKey(record.delegatedBy),
    record.prevHash,
  ]);

/** The `hash` a stored record claims, without validating the rest (undefined when unreadable). */
/** The link a stored record names to the record before it, without trusting anything else. */
export function recordPrevHash(value: string): string | undefined {
  try {
    const prev = (JSON.parse(value) as { prevHash?: unknown }).prevHash;
    return typeof prev === 'string' ? prev : undefined;
  } catch {
    return undefined;
  }
}

export function recordHash(value: string): string | undefined {
  try {
    const hash = (JSON.parse(value) as { hash?: unknown }).hash;
    return typeof hash === 'string' ? hash : undefined;
  } catch {
    return undefined;
  }
}

/** The link of a keyed (v2) record. */
export function keyedHash(key: Buffer, record: UnsignedRecord): string {
  return createHmac('sha256', key)
    .update(`vault-audit-record:v2\n${canonical(record)}`)
    .digest('hex');
}

/** The link of an unkeyed record written before keyed chains (kept to verify old chains). */
export function legacyHash(record: UnsignedRecord): string {
  return createHash('sha256').update(canonical(record)).digest('hex');
}

export interface VerifyOutcome {
  ok: boolean;
  records: number;
  /** The sequence position of the first problem (a record, or the head at headSeq + 1). */
  brokenAt?: number;
  reason?: string;
}

export interface ChainHead {
  seq: number;
  hash: string;
}

/** A record as read from the store: its key and raw value, nothing trusted yet. */
export interface RawRecord {
  key: string;
  value: string;
}

export interface ChainCheckOptions {
  tenant: string;
  /** The tenant's audit HMAC key; undefined when the tenant has none (an unkeyed legacy chain). */
  key: Buffer | undefined;
  /** The store key of record `seq`, to check each record sits where its number says. */
  recordKey: (seq: number) => string;
  /** A checkpoint (its signature already checked): the chain must still contain it. */
  since?: Pick<AuditCheckpoint, 'seq' | 'hash'>;
  /** Start after this trusted, keyed point (a checkpoint this process signed or checked) instead of at record 1. */
  start?: ChainHead;
}

/**
 * Checks a chain fed to it in key order, one record at a time (so a tenant's whole history
 * never has to be in memory). The first problem stops the check; `finish` compares the end
 * with the head record and the checkpoint.
 */
export function createChainCheck(options: ChainCheckOptions) {
  let prevHash = options.start?.hash ?? GENESIS_HASH;
  let count = options.start?.seq ?? 0;
  let keyed = options.start !== undefined && options.start.seq > 0;
  let problem: VerifyOutcome | undefined;

  const fail = (at: number, reason: string) => {
    problem = { ok: false, records: count, brokenAt: at, reason };
  };

  function push(raw: RawRecord): boolean {
    if (problem) return false;
    const expected = count + 1;
    if (raw.key !== options.recordKey(expected)) {
      fail(expected, `record ${expected} is missing: a record was removed or reordered`);
      return false;
    }
    let json: unknown;
    try {
      json = JSON.parse(raw.value);
    } catch {
      fail(expected, `record ${expected} is not valid JSON`);
      return false;
    }
    const parsed = storedAuditRecord.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      fail(
        expected,
        `record ${expected} is malformed (${issue?.path.join('.') || 'record'}: ${issue?.message ?? 'invalid'}): fields were added, removed or changed`,
      );
      return false;
    }
    const record = parsed.data;
    count = expected;
    if (record.seq !== expected) {
      fail(
        expected,
        `expected record ${expected} but found ${record.seq}: a record was removed or reordered`,
      );
      return false;
    }
    if (record.tenant !== options.tenant) {
      fail(expected, `record ${expected} belongs to tenant "${record.tenant}": another chain was spliced in`);
      return false;
    }
    if (record.prevHash !== prevHash) {
      fail(expected, `record ${expected} does not link to the record before it`);
      return false;
    }
    const { hash, ...unsigned } = record;
    if (record.v === 2) {
      if (!options.key) {
        fail(expected, `record ${expected} is keyed but the tenant has no audit key: the key was removed`);
        return false;
      }
      if (!keyed && expected > 1 && record.action !== REKEY_ACTION) {
        fail(expected, `record ${expected} starts a keyed chain without an ${REKEY_ACTION} record`);
        return false;
      }
      if (keyedHash(options.key, unsigned) !== hash) {
        fail(
          expected,
          `record ${expected} was modified after it was written (its keyed link does not match)`,
        );
        return false;
      }
      keyed = true;
    } else {
      if (keyed) {
        fail(expected, `record ${expected} is unkeyed after the keyed chain began: it was forged`);
        return false;
      }
      if (legacyHash(unsigned) !== hash) {
        fail(expected, `record ${expected} was modified after it was written`);
        return false;
      }
    }
    if (options.since && expected === options.since.seq && hash !== options.since.hash) {
      fail(expected, `record ${expected} differs from the checkpoint: the history was rewritten`);
      return false;
    }
    prevHash = hash;
    return true;
  }

  /** `head` is the raw head record (undefined when absent). */
  function finish(head: string | undefined): VerifyOutcome {
    if (problem) return problem;
    const next = count + 1;
    if (options.key && count > 0 && !keyed) {
      return broken(
        count,
        1,
        'the tenant has an audit key but no record is keyed: the chain was rewritten unkeyed',
      );
    }
    if (options.since && count < options.since.seq) {
      return broken(
        count,
        next,
        `the log ends at record ${count} but the checkpoint covers ${options.since.seq}: records were cut off or the store was rolled back`,
      );
    }
    if (head === undefined) {
      if (count > 0) return broken(count, next, 'the chain head is missing while records exist');
      return { ok: true, records: 0 };
    }
    const parsedHead = parseHead(head);
    if (!parsedHead) return broken(count, next, 'the chain head is malformed');
    if (parsedHead.seq !== count || parsedHead.hash !== prevHash) {
      return broken(
        count,
        Math.min(parsedHead.seq, count) + 1,
        parsedHead.seq > count
          ? 'the newest records are missing: the chain head names a record that is gone'
          : 'the chain head does not name the last record: it was rewritten',
      );
    }
    return { ok: true, records: count };
  }

  return { push, finish, tip: (): ChainHead => ({ seq: count, hash: prevHash }) };
}

export function parseHead(value: string): ChainHead | undefined {
  try {
    const head = JSON.parse(value) as unknown;
    if (
      typeof head === 'object' &&
      head !== null &&
      Number.isSafeInteger((head as ChainHead).seq) &&
      (head as ChainHead).seq >= 0 &&
      typeof (head as ChainHead).hash === 'string'
    ) {
      return { seq: (head as ChainHead).seq, hash: (head as ChainHead).hash };
    }
  } catch {
    // malformed: reported by the caller
  }
  return undefined;
}

const broken = (records: number, brokenAt: number, reason: string): VerifyOutcome => ({
  ok: false,
  records,
  brokenAt,
  reason,
});
