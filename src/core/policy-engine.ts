import type { Identity } from '../contract/common.js';
import type { Action, PolicyBody } from '../contract/policies.js';
import { durationMs } from '../lib/duration.js';
import type { Principal } from './context.js';
import { controllerDecision, controllerLeaseRefusal, isController } from './controller-role.js';
import { globMatch } from './glob.js';

/** The built-in policy of a tenant's administrators: every action on every credential. */
export const ROOT_POLICY = 'root';

export interface CredentialRef {
  name: string;
  metadata: Record<string, string>;
}

export interface Decision {
  allowed: boolean;
  reason: string;
  /** For `lease`: the longest TTL the matching rules grant (undefined = no rule cap). */
  maxTtlMs?: number;
}

/**
 * Given a caller may lease a credential, may it read the value? A lease is a right to use a
 * credential; reading its value is the separate `reveal` right. Agents get a value only where
 * their policy grants `reveal`; people, workloads and system callers that may lease it get it
 * (the seed SDK example: a human leasing for an agent). A cluster's controller issues leases
 * for workloads; their values are never its to see.
 */
export function readsLeasedValue(
  principal: Principal,
  policies: ReadonlyMap<string, PolicyBody>,
  credential: CredentialRef,
): boolean {
  if (isController(principal)) return false;
  if (principal.identity.type !== 'agent') return true;
  return decide(principal, policies, 'reveal', credential).allowed;
}

/** May this caller learn a credential's value at all (lease it and read what it gets)? */
export function mayReadValue(
  principal: Principal,
  policies: ReadonlyMap<string, PolicyBody>,
  credential: CredentialRef,
): boolean {
  return (
    decide(principal, policies, 'lease', credential).allowed &&
    readsLeasedValue(principal, policies, credential)
  );
}

/**
 * Pure policy evaluation: default deny; a rule applies when the credential matches one of
 * its name globs (none = all) and carries all its labels; the action must be listed.
 */
export function decide(
  principal: Principal,
  policies: ReadonlyMap<string, PolicyBody>,
  action: Action,
  credential?: CredentialRef,
): Decision {
  if (principal.system) return { allowed: true, reason: 'system token' };
  if (principal.controllerOf) return controllerDecision(principal, action, credential?.name);
  if (principal.policies.includes(ROOT_POLICY)) return { allowed: true, reason: 'root policy' };
  let allowed = false;
  let maxTtlMs: number | undefined;
  let uncapped = false;
  for (const name of principal.policies) {
    const policy = policies.get(name);
    if (!policy) continue;
    for (const rule of policy.rules) {
      if (!rule.actions.includes(action) && !rule.actions.includes('admin')) continue;
      if (credential) {
        if (!ruleMatches(rule, credential)) continue;
      } else if (action !== 'list' && (rule.credentials || rule.labels)) {
        // A rule scoped to some credentials never answers a tenant-wide question: "admin"
        // over "app-*" administers those credentials, not the tenant. (A listing is
        // filtered credential by credential afterwards, so scoped rules may start one.)
        continue;
      }
      allowed = true;
      if (rule.maxTtl) maxTtlMs = Math.max(maxTtlMs ?? 0, durationMs(rule.maxTtl));
      else uncapped = true;
    }
  }
  if (!allowed) {
    const what = credential ? `credential "${credential.name}"` : 'this tenant';
    return {
      allowed: false,
      reason: `no policy of ${principal.identity.type} "${principal.identity.name}" grants "${action}" on ${what}`,
    };
  }
  return { allowed: true, reason: 'policy', ...(uncapped || maxTtlMs === undefined ? {} : { maxTtlMs }) };
}

function ruleMatches(rule: PolicyBody['rules'][number], credential: CredentialRef): boolean {
  if (rule.credentials && !rule.credentials.some((glob) => globMatch(glob, credential.name))) return false;
  for (const [key, value] of Object.entries(rule.labels ?? {})) {
    if (credential.metadata[key] !== value) return false;
  }
  return true;
}

/**
 * May the caller act for `target`? Everyone may act for itself; an agent only for itself;
 * others for identities their policies name in `actFor`, or any when they administer the tenant.
 */
export function mayActFor(
  principal: Principal,
  policies: ReadonlyMap<string, PolicyBody>,
  target: Identity,
): Decision {
  const self = principal.identity;
  if (self.type === target.type && self.name === target.name) return { allowed: true, reason: 'self' };
  if (principal.system) return { allowed: true, reason: 'system token' };
  if (principal.controllerOf) {
    const refused = controllerLeaseRefusal(principal, target);
    return refused ? { allowed: false, reason: refused } : { allowed: true, reason: 'controller role' };
  }
  if (self.type === 'agent') {
    return {
      allowed: false,
      reason: `an agent token acts only for itself, not for ${target.type} "${target.name}"`,
    };
  }
  if (decide(principal, policies, 'admin').allowed) return { allowed: true, reason: 'tenant admin' };
  for (const name of principal.policies) {
    for (const pattern of policies.get(name)?.actFor ?? []) {
      if (pattern.type === target.type && globMatch(pattern.name, target.name)) {
        return { allowed: true, reason: `policy "${name}" allows acting for it` };
      }
    }
  }
  return {
    allowed: false,
    reason: `no policy of ${self.type} "${self.name}" allows acting for ${target.type} "${target.name}"`,
  };
}
