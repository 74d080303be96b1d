/**
 * What the reconcilers need from Vault, and nothing more: the port keeps reconcile logic
 * independent of how the core is reached, and its adapter (createCorePort) is the one place
 * that decides which identity each call acts as. The operator calls the core in-process,
 * against the same store as the API server.
 *
 * Calls act as the operator (a system principal in the namespace's tenant), except
 * `createLease`, which acts as the identity the lease is for, with that identity's own
 * policies: so a VaultLease can never grant more than Vault's policies give that identity,
 * and a refusal is audited and surfaces as phase Denied.
 */
import { randomUUID } from 'node:crypto';
import type { Identity } from '../contract/common.js';
import type { Credential, CredentialType, DynamicSpec, GenerateSpec } from '../contract/credentials.js';
import type { Lease } from '../contract/leases.js';
import type { PolicyBody } from '../contract/policies.js';
import type { CallContext, VaultCore } from '../core/index.js';
import { systemContext } from '../core/index.js';
import { isVaultError } from '../lib/errors.js';

export type LeaseInfo = Omit<Lease, 'value'>;

export interface CreateCredentialInput {
  name: string;
  type: CredentialType;
  metadata: Record<string, string>;
  leases?: { defaultTtl?: string; maxTtl?: string };
  value?: string;
  generate?: GenerateSpec;
  /** A dynamic credential's engine settings; `value` is then the admin connection. */
  dynamic?: DynamicSpec;
}

export interface IssueLeaseInput {
  credentialName: string;
  identity: Identity;
  ttl?: string;
  maxTtl?: string;
  renewable: boolean;
  /** UID of the VaultLease it is for: kept as a lease label so a crash cannot orphan it. */
  owner?: string;
}

/** The lease label naming the VaultLease (by UID) a lease was issued for. */
export const ownerLabel = 'vault.ghoststack.io/vaultlease-uid';

export interface VaultPort {
  ensureTenant(tenant: string): Promise<void>;
  getCredential(tenant: string, name: string): Promise<Credential | undefined>;
  createCredential(tenant: string, input: CreateCredentialInput): Promise<Credential>;
  updateCredential(
    tenant: string,
    name: string,
    input: {
      metadata: Record<string, string>;
      leases: { defaultTtl?: string; maxTtl?: string };
      dynamic?: DynamicSpec;
    },
  ): Promise<Credential>;
  putVersion(tenant: string, name: string, value: string): Promise<Credential>;
  rotate(tenant: string, name: string, generate: GenerateSpec): Promise<Credential>;
  /** Deletes the credential and revokes its active leases. */
  deleteCredential(tenant: string, name: string): Promise<{ revoked: number }>;
  revokeLeasesOf(tenant: string, credentialName: string): Promise<{ revoked: number }>;
  /** The tenant's keyed HMAC of a value, as credential versions carry it. */
  fingerprint(tenant: string, value: string): Promise<string>;
  getPolicy(tenant: string, name: string): Promise<PolicyBody | undefined>;
  putPolicy(tenant: string, name: string, body: PolicyBody): Promise<void>;
  deletePolicy(tenant: string, name: string): Promise<void>;
  /** Adds (or removes) one policy on an identity; resolves true when something changed. */
  attachPolicy(tenant: string, identity: Identity, policy: string): Promise<boolean>;
  detachPolicy(tenant: string, identity: Identity, policy: string): Promise<boolean>;
  /** Issues a lease acting as `input.identity`; throws VaultError permission_denied when its policies refuse. */
  issueLease(tenant: string, input: IssueLeaseInput): Promise<LeaseInfo>;
  getLease(tenant: string, id: string): Promise<LeaseInfo | undefined>;
  /** The active lease issued for the VaultLease with this UID, if one exists. */
  findLeaseFor(tenant: string, owner: string): Promise<LeaseInfo | undefined>;
  renewLease(tenant: string, id: string, increment?: string): Promise<LeaseInfo>;
  revokeLease(tenant: string, id: string, reason: string): Promise<void>;
  /** Changes of the tenant's leases made anywhere (API, CLI, another VaultCredential's deletion). */
  watchLeases(
    tenant: string,
    onEvent: (event: { type: 'issued' | 'renewed' | 'revoked' | 'expired'; leaseId: string }) => void,
  ): Promise<{ close(): Promise<void> }>;
}

export const operatorIdentity: Identity = { type: 'workload', name: 'vault-operator' };

const isCode = (err: unknown, code: string) => isVaultError(err) && err.code === code;

const stripValue = ({ value: _value, ...rest }: Lease): LeaseInfo => rest;

/** Serialises read-modify-write updates of one identity within this process. */
function keyedMutex() {
  const tails = new Map<string, Promise<unknown>>();
  return async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const previous = tails.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => {});
    tails.set(key, tail);
    try {
      return await run;
    } finally {
      if (tails.get(key) === tail) tails.delete(key);
    }
  };
}

export function createCorePort(core: VaultCore, identity: Identity = operatorIdentity): VaultPort {
  const ctx = (tenant: string): CallContext => ({
    ...systemContext(tenant, identity, `operator-${randomUUID()}`),
    source: 'vault-operator',
  });
  const lockIdentity = keyedMutex();

  async function changePolicies(tenant: string, who: Identity, change: (policies: string[]) => string[]) {
    return lockIdentity(`${tenant}/${who.type}:${who.name}`, async () => {
      let current: { policies: string[]; metadata?: Record<string, string> } | undefined;
      try {
        current = await core.identities.get(ctx(tenant), who.type, who.name);
      } catch (err) {
        if (!isCode(err, 'not_found')) throw err;
      }
      const before = current?.policies ?? [];
      const after = change(before);
      if (after.length === before.length && after.every((p, i) => p === before[i])) return false;
      if (after.length === 0 && current && !current.metadata) {
        await core.identities.delete(ctx(tenant), who.type, who.name);
        return true;
      }
      await core.identities.put(ctx(tenant), who.type, who.name, {
        policies: after,
        ...(current?.metadata ? { metadata: current.metadata } : {}),
      });
      return true;
    });
  }

  return {
    ensureTenant: (tenant) => core.tenants.ensure(tenant, ctx(tenant)),
    async getCredential(tenant, name) {
      try {
        return await core.credentials.get(ctx(tenant), name);
      } catch (err) {
        if (isCode(err, 'not_found')) return undefined;
        throw err;
      }
    },
    createCredential: (tenant, input) =>
      core.credentials.create(ctx(tenant), {
        name: input.name,
        type: input.type,
        metadata: input.metadata,
        ...(input.leases ? { leases: input.leases } : {}),
        ...(input.value !== undefined ? { value: input.value } : {}),
        ...(input.generate ? { generate: input.generate } : {}),
        ...(input.dynamic ? { dynamic: input.dynamic } : {}),
      }),
    updateCredential: (tenant, name, input) => core.credentials.update(ctx(tenant), name, input),
    putVersion: (tenant, name, value) =>
      core.credentials.addVersion(ctx(tenant), name, { value }, 'credential.put-version'),
    rotate: (tenant, name, generate) =>
      core.credentials.addVersion(ctx(tenant), name, { generate }, 'credential.rotate'),
    async deleteCredential(tenant, name) {
      try {
        const result = await core.credentials.delete(ctx(tenant), name);
        return { revoked: result.revoked };
      } catch (err) {
        if (isCode(err, 'not_found')) return { revoked: 0 };
        throw err;
      }
    },
    async revokeLeasesOf(tenant, credentialName) {
      try {
        const result = await core.leases.bulkRevoke(ctx(tenant), { credentialName });
        return { revoked: result.revoked };
      } catch (err) {
        if (isCode(err, 'not_found')) return { revoked: 0 };
        throw err;
      }
    },
    fingerprint: (tenant, value) => core.fingerprints.of(tenant, value),
    async getPolicy(tenant, name) {
      try {
        const {
          name: _n,
          createdAt: _c,
          updatedAt: _u,
          ...body
        } = await core.policies.get(ctx(tenant), name);
        return body;
      } catch (err) {
        if (isCode(err, 'not_found')) return undefined;
        throw err;
      }
    },
    async putPolicy(tenant, name, body) {
      await core.policies.put(ctx(tenant), name, body);
    },
    async deletePolicy(tenant, name) {
      try {
        await core.policies.delete(ctx(tenant), name);
      } catch (err) {
        if (!isCode(err, 'not_found')) throw err;
      }
    },
    attachPolicy: (tenant, who, policy) =>
      changePolicies(tenant, who, (policies) =>
        policies.includes(policy) ? policies : [...policies, policy],
      ),
    detachPolicy: (tenant, who, policy) =>
      changePolicies(tenant, who, (policies) => policies.filter((p) => p !== policy)),
    async issueLease(tenant, input) {
      let policies: string[] = [];
      try {
        policies = (await core.identities.get(ctx(tenant), input.identity.type, input.identity.name))
          .policies;
      } catch (err) {
        if (!isCode(err, 'not_found')) throw err;
      }
      const asIdentity: CallContext = {
        principal: { tenant, identity: input.identity, policies, system: false },
        tenant,
        requestId: `operator-${randomUUID()}`,
        source: 'vault-operator',
      };
      const lease = await core.leases.create(asIdentity, {
        credentialName: input.credentialName,
        identity: input.identity,
        renewable: input.renewable,
        ...(input.ttl ? { ttl: input.ttl } : {}),
        ...(input.maxTtl ? { maxTtl: input.maxTtl } : {}),
        ...(input.owner ? { labels: { [ownerLabel]: input.owner } } : {}),
      });
      // The value is dropped here: it never leaves the port.
      return stripValue(lease);
    },
    async findLeaseFor(tenant, owner) {
      // Pages until found: a page may be cut short by the server's scan budget.
      let next: string | undefined;
      do {
        const page = await core.leases.list(ctx(tenant), {
          state: 'active',
          labels: `${ownerLabel}=${owner}`,
          limit: 1,
          ...(next ? { continue: next } : {}),
        });
        if (page.leases[0]) return stripValue(page.leases[0]);
        next = page.continue;
      } while (next);
      return undefined;
    },
    async getLease(tenant, id) {
      try {
        return await core.leases.get(ctx(tenant), id);
      } catch (err) {
        if (isCode(err, 'not_found')) return undefined;
        throw err;
      }
    },
    async renewLease(tenant, id, increment) {
      return stripValue(await core.leases.renew(ctx(tenant), id, increment ? { increment } : {}));
    },
    watchLeases: (tenant, onEvent) =>
      core.leases.watch(ctx(tenant), (event) => onEvent({ type: event.type, leaseId: event.lease.id })),
    async revokeLease(tenant, id, reason) {
      try {
        await core.leases.revoke(ctx(tenant), id, reason);
      } catch (err) {
        if (!isCode(err, 'not_found')) throw err;
      }
    },
  };
}
