import { z } from 'zod';
import * as audit from './audit.js';
import * as auth from './auth.js';
import * as credentials from './credentials.js';
import * as leases from './leases.js';
import * as policies from './policies.js';

/**
 * Every route of the v1 API with its schemas: the server validates with them, the OpenAPI
 * document is generated from them, and the SDK's types come from the same place.
 * Authenticated with `Authorization: Bearer <token>`; an optional `X-Vault-Tenant` header
 * must name the token's tenant. Errors are `{ error: { code, message, requestId } }`.
 */
export interface RouteSpec {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  path: string;
  summary: string;
  auth: 'none' | 'token' | 'system';
  body?: z.ZodType;
  query?: z.ZodType;
  response?: z.ZodType;
  status?: number;
}

const ok = z.object({ ok: z.literal(true) });

export const routes = {
  kubernetesLogin: {
    method: 'post',
    path: '/v1/auth/kubernetes/login',
    summary: 'Exchange a projected ServiceAccount token for a Vault token',
    auth: 'none',
    body: auth.kubernetesLoginRequest,
    response: auth.createdToken,
  },
  whoami: {
    method: 'get',
    path: '/v1/auth/whoami',
    summary: 'The calling token',
    auth: 'token',
    response: auth.tokenInfo,
  },
  createToken: {
    method: 'post',
    path: '/v1/auth/tokens',
    summary: 'Create a token for an identity',
    auth: 'token',
    body: auth.createTokenRequest,
    response: auth.createdToken,
    status: 201,
  },
  lookupToken: {
    method: 'get',
    path: '/v1/auth/tokens/:accessor',
    summary: 'Look a token up by accessor',
    auth: 'token',
    response: auth.tokenInfo,
  },
  revokeToken: {
    method: 'delete',
    path: '/v1/auth/tokens/:accessor',
    summary: 'Revoke a token by accessor',
    auth: 'token',
    response: ok,
  },

  listTenants: {
    method: 'get',
    path: '/v1/sys/tenants',
    summary: 'List tenants, in pages',
    auth: 'system',
    query: auth.listTenantsQuery,
    response: z.object({
      tenants: z.array(auth.tenantRecord),
      continue: z.string().optional().describe('Present while more may follow: pass it back as continue'),
    }),
  },
  createTenant: {
    method: 'post',
    path: '/v1/sys/tenants',
    summary: 'Create a tenant and return its first admin token',
    auth: 'system',
    body: auth.createTenantRequest,
    response: z.object({ tenant: auth.tenantRecord, adminToken: auth.createdToken }),
    status: 201,
  },
  keyStatus: {
    method: 'get',
    path: '/v1/sys/keys',
    summary:
      "Key hierarchy status: a tenant admin's tenant, or for a system token a page of tenants (continue while more may follow)",
    auth: 'token',
    query: auth.keyStatusQuery,
    response: z.record(z.string(), z.unknown()),
  },
  rotateTenantKey: {
    method: 'post',
    path: '/v1/sys/keys/rotate',
    summary: "Rotate the tenant's key, re-wrapping every data key",
    auth: 'token',
    response: z.record(z.string(), z.unknown()),
  },

  listIdentities: {
    method: 'get',
    path: '/v1/identities',
    summary: 'List identities',
    auth: 'token',
    query: policies.adminListQuery,
    response: z.object({
      identities: z.array(policies.identityRecord),
      continue: z.string().optional().describe('Present while more may follow: pass it back as continue'),
    }),
  },
  putIdentity: {
    method: 'put',
    path: '/v1/identities/:type/:name',
    summary: 'Create or update an identity',
    auth: 'token',
    body: policies.identityBody,
    response: policies.identityRecord,
  },
  getIdentity: {
    method: 'get',
    path: '/v1/identities/:type/:name',
    summary: 'Get an identity',
    auth: 'token',
    response: policies.identityRecord,
  },
  deleteIdentity: {
    method: 'delete',
    path: '/v1/identities/:type/:name',
    summary: 'Delete an identity',
    auth: 'token',
    response: ok,
  },

  listPolicies: {
    method: 'get',
    path: '/v1/policies',
    summary: 'List policies',
    auth: 'token',
    query: policies.adminListQuery,
    response: z.object({
      policies: z.array(policies.policy),
      continue: z.string().optional().describe('Present while more may follow: pass it back as continue'),
    }),
  },
  putPolicy: {
    method: 'put',
    path: '/v1/policies/:name',
    summary: 'Create or replace a policy',
    auth: 'token',
    body: policies.policyBody,
    response: policies.policy,
  },
  getPolicy: {
    method: 'get',
    path: '/v1/policies/:name',
    summary: 'Get a policy',
    auth: 'token',
    response: policies.policy,
  },
  deletePolicy: {
    method: 'delete',
    path: '/v1/policies/:name',
    summary: 'Delete a policy',
    auth: 'token',
    response: ok,
  },

  createCredential: {
    method: 'post',
    path: '/v1/credentials',
    summary: 'Create a credential (version 1)',
    auth: 'token',
    body: credentials.createCredentialRequest,
    response: credentials.createdCredential,
    status: 201,
  },
  listCredentials: {
    method: 'get',
    path: '/v1/credentials',
    summary: 'List credentials (metadata only)',
    auth: 'token',
    query: credentials.listCredentialsQuery,
    response: z.object({
      credentials: z.array(credentials.credential),
      continue: z.string().optional().describe('Present while more may follow: pass it back as continue'),
    }),
  },
  listVersions: {
    method: 'get',
    path: '/v1/credentials/:name/versions',
    summary: 'Every version of a credential (metadata: number, time, fingerprint), oldest first, in pages',
    auth: 'token',
    query: credentials.listVersionsQuery,
    response: credentials.versionPage,
  },
  getCredential: {
    method: 'get',
    path: '/v1/credentials/:name',
    summary: "A credential's metadata",
    auth: 'token',
    response: credentials.credential,
  },
  updateCredential: {
    method: 'patch',
    path: '/v1/credentials/:name',
    summary: 'Update metadata and lease defaults',
    auth: 'token',
    body: credentials.updateCredentialRequest,
    response: credentials.credential,
  },
  putCredentialVersion: {
    method: 'post',
    path: '/v1/credentials/:name/versions',
    summary: 'Store a new version',
    auth: 'token',
    body: credentials.putVersionRequest,
    response: credentials.credential,
    status: 201,
  },
  rotateCredential: {
    method: 'post',
    path: '/v1/credentials/:name/rotate',
    summary: 'Rotate: a new version, given or generated',
    auth: 'token',
    body: credentials.rotateRequest,
    response: credentials.credential,
  },
  deleteCredential: {
    method: 'delete',
    path: '/v1/credentials/:name',
    summary: 'Delete a credential and revoke its leases',
    auth: 'token',
    response: leases.bulkRevokeResult,
  },

  createLease: {
    method: 'post',
    path: '/v1/leases',
    summary: 'Lease a credential (returns the value, except to an agent without reveal)',
    auth: 'token',
    body: leases.createLeaseRequest,
    response: leases.lease,
    status: 201,
  },
  listLeases: {
    method: 'get',
    path: '/v1/leases',
    summary: 'List leases',
    auth: 'token',
    query: leases.listLeasesQuery,
    response: leases.leasePage,
  },
  leaseEvents: {
    method: 'get',
    path: '/v1/leases/events',
    summary: "Server-sent events of the caller's lease changes",
    auth: 'token',
  },
  bulkRevoke: {
    method: 'post',
    path: '/v1/leases/revoke',
    summary: 'Revoke leases by credential, identity or the whole tenant',
    auth: 'token',
    body: leases.bulkRevokeRequest,
    response: leases.bulkRevokeResult,
  },
  getLease: {
    method: 'get',
    path: '/v1/leases/:id',
    summary: 'A lease (no value)',
    auth: 'token',
    response: leases.lease,
  },
  readLease: {
    method: 'get',
    path: '/v1/leases/:id/value',
    summary: 'Read the value through an active lease (agents need reveal; 410 when not active)',
    auth: 'token',
    response: leases.lease,
  },
  revealLease: {
    method: 'post',
    path: '/v1/leases/:id/reveal',
    summary: 'Reveal the value for display (needs the reveal action)',
    auth: 'token',
    response: leases.lease,
  },
  useLease: {
    method: 'post',
    path: '/v1/leases/:id/use',
    summary:
      'Use the value (a runner, or the broker per request): returns it for outcome "allowed" (410 when the lease is not active, 403 when host is not in the credential\'s metadata.hosts); outcome "denied" only records; audited as lease.use',
    auth: 'token',
    body: leases.useLeaseRequest,
    response: leases.lease,
  },
  renewLease: {
    method: 'post',
    path: '/v1/leases/:id/renew',
    summary: 'Renew (capped by max TTL; returns what was granted)',
    auth: 'token',
    body: leases.renewLeaseRequest,
    response: leases.lease,
  },
  revokeLease: {
    method: 'post',
    path: '/v1/leases/:id/revoke',
    summary: 'Revoke a lease',
    auth: 'token',
    response: leases.lease,
  },

  queryAudit: {
    method: 'get',
    path: '/v1/audit',
    summary: 'Query audit records',
    auth: 'token',
    query: audit.auditQuery,
    response: z.object({
      records: z.array(audit.auditRecord),
      next: z
        .number()
        .int()
        .optional()
        .describe(
          'Present when the server stopped before the end of the chain (it found `limit` records, or read 10,000 without finding them): pass it as `afterSeq` to go on.',
        ),
      before: z
        .number()
        .int()
        .optional()
        .describe(
          'With `newest=true`: present when older records may match (more than `limit` did, or 10,000 were read back): pass it as `beforeSeq` to go further back.',
        ),
      through: z
        .number()
        .int()
        .optional()
        .describe(
          'Reading forward: the last record read, matching or not (where a poll for new records goes on from, however rare the matches)',
        ),
    }),
  },
  verifyAudit: {
    method: 'get',
    path: '/v1/audit/verify',
    summary: 'Verify the hash chain',
    auth: 'token',
    response: audit.auditVerifyResult,
  },
  verifyAuditSince: {
    method: 'post',
    path: '/v1/audit/verify',
    summary: 'Verify the chain and that it still extends an earlier checkpoint',
    auth: 'token',
    body: audit.auditVerifyRequest,
    response: audit.auditVerifyResult,
  },
  createAuditCheckpoint: {
    method: 'post',
    path: '/v1/audit/checkpoints',
    summary: 'Sign a checkpoint of the chain now',
    auth: 'token',
    response: z.object({ checkpoint: audit.auditCheckpoint.nullable() }),
  },
  auditPublicKey: {
    method: 'get',
    path: '/v1/audit/public-key',
    summary: "The Ed25519 key that signs the tenant's checkpoints",
    auth: 'token',
    response: audit.auditPublicKey,
  },
  lookupValue: {
    method: 'post',
    path: '/v1/audit/lookup',
    summary: 'Was this value ever issued? (by keyed HMAC)',
    auth: 'token',
    body: audit.valueLookupRequest,
    response: audit.valueLookupResult,
  },
} as const satisfies Record<string, RouteSpec>;

export type RouteName = keyof typeof routes;
