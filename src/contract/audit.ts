import { z } from 'zod';
import { identity, pageLimit } from './common.js';

export const auditOutcomes = ['allowed', 'denied', 'error'] as const;

const auditRecordShape = {
  seq: z.number().int(),
  /** 2 for records linked by the tenant's keyed HMAC; absent on unkeyed records from before `audit.rekey`. */
  v: z.literal(2).optional(),
  time: z.string(),
  requestId: z.string(),
  tenant: z.string(),
  actor: identity,
  actingFor: identity.optional(),
  /** Who minted the caller's token, when that is someone else (the human behind an agent). */
  delegatedBy: identity.optional(),
  action: z.string(),
  resource: z.string(),
  outcome: z.enum(auditOutcomes),
  reason: z.string().optional(),
  source: z.string().optional(),
  /** Keyed HMAC of an issued value, for leak forensics; never the value. */
  valueHmac: z.string().optional(),
  prevHash: z.string(),
  hash: z.string(),
};

/** An audit record as served: fields nobody hashed are dropped, never passed on. */
export const auditRecord = z.object(auditRecordShape);
export type AuditRecord = z.infer<typeof auditRecord>;
/** An audit record as verified: any field the hash does not cover makes it malformed. */
export const storedAuditRecord = z.strictObject(auditRecordShape);

/**
 * A signed statement "tenant T's audit chain had `seq` records ending in `hash` at `time`".
 * Whoever keeps one outside the store can later prove the log still extends it.
 */
export const auditCheckpoint = z.strictObject({
  tenant: z.string().min(1).max(253),
  seq: z.number().int().min(0),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  time: z.string(),
  /** The first 16 hex digits of SHA-256 of the raw Ed25519 public key. */
  keyId: z.string().regex(/^[0-9a-f]{16}$/),
  /** Ed25519 over checkpointMessage(...), base64. */
  signature: z.string().min(1).max(200),
});
export type AuditCheckpoint = z.infer<typeof auditCheckpoint>;

export const auditPublicKey = z.object({
  tenant: z.string(),
  algorithm: z.literal('Ed25519'),
  keyId: z.string(),
  /** SPKI PEM (`openssl pkey -pubin` reads it). */
  publicKey: z.string(),
});
export type AuditPublicKey = z.infer<typeof auditPublicKey>;

export const auditQuery = z.strictObject({
  action: z.string().max(64).optional(),
  outcome: z.enum(auditOutcomes).optional(),
  identityName: z.string().max(253).optional(),
  resource: z.string().max(512).optional(),
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
  afterSeq: z.coerce.number().int().min(0).optional(),
  /**
   * The newest matching records instead of the oldest: read back from the head (or from
   * `beforeSeq`), answered oldest first; `before` continues further back.
   */
  newest: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
  /** With `newest`: only records before this seq (the `before` of the previous answer). */
  beforeSeq: z.coerce.number().int().min(1).optional(),
  limit: pageLimit(100),
});

export const auditVerifyRequest = z
  .strictObject({
    /** An earlier checkpoint: the log must still extend it (same record at its seq, nothing cut). */
    since: auditCheckpoint.optional(),
    from: z
      .enum(['start', 'checkpoint'])
      .default('start')
      .describe(
        'Where to start: the first record (default), or the record of the `since` checkpoint (only the records after it are read; a rewrite of older records is found by a verification from the start)',
      ),
  })
  .refine((request) => request.from === 'start' || request.since !== undefined, {
    message: 'from "checkpoint" needs a "since" checkpoint to start at',
    path: ['from'],
  });

export const auditVerifyResult = z.object({
  ok: z.boolean(),
  records: z.number().int(),
  headSeq: z.number().int(),
  fromSeq: z
    .number()
    .int()
    .optional()
    .describe(
      'Where the verification started when it started at a checkpoint (the records after it were read)',
    ),
  brokenAt: z.number().int().optional(),
  reason: z.string().optional(),
  /** A checkpoint of the head just verified, signed now: keep it to check the next verification against. */
  checkpoint: auditCheckpoint.optional(),
});
export type AuditVerifyResult = z.infer<typeof auditVerifyResult>;

export const valueLookupRequest = z.strictObject({ value: z.string().min(1).max(65_536) });
export const valueLookupResult = z.object({
  issued: z.boolean(),
  /** How many audit records carry the value's HMAC. */
  matches: z.number().int(),
  /** The first (oldest) of them, 1,000 at most. */
  records: z.array(auditRecord),
  /** True when `matches` is more than `records` holds. */
  truncated: z.boolean(),
});
