import { writeFileSync } from 'node:fs';
/**
 * The operator against a real kube-apiserver and a real Vault store: examples applied with
 * kubectl become Active, deletion revokes in Vault, the API server rejects invalid manifests
 * with the CEL messages, expiry and renewal happen on time, refusals show as Denied, a
 * restarted controller writes nothing, and leadership fails over.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { keys } from '../../src/core/keys.js';
import type { LeaseRecord } from '../../src/core/lease-record.js';
import { resourceTypes } from '../../src/k8s/api-client.js';
import type { KubeObject } from '../../src/k8s/resources.js';
import type { Operator } from '../../src/operator/manager.js';
import { writeLeases } from '../support/bulk-leases.js';
import { eventually, type OperatorEnv, repoFile, setupOperatorEnv } from './support.js';

let env: OperatorEnv;
let operator: Operator;

const admin = { type: 'human' as const, name: 'test-admin' };
const ctx = (ns: string) => systemContext(ns, admin);

// biome-ignore lint/suspicious/noExplicitAny: test assertions read arbitrary status fields
type Obj = KubeObject & { status?: Record<string, any> };

const getLease = (ns: string, name: string) => env.admin.get<Obj>(resourceTypes.vaultLeases, ns, name);
const getCred = (ns: string, name: string) => env.admin.get<Obj>(resourceTypes.vaultCredentials, ns, name);

async function phaseOf(ns: string, name: string, phase: string, kind: 'lease' | 'cred' = 'lease') {
  let last: Obj | undefined;
  try {
    return await eventually(`${kind} ${ns}/${name} to be ${phase}`, async () => {
      last = kind === 'lease' ? await getLease(ns, name) : await getCred(ns, name);
      return last.status?.phase === phase ? last : undefined;
    });
  } catch (err) {
    const logs = env.logs().split('\n').slice(-15).join('\n');
    throw new Error(`${(err as Error).message}\nlast status: ${JSON.stringify(last?.status)}\n${logs}`);
  }
}

async function gone(ns: string, name: string, kind: 'lease' | 'cred' = 'lease') {
  return eventually(`${kind} ${ns}/${name} to be gone`, async () => {
    try {
      await (kind === 'lease' ? getLease(ns, name) : getCred(ns, name));
      return undefined;
    } catch (err) {
      return (err as { statusCode?: number }).statusCode === 404 ? true : undefined;
    }
  });
}

async function apply(ns: string, yaml: string) {
  const result = await env.cp.kubectl(['apply', '-n', ns, '-f', '-'], { input: yaml });
  return result;
}

beforeAll(async () => {
  // `shop` imports its Secret (examples/vaultcredential-from-secret.yaml).
  env = await setupOperatorEnv({ secretNamespaces: ['shop'] });
  operator = await env.startOperator();
  await eventually('a leader', async () => (operator.isLeader ? true : undefined));
}, 180_000);

afterAll(async () => {
  if (env && process.env.OPERATOR_TEST_LOG) writeFileSync(process.env.OPERATOR_TEST_LOG, env.logs());
  await env?.close();
});

/** A namespace with credential `c` and VaultLease `l` for ServiceAccount `app`, Active. */
async function activeLeaseIn(ns: string) {
  await env.cp.createNamespace(ns);
  await apply(
    ns,
    `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: c}
spec: {type: generic, source: {generate: {}}, access: {serviceAccounts: [app]}}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: l}
spec: {credentialRef: {name: c}, serviceAccountName: app, ttl: 1h}`,
  );
  await phaseOf(ns, 'l', 'Active');
}

describe('vault operator on a real control plane', { timeout: 90_000 }, () => {
  it('makes the examples Active, follows Secret changes, and never writes the value', async () => {
    const ns = 'shop';
    for (const file of [
      'vaultcredential-from-secret.yaml',
      'vaultcredential-generated.yaml',
      'vaultlease.yaml',
    ]) {
      const result = await env.cp.kubectl(['apply', '-n', ns, '-f', repoFile(`examples/${file}`)]);
      expect(result.code, result.stderr).toBe(0);
    }
    const cred = await phaseOf(ns, 'stripe-api-key', 'Ready', 'cred');
    expect(cred.status?.version).toBe(1);
    expect(cred.status?.fingerprint).toMatch(/^hmac-sha256:/);
    expect(cred.status?.identities).toEqual(['workload:system:serviceaccount:shop:billing']);

    const lease = await phaseOf(ns, 'stripe-for-billing', 'Active');
    expect(lease.status?.leaseId).toMatch(/^lease_/);
    expect(lease.status?.identity).toBe('workload:system:serviceaccount:shop:billing');
    expect(Date.parse(lease.status?.expiresAt)).toBeGreaterThan(Date.now() + 10 * 60_000);
    const inVault = await env.core.leases.get(ctx(ns), lease.status?.leaseId);
    expect(inVault.state).toBe('active');
    expect(inVault.identity).toEqual({ type: 'workload', name: 'system:serviceaccount:shop:billing' });
    await phaseOf(ns, 'db-for-claude', 'Active');

    // A new value in the Secret becomes version 2.
    const patch = await env.cp.kubectl([
      'patch',
      'secret',
      'stripe',
      '-n',
      ns,
      '--type=merge',
      '-p',
      '{"stringData":{"api-key":"sk_test_rotated_value"}}',
    ]);
    expect(patch.code, patch.stderr).toBe(0);
    const v2 = await eventually('version 2', async () => {
      const c = await getCred(ns, 'stripe-api-key');
      return c.status?.version === 2 ? c : undefined;
    });
    expect(v2.status?.fingerprint).not.toBe(cred.status?.fingerprint);

    // No value in any object or event of the namespace.
    const dump = await env.cp.kubectl([
      'get',
      'vaultleases,vaultcredentials,events.events.k8s.io',
      '-n',
      ns,
      '-o',
      'json',
    ]);
    expect(dump.stdout).toContain('stripe-for-billing');
    expect(dump.stdout).not.toContain('sk_test_example_not_a_real_key');
    expect(dump.stdout).not.toContain('sk_test_rotated_value');
    expect(dump.stdout).toContain('"reason": "Issued"');
    expect(env.logs()).not.toContain('sk_test_rotated_value');

    // kubectl shows the printer columns.
    const table = await env.cp.kubectl(['get', 'vlease', '-n', ns]);
    expect(table.stdout).toMatch(/NAME\s+PHASE\s+CREDENTIAL\s+IDENTITY\s+EXPIRES\s+AGE/);
    expect(table.stdout).toMatch(
      /stripe-for-billing\s+Active\s+stripe-api-key\s+workload:system:serviceaccount:shop:billing/,
    );
  });

  it('revokes in Vault when a VaultLease or a VaultCredential is deleted', async () => {
    const ns = 'shop';
    const lease = await phaseOf(ns, 'stripe-for-billing', 'Active');
    const del = await env.cp.kubectl([
      'delete',
      'vaultlease',
      'stripe-for-billing',
      '-n',
      ns,
      '--wait=false',
    ]);
    expect(del.code, del.stderr).toBe(0);
    await gone(ns, 'stripe-for-billing');
    expect((await env.core.leases.get(ctx(ns), lease.status?.leaseId)).state).toBe('revoked');

    const other = await phaseOf(ns, 'db-for-claude', 'Active');
    await env.cp.kubectl(['delete', 'vaultcredential', 'billing-db-password', '-n', ns, '--wait=false']);
    await gone(ns, 'billing-db-password', 'cred');
    expect((await env.core.leases.get(ctx(ns), other.status?.leaseId)).state).toBe('revoked');
    await expect(env.core.credentials.get(ctx(ns), 'billing-db-password')).rejects.toMatchObject({
      code: 'not_found',
    });
    await expect(
      env.core.policies.get(ctx(ns), 'k8s-vaultcredential-billing-db-password'),
    ).rejects.toMatchObject({
      code: 'not_found',
    });
    // The VaultLease of a deleted credential reflects the revocation.
    const revoked = await phaseOf(ns, 'db-for-claude', 'Revoked');
    expect(revoked.status?.conditions?.[0]?.reason).toBe('LeaseRevoked');
  });

  it('has invalid manifests rejected by the API server with the CEL message', async () => {
    const ns = 'invalid';
    await env.cp.createNamespace(ns);
    const cases: Array<[string, string]> = [
      [
        `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: two-sources}
spec: {type: generic, source: {generate: {}, external: {}}}`,
        'spec.source must set exactly one of secretRef, generate, external or dynamic',
      ],
      [
        `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: no-source}
spec: {type: generic, source: {}}`,
        'spec.source must set exactly one of secretRef, generate, external or dynamic',
      ],
      [
        `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: too-long}
spec: {credentialRef: {name: x}, serviceAccountName: app, ttl: 2h, renewal: {enabled: true, maxTtl: 1h}}`,
        'spec.ttl must not exceed spec.renewal.maxTtl',
      ],
      [
        `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: bad-duration}
spec: {credentialRef: {name: x}, serviceAccountName: app, ttl: 2d}`,
        'must be a duration like "90s", "15m" or "1h30m"',
      ],
      [
        `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: two-identities}
spec: {credentialRef: {name: x}, serviceAccountName: app, identity: {type: agent, name: a}}`,
        'spec must set exactly one of identity or serviceAccountName',
      ],
    ];
    for (const [yaml, message] of cases) {
      const result = await apply(ns, yaml);
      expect(result.code, yaml).not.toBe(0);
      expect(result.stderr).toContain(message);
    }
    const listed = await env.cp.kubectl(['get', 'vaultleases,vaultcredentials', '-n', ns, '-o', 'name']);
    expect(listed.stdout.trim()).toBe('');
  });

  it('shows Denied with the reason, and becomes Active once access is granted', async () => {
    const ns = 'denied';
    await env.cp.createNamespace(ns);
    await apply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: token}
spec: {type: api-key, source: {generate: {}}, access: {serviceAccounts: [allowed]}}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: intruder}
spec: {credentialRef: {name: token}, serviceAccountName: intruder, ttl: 5m}`,
    );
    const denied = await phaseOf(ns, 'intruder', 'Denied');
    const ready = denied.status?.conditions?.find((c: { type: string }) => c.type === 'Ready');
    expect(ready.reason).toBe('PermissionDenied');
    expect(ready.message).toContain('system:serviceaccount:denied:intruder');
    expect(denied.status?.leaseId).toBeUndefined();
    const { leases } = await env.core.leases.list(ctx(ns), { limit: 100 });
    expect(leases).toHaveLength(0);

    await env.cp.kubectl([
      'patch',
      'vaultcredential',
      'token',
      '-n',
      ns,
      '--type=merge',
      '-p',
      '{"spec":{"access":{"serviceAccounts":["allowed","intruder"]}}}',
    ]);
    const active = await phaseOf(ns, 'intruder', 'Active');
    expect(active.status?.leaseId).toMatch(/^lease_/);
  });

  it('marks a lease Expired at expiresAt, and renews while renewal is enabled', async () => {
    const ns = 'timing';
    await env.cp.createNamespace(ns);
    await apply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: short}
spec: {type: generic, source: {generate: {}}, access: {agents: [bot]}}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: brief}
spec: {credentialRef: {name: short}, identity: {type: agent, name: bot}, ttl: 3s}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: renewed}
spec:
  credentialRef: {name: short}
  identity: {type: agent, name: bot}
  ttl: 3s
  renewal: {enabled: true, maxTtl: 8s, renewBefore: 1500ms}`,
    );
    const active = await phaseOf(ns, 'brief', 'Active');
    const expired = await phaseOf(ns, 'brief', 'Expired');
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(active.status?.expiresAt));
    expect(expired.status?.conditions?.[0]?.reason).toBe('LeaseExpired');

    const renewedExpired = await phaseOf(ns, 'renewed', 'Expired');
    expect(renewedExpired.status?.renewCount).toBeGreaterThanOrEqual(2);
    expect(renewedExpired.status?.expiresAt).toBe(renewedExpired.status?.maxExpiresAt);
  });

  it('resumes after a crash without re-issuing or writing anything', async () => {
    const ns = 'restart';
    await env.cp.createNamespace(ns);
    const leases = Array.from(
      { length: 5 },
      (_, i) => `---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: l${i}}
spec: {credentialRef: {name: c}, serviceAccountName: app, ttl: 1h}`,
    ).join('\n');
    await apply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: c}
spec: {type: generic, source: {generate: {}}, access: {serviceAccounts: [app]}}
${leases}`,
    );
    for (let i = 0; i < 5; i++) await phaseOf(ns, `l${i}`, 'Active');
    await phaseOf(ns, 'c', 'Ready', 'cred');
    await operator.idle();
    const { leases: before } = await env.core.leases.list(ctx(ns), { limit: 100 });
    expect(before).toHaveLength(5);

    // Count every change to the namespace's objects from here on.
    const listed = await env.admin.list(resourceTypes.vaultLeases, { namespace: ns });
    const changes: string[] = [];
    const watches = await Promise.all(
      [resourceTypes.vaultLeases, resourceTypes.vaultCredentials].map(async (type) => {
        const rv = (await env.admin.list(type, { namespace: ns })).resourceVersion;
        return env.admin.watch(type, { namespace: ns, resourceVersion: rv }, (event) => {
          if (event.type !== 'BOOKMARK') changes.push(`${event.type} ${event.object.metadata.name}`);
        });
      }),
    );
    expect(listed.items).toHaveLength(5);

    await operator.stop({ abandon: true });
    operator = await env.startOperator();
    await eventually(
      'the new controller to lead',
      async () => (operator.isLeader ? true : undefined),
      30_000,
    );
    // Let it go through every object (its first pass enqueues them all).
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await operator.idle();
    for (const watch of watches) watch.abort();
    expect(changes).toEqual([]);
    const { leases: after } = await env.core.leases.list(ctx(ns), { limit: 100 });
    expect(after.map((l) => l.id).sort()).toEqual(before.map((l) => l.id).sort());
  });

  it('adopts a lease issued before a crash whose id never reached the status', async () => {
    const ns = 'orphan';
    await activeLeaseIn(ns);
    await operator.idle();
    const {
      leases: [issued],
    } = await env.core.leases.list(ctx(ns), { state: 'active', limit: 100 });
    expect(issued).toBeDefined();

    // The crash: the lease exists in Vault, but its id is not in the status.
    await operator.stop({ abandon: true });
    const cleared = await env.cp.kubectl([
      'patch',
      'vaultlease',
      'l',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      '{"status":{"leaseId":null}}',
    ]);
    expect(cleared.code).toBe(0);
    operator = await env.startOperator();
    const adopted = await eventually(
      'the lease to be adopted',
      async () => {
        const obj = await env.admin.get<{ status?: { leaseId?: string } }>(
          resourceTypes.vaultLeases,
          ns,
          'l',
        );
        return obj.status?.leaseId;
      },
      30_000,
    );
    expect(adopted).toBe(issued!.id);
    expect((await env.core.leases.list(ctx(ns), { state: 'active', limit: 100 })).leases).toHaveLength(1);
  });

  it('revokes an orphan of a credential the VaultLease no longer names, and issues the one it names', async () => {
    const ns = 'orphan-moved';
    await activeLeaseIn(ns);
    await apply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: c2}
spec: {type: generic, source: {generate: {}}, access: {serviceAccounts: [app]}}`,
    );
    await phaseOf(ns, 'c2', 'Ready', 'cred');
    await operator.idle();
    const {
      leases: [orphan],
    } = await env.core.leases.list(ctx(ns), { state: 'active', limit: 100 });
    expect(orphan?.credentialName).toBe('c');

    // The crash, and while the controller is down the VaultLease moves to c2.
    await operator.stop({ abandon: true });
    for (const args of [
      ['--subresource=status', '--type=merge', '-p', '{"status":{"leaseId":null}}'],
      ['--type=merge', '-p', '{"spec":{"credentialRef":{"name":"c2"}}}'],
    ]) {
      const patched = await env.cp.kubectl(['patch', 'vaultlease', 'l', '-n', ns, ...args]);
      expect(patched.code, patched.stderr).toBe(0);
    }
    operator = await env.startOperator();
    const held = await eventually(
      'a lease of c2',
      async () => {
        const obj = await env.admin.get<{ status?: { leaseId?: string } }>(
          resourceTypes.vaultLeases,
          ns,
          'l',
        );
        const id = obj.status?.leaseId;
        return id && id !== orphan!.id ? id : undefined;
      },
      30_000,
    );
    const active = (await env.core.leases.list(ctx(ns), { state: 'active', limit: 100 })).leases;
    expect(active.map((l) => [l.id, l.credentialName])).toEqual([[held, 'c2']]);
    expect((await env.core.leases.get(ctx(ns), orphan!.id)).state).toBe('revoked');
  });

  it("looks for an orphan among its workload's leases, not the tenant's (one list page among 20,000 others)", async () => {
    const ns = 'orphan-scale';
    await activeLeaseIn(ns);
    const uid = (await getLease(ns, 'l')).metadata.uid!;
    const {
      leases: [issued],
    } = await env.core.leases.list(ctx(ns), { state: 'active', limit: 100 });
    // Other workloads' leases in the same tenant, written straight into the store, with ids
    // that sort before any the server makes ('-' is base64url's first character).
    const record = JSON.parse((await env.store.get(keys.lease(ns, issued!.id)))!.value) as LeaseRecord;
    const other = { ...record, identity: { type: 'workload' as const, name: `${ns}/other` }, labels: {} };
    await writeLeases(env.store, ns, other, 'c', 20_000, (n) => `lease_---${String(n).padStart(6, '0')}`);

    const lists = async () =>
      (await env.core.audit.query(ctx(ns), { action: 'lease.list', limit: 1000 })).records.length;
    const before = await lists();
    const port = await env.port();
    const found = await port.findLeaseFor(ns, uid, issued!.identity);
    expect(found?.id).toBe(issued!.id);
    // A walk of the tenant's leases takes three pages (10,000 keys each) to get past them.
    expect((await lists()) - before).toBe(1);
  }, 120_000);

  it('runs one leader among two controllers and fails over when it stops', async () => {
    const second = await env.startOperator();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect([operator.isLeader, second.isLeader].filter(Boolean)).toHaveLength(1);
    expect(operator.isLeader).toBe(true);

    await operator.stop();
    await eventually('the standby to lead', async () => (second.isLeader ? true : undefined), 20_000);
    const ns = 'failover';
    await env.cp.createNamespace(ns);
    await apply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: c}
spec: {type: generic, source: {generate: {}}, access: {serviceAccounts: [app]}}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: after-failover}
spec: {credentialRef: {name: c}, serviceAccountName: app, ttl: 10m}`,
    );
    await phaseOf(ns, 'after-failover', 'Active');
    operator = second;
  });

  it('exposes reconcile, queue and phase metrics', async () => {
    await new Promise((resolve) => setTimeout(resolve, 5_500));
    const text = await operator.metrics.registry.metrics();
    expect(text).toContain('vault_operator_reconcile_duration_seconds_count{kind="VaultLease",result="ok"}');
    expect(text).toMatch(/vault_operator_vaultleases\{phase="Active"\} [1-9]/);
    expect(text).toContain('vault_operator_queue_depth');
    expect(text).not.toContain('sk_test');
  });
});
