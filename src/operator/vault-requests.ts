/**
 * One validation for both ways into Vault: the requests a VaultCredential or VaultLease makes
 * the controller send are checked with the same zod schemas the HTTP API parses its bodies
 * with (src/contract), before anything is written. The CRDs refuse most of this already; what
 * CEL cannot see (a ServiceAccount's identity name includes the namespace) is caught here, and
 * the object gets phase Failed with reason InvalidSpec instead of half-made Vault objects.
 * Pure functions of the object.
 */
import type { z } from 'zod';
import { identity, resourceName } from '../contract/common.js';
import { createCredentialRequest } from '../contract/credentials.js';
import { createLeaseRequest } from '../contract/leases.js';
import { policyBody } from '../contract/policies.js';
import type { VaultCredentialObject, VaultLeaseObject } from '../k8s/resources.js';
import {
  accessIdentities,
  desiredPolicy,
  leaseDefaults,
  policyName,
  vaultMetadata,
} from './credential-reconciler.js';
import { dynamicSpecOf } from './dynamic-source.js';
import { issueRequest } from './lease-decision.js';
import { ownerLabel } from './vault-port.js';

type PathOf = (path: PropertyKey[]) => string;

const describe = (error: z.ZodError, pathOf: PathOf) =>
  error.issues.map((issue) => `${pathOf(issue.path)}: ${issue.message}`);

const joined = (path: PropertyKey[]) => path.map(String).join('.');

/** What Vault's API would refuse in the requests for this VaultCredential, or undefined. */
export function credentialRequestProblems(obj: VaultCredentialObject): string | undefined {
  const problems: string[] = [];
  const name = obj.metadata.name;
  if (!resourceName.safeParse(policyName(name)).success) {
    problems.push(`metadata.name: too long for its Vault policy name "${policyName(name).slice(0, 40)}..."`);
  }
  const source = obj.spec.source;
  const dynamic = dynamicSpecOf(source);
  const request = createCredentialRequest.safeParse({
    name,
    type: obj.spec.type,
    metadata: vaultMetadata(obj),
    leases: leaseDefaults(obj),
    ...(source.generate ? { generate: source.generate } : {}),
    ...(dynamic ? { dynamic } : {}),
  });
  if (!request.success) {
    problems.push(
      ...describe(request.error, ([field, ...rest]) => {
        if (field === 'name') return 'metadata.name';
        if (field === 'metadata') return 'spec.metadata';
        if (field === 'leases') return `spec.access.${joined(rest)}`;
        if (field === 'generate') return `spec.source.generate.${joined(rest)}`;
        if (field === 'dynamic') return `spec.source.dynamic.${dynamic?.engine}.${joined(rest)}`;
        return `spec.${joined([field ?? '', ...rest])}`;
      }),
    );
  }
  const serviceAccounts = obj.spec.access?.serviceAccounts ?? [];
  accessIdentities(obj).forEach((who, i) => {
    const parsed = identity.safeParse(who);
    if (parsed.success) return;
    const where =
      i < serviceAccounts.length
        ? `spec.access.serviceAccounts[${i}]`
        : `spec.access.agents[${i - serviceAccounts.length}]`;
    const as = who.type === 'workload' ? ' (as Vault identity system:serviceaccount:<namespace>:<name>)' : '';
    problems.push(...describe(parsed.error, () => `${where}${as}`));
  });
  const policy = desiredPolicy(obj, name);
  if (policy) {
    const parsed = policyBody.safeParse(policy);
    if (!parsed.success)
      problems.push(...describe(parsed.error, (path) => `spec.access (policy ${joined(path)})`));
  }
  return problems.length > 0 ? problems.join('; ') : undefined;
}

/** What Vault's API would refuse in the lease request for this VaultLease, or undefined. */
export function leaseRequestProblems(obj: VaultLeaseObject): string | undefined {
  const request = issueRequest(obj);
  const parsed = createLeaseRequest.safeParse({
    credentialName: request.credentialName,
    identity: request.identity,
    renewable: request.renewable,
    ...(request.ttl ? { ttl: request.ttl } : {}),
    ...(request.maxTtl ? { maxTtl: request.maxTtl } : {}),
    labels: { [ownerLabel]: obj.metadata.uid },
  });
  if (parsed.success) return undefined;
  const identityField = obj.spec.identity ? 'spec.identity.name' : 'spec.serviceAccountName';
  return describe(parsed.error, ([field]) => {
    if (field === 'credentialName') return 'spec.credentialRef.name';
    if (field === 'identity') {
      const as = obj.spec.identity ? '' : ' (as Vault identity system:serviceaccount:<namespace>:<name>)';
      return `${identityField}${as}`;
    }
    if (field === 'maxTtl') return request.renewable ? 'spec.renewal.maxTtl' : 'spec.ttl';
    return `spec.${String(field)}`;
  }).join('; ');
}
