import { describe, expect, it } from 'vitest';
import type { VaultCredentialObject, VaultLeaseObject } from '../k8s/resources.js';
import { credentialRequestProblems, leaseRequestProblems } from './vault-requests.js';

const meta = (name: string, namespace = 'shop') => ({ name, namespace, uid: 'u1', generation: 1 });

const credential = (
  over: Partial<VaultCredentialObject['spec']> = {},
  name = 'db',
): VaultCredentialObject => ({
  apiVersion: 'vault.ghoststack.io/v1alpha1',
  kind: 'VaultCredential',
  metadata: meta(name),
  spec: { type: 'password', source: { generate: { length: 32, alphabet: 'hex' } }, ...over },
});

const lease = (over: Partial<VaultLeaseObject['spec']> = {}, namespace = 'shop'): VaultLeaseObject => ({
  apiVersion: 'vault.ghoststack.io/v1alpha1',
  kind: 'VaultLease',
  metadata: meta('l', namespace),
  spec: { credentialRef: { name: 'db' }, serviceAccountName: 'app', ttl: '15m', onExpiry: 'wipe', ...over },
});

describe('the requests a resource makes the controller send to Vault', () => {
  it('accepts what the API accepts', () => {
    expect(
      credentialRequestProblems(credential({ access: { serviceAccounts: ['app'], agents: ['bot'] } })),
    ).toBe(undefined);
    expect(leaseRequestProblems(lease())).toBeUndefined();
  });

  it('refuses what the API refuses, naming the field of the resource', () => {
    const labels = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 'v']));
    expect(credentialRequestProblems(credential({ metadata: labels }))).toContain(
      'spec.metadata: at most 32 labels',
    );
    expect(credentialRequestProblems(credential({}, `n${'a'.repeat(233)}`))).toContain('metadata.name');
    const longSa = 's'.repeat(240);
    expect(credentialRequestProblems(credential({ access: { serviceAccounts: ['ok', longSa] } }))).toMatch(
      /^spec\.access\.serviceAccounts\[1\] .*: an identity name is at most 253 characters$/,
    );
    expect(leaseRequestProblems(lease({ serviceAccountName: longSa }))).toMatch(
      /^spec\.serviceAccountName .*: an identity name is at most 253 characters$/,
    );
  });
});
