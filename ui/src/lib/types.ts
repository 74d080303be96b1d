/**
 * Wire types come from the API's zod schemas (type-only imports: nothing of zod is bundled).
 */
export type { AuditCheckpoint, AuditRecord, AuditVerifyResult } from '../../../src/contract/audit.js';
export type { TokenInfo } from '../../../src/contract/auth.js';
export type { Identity, IdentityType } from '../../../src/contract/common.js';
export type { Credential } from '../../../src/contract/credentials.js';
export type { Lease, LeaseEvent } from '../../../src/contract/leases.js';
export type { IdentityRecord, Policy, PolicyBody } from '../../../src/contract/policies.js';
