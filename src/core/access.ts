import type { Identity } from '../contract/common.js';
import type { Action, IdentityRecord, PolicyBody } from '../contract/policies.js';
import { permissionDenied } from '../lib/errors.js';
import type { CallContext, Principal } from './context.js';
import { isController } from './controller-role.js';
import { type CoreDeps, parseRecord } from './deps.js';
import { keys } from './keys.js';
import { type CredentialRef, type Decision, decide, mayActFor } from './policy-engine.js';

/**
 * Authorization with its audit trail: a denial is written to the audit chain before the
 * caller sees 403 (if that write fails, the caller sees the store error instead).
 */
export function createAccess(deps: Pick<CoreDeps, 'committer' | 'records'>) {
  // One request asks several questions; its policies are read once.
  const perCall = new WeakMap<CallContext, Promise<Map<string, PolicyBody>>>();

  function policiesOf(ctx: CallContext): Promise<Map<string, PolicyBody>> {
    let found = perCall.get(ctx);
    if (!found) {
      found = loadPolicies(ctx);
      perCall.set(ctx, found);
    }
    return found;
  }

  async function loadPolicies(ctx: CallContext): Promise<Map<string, PolicyBody>> {
    if (ctx.principal.system) return new Map();
    return policyBodies(ctx.tenant, ctx.principal.policies);
  }

  async function policyBodies(tenant: string, names: string[]): Promise<Map<string, PolicyBody>> {
    const found = new Map<string, PolicyBody>();
    await Promise.all(
      names.map(async (name) => {
        const kv = await deps.records.get(keys.policy(tenant, name));
        if (kv) found.set(name, parseRecord<PolicyBody>(kv.value));
      }),
    );
    return found;
  }

  /**
   * Who a lease for `target` is decided for: the caller, or, when a cluster's controller
   * issues it, `target` with its own identity's policies in the tenant (the controller role
   * grants no `lease` of its own, so a VaultLease never gets more than Vault gives target).
   */
  async function leasePrincipal(
    ctx: CallContext,
    target: Identity,
  ): Promise<{ principal: Principal; policies: Map<string, PolicyBody> }> {
    if (!isController(ctx.principal)) return { principal: ctx.principal, policies: await policiesOf(ctx) };
    const kv = await deps.records.get(keys.identity(ctx.tenant, target.type, target.name));
    const names = kv ? parseRecord<IdentityRecord>(kv.value).policies : [];
    return {
      principal: { tenant: ctx.tenant, identity: target, policies: names, system: false },
      policies: await policyBodies(ctx.tenant, names),
    };
  }

  /** The `lease` decision for a lease held by `target` (see leasePrincipal), unaudited. */
  async function leaseDecision(ctx: CallContext, target: Identity, credential: CredentialRef) {
    const { principal, policies } = await leasePrincipal(ctx, target);
    return decide(principal, policies, 'lease', credential);
  }

  /** Throws (after auditing the denial) unless a lease of `credential` may be issued to `target`. */
  async function checkLease(ctx: CallContext, target: Identity, resource: string, credential: CredentialRef) {
    const decision = await leaseDecision(ctx, target, credential);
    if (!decision.allowed) {
      throw await deny(
        ctx,
        'lease.create',
        resource,
        decision.reason,
        isController(ctx.principal) ? target : undefined,
      );
    }
    return decision;
  }

  async function deny(
    ctx: CallContext,
    action: string,
    resource: string,
    reason: string,
    actingFor?: Identity,
  ) {
    await deps.committer.record(ctx, {
      action,
      resource,
      outcome: 'denied',
      reason,
      ...(actingFor ? { actingFor } : {}),
    });
    return permissionDenied(reason);
  }

  /** Throws (after auditing the denial) unless the caller may do `action`. */
  async function check(
    ctx: CallContext,
    action: Action,
    resource: string,
    credential?: CredentialRef,
    auditAction: string = action,
  ): Promise<Decision> {
    const decision = decide(ctx.principal, await policiesOf(ctx), action, credential);
    if (!decision.allowed) throw await deny(ctx, auditAction, resource, decision.reason);
    return decision;
  }

  async function checkActFor(ctx: CallContext, target: Identity, auditAction: string, resource: string) {
    const decision = mayActFor(ctx.principal, await policiesOf(ctx), target);
    if (!decision.allowed) throw await deny(ctx, auditAction, resource, decision.reason, target);
  }

  /**
   * The cached records a decision on `ctx`'s rights is made from: its token, its identity and
   * its policies. An answer kept from them is no fresher than the first to leave the cache.
   */
  function rightsRecords(ctx: CallContext): string[] {
    const { principal } = ctx;
    return [
      ...(principal.tokenKey ? [principal.tokenKey] : []),
      keys.identity(ctx.tenant, principal.identity.type, principal.identity.name),
      ...principal.policies.map((name) => keys.policy(ctx.tenant, name)),
    ];
  }

  /** True when the caller administers the tenant (no audit: used to widen listings). */
  async function isAdmin(ctx: CallContext): Promise<boolean> {
    return decide(ctx.principal, await policiesOf(ctx), 'admin').allowed;
  }

  return { check, checkActFor, checkLease, leaseDecision, isAdmin, rightsRecords, deny, policiesOf };
}

export type Access = ReturnType<typeof createAccess>;
