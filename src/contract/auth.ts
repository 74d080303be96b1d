import { z } from 'zod';
import {
  clusterName,
  duration,
  identity,
  identityName,
  identityType,
  pageLimit,
  resourceName,
  tenantId,
} from './common.js';

export const createTokenRequest = z.strictObject({
  identity,
  policies: z.array(resourceName).max(64).default([]),
  ttl: duration.default('1h'),
  displayName: z.string().max(128).optional(),
});

export const tokenInfo = z.object({
  accessor: z.string(),
  tenant: z.string(),
  identity,
  policies: z.array(z.string()),
  displayName: z.string().optional(),
  issuedAt: z.string(),
  expiresAt: z.string(),
  createdBy: identity.optional(),
  system: z.boolean().optional(),
  /**
   * A cluster controller's token (Kubernetes login as the ServiceAccount the server names as
   * that cluster's controller): it acts in the cluster's tenants with the controller role.
   * `cluster` is absent for the unnamed cluster.
   */
  controllerOf: z.object({ cluster: z.string().optional() }).optional(),
});
export type TokenInfo = z.infer<typeof tokenInfo>;

export const createdToken = tokenInfo.extend({ token: z.string() });
export type CreatedToken = z.infer<typeof createdToken>;

export const kubernetesLoginRequest = z.strictObject({
  /** A projected ServiceAccount token with the audience Vault is configured for. */
  jwt: z.string().min(1).max(16_384),
  ttl: duration.optional(),
  /** The cluster the token comes from, when the server serves several (`--kubernetes-cluster`). */
  cluster: clusterName.optional(),
});

export const tenantRecord = z.object({
  id: tenantId,
  createdAt: z.string(),
  description: z.string().optional(),
});
export const listTenantsQuery = z.strictObject({
  /** At most this many tenants in one answer (1–1000, default 1000). */
  limit: pageLimit(1000),
  /** Where the previous page stopped: the `continue` it answered (a tenant id). */
  continue: tenantId.optional(),
});

export const keyStatusQuery = z.strictObject({
  /** For a system token: at most this many tenants in one answer (1–1000, default 100). */
  limit: pageLimit(100),
  /** Where the previous page stopped: the `continue` it answered (a tenant id). */
  continue: tenantId.optional(),
});

export const createTenantRequest = z.strictObject({
  id: tenantId,
  description: z.string().max(1024).optional(),
});

export { identityName, identityType };
