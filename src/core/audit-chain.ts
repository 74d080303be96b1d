import { createHash } from 'node:crypto';
import type { AuditRecord } from '../contract/audit.js';
import type { Identity } from '../contract/common.js';

export const GENESIS_HASH = '0'.repeat(64);

export type UnsignedRecord = Omit<AuditRecord, 'hash'>;

/**
 * The hash of a record covers every field but its own hash, in a fixed order, and the hash
 * of the record before it: editing, removing or reordering records breaks the chain.
 */
export function hashRecord(record: UnsignedRecord): string {
  const canonical = [
    record.seq,
    record.time,
    record.requestId,
    record.tenant,
    identityKey(record.actor),
    record.actingFor ? identityKey(record.actingFor) : null,
    record.action,
    record.resource,
    record.outcome,
    record.reason ?? null,
    record.source ?? null,
    record.valueHmac ?? null,
    record.delegatedBy ? identityKey(record.delegatedBy) : null,
    record.prevHash,
  ];
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

const identityKey = (identity: Identity) => `${identity.type}:${identity.name}`;

export interface VerifyOutcome {
  ok: boolean;
  records: number;
  brokenAt?: number;
  reason?: string;
}

/** Checks sequence numbers, links and hashes of records in chain order. */
export function verifyChain(
  records: AuditRecord[],
  head: { seq: number; hash: string } | undefined,
): VerifyOutcome {
  let prevHash = GENESIS_HASH;
  let expectedSeq = 1;
  for (const record of records) {
    if (record.seq !== expectedSeq) {
      return broken(
        records.length,
        record.seq,
        `expected record ${expectedSeq} but found ${record.seq}: a record was removed or reordered`,
      );
    }
    if (record.prevHash !== prevHash) {
      return broken(records.length, record.seq, `record ${record.seq} does not link to the record before it`);
    }
    const { hash, ...unsigned } = record;
    if (hashRecord(unsigned) !== hash) {
      return broken(records.length, record.seq, `record ${record.seq} was modified after it was written`);
    }
    prevHash = hash;
    expectedSeq += 1;
  }
  const last = records.at(-1);
  if (head && (head.seq !== (last?.seq ?? 0) || head.hash !== (last?.hash ?? GENESIS_HASH))) {
    return broken(
      records.length,
      head.seq,
      'the newest records are missing: the chain head names a record that is gone',
    );
  }
  return { ok: true, records: records.length };
}

const broken = (records: number, brokenAt: number, reason: string): VerifyOutcome => ({
  ok: false,
  records,
  brokenAt,
  reason,
});
