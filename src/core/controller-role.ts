/**
 * The controller role: what a cluster's controller may do in its cluster's tenants. It is
 * fixed here, not a policy, so nothing stored in a tenant can widen it, and it is the least
 * the controller needs to reconcile VaultCredentials and VaultLeases:
 *
 * - credentials: list, read metadata, create (a value imported from a consenting Secret, or
 *   generated), new versions, rotation, labels and lease defaults, the engine settings of a
 *   dynamic credential it created, delete, and revoking a credential's leases; never reading
 *   a value (no `lease`, `reveal` or `read` for itself);
 * - leases: issue one for a workload or agent of the tenant, decided by *that identity's*
 *   policies (a VaultLease never grants more than Vault gives its identity), and see, renew
 *   and revoke leases; the value is never returned to it;
 * - policies: only those named `k8s-vaultcredential-<credential>`, granting `read-metadata`
 *   and `lease` on that one credential, and attaching or detaching them on workload and agent
 *   identities (what editing a VaultCredential in the namespace may do anyway), never one
 *   that grants more (a tenant admin may have written one under the prefix);
 * - nothing else: no tokens for others, no tenant administration, no audit, no keys.
 *
 * A stolen controller token therefore reaches the tenants of one cluster, and there it can
 * disrupt (delete, revoke) and let identities of those tenants lease one credential each, but
 * it cannot read a value or mint a token to read one.
 */
import type { Identity, IdentityType } from '../contract/common.js';
import { type Credential, controllerOwnerLabel, type DynamicSpec } from '../contract/credentials.js';
import { type Action, managedPolicyPrefix, type PolicyBody } from '../contract/policies.js';
import { clusterOwnsTenant } from '../contract/tenancy.js';
import type { Principal } from './context.js';
import type { Decision } from './policy-engine.js';

const credentialActions: ReadonlySet<Action> = new Set([
  'list',
  'read-metadata',
  'create',
  'rotate',
  'delete',
]);

/** The actions a VaultCredential's policy may grant. */
const managedPolicyActions: ReadonlySet<Action> = new Set(['read-metadata', 'lease']);

/** Identity types the controller may issue leases for and attach managed policies to. */
const managedIdentityTypes: ReadonlySet<IdentityType> = new Set(['workload', 'agent']);

export const isController = (principal: Principal): boolean => principal.controllerOf !== undefined;

export const controllerLabel = (principal: Principal) =>
  `the controller of ${principal.controllerOf?.cluster ? `cluster "${principal.controllerOf.cluster}"` : 'the unnamed cluster'}`;

/** Whether a controller principal may address `tenant` (its cluster's tenants only). */
export function controllerActsIn(principal: Principal, tenant: string): boolean {
  return principal.controllerOf !== undefined && clusterOwnsTenant(principal.controllerOf.cluster, tenant);
}

/**
 * The role's answer for a credential action. `admin` counts only on one credential (its
 * labels and lease defaults), never on the tenant.
 */
export function controllerDecision(principal: Principal, action: Action, credentialName?: string): Decision {
  if (credentialActions.has(action) || (action === 'admin' && credentialName !== undefined)) {
    return { allowed: true, reason: 'controller role' };
  }
  const what = credentialName ? `credential "${credentialName}"` : 'this tenant';
  return {
    allowed: false,
    reason: `${controllerLabel(principal)} may not "${action}" on ${what}: the controller role never reads values or administers tenants`,
  };
}

/**
 * Why the controller may not update `credential` with `input`, or undefined when it may. Labels
 * and lease defaults of any credential; engine settings (SQL or ACL rules run with the admin
 * connection) only of one it created, which carries its owner label: another's admin
 * connection is not the controller's to run statements with. The label itself it never sets,
 * moves or removes, so it cannot adopt a credential first.
 */
export function controllerUpdateRefusal(
  principal: Principal,
  credential: Pick<Credential, 'name' | 'metadata'>,
  input: { metadata?: Record<string, string> | undefined; dynamic?: DynamicSpec | undefined },
): string | undefined {
  const who = controllerLabel(principal);
  const owner = credential.metadata[controllerOwnerLabel];
  if (input.metadata && input.metadata[controllerOwnerLabel] !== owner) {
    return `${who} may not set, change or remove the label "${controllerOwnerLabel}" of credential "${credential.name}": it marks the credentials a controller created`;
  }
  if (input.dynamic && owner === undefined) {
    return `${who} may change the engine settings only of a credential it created (labelled "${controllerOwnerLabel}"), not of "${credential.name}": they run with its admin connection`;
  }
  return undefined;
}

/** Why the controller may not issue a lease for `target`, or undefined when it may. */
export function controllerLeaseRefusal(principal: Principal, target: Identity): string | undefined {
  if (managedIdentityTypes.has(target.type) && !sameAs(principal, target)) return undefined;
  return `${controllerLabel(principal)} issues leases only for workloads and agents other than itself, not for ${target.type} "${target.name}"`;
}

const sameAs = (principal: Principal, target: Identity) =>
  principal.identity.type === target.type && principal.identity.name === target.name;

export const isManagedPolicy = (name: string) => name.startsWith(managedPolicyPrefix);

/**
 * Why `body` is not what a policy named `k8s-vaultcredential-<credential>` may hold, or
 * undefined when it is: rules on that one credential, granting `read-metadata` and `lease`
 * only, acting for no one. The name is reserved for the operator's policies, so whoever
 * writes one (a tenant admin too) writes no more than the controller could; attaching one
 * then never hands an identity more than the controller role allows.
 */
export function managedPolicyRefusal(name: string, body: PolicyBody): string | undefined {
  const credential = name.slice(managedPolicyPrefix.length);
  if (body.actFor?.length) return `policy "${name}" may not act for other identities`;
  for (const rule of body.rules) {
    if (rule.labels || rule.credentials?.length !== 1 || rule.credentials[0] !== credential) {
      return `policy "${name}" may have rules on credential "${credential}" alone`;
    }
    const extra = rule.actions.find((action) => !managedPolicyActions.has(action));
    if (extra) return `policy "${name}" may grant only "read-metadata" and "lease", not "${extra}"`;
  }
  return undefined;
}

/** Why the controller may not write policy `name` with `body`, or undefined when it may. */
export function controllerPolicyRefusal(
  principal: Principal,
  name: string,
  body?: PolicyBody,
): string | undefined {
  const who = controllerLabel(principal);
  if (!isManagedPolicy(name))
    return `${who} writes only policies named ${managedPolicyPrefix}<credential>, not "${name}"`;
  const refused = body && managedPolicyRefusal(name, body);
  return refused ? `${who} may not write it: ${refused}` : undefined;
}

/**
 * Why the controller may not change identity `type:name` from `before` to `after`, or
 * undefined when it may: only workloads and agents, only the managed policies on it change,
 * and a managed policy it adds grants no more than the controller may write (`stored`: the
 * bodies of the managed policies in `after`). A tenant admin may have written a wider one
 * under the prefix; attaching that would hand an identity more than the role allows.
 */
export function controllerIdentityRefusal(
  principal: Principal,
  type: IdentityType,
  name: string,
  before: { policies: string[]; metadata?: Record<string, string> } | undefined,
  after: { policies: string[]; metadata?: Record<string, string> | undefined },
  stored: ReadonlyMap<string, PolicyBody> = new Map(),
): string | undefined {
  const who = controllerLabel(principal);
  if (!managedIdentityTypes.has(type) || sameAs(principal, { type, name })) {
    return `${who} manages policies of workloads and agents other than itself only, not of ${type} "${name}"`;
  }
  const unmanaged = (policies: string[]) => [...new Set(policies.filter((p) => !isManagedPolicy(p)))].sort();
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  if (!same(unmanaged(before?.policies ?? []), unmanaged(after.policies))) {
    return `${who} may add or remove only ${managedPolicyPrefix}* policies on ${type} "${name}"`;
  }
  if (JSON.stringify(before?.metadata ?? null) !== JSON.stringify(after.metadata ?? null)) {
    return `${who} may not change the metadata of ${type} "${name}"`;
  }
  for (const policy of after.policies) {
    const body = stored.get(policy);
    if (before?.policies.includes(policy) || !body) continue;
    if (controllerPolicyRefusal(principal, policy, body)) {
      return `${who} may not attach policy "${policy}" to ${type} "${name}": it grants more than "read-metadata" and "lease" on credential "${policy.slice(managedPolicyPrefix.length)}"`;
    }
  }
  return undefined;
}
