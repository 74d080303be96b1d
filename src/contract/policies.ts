import { z } from 'zod';
import { duration, identityName, identityType, labels, pageLimit, resourceName } from './common.js';

/**
 * Policies named with this prefix carry a VaultCredential's spec.access: the only policies a
 * cluster's controller may write (core/controller-role.ts), one per credential.
 */
export const managedPolicyPrefix = 'k8s-vaultcredential-';

export const actions = [
  'list',
  'read-metadata',
  'lease',
  'reveal',
  'create',
  'rotate',
  'delete',
  'admin',
  /** Read the server's `/metrics` (process-wide totals and, where enabled, this tenant's series). */
  'metrics',
] as const;
export const action = z.enum(actions);
export type Action = z.infer<typeof action>;

export const policyRule = z.strictObject({
  /** Credential name globs ("stripe-*"); omitted means every credential. */
  credentials: z.array(z.string().min(1).max(253)).max(64).optional(),
  /** Metadata labels a credential must carry for the rule to apply. */
  labels: labels.optional(),
  actions: z.array(action).min(1, 'a rule grants at least one action'),
  /** The longest lease this rule grants. */
  maxTtl: duration.optional(),
});
export type PolicyRule = z.infer<typeof policyRule>;

/** Identities a token holding this policy may act for (leases issued on their behalf). */
export const actForPattern = z.strictObject({
  type: identityType,
  /** A glob over identity names. */
  name: z.string().min(1).max(253),
});

export const policyBody = z.strictObject({
  description: z.string().max(1024).optional(),
  rules: z.array(policyRule).max(128),
  actFor: z.array(actForPattern).max(64).optional(),
});
export type PolicyBody = z.infer<typeof policyBody>;

export const policy = policyBody.extend({
  name: resourceName,
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Policy = z.infer<typeof policy>;

export const identityBody = z.strictObject({
  policies: z.array(resourceName).max(64).default([]),
  metadata: labels.optional(),
});

export const identityRecord = z.object({
  type: identityType,
  name: identityName,
  policies: z.array(z.string()),
  metadata: z.record(z.string(), z.string()).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type IdentityRecord = z.infer<typeof identityRecord>;

/** A page of policies or identities. */
export const adminListQuery = z.strictObject({
  /** At most this many records in one answer (1–1000, default 1000). */
  limit: pageLimit(1000),
  /** The `continue` token of the previous page. */
  continue: z.string().min(1).max(4096).optional(),
});
