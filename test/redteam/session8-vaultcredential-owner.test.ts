import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resourceTypes } from '../../src/k8s/api-client.js';
import type { Operator } from '../../src/operator/manager.js';
import { eventually, type OperatorEnv, setupOperatorEnv } from '../operator/support.js';

/**
 * Red team, session 8: someone who may edit VaultCredentials in a namespace (nothing else:
 * no Secrets, no Vault token) and a credential a tenant admin made through the API, consenting
 * to be managed by a VaultCredential (`source.external`). The controller labels the
 * credentials it creates `vault.ghoststack.io/owner: <uid>` and deletes those with their
 * VaultCredential; an external credential is kept. `spec.metadata` must not let the editor
 * write that label onto the external credential and so make the controller delete it.
 */
describe('a VaultCredential cannot claim an API-made credential through spec.metadata', () => {
  let env: OperatorEnv;
  let operator: Operator;
  const ns = 'shop';
  const owner = 'vault.ghoststack.io/owner';

  const apply = (yaml: string) => env.cp.kubectl(['apply', '-n', ns, '-f', '-'], { input: yaml });
  const external = (metadata = '') => `
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: stripe}
spec:
  type: api-key
  source: {external: {}}
  access: {serviceAccounts: [billing]}
${metadata}`;

  beforeAll(async () => {
    env = await setupOperatorEnv();
    await env.cp.createNamespace(ns);
    await env.core.tenants.ensure(ns);
    const created = await env.vault.call('POST', '/v1/credentials', {
      tenant: ns,
      body: {
        name: 'stripe',
        type: 'api-key',
        value: 'sk_live_made_through_the_api',
        metadata: { 'vault.ghoststack.io/external': 'true' },
      },
    });
    expect(created.status, created.text).toBe(201);
    operator = await env.startOperator();
  }, 180_000);
  afterAll(async () => {
    await operator?.stop().catch(() => {});
    await env?.close();
  });

  it('refuses the owner label in spec.metadata, so deleting the object keeps the credential', async () => {
    const first = await apply(external());
    expect(first.code, first.stderr).toBe(0);
    const ready = await eventually('VaultCredential shop/stripe Ready', async () => {
      const obj = await env.admin.get<{ metadata: { uid: string }; status?: { phase?: string } }>(
        resourceTypes.vaultCredentials,
        ns,
        'stripe',
      );
      return obj.status?.phase === 'Ready' ? obj : undefined;
    });
    const uid = ready.metadata.uid;

    // The editor names this very object as the credential's owner...
    const claim = await apply(external(`  metadata: {${owner}: ${uid}}`));
    expect(claim.code, claim.stdout).not.toBe(0);
    expect(claim.stderr).toContain(owner);

    // ...then turns it into a generated credential and deletes it.
    const generated = await apply(`
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: stripe}
spec:
  type: api-key
  source: {generate: {}}
`);
    expect(generated.code, generated.stderr).toBe(0);
    const removed = await env.cp.kubectl(['delete', '-n', ns, 'vaultcredential', 'stripe', '--wait=true']);
    expect(removed.code, removed.stderr).toBe(0);

    const kept = await env.vault.call('GET', '/v1/credentials/stripe', { tenant: ns });
    expect(kept.status, kept.text).toBe(200);
    expect(kept.body.metadata[owner]).toBeUndefined();
    expect(kept.body.currentVersion).toBe(1);
  });
});
