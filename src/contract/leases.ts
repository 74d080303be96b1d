import { z } from 'zod';
import { duration, identity, identityName, identityType, labels, pageLimit, resourceName } from './common.js';

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

/** `Idempotency-Key`: a retry with the same key (and caller) returns the first attempt's lease. */
export const createLeaseHeaders = z.object({
  'idempotency-key': z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,128}$/, '1-128 letters, digits and "._:-"')
    .optional(),
});

export const renewLeaseRequest = z.strictObject({
  /** How long from now; defaults to the lease's original TTL. */
  increment: duration.optional(),
});

/**
 * `POST /v1/leases/:id/use`: one use of a lease's value, by a runner (`vault run`,
 * `run_with_credentials`) or the credential broker (one call per request it puts the value
 * on). With `host`, the server checks that the credential's `metadata.hosts` names it. The
 * path is cut at "?" so a query string (which may carry a value) never reaches the audit.
 */
export const useLeaseRequest = z
  .strictObject({
    /** Who uses it and how: "vault run", "run_with_credentials", "broker". */
    purpose: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[\w .:/@-]+$/, 'letters, digits and " .:/@-_"')
      .optional(),
    /** For brokered requests: the upstream host, optionally with `:port` (443 when none). */
    host: z
      .string()
      .max(253)
      .regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, 'a host name, optionally with :port')
      .optional(),
    /** The upstream port, when not given in `host`. */
    port: z.number().int().min(1).max(65_535).optional(),
    method: z
      .string()
      .regex(/^[A-Z]{1,16}$/, 'an HTTP method in upper case')
      .optional(),
    path: z
      .string()
      .max(1024)
      .transform((path) => path.split('?')[0]!)
      .optional(),
    /**
     * `allowed` (default): the value is about to be used; the lease must be active, and it is
     * returned. `denied`: a refused attempt, only recorded; no value is returned.
     */
    outcome: z.enum(['allowed', 'denied']).optional(),
    /** Why a use was denied (for the audit record; never a value). */
    reason: z.string().max(512).optional(),
  })
  .refine((use) => use.port === undefined || use.host !== undefined, {
    message: 'port goes with host',
    path: ['port'],
  })
  .refine((use) => use.port === undefined || !use.host?.includes(':'), {
    message: 'give the port in host or in port, not both',
    path: ['port'],
  });
export type UseLeaseRequest = z.input<typeof useLeaseRequest>;

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
  /** Only on create (unless the caller is an agent without `reveal`), read, reveal and use responses. */
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
  limit: pageLimit(100),
  /** The `continue` token of the previous page, with the same filters. */
  continue: z.string().min(1).max(4096).optional(),
});

/** A page of leases; `continue` is present while more may follow. */
export const leasePage = z.object({ leases: z.array(lease), continue: z.string().optional() });

export const bulkRevokeRequest = z.union([
  z.strictObject({ credentialName: resourceName }),
  z.strictObject({ identity }),
  z.strictObject({ all: z.literal(true) }),
]);

export const bulkRevokeResult = z.object({
  revoked: z.number().int().describe('How many leases were revoked'),
  leaseIds: z.array(z.string()).describe('The ids of the first 1,000 of them'),
  truncated: z.boolean().describe('true where more leases were revoked than leaseIds lists'),
});

/** One line of the lease event stream (server-sent events). */
export const leaseEvent = z.object({
  type: z.enum(['issued', 'renewed', 'revoked', 'expired']),
  lease: lease.omit({ value: true }),
});
export type LeaseEvent = z.infer<typeof leaseEvent>;
