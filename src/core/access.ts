import type { Identity } from '../contract/common.js';
import type { Action, PolicyBody } from '../contract/policies.js';
import { permissionDenied } from '../lib/errors.js';
import type { CallContext } from './context.js';
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
    const found = new Map<string, PolicyBody>();
    if (ctx.principal.system) return found;
    await Promise.all(
      ctx.principal.policies.map(async (name) => {
        const kv = await deps.records.get(keys.policy(ctx.tenant, name));
        if (kv) found.set(name, parseRecord<PolicyBody>(kv.value));
      }),
    );
    return found;
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

  /** True when the caller administers the tenant (no audit: used to widen listings). */
  async function isAdmin(ctx: CallContext): Promise<boolean> {
    return decide(ctx.principal, await policiesOf(ctx), 'admin').allowed;
  }

  return { check, checkActFor, isAdmin, deny, policiesOf };
}

export type Access = ReturnType<typeof createAccess>;
