import { z } from 'zod';
import { identity } from './common.js';

export const auditOutcomes = ['allowed', 'denied', 'error'] as const;

export const auditRecord = z.object({
  seq: z.number().int(),
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
});
export type AuditRecord = z.infer<typeof auditRecord>;

export const auditQuery = z.strictObject({
  action: z.string().max(64).optional(),
  outcome: z.enum(auditOutcomes).optional(),
  identityName: z.string().max(253).optional(),
  resource: z.string().max(512).optional(),
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
  afterSeq: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const auditVerifyResult = z.object({
  ok: z.boolean(),
  records: z.number().int(),
  headSeq: z.number().int(),
  brokenAt: z.number().int().optional(),
  reason: z.string().optional(),
});
export type AuditVerifyResult = z.infer<typeof auditVerifyResult>;

export const valueLookupRequest = z.strictObject({ value: z.string().min(1).max(65_536) });
export const valueLookupResult = z.object({
  issued: z.boolean(),
  records: z.array(auditRecord),
});
