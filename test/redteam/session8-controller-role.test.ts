import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import type { Store } from '../../src/store/store.js';
import { type ControllerCluster, startControllerCluster } from '../support/controller-cluster.js';
import type { TestVault } from '../support/test-vault.js';

/**
 * Red team, session 8: a stolen controller token of cluster "east" (a real kube-apiserver
 * reviews its ServiceAccount token; Vault's store is a real etcd) tries to widen what the
 * controller role allows in its own cluster's tenants.
 */
describe('a stolen controller token stays within the controller role', () => {
  let cluster: ControllerCluster;
  let vault: TestVault;
  let store: Store;
  let controller: string;
  const tenant = 'east.shop';
  const app = { type: 'workload', name: 'system:serviceaccount:shop:app' } as const;
  const mint = (namespace: string, name: string) => cluster.mint(namespace, name);
  const login = (jwt: string) => cluster.login(jwt);
  const asController = (method: string, path: string, body?: unknown) =>
    cluster.asController(method, path, body);
  const asAdmin = (method: string, path: string, body?: unknown) => cluster.asAdmin(method, path, body);

  beforeAll(async () => {
    cluster = await startControllerCluster();
    ({ vault, store, controller } = cluster);
    // The tenant holds two API-made credentials.
    for (const name of ['payments-key', 'unrelated']) {
      const created = await asAdmin('POST', '/v1/credentials', {
        name,
        type: 'api-key',
        value: `sk-${name}-secret-value`,
      });
      expect(created.status, created.text).toBe(201);
    }
  }, 180_000);
  afterAll(() => cluster?.close());

  it('attaches a k8s-vaultcredential-* policy only when it grants what the role may write', async () => {
    // A tenant admin may no longer write a broad policy under the managed prefix (the name is
    // the operator's, so whatever holds it grants what the controller could write)...
    const wideRules = [{ credentials: ['*'], actions: ['lease', 'reveal', 'read-metadata'] }];
    const wide = await asAdmin('PUT', '/v1/policies/k8s-vaultcredential-payments', { rules: wideRules });
    expect(wide.status, wide.text).toBe(400);
    expect(wide.body.error.message).toMatch(/rules on credential "payments" alone.*reserved.*another name/);
    // ...but a store written before that rule may hold one: planted as an older server wrote it.
    const now = new Date().toISOString();
    await store.txn({
      success: [
        {
          type: 'put',
          key: keys.policy(tenant, 'k8s-vaultcredential-payments'),
          value: JSON.stringify({
            rules: wideRules,
            name: 'k8s-vaultcredential-payments',
            createdAt: now,
            updatedAt: now,
          }),
        },
      ],
    });

    // The controller may not write it (the role check on the body)...
    const rewrite = await asController('PUT', '/v1/policies/k8s-vaultcredential-payments', {
      rules: [{ credentials: ['*'], actions: ['lease', 'reveal', 'read-metadata'] }],
    });
    expect(rewrite.status).toBe(403);
    // ...and so may not hand it to a workload either.
    const attach = await asController('PUT', `/v1/identities/workload/${app.name}`, {
      policies: ['k8s-vaultcredential-payments'],
    });
    expect(attach.status, attach.text).toBe(403);
    expect(attach.body.error.message).toContain('k8s-vaultcredential-payments');

    // The workload got nothing: it cannot lease a credential no VaultCredential granted it.
    const workload = await login(await mint('shop', 'app'));
    expect(workload.status, workload.text).toBe(200);
    const lease = await vault.call('POST', '/v1/leases', {
      token: workload.body.token,
      body: { credentialName: 'unrelated', ttl: '5m' },
    });
    expect(lease.status, lease.text).toBe(403);
    expect(lease.text).not.toContain('sk-unrelated-secret-value');

    // A managed policy that grants what the role allows is attached as before.
    const narrow = await asController('PUT', '/v1/policies/k8s-vaultcredential-payments-key', {
      rules: [{ credentials: ['payments-key'], actions: ['read-metadata', 'lease'], maxTtl: '10m' }],
    });
    expect(narrow.status, narrow.text).toBe(200);
    const ok = await asController('PUT', `/v1/identities/workload/${app.name}`, {
      policies: ['k8s-vaultcredential-payments-key'],
    });
    expect(ok.status, ok.text).toBe(200);
    // Keeping an admin's wide managed policy that is already attached is not the controller's
    // doing: detaching the narrow one beside it is allowed.
    expect(
      (
        await asAdmin('PUT', `/v1/identities/workload/${app.name}`, {
          policies: ['k8s-vaultcredential-payments-key', 'k8s-vaultcredential-payments'],
        })
      ).status,
    ).toBe(200);
    const detach = await asController('PUT', `/v1/identities/workload/${app.name}`, {
      policies: ['k8s-vaultcredential-payments'],
    });
    expect(detach.status, detach.text).toBe(200);
    expect((await asAdmin('PUT', `/v1/identities/workload/${app.name}`, { policies: [] })).status).toBe(200);
  });
  it('never gets a value back through an Idempotency-Key replay or the lease event stream', async () => {
    // (Held: the controller's replay answers as its first attempt did, without the value, and
    // its event stream carries lease metadata only, also of a lease whose holder got the value.)
    const policy = await asController('PUT', '/v1/policies/k8s-vaultcredential-payments-key', {
      rules: [{ credentials: ['payments-key'], actions: ['read-metadata', 'lease'] }],
    });
    expect(policy.status, policy.text).toBe(200);
    const attach = await asController('PUT', `/v1/identities/workload/${app.name}`, {
      policies: ['k8s-vaultcredential-payments-key'],
    });
    expect(attach.status, attach.text).toBe(200);
    const secret = 'sk-payments-key-secret-value';

    const events = await fetch(`${vault.url}/v1/leases/events`, {
      headers: { authorization: `Bearer ${controller}`, 'x-vault-tenant': tenant },
    });
    expect(events.status).toBe(200);
    const reader = events.body!.getReader();

    const request = { credentialName: 'payments-key', identity: app, ttl: '5m' };
    const first = await vault.call('POST', '/v1/leases', {
      token: controller,
      tenant,
      idempotencyKey: 'retry-1',
      body: request,
    });
    expect(first.status, first.text).toBe(201);
    const again = await vault.call('POST', '/v1/leases', {
      token: controller,
      tenant,
      idempotencyKey: 'retry-1',
      body: request,
    });
    expect(again.status, again.text).toBe(201);
    expect(again.body.id).toBe(first.body.id);
    expect(again.text).not.toContain(secret);

    // The holder leases for itself (and gets the value); the controller sees that lease's event.
    const workload = await login(await mint('shop', 'app'));
    const own = await vault.call('POST', '/v1/leases', {
      token: workload.body.token,
      body: { credentialName: 'payments-key', ttl: '5m' },
    });
    expect(own.status, own.text).toBe(201);
    expect(own.body.value).toBe(secret);
    let seen = '';
    const decoder = new TextDecoder();
    while (!seen.includes(own.body.id)) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += decoder.decode(value);
    }
    await reader.cancel();
    expect(seen).toContain(own.body.id);
    expect(seen).not.toContain(secret);
    expect((await asAdmin('PUT', `/v1/identities/workload/${app.name}`, { policies: [] })).status).toBe(200);
  });
});
