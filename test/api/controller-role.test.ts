import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controllerOwnerLabel } from '../../src/contract/credentials.js';
import { type ControllerCluster, startControllerCluster } from '../support/controller-cluster.js';
import type { TestVault } from '../support/test-vault.js';

/**
 * A cluster's controller as a client of the API: it logs in with its own ServiceAccount
 * (reviewed by a real kube-apiserver), gets the controller role over its cluster's tenants
 * `<cluster>.<namespace>`, and the API refuses everything outside that role.
 */
describe('the controller role (Kubernetes login of a named cluster)', () => {
  let cluster: ControllerCluster;
  let vault: TestVault;
  const tenant = 'east.shop';
  const maxTenants = 6;
  const app = { type: 'workload', name: 'system:serviceaccount:shop:app' } as const;
  const mint = (namespace: string, name: string) => cluster.mint(namespace, name);
  const login = (jwt: string, body: Record<string, unknown> = {}) => cluster.login(jwt, body);
  const asController = (method: string, path: string, body?: unknown, on = tenant) =>
    cluster.asController(method, path, body, on);

  beforeAll(async () => {
    cluster = await startControllerCluster({ store: 'embedded', core: { maxTenantsPerCluster: maxTenants } });
    vault = cluster.vault;
  }, 120_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it('maps a named cluster’s namespaces to <cluster>.<namespace> and marks only its controller', async () => {
    const workload = await login(await mint('shop', 'app'), { cluster: 'east' });
    expect(workload.status).toBe(200);
    expect(workload.body).toMatchObject({ tenant: 'east.shop', identity: app });
    expect(workload.body.controllerOf).toBeUndefined();

    const me = await vault.call('GET', '/v1/auth/whoami', { token: cluster.controller });
    expect(me.body).toMatchObject({
      tenant: 'east.vault-system',
      identity: { type: 'workload', name: 'system:serviceaccount:vault-system:vault-operator' },
      controllerOf: { cluster: 'east' },
      policies: [],
    });

    // No unnamed cluster here, and an unknown one is named in the answer.
    const unnamed = await login(await mint('shop', 'app'));
    expect(unnamed.status).toBe(400);
    expect(unnamed.body.error.message).toContain('"east"');
    const unknown = await login(await mint('shop', 'app'), { cluster: 'west' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('does not serve Kubernetes cluster "west"');
  });

  it('creates at most --max-tenants-per-cluster tenants for its cluster, and names the flag when refused', async () => {
    const ofEast = async () =>
      ((await vault.call('GET', '/v1/sys/tenants')).body.tenants as { id: string }[])
        .map((t) => t.id)
        .filter((id) => id.startsWith('east.'));
    const before = await ofEast();
    expect(before.length).toBeLessThan(maxTenants);
    const answers = [];
    for (let i = 0; i < maxTenants + 3; i++) {
      answers.push(await asController('GET', '/v1/credentials', undefined, `east.spam-${i}`));
    }
    const allowed = maxTenants - before.length;
    expect(answers.slice(0, allowed).map((a) => a.status)).toEqual(Array(allowed).fill(200));
    for (const refused of answers.slice(allowed)) {
      expect(refused.status, refused.text).toBe(403);
      expect(refused.body.error.message).toContain(`${maxTenants} tenants`);
      expect(refused.body.error.message).toContain('--max-tenants-per-cluster');
    }
    expect(await ofEast()).toHaveLength(maxTenants);
    // Tenants it has are not affected.
    expect((await asController('GET', '/v1/credentials', undefined, 'east.spam-0')).status).toBe(200);
  });

  it('acts in its cluster’s tenants only: another cluster’s, an unnamed or a plain tenant answer 403', async () => {
    for (const other of ['west.shop', 'shop', 'acme']) {
      const result = await asController('GET', '/v1/credentials', undefined, other);
      expect(result.status, other).toBe(403);
      expect(result.body.error.message).toContain('"east.<namespace>"');
    }
    const bad = await asController('GET', '/v1/credentials', undefined, 'east.shop.x');
    expect(bad.status).toBe(400);
  });

  it('manages credentials and issues leases for workloads by their own policies, never seeing a value', async () => {
    const created = await asController('POST', '/v1/credentials', {
      name: 'db',
      type: 'password',
      value: 'pw-one-0123456789',
      metadata: { team: 'shop', [controllerOwnerLabel]: 'uid-1' },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.text).not.toContain('pw-one');
    // The same value again adds nothing; a new one adds version 2.
    const same = await asController('POST', '/v1/credentials/db/versions', {
      value: 'pw-one-0123456789',
      ifChanged: true,
    });
    expect(same.body.currentVersion).toBe(1);
    const changed = await asController('POST', '/v1/credentials/db/versions', {
      value: 'pw-two-0123456789',
      ifChanged: true,
    });
    expect(changed.body.currentVersion).toBe(2);
    // On a credential it did not create, "ifChanged" would confirm a guessed value: refused.
    await vault.call('POST', '/v1/credentials', {
      tenant: 'east.shop',
      body: { name: 'made-by-api', type: 'password', value: 'pw-api-0123456789' },
    });
    const guess = await asController('POST', '/v1/credentials/made-by-api/versions', {
      value: 'pw-api-0123456789',
      ifChanged: true,
    });
    expect(guess.status, guess.text).toBe(403);
    expect(guess.body.error.message).toContain('"ifChanged"');
    const relabel = await asController('PATCH', '/v1/credentials/db', {
      metadata: { team: 'shop', tier: 'a', [controllerOwnerLabel]: 'uid-1' },
    });
    expect(relabel.status, relabel.text).toBe(200);

    // No policy of the workload grants a lease yet: denied, although the controller asks.
    const denied = await asController('POST', '/v1/leases', {
      credentialName: 'db',
      identity: app,
      ttl: '10m',
    });
    expect(denied.status).toBe(403);
    expect(denied.body.error.message).toContain('system:serviceaccount:shop:app');

    const policy = {
      rules: [{ credentials: ['db'], actions: ['read-metadata', 'lease'], maxTtl: '1h' }],
    };
    expect((await asController('PUT', '/v1/policies/k8s-vaultcredential-db', policy)).status).toBe(200);
    const attach = await asController('PUT', `/v1/identities/workload/${app.name}`, {
      policies: ['k8s-vaultcredential-db'],
    });
    expect(attach.status, attach.text).toBe(200);

    const lease = await asController('POST', '/v1/leases', {
      credentialName: 'db',
      identity: app,
      ttl: '10m',
    });
    expect(lease.status, lease.text).toBe(201);
    expect(lease.body.value).toBeUndefined();
    expect(lease.text).not.toContain('pw-two');
    expect(lease.body.identity).toEqual(app);
    // The workload's policy caps the TTL, not the controller.
    const tooLong = await asController('POST', '/v1/leases', {
      credentialName: 'db',
      identity: app,
      ttl: '2h',
    });
    expect(tooLong.status).toBe(400);

    const id = lease.body.id;
    for (const [method, path] of [
      ['GET', `/v1/leases/${id}/value`],
      ['POST', `/v1/leases/${id}/reveal`],
    ] as const) {
      const read = await asController(method, path);
      expect(read.status, path).toBe(403);
      expect(read.text).not.toContain('pw-two');
    }
    const use = await asController('POST', `/v1/leases/${id}/use`, {});
    expect(use.status).toBe(403);
    expect((await asController('GET', `/v1/leases/${id}`)).body.state).toBe('active');
    expect((await asController('POST', `/v1/leases/${id}/renew`, {})).status).toBe(200);

    // The workload itself reads the value through the lease the controller issued for it.
    const workload = await login(await mint('shop', 'app'), { cluster: 'east' });
    const read = await vault.call('GET', `/v1/leases/${id}/value`, { token: workload.body.token });
    expect(read.status).toBe(200);
    expect(read.body.value).toBe('pw-two-0123456789');

    expect((await asController('POST', `/v1/leases/${id}/revoke`, {})).status).toBe(200);
    const bulk = await asController('POST', '/v1/leases/revoke', { credentialName: 'db' });
    expect(bulk.status, bulk.text).toBe(200);
  });

  it('refuses what its role does not grant, and audits each refusal', async () => {
    const refused: Array<[string, string, unknown?]> = [
      ['PUT', '/v1/policies/everything', { rules: [{ actions: ['admin'] }] }],
      [
        'PUT',
        '/v1/policies/k8s-vaultcredential-db',
        { rules: [{ credentials: ['db'], actions: ['reveal'] }] },
      ],
      ['PUT', '/v1/policies/k8s-vaultcredential-db', { rules: [{ credentials: ['*'], actions: ['lease'] }] }],
      [
        'PUT',
        '/v1/policies/k8s-vaultcredential-db',
        { rules: [{ credentials: ['db'], actions: ['lease'] }], actFor: [{ type: 'workload', name: '*' }] },
      ],
      ['GET', '/v1/policies'],
      ['GET', '/v1/policies/other'],
      ['PUT', `/v1/identities/workload/${app.name}`, { policies: ['k8s-vaultcredential-db', 'root'] }],
      ['PUT', '/v1/identities/human/alice', { policies: ['k8s-vaultcredential-db'] }],
      [
        'PUT',
        '/v1/identities/workload/system:serviceaccount:vault-system:vault-operator',
        { policies: ['k8s-vaultcredential-db'] },
      ],
      ['DELETE', `/v1/identities/workload/${app.name}`],
      ['GET', '/v1/identities'],
      ['POST', '/v1/auth/tokens', { identity: app, ttl: '5m' }],
      [
        'POST',
        '/v1/auth/tokens',
        { identity: { type: 'workload', name: 'system:serviceaccount:vault-system:vault-operator' } },
      ],
      ['POST', '/v1/leases', { credentialName: 'db', identity: { type: 'human', name: 'alice' } }],
      ['POST', '/v1/leases/revoke', { identity: app }],
      ['GET', '/v1/audit'],
      ['GET', '/v1/sys/keys'],
      ['GET', '/v1/sys/tenants'],
    ];
    const controllerDenials = async () => {
      const audit = await vault.call('GET', '/v1/audit?outcome=denied&limit=1000', { tenant });
      return audit.body.records.filter(
        (r: { actor: { name: string } }) =>
          r.actor.name === 'system:serviceaccount:vault-system:vault-operator',
      ).length;
    };
    const before = await controllerDenials();
    for (const [method, path, body] of refused) {
      const result = await asController(method, path, body);
      expect(result.status, `${method} ${path} ${JSON.stringify(body)}: ${result.text}`).toBe(403);
    }
    // Only this test's refusals count (the earlier tests refused the controller too).
    expect((await controllerDenials()) - before).toBeGreaterThanOrEqual(10);
  });
});
