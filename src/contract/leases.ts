import { z } from 'zod';
import { duration, identity, identityName, identityType, labels, resourceName } from './common.js';

export const leaseStates = ['active', 'expired', 'revoked'] as const;
export const leaseState = z.enum(leaseStates);
export type LeaseState = z.infer<typeof leaseState>;

export const createLeaseRequest = z.strictObject({
  credentialName: resourceName,
  /** Defaults to the credential's default TTL, else 15m. */
  ttl: duration.optional(),
  /** The identity the lease is for; defaults to the caller. */
  identity: identity.optional(),
  renewable: z.boolean().default(true),
  /** Renewals never extend past issue time + maxTtl (capped by policy). */
  maxTtl: duration.optional(),
  /** A specific version; defaults to the current one. */
  version: z.number().int().positive().optional(),
  /** Labels to find the lease by later (e.g. the Kubernetes object it was issued for). */
  labels: labels.optional(),
});
export type CreateLeaseRequest = z.input<typeof createLeaseRequest>;

export const renewLeaseRequest = z.strictObject({
  /** How long from now; defaults to the lease's original TTL. */
  increment: duration.optional(),
});

export const lease = z.object({
  id: z.string(),
  tenant: z.string(),
  credentialName: z.string(),
  version: z.number().int(),
  identity,
  issuedBy: identity,
  issuedAt: z.string(),
  expiresAt: z.string(),
  maxExpiresAt: z.string(),
  renewable: z.boolean(),
  renewCount: z.number().int(),
  state: leaseState,
  revokedAt: z.string().optional(),
  revokeReason: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  /** A dynamic credential's lease: the upstream account issued for this lease alone. */
  dynamic: z.object({ engine: z.string(), username: z.string() }).optional(),
  /** Only on create, read and reveal responses. */
  value: z.string().optional(),
  /** On renew: the seconds actually granted, which may be less than asked (max TTL). */
  grantedTtlSeconds: z.number().optional(),
});
export type Lease = z.infer<typeof lease>;

export const listLeasesQuery = z.strictObject({
  state: leaseState.optional(),
  credentialName: resourceName.optional(),
  identityType: identityType.optional(),
  identityName: identityName.optional(),
  /** "key=value" label selectors, comma-separated. */
  labels: z.string().max(2048).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const bulkRevokeRequest = z.union([
  z.strictObject({ credentialName: resourceName }),
  z.strictObject({ identity }),
  z.strictObject({ all: z.literal(true) }),
]);

export const bulkRevokeResult = z.object({ revoked: z.number().int(), leaseIds: z.array(z.string()) });

/** One line of the lease event stream (server-sent events). */
export const leaseEvent = z.object({
  type: z.enum(['issued', 'renewed', 'revoked', 'expired']),
  lease: lease.omit({ value: true }),
});
export type LeaseEvent = z.infer<typeof leaseEvent>;
