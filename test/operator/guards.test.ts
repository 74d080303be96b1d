/**
 * The controller's guards, on a real control plane with the controller under its
 * least-privilege RBAC (deploy/rbac/operator.yaml, which the chart's RBAC is tested equal
 * to) and a real Vault store: no renewal hot loop, no import of a Secret that did not
 * consent, no Secret read outside the namespaces it is given (its token gets 403 there, and
 * the import says what to set), no cache of unrelated Secrets, one validation with the API, a re-created
 * VaultLease that is not held back by its predecessor, and a finalizer that cannot run says
 * why.
 */
import { writeFileSync } from 'node:fs';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { resourceTypes } from '../../src/k8s/api-client.js';
import type { KubeObject } from '../../src/k8s/resources.js';
import { VaultError } from '../../src/lib/errors.js';
import type { Operator } from '../../src/operator/manager.js';
import type { VaultPort } from '../../src/operator/vault-port.js';
import { eventually, type OperatorEnv, setupOperatorEnv } from './support.js';

let env: OperatorEnv;
let operator: Operator;
/** The namespaces the controller imports Secrets from (created with their RoleBinding by setup). */
const secretNamespaces = ['deputy', 'crowded'];
/** Vault as the controller sees it: the real core, unless a test makes revocation fail. */
const outage = { revoke: false };

const admin = { type: 'human' as const, name: 'test-admin' };
const ctx = (ns: string) => systemContext(ns, admin);

// biome-ignore lint/suspicious/noExplicitAny: test assertions read arbitrary status fields
type Obj = KubeObject & { status?: Record<string, any> };
type Kind = 'lease' | 'cred';
const typeOf = (kind: Kind) =>
  kind === 'lease' ? resourceTypes.vaultLeases : resourceTypes.vaultCredentials;
const get = (kind: Kind, ns: string, name: string) => env.admin.get<Obj>(typeOf(kind), ns, name);
const ready = (obj: Obj) => obj.status?.conditions?.find((c: { type: string }) => c.type === 'Ready');

async function until(kind: Kind, ns: string, name: string, test: (obj: Obj) => boolean, what: string) {
  let last: Obj | undefined;
  try {
    return await eventually(`${kind} ${ns}/${name} ${what}`, async () => {
      last = await get(kind, ns, name);
      return test(last) ? last : undefined;
    });
  } catch (err) {
    const logs = env.logs().split('\n').slice(-10).join('\n');
    throw new Error(`${(err as Error).message}\nlast status: ${JSON.stringify(last?.status)}\n${logs}`);
  }
}
const phaseOf = (kind: Kind, ns: string, name: string, phase: string) =>
  until(kind, ns, name, (o) => o.status?.phase === phase, `to be ${phase}`);

async function gone(kind: Kind, ns: string, name: string) {
  return eventually(`${kind} ${ns}/${name} to be gone`, async () => {
    try {
      await get(kind, ns, name);
      return undefined;
    } catch (err) {
      return (err as { statusCode?: number }).statusCode === 404 ? true : undefined;
    }
  });
}

async function apply(ns: string, yaml: string, as?: string) {
  return env.cp.kubectl(['apply', '-n', ns, ...(as ? [`--as=${as}`] : []), '-f', '-'], { input: yaml });
}
async function mustApply(ns: string, yaml: string) {
  const result = await apply(ns, yaml);
  expect(result.code, result.stderr).toBe(0);
}

/** Every change the API server records for one kind in a namespace, from now on. */
async function recordChanges(type: (typeof resourceTypes)[keyof typeof resourceTypes], ns: string) {
  const changes: string[] = [];
  const rv = (await env.admin.list(type, { namespace: ns })).resourceVersion;
  const handle = await env.admin.watch(type, { namespace: ns, resourceVersion: rv }, (event) => {
    if (event.type !== 'BOOKMARK') changes.push(`${event.type} ${event.object.metadata.name}`);
  });
  return { changes, stop: () => handle.abort() };
}

function withOutage(port: VaultPort): VaultPort {
  return {
    ...port,
    async revokeLease(tenant, id, reason) {
      if (outage.revoke) throw new VaultError('store_unavailable', 'the store is unavailable (test outage)');
      return port.revokeLease(tenant, id, reason);
    },
  };
}

beforeAll(async () => {
  env = await setupOperatorEnv({ secretNamespaces });
  operator = await env.startOperator({ vault: withOutage(await env.port()) });
  await eventually('a leader', async () => (operator.isLeader ? true : undefined));
}, 180_000);

afterAll(async () => {
  if (env && process.env.OPERATOR_TEST_LOG) writeFileSync(process.env.OPERATOR_TEST_LOG, env.logs());
  await env?.close();
});

describe('controller guards on a real control plane', { timeout: 90_000 }, () => {
  it('renews at a third of the TTL when renewBefore is not shorter than the default TTL', async () => {
    const ns = 'hot-loop';
    await env.cp.createNamespace(ns);
    await mustApply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: c}
spec: {type: generic, source: {generate: {}}, access: {agents: [bot], defaultTtl: 3s, maxTtl: 1m}}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: l}
spec:
  credentialRef: {name: c}
  identity: {type: agent, name: bot}
  renewal: {enabled: true, maxTtl: 40s, renewBefore: 5s}`,
    );
    const active = await phaseOf('lease', ns, 'l', 'Active');
    const adjusted = active.status?.conditions?.find(
      (c: { type: string }) => c.type === 'RenewBeforeAdjusted',
    );
    expect(adjusted?.reason).toBe('RenewBeforeNotShorterThanTtl');
    expect(adjusted?.message).toContain(
      'spec.renewal.renewBefore (5s) is not shorter than the lease TTL (3s',
    );

    const leases = await recordChanges(resourceTypes.vaultLeases, ns);
    const events = await recordChanges(
      { group: 'events.k8s.io', version: 'v1', plural: 'events', namespaced: true },
      ns,
    );
    const before = (await get('lease', ns, 'l')).status?.renewCount ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    leases.stop();
    events.stop();
    const after = await get('lease', ns, 'l');
    const renewals = (after.status?.renewCount ?? 0) - before;
    // A 3 s TTL renewed 1 s before expiry: a renewal every ~2 s, so about 4 in 8 s.
    expect(renewals).toBeGreaterThanOrEqual(2);
    expect(renewals).toBeLessThanOrEqual(6);
    expect(leases.changes.length).toBeLessThanOrEqual(8);
    expect(events.changes.length).toBeLessThanOrEqual(8);
    expect(after.status?.phase).toBe('Active');

    // Where CEL can see both durations, the API server refuses the combination outright.
    const refused = await apply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: refused}
spec:
  credentialRef: {name: c}
  identity: {type: agent, name: bot}
  renewal: {enabled: true, maxTtl: 10s, renewBefore: 10s}`,
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('spec.renewal.renewBefore must be shorter than spec.renewal.maxTtl');
  });

  it('imports a Secret only when the Secret consents, whatever its creator may do', async () => {
    const ns = 'deputy';
    const canary = 'deputy-canary-9f3c2e1a7b';
    // A developer who may manage VaultCredentials, but not read Secrets.
    await mustApply(
      ns,
      `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: vaultcredential-editor}
rules:
  - apiGroups: [vault.ghoststack.io]
    resources: [vaultcredentials]
    verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dev}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: vaultcredential-editor}
subjects: [{kind: User, name: dev}]
---
apiVersion: v1
kind: Secret
metadata: {name: db-root}
stringData: {password: ${canary}}`,
    );
    const canRead = await env.cp.kubectl(['auth', 'can-i', 'get', 'secrets', '-n', ns, '--as=dev']);
    expect(canRead.stdout.trim()).toBe('no');
    const created = await apply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: stolen}
spec: {type: password, source: {secretRef: {name: db-root, key: password}}, access: {agents: [dev-bot]}}`,
      'dev',
    );
    expect(created.code, created.stderr).toBe(0);

    const refused = await phaseOf('cred', ns, 'stolen', 'Failed');
    expect(ready(refused)?.reason).toBe('SecretNotImportable');
    expect(ready(refused)?.message).toContain('vault.ghoststack.io/import');
    expect(ready(refused)?.message).toContain('"stolen"');
    await expect(env.core.credentials.get(ctx(ns), 'stolen')).rejects.toMatchObject({ code: 'not_found' });

    // Consent for another VaultCredential is not consent for this one.
    const label = await env.cp.kubectl([
      'label',
      'secret',
      'db-root',
      '-n',
      ns,
      'vault.ghoststack.io/import=true',
    ]);
    expect(label.code, label.stderr).toBe(0);
    const other = await env.cp.kubectl([
      'annotate',
      'secret',
      'db-root',
      '-n',
      ns,
      'vault.ghoststack.io/import-for=billing-db, reports',
    ]);
    expect(other.code, other.stderr).toBe(0);
    const notNamed = await until(
      'cred',
      ns,
      'stolen',
      // The label lands before the annotation: wait for the refusal that has seen both.
      (o) =>
        ready(o)?.reason === 'ImportNotAllowed' && String(ready(o)?.message).includes('billing-db, reports'),
      'to be refused by the annotation',
    );
    expect(notNamed.status?.phase).toBe('Failed');
    expect(ready(notNamed)?.message).toContain('billing-db, reports');
    await expect(env.core.credentials.get(ctx(ns), 'stolen')).rejects.toMatchObject({ code: 'not_found' });

    // The Secret's owner names it: now it is imported.
    const consent = await env.cp.kubectl([
      'annotate',
      'secret',
      'db-root',
      '-n',
      ns,
      '--overwrite',
      'vault.ghoststack.io/import-for=reports,stolen',
    ]);
    expect(consent.code, consent.stderr).toBe(0);
    const imported = await phaseOf('cred', ns, 'stolen', 'Ready');
    expect(imported.status?.version).toBe(1);
    expect((await env.core.credentials.get(ctx(ns), 'stolen')).currentVersion).toBe(1);

    // No value in any object, event or log line.
    const dump = await env.cp.kubectl([
      'get',
      'vaultcredentials,events.events.k8s.io',
      '-n',
      ns,
      '-o',
      'json',
    ]);
    expect(dump.stdout).toContain('SecretNotImportable');
    expect(dump.stdout).not.toContain(canary);
    expect(env.logs()).not.toContain(canary);
  });

  it('manages an API-made credential (source.external) only when the credential consents', async () => {
    const ns = 'external-consent';
    await env.cp.createNamespace(ns);
    await env.core.tenants.ensure(ns);
    // Made through the API by the tenant's people; its labels decide other policies.
    await env.core.credentials.create(ctx(ns), {
      name: 'prod-db',
      type: 'password',
      value: 'api-made-secret-value',
      metadata: { env: 'prod' },
    });
    const apiLease = await env.core.leases.create(ctx(ns), {
      credentialName: 'prod-db',
      ttl: '1h',
      renewable: true,
    });
    // Whoever may create VaultCredentials in the namespace, but has no right in Vault.
    await mustApply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: prod-db}
spec:
  type: password
  metadata: {env: dev}
  source: {external: {}}
  access: {serviceAccounts: [mallory], maxTtl: 1000h}`,
    );
    const refused = await phaseOf('cred', ns, 'prod-db', 'Failed');
    expect(ready(refused)?.reason).toBe('ExternalNotAllowed');
    expect(ready(refused)?.message).toContain('vault.ghoststack.io/external=true');
    const untouched = await env.core.credentials.get(ctx(ns), 'prod-db');
    expect(untouched.metadata).toEqual({ env: 'prod' });
    expect(untouched.leases ?? {}).toEqual({});
    await expect(env.core.policies.get(ctx(ns), 'k8s-vaultcredential-prod-db')).rejects.toMatchObject({
      code: 'not_found',
    });
    // Deleting it revokes nobody's lease.
    const del = await env.cp.kubectl(['delete', '-n', ns, 'vaultcredential', 'prod-db', '--wait=true']);
    expect(del.code, del.stderr).toBe(0);
    expect((await env.core.leases.get(ctx(ns), apiLease.id)).state).toBe('active');

    // With the credential's consent, set through the API, the same object is Ready.
    await env.core.credentials.update(ctx(ns), 'prod-db', {
      metadata: { env: 'prod', 'vault.ghoststack.io/external': 'true' },
    });
    await mustApply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: prod-db}
spec: {type: password, source: {external: {}}, access: {serviceAccounts: [billing]}}`,
    );
    const accepted = await phaseOf('cred', ns, 'prod-db', 'Ready');
    expect(accepted.status?.identities).toEqual(['workload:system:serviceaccount:external-consent:billing']);
  });

  it('restarts on expiry only a workload that reads the VaultLease, not any its creator names', async () => {
    const ns = 'restart-consent';
    await env.cp.createNamespace(ns);
    const deployment = (name: string, annotations: string) => `apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}}
spec:
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}, annotations: {${annotations}}}
    spec: {containers: [{name: app, image: registry.example/app:1}]}`;
    await mustApply(ns, deployment('victim', 'team: payments'));
    await mustApply(ns, deployment('reader', 'vault.ghoststack.io/lease-token: l-reader'));
    const uid = async (name: string) =>
      (
        await env.admin.get<Obj>(
          { group: 'apps', version: 'v1', plural: 'deployments', namespaced: true },
          ns,
          name,
        )
      ).metadata.uid;
    const lease = async (name: string, owner: string) =>
      mustApply(
        ns,
        `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: c-${name}}
spec: {type: generic, source: {generate: {}}, access: {agents: [bot], defaultTtl: 2s, maxTtl: 2s}}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata:
  name: ${name}
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: ${owner}, uid: ${await uid(owner)}}]
spec:
  credentialRef: {name: c-${name}}
  identity: {type: agent, name: bot}
  ttl: 2s
  onExpiry: restart`,
      );
    const restartedAt = async (name: string) =>
      (
        await env.admin.get<
          Obj & { spec: { template: { metadata: { annotations?: Record<string, string> } } } }
        >({ group: 'apps', version: 'v1', plural: 'deployments', namespaced: true }, ns, name)
      ).spec.template.metadata.annotations?.['vault.ghoststack.io/restartedAt'];
    await lease('l-victim', 'victim');
    await lease('l-reader', 'reader');
    await phaseOf('lease', ns, 'l-victim', 'Expired');
    await phaseOf('lease', ns, 'l-reader', 'Expired');
    await eventually('the reader restarted', async () => ((await restartedAt('reader')) ? true : undefined));
    expect(await restartedAt('victim')).toBeUndefined();
  });

  it('reads no Secret outside the namespaces it is given: 403 for its token, a condition naming the value', async () => {
    const ns = 'ungranted';
    const canary = 'ungranted-canary-71c04d';
    await env.cp.createNamespace(ns);
    // Where Vault's own credentials would live: the operator's namespace.
    await mustApply(
      'vault-system',
      `apiVersion: v1
kind: Secret
metadata: {name: vault-root-key}
stringData: {root-key: ${canary}}`,
    );
    // Consent is no grant: the Secret is labelled and names the VaultCredential.
    await mustApply(
      ns,
      `apiVersion: v1
kind: Secret
metadata:
  name: api
  labels: {vault.ghoststack.io/import: "true"}
  annotations: {vault.ghoststack.io/import-for: api-key}
stringData: {key: ${canary}}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: api-key}
spec: {type: api-key, source: {secretRef: {name: api, key: key}}}`,
    );
    const refused = await phaseOf('cred', ns, 'api-key', 'Failed');
    expect(ready(refused)?.reason).toBe('SecretNamespaceNotGranted');
    for (const hint of ['"ungranted"', 'controller.secretImport.namespaces', '--secret-namespaces']) {
      expect(ready(refused)?.message).toContain(hint);
    }
    await expect(env.core.credentials.get(ctx(ns), 'api-key')).rejects.toMatchObject({ code: 'not_found' });
    const events = await eventually('the Warning event', async () => {
      const listed = await env.cp.kubectl(['get', 'events.events.k8s.io', '-n', ns, '-o', 'json']);
      const items = JSON.parse(listed.stdout).items as Array<{ type: string; reason: string }>;
      return items.some((e) => e.reason === 'SecretNamespaceNotGranted') ? items : undefined;
    });
    expect(events.find((e) => e.reason === 'SecretNamespaceNotGranted')?.type).toBe('Warning');

    // The controller's own token, as an attacker holding it would use it.
    const core = env.operatorKubeConfig.makeApiClient(CoreV1Api);
    const status = (call: Promise<unknown>) =>
      call.then(
        () => 200,
        (err: { code?: number }) => err.code,
      );
    expect(
      await status(core.readNamespacedSecret({ name: 'vault-root-key', namespace: 'vault-system' })),
    ).toBe(403);
    expect(await status(core.listNamespacedSecret({ namespace: 'vault-system' }))).toBe(403);
    expect(await status(core.readNamespacedSecret({ name: 'api', namespace: ns }))).toBe(403);
    expect(await status(core.listSecretForAllNamespaces())).toBe(403);
    // Where it was given Secrets, it reads them.
    expect(await status(core.listNamespacedSecret({ namespace: 'deputy' }))).toBe(200);
    expect(env.logs()).not.toContain(canary);
  });

  it('caches only the Secrets that consent to an import, not every Secret of the cluster', async () => {
    const ns = 'crowded';
    const filler = 'x'.repeat(64 * 1024);
    const unrelated = Array.from(
      { length: 40 },
      (_, i) => `---
apiVersion: v1
kind: Secret
metadata: {name: unrelated-${i}}
stringData: {blob: ${filler}}`,
    ).join('\n');
    await mustApply(
      ns,
      `${unrelated}
---
apiVersion: v1
kind: Secret
metadata:
  name: wanted
  labels: {vault.ghoststack.io/import: "true"}
  annotations: {vault.ghoststack.io/import-for: api-key}
stringData: {key: crowded-value-5d1e}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: api-key}
spec: {type: api-key, source: {secretRef: {name: wanted, key: key}}}`,
    );
    await phaseOf('cred', ns, 'api-key', 'Ready');
    let consenting = 0;
    for (const namespace of secretNamespaces) {
      consenting += (
        await env.admin.list(resourceTypes.secrets, {
          namespace,
          labelSelector: 'vault.ghoststack.io/import=true',
        })
      ).items.length;
    }
    const all = await env.admin.list(resourceTypes.secrets);
    expect(all.items.length).toBeGreaterThanOrEqual(41);
    const cached = await eventually('the informer gauges', async () => {
      const text = await operator.metrics.registry.metrics();
      const match = text.match(/vault_operator_informer_objects\{resource="secrets"\} (\d+)/);
      return match && Number(match[1]) === consenting ? Number(match[1]) : undefined;
    });
    // None of the 40 unrelated Secrets is held by the controller.
    expect(all.items.length - cached).toBeGreaterThanOrEqual(40);
  });

  it('refuses at the API server what the Vault API would refuse', async () => {
    const ns = 'bounds';
    await env.cp.createNamespace(ns);
    // 31 labels and the owner label the controller adds make Vault's limit of 32.
    const labels = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`label-${i}`, 'v']));
    const tooManyLabels = await apply(
      ns,
      JSON.stringify({
        apiVersion: 'vault.ghoststack.io/v1alpha1',
        kind: 'VaultCredential',
        metadata: { name: 'many-labels' },
        spec: { type: 'generic', metadata: labels, source: { generate: {} } },
      }),
    );
    expect(tooManyLabels.code).not.toBe(0);
    expect(tooManyLabels.stderr).toMatch(/spec\.metadata: Too many: 32: must have at most 31 items/);

    const longName = `n${'a'.repeat(232)}`; // 233 characters: the longest a policy name allows
    for (const [name, ok] of [
      [longName, true],
      [`${longName}b`, false],
    ] as const) {
      const result = await apply(
        ns,
        `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: ${name}}
spec: {type: generic, source: {generate: {}}, access: {agents: [bot]}}`,
      );
      if (ok) expect(result.code, result.stderr).toBe(0);
      else {
        expect(result.code).not.toBe(0);
        expect(result.stderr).toContain('a VaultCredential name is at most 233 characters');
      }
    }
    const longest = await phaseOf('cred', ns, longName, 'Ready');
    expect(longest.status?.policy).toBe(`k8s-vaultcredential-${longName}`);
  });

  it('refuses with a condition, and creates nothing in Vault, what the API would refuse', async () => {
    // The identity name system:serviceaccount:<namespace>:<name> depends on the namespace,
    // which CEL cannot see: the controller validates it with the API's schemas.
    const ns = `long-${'n'.repeat(58)}`;
    const sa = `sa-${'s'.repeat(197)}`;
    await env.cp.createNamespace(ns);
    await mustApply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: c}
spec: {type: generic, source: {generate: {}}, access: {serviceAccounts: [${sa}]}}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: l}
spec: {credentialRef: {name: c}, serviceAccountName: ${sa}, ttl: 5m}`,
    );
    const cred = await phaseOf('cred', ns, 'c', 'Failed');
    expect(ready(cred)?.reason).toBe('InvalidSpec');
    expect(ready(cred)?.message).toContain('spec.access.serviceAccounts[0]');
    expect(ready(cred)?.message).toContain('an identity name is at most 253 characters');
    const lease = await phaseOf('lease', ns, 'l', 'Failed');
    expect(ready(lease)?.reason).toBe('InvalidSpec');
    expect(ready(lease)?.message).toContain('spec.serviceAccountName');
    await expect(env.core.credentials.get(ctx(ns), 'c')).rejects.toMatchObject({ code: 'not_found' });
    expect(
      await env.core.leases
        .list(ctx(ns), { limit: 10 })
        .then((page) => page.leases)
        .catch(() => []),
    ).toEqual([]);
    expect(
      await env.core.identities
        .list(ctx(ns), { limit: 10 })
        .then((page) => page.identities)
        .catch(() => []),
    ).toEqual([]);
  });

  it('makes a VaultLease re-created under the same name Active at once', async () => {
    const ns = 'recreate';
    await env.cp.createNamespace(ns);
    await mustApply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: c}
spec: {type: generic, source: {generate: {}}, access: {agents: [bot]}}`,
    );
    await phaseOf('cred', ns, 'c', 'Ready');
    const lease = `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: again}
spec: {credentialRef: {name: c}, identity: {type: agent, name: bot}, ttl: 10m}`;
    const waits: number[] = [];
    for (let round = 0; round < 3; round++) {
      const started = Date.now();
      await mustApply(ns, lease);
      await phaseOf('lease', ns, 'again', 'Active');
      waits.push(Date.now() - started);
      const del = await env.cp.kubectl(['delete', 'vaultlease', 'again', '-n', ns, '--wait=false']);
      expect(del.code, del.stderr).toBe(0);
      await gone('lease', ns, 'again');
    }
    expect(Math.max(...waits), `time to Active per round: ${waits.join(', ')} ms`).toBeLessThan(4_000);
  });

  it('says on the object why its finalizer cannot run, and logs which object', async () => {
    const ns = 'stuck';
    await env.cp.createNamespace(ns);
    await mustApply(
      ns,
      `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: c}
spec: {type: generic, source: {generate: {}}, access: {agents: [bot]}}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: held}
spec: {credentialRef: {name: c}, identity: {type: agent, name: bot}, ttl: 10m}`,
    );
    const active = await phaseOf('lease', ns, 'held', 'Active');
    outage.revoke = true;
    try {
      const del = await env.cp.kubectl(['delete', 'vaultlease', 'held', '-n', ns, '--wait=false']);
      expect(del.code, del.stderr).toBe(0);
      const stuck = await until(
        'lease',
        ns,
        'held',
        (o) => ready(o)?.reason === 'FinalizerFailed',
        'to say why it cannot be deleted',
      );
      expect(ready(stuck)?.status).toBe('False');
      expect(ready(stuck)?.message).toContain('could not revoke');
      expect(ready(stuck)?.message).toContain('the store is unavailable');
      expect(ready(stuck)?.message).toContain('vault.ghoststack.io/revoke');
      // The log line follows the status patch; on a busy machine, by a moment.
      const findLine = () =>
        env
          .logs()
          .split('\n')
          .find((l) => l.includes('reconcile failed') && l.includes('stuck/held'));
      for (let i = 0; i < 100 && !findLine(); i++) await new Promise((r) => setTimeout(r, 100));
      const line = findLine();
      expect(line, 'a log line naming the object').toBeDefined();
      expect(line).not.toContain('[redacted]');
    } finally {
      outage.revoke = false;
    }
    await gone('lease', ns, 'held');
    expect((await env.core.leases.get(ctx(ns), active.status?.leaseId)).state).toBe('revoked');
  });
});
