/**
 * The chart rendered offline (`helm lint`, `helm template`) over a matrix of values, parsed
 * and checked object by object; and the values schema refusing bad values readably.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { restrictedViolations } from './pod-security.js';
import {
  chartDir,
  find,
  helm,
  type K8sObject,
  normalizeRule,
  type PolicyRule,
  parseManifests,
  podTemplate,
  rbacRules,
  render,
  repoRoot,
  valueFlags,
  workloadKinds,
} from './support.js';

const externalEtcd = {
  'storage.type': 'external',
  'storage.external.endpoints': ['https://etcd-a.db.svc:2379', 'https://etcd-b.db.svc:2379'],
  'storage.external.tls.existingSecret': 'etcd-client',
};
const certManager = { 'webhook.certManager.enabled': true };
const oneReplica = {
  'server.replicas': 1,
  'controller.replicas': 1,
  'webhook.replicas': 1,
  'etcd.replicas': 1,
};

const matrix: Array<{ name: string; values: Record<string, unknown> }> = [
  { name: 'defaults', values: {} },
  { name: 'external etcd', values: externalEtcd },
  { name: 'cert-manager', values: certManager },
  { name: 'one replica', values: oneReplica },
];

const b64 = (text: string) => Buffer.from(text, 'base64');
/** A container's plain `env` entries as a record (valueFrom entries left out). */
const envOf = (container: { env?: { name: string; value?: string }[] }) =>
  Object.fromEntries(
    (container.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]),
  );

describe('helm lint', () => {
  it.each(matrix)('passes with --strict for $name', async ({ values }) => {
    const lint = await helm(['lint', '--strict', chartDir, ...valueFlags(values)]);
    expect(lint.code, lint.stdout + lint.stderr).toBe(0);
    expect(lint.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
  });

  it('fails for values the schema refuses', async () => {
    const lint = await helm(['lint', chartDir, ...valueFlags({ 'server.replicas': 0 })]);
    expect(lint.code).not.toBe(0);
    expect(lint.stdout + lint.stderr).toContain("at '/server/replicas': minimum: got 0, want 1");
  });
});

describe.each(matrix)('helm template: $name', ({ values }) => {
  let objects: K8sObject[];
  const rendered = async () => {
    objects ??= await render(values);
    return objects;
  };

  it('renders the API server, controller and webhook with their ServiceAccounts', async () => {
    const objs = await rendered();
    const server = find(objs, 'Deployment', 'vault-server');
    expect(server.spec.replicas).toBe(values['server.replicas'] ?? 2);
    expect(podTemplate(server).spec.containers[0].args.slice(0, 1)).toEqual(['server']);
    expect(find(objs, 'Service', 'vault').spec.ports[0]).toMatchObject({ port: 8200, targetPort: 'http' });

    const controller = find(objs, 'Deployment', 'vault-controller');
    expect(controller.spec.replicas).toBe(values['controller.replicas'] ?? 2);
    expect(podTemplate(controller).spec.containers[0].args).toEqual(
      expect.arrayContaining(['operator', 'run', '--leader-election-name=vault-controller']),
    );
    const webhook = find(objs, 'Deployment', 'vault-webhook');
    expect(podTemplate(webhook).spec.containers[0].args[0]).toBe('webhook');
    find(objs, 'Service', 'vault-webhook');

    for (const workload of objs.filter((o) => workloadKinds.includes(o.kind))) {
      const sa = podTemplate(workload).spec.serviceAccountName;
      expect(sa, `${workload.metadata.name} names its ServiceAccount`).toBeTruthy();
      find(objs, 'ServiceAccount', sa);
    }
  });

  it('gives every pod template the restricted security context', async () => {
    const workloads = (await rendered()).filter((o) => workloadKinds.includes(o.kind));
    expect(workloads.length).toBeGreaterThanOrEqual(3);
    for (const workload of workloads) {
      expect(restrictedViolations(podTemplate(workload).spec), workload.metadata.name).toEqual([]);
    }
  });

  it('spreads every workload with a preferred pod anti-affinity on its own pods', async () => {
    for (const workload of (await rendered()).filter((o) => workloadKinds.includes(o.kind))) {
      const template = podTemplate(workload);
      const terms = template.spec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution;
      expect(terms, workload.metadata.name).toHaveLength(1);
      expect(terms[0].podAffinityTerm.topologyKey).toBe('kubernetes.io/hostname');
      const selector: Record<string, string> = terms[0].podAffinityTerm.labelSelector.matchLabels;
      for (const [key, value] of Object.entries(selector))
        expect(template.metadata.labels?.[key]).toBe(value);
    }
  });

  it('has a PodDisruptionBudget for each workload with more than one replica, and none otherwise', async () => {
    const objs = await rendered();
    const pdbs = objs.filter((o) => o.kind === 'PodDisruptionBudget');
    for (const workload of objs.filter((o) => workloadKinds.includes(o.kind))) {
      const labels = podTemplate(workload).metadata.labels ?? {};
      const covering = pdbs.filter((pdb) =>
        Object.entries(pdb.spec.selector.matchLabels as Record<string, string>).every(
          ([k, v]) => labels[k] === v,
        ),
      );
      if (workload.spec.replicas > 1) {
        expect(covering, workload.metadata.name).toHaveLength(1);
        expect(covering[0]?.spec.minAvailable).toBeGreaterThanOrEqual(1);
        expect(covering[0]?.spec.minAvailable).toBeLessThan(workload.spec.replicas);
      } else {
        expect(covering, workload.metadata.name).toHaveLength(0);
      }
    }
  });

  it('grants no wildcard in any Role or ClusterRole', async () => {
    const rules = rbacRules(await rendered());
    expect(rules.length).toBeGreaterThan(0);
    for (const { owner, rule } of rules) {
      for (const list of [rule.verbs, rule.resources ?? [], rule.apiGroups ?? [], rule.resourceNames ?? []]) {
        expect(
          list.filter((item) => item.includes('*')),
          owner,
        ).toEqual([]);
      }
      expect(rule.nonResourceURLs, owner).toBeUndefined();
    }
  });

  it('lets no ServiceAccount read the release namespace Secrets (root key, etcd certificates) but by name', async () => {
    const objs = await rendered();
    const grants: string[] = [];
    for (const binding of objs.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
      if (binding.kind === 'RoleBinding' && binding.metadata.namespace !== 'vault') continue;
      const role = find(objs, binding.roleRef.kind, binding.roleRef.name);
      for (const rule of role.rules as PolicyRule[]) {
        const onSecrets = (rule.apiGroups ?? []).includes('') && (rule.resources ?? []).includes('secrets');
        const reads = rule.verbs.filter((verb) => ['get', 'list', 'watch'].includes(verb));
        if (!onSecrets || reads.length === 0) continue;
        const who = binding.subjects.map((s: { name: string }) => s.name).join(',');
        grants.push(`${who}: ${reads.join(',')} ${rule.resourceNames?.join(',') ?? 'ALL'}`);
      }
    }
    // Only the webhook, on its own certificate (it rotates it); nothing on the others.
    expect(grants.filter((grant) => grant !== 'vault-webhook: get,list,watch vault-webhook-tls')).toEqual([]);
  });

  it('binds every role to a ServiceAccount the chart creates', async () => {
    const objs = await rendered();
    for (const binding of objs.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
      find(objs, binding.roleRef.kind, binding.roleRef.name);
      for (const subject of binding.subjects) {
        expect(subject.kind).toBe('ServiceAccount');
        expect(subject.namespace).toBe('vault');
        find(objs, 'ServiceAccount', subject.name);
      }
    }
  });

  it('selects pods with every Service', async () => {
    const objs = await rendered();
    const podLabels = objs
      .filter((o) => workloadKinds.includes(o.kind))
      .map((w) => podTemplate(w).metadata.labels);
    for (const service of objs.filter((o) => o.kind === 'Service')) {
      const selector = Object.entries(service.spec.selector as Record<string, string>);
      expect(
        podLabels.some((labels) => selector.every(([k, v]) => labels?.[k] === v)),
        `Service ${service.metadata.name} selects a workload`,
      ).toBe(true);
    }
  });

  it('registers an opt-in, fail-closed mutating webhook that skips the release namespace', async () => {
    const config = find(await rendered(), 'MutatingWebhookConfiguration', 'vault-vault');
    expect(config.webhooks).toHaveLength(1);
    const [hook] = config.webhooks;
    expect(hook).toMatchObject({
      objectSelector: { matchLabels: { 'vault.ghoststack.io/inject': 'true' } },
      failurePolicy: 'Fail',
      reinvocationPolicy: 'IfNeeded',
      timeoutSeconds: 10,
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
      clientConfig: { service: { name: 'vault-webhook', namespace: 'vault' } },
      rules: [
        { operations: ['CREATE'], resources: ['pods'], apiGroups: [''], apiVersions: ['v1'] },
        // kubectl debug adds ephemeral containers to running pods: reviewed too.
        {
          operations: ['UPDATE'],
          resources: ['pods/ephemeralcontainers'],
          apiGroups: [''],
          apiVersions: ['v1'],
        },
      ],
    });
    expect(hook.namespaceSelector.matchExpressions).toEqual([
      {
        key: 'kubernetes.io/metadata.name',
        operator: 'NotIn',
        values: ['vault', 'kube-system', 'kube-public', 'kube-node-lease'],
      },
    ]);
  });

  it('reads the root key from a generated Secret that helm keeps', async () => {
    const objs = await rendered();
    const secret = find(objs, 'Secret', 'vault-root-key');
    expect(secret.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
    // Secret data is base64 of the key text, which is itself base64 of 32 random bytes.
    expect(b64(b64(secret.data['root-key']).toString('utf8'))).toHaveLength(32);
    const env = podTemplate(find(objs, 'Deployment', 'vault-server')).spec.containers[0].env;
    expect(env).toContainEqual({
      name: 'VAULT_ROOT_KEY',
      valueFrom: { secretKeyRef: { name: 'vault-root-key', key: 'root-key' } },
    });
  });
});

describe('helm template: the controller is a client of the API', () => {
  it('holds no root key and no store credentials, and logs in with a token only Vault accepts', async () => {
    const objs = await render();
    const pod = podTemplate(find(objs, 'Deployment', 'vault-controller')).spec;
    const container = pod.containers[0];
    const names = (container.env ?? []).map((e: { name: string }) => e.name);
    expect(
      names.filter(
        (n: string) => n.startsWith('VAULT_ROOT') || n.startsWith('VAULT_ETCD') || n === 'VAULT_STORE',
      ),
    ).toEqual([]);
    expect(JSON.stringify(pod)).not.toMatch(/root-key|etcd/);
    expect(container.args).toEqual(
      expect.arrayContaining([
        '--vault-addr=https://vault.vault.svc:8200',
        '--ca-file=/etc/vault/server-ca/ca.crt',
        '--token-file=/var/run/secrets/vault.ghoststack.io/serviceaccount/token',
      ]),
    );
    expect(container.args.some((a: string) => a.startsWith('--cluster'))).toBe(false);
    const token = pod.volumes.find((v: { name: string }) => v.name === 'vault-token');
    expect(token.projected.sources).toEqual([
      { serviceAccountToken: { audience: 'vault', expirationSeconds: 3600, path: 'token' } },
    ]);
    // Only the CA of the API's certificate, never its key.
    const ca = pod.volumes.find((v: { name: string }) => v.name === 'server-ca');
    expect(ca.secret.items).toEqual([{ key: 'ca.crt', path: 'ca.crt' }]);
    const serverArgs: string[] = podTemplate(find(objs, 'Deployment', 'vault-server')).spec.containers[0]
      .args;
    expect(serverArgs).toEqual(
      expect.arrayContaining(['--kubernetes-auth', '--kubernetes-controller=vault:vault-controller']),
    );
  });

  it('names the cluster to the server and the controller with clusterName', async () => {
    const objs = await render({ clusterName: 'prod-eu' });
    const args: string[] = podTemplate(find(objs, 'Deployment', 'vault-controller')).spec.containers[0].args;
    expect(args).toContain('--cluster=prod-eu');
    const serverArgs: string[] = podTemplate(find(objs, 'Deployment', 'vault-server')).spec.containers[0]
      .args;
    expect(serverArgs).toEqual(
      expect.arrayContaining([
        '--kubernetes-cluster=prod-eu',
        '--kubernetes-controller=prod-eu=vault:vault-controller',
      ]),
    );
    expect(serverArgs).not.toContain('--kubernetes-auth');
    // Injected agents log in naming the cluster too.
    const webhookArgs: string[] = podTemplate(find(objs, 'Deployment', 'vault-webhook')).spec.containers[0]
      .args;
    expect(webhookArgs).toContain('--cluster-name=prod-eu');
  });
});

describe('helm template: controller RBAC', () => {
  const reference = parseManifests(readFileSync(join(repoRoot, 'deploy', 'rbac', 'operator.yaml'), 'utf8'));
  const rulesOf = (obj: K8sObject, renames: Record<string, string> = {}) =>
    (obj.rules as PolicyRule[]).map((rule) => normalizeRule(rule, renames));

  const referenceRole = (name: string) => find(reference, 'ClusterRole', name);
  const controllerSubject = { kind: 'ServiceAccount', name: 'vault-controller', namespace: 'vault' };
  const bindingsOfController = (objs: K8sObject[]) =>
    objs.filter(
      (o) =>
        (o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') &&
        (o.subjects as Array<Record<string, string>>).some(
          (s) => s.kind === 'ServiceAccount' && s.name === 'vault-controller' && s.namespace === 'vault',
        ),
    );
  /** Where (a namespace, or `*` for all) a binding lets the controller read Secrets. */
  const secretReach = (objs: K8sObject[]) =>
    bindingsOfController(objs)
      .filter((binding) =>
        (find(objs, binding.roleRef.kind, binding.roleRef.name).rules as PolicyRule[]).some(
          (rule) =>
            (rule.apiGroups ?? []).includes('') &&
            (rule.resources ?? []).includes('secrets') &&
            rule.verbs.some((verb) => ['get', 'list', 'watch'].includes(verb)),
        ),
      )
      .map((binding) => (binding.kind === 'ClusterRoleBinding' ? '*' : binding.metadata.namespace))
      .sort();

  it('grants exactly what deploy/rbac/operator.yaml grants, cluster-wide, and no Secrets there', async () => {
    const chart = find(await render(), 'ClusterRole', 'vault-vault-controller');
    expect(rulesOf(chart)).toEqual(rulesOf(referenceRole('vault-operator')));
    expect(JSON.stringify(chart.rules)).not.toContain('secrets');
  });

  it('reads Secrets in no namespace by default: no binding, no --secret-namespaces', async () => {
    const objs = await render();
    expect(secretReach(objs)).toEqual([]);
    // The reader role exists (equal to deploy/rbac's) but is bound nowhere.
    const reader = find(objs, 'ClusterRole', 'vault-vault-controller-secret-reader');
    expect(rulesOf(reader)).toEqual(rulesOf(referenceRole('vault-operator-secret-reader')));
    expect(objs.filter((o) => o.roleRef?.name === 'vault-vault-controller-secret-reader')).toEqual([]);
    const args: string[] = podTemplate(find(objs, 'Deployment', 'vault-controller')).spec.containers[0].args;
    expect(args.filter((a) => a.startsWith('--secret-namespaces'))).toEqual([]);
  });

  it('reads Secrets only in controller.secretImport.namespaces, one RoleBinding each, and is told so', async () => {
    const objs = await render({ 'controller.secretImport.namespaces': ['shop', 'billing'] });
    expect(secretReach(objs)).toEqual(['billing', 'shop']);
    for (const namespace of ['shop', 'billing']) {
      const binding = objs.find(
        (o) => o.kind === 'RoleBinding' && o.metadata.namespace === namespace,
      ) as K8sObject;
      expect(binding.metadata.name).toBe('vault-controller-secret-import');
      expect(binding.roleRef).toEqual({
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: 'vault-vault-controller-secret-reader',
      });
      expect(binding.subjects).toEqual([controllerSubject]);
    }
    const args: string[] = podTemplate(find(objs, 'Deployment', 'vault-controller')).spec.containers[0].args;
    expect(args).toContain('--secret-namespaces=shop,billing');
  });

  it.each([
    [
      'the release namespace',
      'vault',
      'the release namespace: it holds the root key and the etcd client certificate',
    ],
    ['kube-system', 'kube-system', "which holds the cluster's own credentials"],
  ])('refuses to let the controller read Secrets in %s, naming the value', async (_, namespace, why) => {
    const result = await helm([
      'template',
      'vault',
      chartDir,
      '--namespace',
      'vault',
      ...valueFlags({ 'controller.secretImport.namespaces': ['shop', namespace] }),
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`controller.secretImport.namespaces names "${namespace}"`);
    expect(result.stderr).toContain(why);
  });

  it('grants exactly what deploy/rbac/operator.yaml grants for leader election, on its own Lease', async () => {
    const reference_ = reference.find((o) => o.kind === 'Role')!;
    const objs = await render();
    const chart = find(objs, 'Role', 'vault-controller-leader-election');
    expect(chart.metadata.namespace).toBe('vault');
    // The reference names its Lease vault-operator; the chart names it after the release.
    expect(rulesOf(chart)).toEqual(rulesOf(reference_, { 'vault-operator': 'vault-controller' }));
    const args: string[] = podTemplate(find(objs, 'Deployment', 'vault-controller')).spec.containers[0].args;
    expect(args).toContain('--leader-election-name=vault-controller');
    expect(args).toContain('--leader-election-namespace=vault');
  });
});

describe('helm template: storage', () => {
  it('bundles a 3-member etcd with TLS, persistent volumes and a quorum-keeping budget', async () => {
    const objs = await render();
    const etcd = find(objs, 'StatefulSet', 'vault-etcd');
    expect(etcd.spec).toMatchObject({
      replicas: 3,
      serviceName: 'vault-etcd',
      podManagementPolicy: 'Parallel',
    });
    expect(etcd.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('8Gi');
    const args: string[] = podTemplate(etcd).spec.containers[0].args;
    expect(args).toEqual(
      expect.arrayContaining([
        '--client-cert-auth=true',
        '--peer-client-cert-auth=true',
        '--listen-client-urls=https://0.0.0.0:2379',
        '--max-txn-ops=1024',
        '--initial-cluster=' +
          [0, 1, 2].map((i) => `vault-etcd-${i}=https://vault-etcd-${i}.vault-etcd.vault.svc:2380`).join(','),
      ]),
    );
    expect(podTemplate(etcd).spec.containers[0].image).toMatch(/^registry\.k8s\.io\/etcd:3\.6\./);
    expect(find(objs, 'Service', 'vault-etcd').spec).toMatchObject({
      clusterIP: 'None',
      publishNotReadyAddresses: true,
    });
    expect(find(objs, 'PodDisruptionBudget', 'vault-etcd').spec.minAvailable).toBe(2);

    const serverEnv = envOf(podTemplate(find(objs, 'Deployment', 'vault-server')).spec.containers[0]);
    expect(serverEnv).toMatchObject({
      VAULT_STORE: 'etcd',
      VAULT_ETCD_ENDPOINTS: [0, 1, 2]
        .map((i) => `https://vault-etcd-${i}.vault-etcd.vault.svc:2379`)
        .join(','),
      VAULT_ETCD_CERT_FILE: '/etc/vault/etcd/tls.crt',
      // The server is told the limit its etcd runs with.
      VAULT_ETCD_MAX_TXN_OPS: '1024',
    });
    const raised = await render({ 'etcd.maxTxnOps': 4096 });
    expect(podTemplate(find(raised, 'StatefulSet', 'vault-etcd')).spec.containers[0].args).toContain(
      '--max-txn-ops=4096',
    );
    expect(envOf(podTemplate(find(raised, 'Deployment', 'vault-server')).spec.containers[0])).toMatchObject({
      VAULT_ETCD_MAX_TXN_OPS: '4096',
    });
    // `helm upgrade --reuse-values` from a chart without the value renders without it: same limit.
    const reused = await render({
      'etcd.maxTxnOps': null,
      'storage.external.maxTxnOps': null,
      'controller.secretImport': null,
    });
    expect(
      podTemplate(find(reused, 'Deployment', 'vault-controller')).spec.containers[0].args.join(' '),
    ).not.toContain('--secret-namespaces');
    expect(podTemplate(find(reused, 'StatefulSet', 'vault-etcd')).spec.containers[0].args).toContain(
      '--max-txn-ops=1024',
    );
    expect(envOf(podTemplate(find(reused, 'Deployment', 'vault-server')).spec.containers[0])).toMatchObject({
      VAULT_ETCD_MAX_TXN_OPS: '1024',
    });
  });

  it('generates member and client certificates from one CA, valid for every member', async () => {
    const objs = await render();
    const member = find(objs, 'Secret', 'vault-etcd-tls').data;
    const client = find(objs, 'Secret', 'vault-etcd-client-tls').data;
    const ca = new X509Certificate(b64(member['ca.crt']));
    expect(b64(client['ca.crt']).equals(b64(member['ca.crt']))).toBe(true);
    const serving = new X509Certificate(b64(member['tls.crt']));
    const clientCert = new X509Certificate(b64(client['tls.crt']));
    expect(serving.verify(ca.publicKey)).toBe(true);
    expect(clientCert.verify(ca.publicKey)).toBe(true);
    for (let i = 0; i < 3; i++)
      expect(serving.checkHost(`vault-etcd-${i}.vault-etcd.vault.svc`)).toBeTruthy();
    expect(serving.checkHost('vault-etcd-0.vault-etcd.other.svc')).toBeUndefined();
    expect(serving.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(clientCert.subject).toContain('CN=vault-server');
  });

  it('talks to external etcd with client certificates from the named Secret and bundles nothing', async () => {
    const objs = await render(externalEtcd);
    expect(objs.filter((o) => o.kind === 'StatefulSet')).toEqual([]);
    expect(objs.filter((o) => o.metadata.name.includes('etcd'))).toEqual([]);
    const spec = podTemplate(find(objs, 'Deployment', 'vault-server')).spec;
    expect(envOf(spec.containers[0])).toMatchObject({
      VAULT_STORE: 'etcd',
      VAULT_ETCD_ENDPOINTS: 'https://etcd-a.db.svc:2379,https://etcd-b.db.svc:2379',
      VAULT_ETCD_CA_FILE: '/etc/vault/etcd/ca.crt',
      VAULT_ETCD_CERT_FILE: '/etc/vault/etcd/tls.crt',
      VAULT_ETCD_KEY_FILE: '/etc/vault/etcd/tls.key',
      // An etcd run by someone else is assumed at etcd's default until told otherwise.
      VAULT_ETCD_MAX_TXN_OPS: '128',
    });
    expect(spec.volumes).toContainEqual({
      name: 'etcd-client-tls',
      secret: { secretName: 'etcd-client', defaultMode: 0o440 },
    });
  });

  it('talks to external etcd without TLS only when told to', async () => {
    const objs = await render({
      'storage.type': 'external',
      'storage.external.endpoints': ['http://etcd.db.svc:2379'],
      'storage.external.tls.enabled': false,
    });
    const spec = podTemplate(find(objs, 'Deployment', 'vault-server')).spec;
    expect(envOf(spec.containers[0]).VAULT_ETCD_CA_FILE).toBeUndefined();
    expect(envOf(spec.containers[0]).VAULT_ETCD_ENDPOINTS).toBe('http://etcd.db.svc:2379');
    expect(spec.volumes.map((v: { name: string }) => v.name)).toEqual(['tmp', 'server-tls']);
  });
});

describe('helm template: API server TLS', () => {
  const serverOf = (objs: K8sObject[]) => podTemplate(find(objs, 'Deployment', 'vault-server')).spec;
  const webhookOf = (objs: K8sObject[]) => podTemplate(find(objs, 'Deployment', 'vault-webhook')).spec;
  const envNames = (container: { env?: Array<{ name: string }> }) => (container.env ?? []).map((e) => e.name);

  it('by default generates a CA and a certificate for the API Service names and serves HTTPS', async () => {
    const objs = await render();
    const secret = find(objs, 'Secret', 'vault-server-tls');
    expect(secret.type).toBe('kubernetes.io/tls');
    const ca = new X509Certificate(b64(secret.data['ca.crt']));
    const serving = new X509Certificate(b64(secret.data['tls.crt']));
    expect(ca.ca).toBe(true);
    expect(serving.ca).toBe(false);
    expect(serving.verify(ca.publicKey)).toBe(true);
    expect(serving.checkIssued(ca)).toBe(true);
    for (const host of [
      'vault',
      'vault.vault',
      'vault.vault.svc',
      'vault.vault.svc.cluster.local',
      'localhost',
    ])
      expect(serving.checkHost(host), host).toBe(host);
    expect(serving.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(serving.checkHost('vault.other.svc')).toBeUndefined();
    expect(b64(secret.data['tls.key']).toString()).toContain('PRIVATE KEY');
    expect(Date.parse(serving.validTo) - Date.now()).toBeGreaterThan(3600 * 86_400_000);

    const server = serverOf(objs);
    const container = server.containers[0];
    expect(container.args).toEqual(
      expect.arrayContaining([
        '--tls-cert-file=/etc/vault/tls/tls.crt',
        '--tls-key-file=/etc/vault/tls/tls.key',
      ]),
    );
    expect(envNames(container)).not.toContain('VAULT_ALLOW_PLAINTEXT');
    expect(container.volumeMounts).toContainEqual({
      name: 'server-tls',
      mountPath: '/etc/vault/tls',
      readOnly: true,
    });
    expect(server.volumes).toContainEqual({
      name: 'server-tls',
      secret: { secretName: 'vault-server-tls', defaultMode: 0o440 },
    });
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'])
      expect(container[probe].httpGet.scheme, probe).toBe('HTTPS');
  });

  it('gives the webhook only the CA certificate, which it passes to agents with the https address', async () => {
    const objs = await render();
    const webhook = webhookOf(objs);
    const container = webhook.containers[0];
    expect(container.args).toEqual(
      expect.arrayContaining([
        '--vault-addr=https://vault.vault.svc:8200',
        '--vault-ca-file=/etc/vault/server-ca/ca.crt',
      ]),
    );
    expect(container.volumeMounts).toContainEqual({
      name: 'server-ca',
      mountPath: '/etc/vault/server-ca',
      readOnly: true,
    });
    // The key stays out of the webhook: only ca.crt is projected.
    expect(webhook.volumes).toContainEqual({
      name: 'server-ca',
      secret: {
        secretName: 'vault-server-tls',
        items: [{ key: 'ca.crt', path: 'ca.crt' }],
        defaultMode: 0o440,
      },
    });
  });

  it('uses an existing Secret instead of generating one, for the server and the webhook', async () => {
    const objs = await render({ 'server.tls.existingSecret': 'corp-vault-tls' });
    expect(objs.filter((o) => o.kind === 'Secret' && o.metadata.name === 'vault-server-tls')).toEqual([]);
    expect(serverOf(objs).volumes).toContainEqual({
      name: 'server-tls',
      secret: { secretName: 'corp-vault-tls', defaultMode: 0o440 },
    });
    expect(webhookOf(objs).volumes).toContainEqual(
      expect.objectContaining({
        name: 'server-ca',
        secret: expect.objectContaining({ secretName: 'corp-vault-tls' }),
      }),
    );
  });

  it('with server.tls.enabled=false serves plain HTTP as before, and agents get no CA', async () => {
    const objs = await render({ 'server.tls.enabled': false });
    expect(objs.filter((o) => o.kind === 'Secret' && o.metadata.name === 'vault-server-tls')).toEqual([]);
    const container = serverOf(objs).containers[0];
    expect(container.args.filter((a: string) => a.startsWith('--tls-'))).toEqual([]);
    expect(container.env).toContainEqual({ name: 'VAULT_ALLOW_PLAINTEXT', value: 'true' });
    expect(container.readinessProbe.httpGet.scheme).toBe('HTTP');
    expect(serverOf(objs).volumes.map((v: { name: string }) => v.name)).not.toContain('server-tls');
    const webhook = webhookOf(objs);
    expect(webhook.containers[0].args).toContain('--vault-addr=http://vault.vault.svc:8200');
    expect(webhook.containers[0].args.filter((a: string) => a.startsWith('--vault-ca-file'))).toEqual([]);
    expect(webhook.volumes.map((v: { name: string }) => v.name)).not.toContain('server-ca');
  });

  it('names the certificate after the release and namespace', async () => {
    const objs = await render({}, { release: 'secrets', namespace: 'platform' });
    const secret = find(objs, 'Secret', 'secrets-vault-server-tls');
    const serving = new X509Certificate(b64(secret.data['tls.crt']));
    expect(serving.checkHost('secrets-vault.platform.svc')).toBe('secrets-vault.platform.svc');
    const webhook = podTemplate(find(objs, 'Deployment', 'secrets-vault-webhook')).spec;
    expect(webhook.containers[0].args).toContain('--vault-addr=https://secrets-vault.platform.svc:8200');
  });
});

describe('helm template: webhook TLS', () => {
  it('seeds the self-managed certificate and caBundle, and lets the webhook rewrite only its own', async () => {
    const objs = await render();
    const data = find(objs, 'Secret', 'vault-webhook-tls').data;
    const ca = new X509Certificate(b64(data['ca.crt']));
    const serving = new X509Certificate(b64(data['tls.crt']));
    expect(ca.ca).toBe(true);
    expect(serving.verify(ca.publicKey)).toBe(true);
    // The names the webhook's rotation checks (its --service-name in the release namespace).
    expect(serving.subjectAltName).toBe(
      'DNS:vault-webhook.vault.svc, DNS:vault-webhook.vault.svc.cluster.local',
    );
    expect(b64(data['ca.key']).toString()).toContain('PRIVATE KEY');
    const config = find(objs, 'MutatingWebhookConfiguration', 'vault-vault');
    expect(config.webhooks[0].clientConfig.caBundle).toBe(data['ca.crt']);
    expect(config.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBeUndefined();

    const args: string[] = podTemplate(find(objs, 'Deployment', 'vault-webhook')).spec.containers[0].args;
    expect(args).toEqual(
      expect.arrayContaining([
        '--cert-secret=vault-webhook-tls',
        '--configuration-name=vault-vault',
        '--service-name=vault-webhook',
        '--namespace=vault',
        '--vault-addr=https://vault.vault.svc:8200',
      ]),
    );
    const role = find(objs, 'Role', 'vault-webhook');
    expect(role.rules).toEqual([
      expect.objectContaining({ resources: ['secrets'], resourceNames: ['vault-webhook-tls'] }),
    ]);
    expect(role.rules[0].verbs).not.toContain('create');
    const clusterRole = find(objs, 'ClusterRole', 'vault-vault-webhook');
    expect(clusterRole.rules).toEqual([
      { apiGroups: ['vault.ghoststack.io'], resources: ['vaultleases'], verbs: ['get'] },
      { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
      expect.objectContaining({
        resources: ['mutatingwebhookconfigurations'],
        resourceNames: ['vault-vault'],
      }),
    ]);
  });

  it('uses cert-manager when asked: a CA chain, a serving Certificate and the cainjector annotation', async () => {
    const objs = await render(certManager);
    const cert = find(objs, 'Certificate', 'vault-webhook');
    expect(cert.spec).toMatchObject({
      secretName: 'vault-webhook-tls',
      dnsNames: ['vault-webhook.vault.svc', 'vault-webhook.vault.svc.cluster.local'],
      issuerRef: { name: 'vault-webhook-ca', kind: 'Issuer' },
    });
    expect(find(objs, 'Certificate', 'vault-webhook-ca').spec.isCA).toBe(true);
    expect(find(objs, 'Issuer', 'vault-webhook-selfsigned').spec).toEqual({ selfSigned: {} });
    expect(find(objs, 'Issuer', 'vault-webhook-ca').spec).toEqual({ ca: { secretName: 'vault-webhook-ca' } });
    const config = find(objs, 'MutatingWebhookConfiguration', 'vault-vault');
    expect(config.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe('vault/vault-webhook');
    // cert-manager owns the Secret; the webhook only reads it from a volume.
    expect(objs.filter((o) => o.kind === 'Secret' && o.metadata.name === 'vault-webhook-tls')).toEqual([]);
    expect(objs.filter((o) => o.kind === 'Role' && o.metadata.name === 'vault-webhook')).toEqual([]);
    expect(find(objs, 'ClusterRole', 'vault-vault-webhook').rules).toEqual([
      { apiGroups: ['vault.ghoststack.io'], resources: ['vaultleases'], verbs: ['get'] },
      { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
    ]);
    const spec = podTemplate(find(objs, 'Deployment', 'vault-webhook')).spec;
    expect(spec.volumes).toContainEqual({
      name: 'webhook-tls',
      secret: { secretName: 'vault-webhook-tls', defaultMode: 0o440 },
    });
    expect(spec.containers[0].args).toContain('--tls-cert-file=/etc/vault/webhook-tls/tls.crt');
  });

  it('ships an unbound ClusterRole to read VaultLeases, and names it to the webhook', async () => {
    const objs = await render();
    expect(find(objs, 'ClusterRole', 'vault-vault-vaultlease-reader').rules).toEqual([
      { apiGroups: ['vault.ghoststack.io'], resources: ['vaultleases'], verbs: ['get'] },
    ]);
    const bindings = objs.filter((o) => o.kind.endsWith('Binding'));
    expect(bindings.filter((b) => b.roleRef?.name === 'vault-vault-vaultlease-reader')).toEqual([]);
    const args = podTemplate(find(objs, 'Deployment', 'vault-webhook')).spec.containers[0].args;
    expect(args).toContain('--lease-reader-role=vault-vault-vaultlease-reader');
  });

  it('uses a given issuer instead of creating one', async () => {
    const objs = await render({
      ...certManager,
      'webhook.certManager.issuerRef': { name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' },
    });
    expect(objs.filter((o) => o.kind === 'Issuer')).toEqual([]);
    expect(find(objs, 'Certificate', 'vault-webhook').spec.issuerRef).toEqual({
      name: 'corp-ca',
      kind: 'ClusterIssuer',
      group: 'cert-manager.io',
    });
  });
});

describe('helm template: options', () => {
  it('uses an existing root key Secret and generates none', async () => {
    const objs = await render({ 'rootKey.existingSecret': 'my-root-key', 'rootKey.secretKey': 'key' });
    expect(objs.filter((o) => o.kind === 'Secret' && o.metadata.name.includes('root-key'))).toEqual([]);
    const env = podTemplate(find(objs, 'Deployment', 'vault-server')).spec.containers[0].env;
    expect(env).toContainEqual({
      name: 'VAULT_ROOT_KEY',
      valueFrom: { secretKeyRef: { name: 'my-root-key', key: 'key' } },
    });
  });

  it('applies image, resources, nodeSelector, tolerations and affinity', async () => {
    const affinity = {
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } },
    };
    const objs = await render({
      'image.repository': 'registry.example/vault',
      'image.tag': '9.9.9',
      'server.resources': { requests: { cpu: '1' } },
      'server.nodeSelector': { pool: 'secure' },
      'server.tolerations': [{ key: 'dedicated', operator: 'Exists' }],
      'server.affinity': affinity,
    });
    const spec = podTemplate(find(objs, 'Deployment', 'vault-server')).spec;
    expect(spec.containers[0].image).toBe('registry.example/vault:9.9.9');
    // helm merges maps with the defaults.
    expect(spec.containers[0].resources).toEqual({
      requests: { cpu: '1', memory: '128Mi' },
      limits: { memory: '256Mi' },
    });
    expect(spec.nodeSelector).toEqual({ pool: 'secure' });
    expect(spec.tolerations).toEqual([{ key: 'dedicated', operator: 'Exists' }]);
    expect(spec.affinity).toEqual(affinity);
    const webhookArgs: string[] = podTemplate(find(objs, 'Deployment', 'vault-webhook')).spec.containers[0]
      .args;
    expect(webhookArgs).toContain('--agent-image=registry.example/vault:9.9.9');
  });

  it('pins the image by digest when one is given', async () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    const objs = await render({ 'image.digest': digest });
    expect(podTemplate(find(objs, 'Deployment', 'vault-server')).spec.containers[0].image).toBe(
      `ghcr.io/ghoststack/vault@${digest}`,
    );
  });

  it('renders NetworkPolicies that keep etcd to the API server and its peers', async () => {
    const objs = await render({ 'networkPolicy.enabled': true });
    const policy = find(objs, 'NetworkPolicy', 'vault-etcd');
    const client = policy.spec.ingress.find(
      (rule: { ports: Array<{ port: number }> }) => rule.ports[0]?.port === 2379,
    );
    expect(
      client.from.map(
        (peer: { podSelector: { matchLabels: Record<string, string> } }) =>
          peer.podSelector.matchLabels['app.kubernetes.io/component'],
      ),
    ).toEqual(['server', 'etcd']);
    find(objs, 'NetworkPolicy', 'vault-server');
    find(objs, 'NetworkPolicy', 'vault-webhook');
    find(objs, 'NetworkPolicy', 'vault-controller');
    expect((await render()).filter((o) => o.kind === 'NetworkPolicy')).toEqual([]);
  });

  it('renders ServiceMonitors for every component with metrics when asked', async () => {
    const objs = await render({
      'serviceMonitor.enabled': true,
      'serviceMonitor.labels': { release: 'prom' },
    });
    const monitors = objs.filter((o) => o.kind === 'ServiceMonitor');
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual([
      'vault-controller',
      'vault-server',
      'vault-webhook',
    ]);
    for (const monitor of monitors) {
      expect(monitor.metadata.labels?.release).toBe('prom');
      const selector = Object.entries(monitor.spec.selector.matchLabels as Record<string, string>);
      const services = objs.filter(
        (o) => o.kind === 'Service' && selector.every(([k, v]) => o.metadata.labels?.[k] === v),
      );
      expect(services, monitor.metadata.name).toHaveLength(1);
      expect(services[0]?.spec.ports.map((p: { name: string }) => p.name)).toContain(
        monitor.spec.endpoints[0].port,
      );
    }
    expect((await render()).filter((o) => o.kind === 'ServiceMonitor')).toEqual([]);
  });

  it('streams audit records to stdout from a cursor in the store, one replica at a time', async () => {
    const args = async (values: Record<string, unknown> = {}) =>
      podTemplate(find(await render(values), 'Deployment', 'vault-server')).spec.containers[0]
        .args as string[];
    expect(await args()).toEqual(
      expect.arrayContaining([
        '--audit-log=stdout',
        '--audit-cursor=store:default',
        '--audit-stream-ttl=15s',
        '--audit-checkpoint-interval=1m',
      ]),
    );
    const off = await args({ 'server.audit.log': 'none', 'server.audit.checkpointInterval': '5m' });
    expect(off).toContain('--audit-log=none');
    expect(off).toContain('--audit-checkpoint-interval=5m');
    expect(off.some((arg) => arg.startsWith('--audit-cursor'))).toBe(false);
  });

  it("scrapes the API server's token-free metrics listener, open only to the configured scrapers", async () => {
    const scraper = { namespaceSelector: { matchLabels: { name: 'monitoring' } } };
    const objs = await render({
      'serviceMonitor.enabled': true,
      'networkPolicy.enabled': true,
      'networkPolicy.metricsFrom': [scraper],
    });
    const monitor = find(objs, 'ServiceMonitor', 'vault-server');
    expect(monitor.spec.endpoints[0]).toMatchObject({ port: 'metrics', scheme: 'https' });
    expect(monitor.spec.endpoints[0].bearerTokenSecret).toBeUndefined();
    const container = podTemplate(find(objs, 'Deployment', 'vault-server')).spec.containers[0];
    expect(container.args).toContain('--metrics-listen=0.0.0.0:9102');
    expect(container.args).not.toContain('--metrics-tenant-series');
    expect(container.args).toEqual(
      expect.arrayContaining([
        '--max-event-streams=2048',
        '--max-event-streams-per-tenant=256',
        '--max-event-streams-per-token=16',
        '--max-bulk-operations=4',
        '--max-bulk-operations-per-tenant=2',
        '--max-tenants-per-cluster=10000',
      ]),
    );
    expect(container.ports).toContainEqual({ name: 'metrics', containerPort: 9102, protocol: 'TCP' });
    const rules = find(objs, 'NetworkPolicy', 'vault-server').spec.ingress;
    const metricsRule = rules.find(
      (rule: { ports: Array<{ port: number }> }) => rule.ports[0]?.port === 9102,
    );
    expect(metricsRule.from).toEqual([scraper]);
  });

  it('scrapes the API port with a token when the metrics listener is off', async () => {
    const objs = await render({
      'serviceMonitor.enabled': true,
      'server.metrics.port': 0,
      'server.metrics.tenantSeries': true,
      'serviceMonitor.serverTokenSecret.name': 'prometheus-vault-token',
    });
    const monitor = find(objs, 'ServiceMonitor', 'vault-server');
    expect(monitor.spec.endpoints[0]).toMatchObject({
      port: 'http',
      bearerTokenSecret: { name: 'prometheus-vault-token', key: 'token' },
    });
    const container = podTemplate(find(objs, 'Deployment', 'vault-server')).spec.containers[0];
    expect(container.args.some((arg: string) => arg.startsWith('--metrics-listen'))).toBe(false);
    expect(container.args).toContain('--metrics-tenant-series');
    expect(find(objs, 'Service', 'vault').spec.ports.map((p: { name: string }) => p.name)).toEqual(['http']);
  });

  it('runs the controller alone without leader election only with one replica', async () => {
    const objs = await render({ 'controller.replicas': 1, 'controller.leaderElection.enabled': false });
    expect(podTemplate(find(objs, 'Deployment', 'vault-controller')).spec.containers[0].args).toContain(
      '--no-leader-elect',
    );
  });
});

describe('values that the chart refuses', () => {
  const cases: Array<{ name: string; values: Record<string, unknown>; message: string }> = [
    {
      name: 'zero API replicas',
      values: { 'server.replicas': 0 },
      message: "at '/server/replicas': minimum: got 0, want 1",
    },
    {
      name: 'a misspelled key',
      values: { 'server.replica': 3 },
      message: "at '/server': additional properties 'replica' not allowed",
    },
    {
      name: 'an unknown storage type',
      values: { 'storage.type': 'postgres' },
      message: "at '/storage/type': value must be one of 'bundled', 'external'",
    },
    {
      name: 'an even etcd member count',
      values: { 'etcd.replicas': 2 },
      message: "at '/etcd/replicas': value must be one of 1, 3, 5",
    },
    {
      name: 'a webhook timeout over 30 s',
      values: { 'webhook.timeoutSeconds': 31 },
      message: "at '/webhook/timeoutSeconds': maximum: got 31, want 30",
    },
    {
      name: 'an unknown failure policy',
      values: { 'webhook.failurePolicy': 'Retry' },
      message: "at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'",
    },
    {
      name: 'a cluster name that is not a DNS label',
      values: { clusterName: 'Prod.EU' },
      message: "at '/clusterName'",
    },
    {
      name: 'a replica count given as text',
      values: { 'controller.replicas': 'two' },
      message: "at '/controller/replicas': got string, want integer",
    },
    {
      name: 'external storage without endpoints',
      values: { 'storage.type': 'external' },
      message: "at '/storage/external/endpoints': minItems: got 0, want 1",
    },
    {
      name: 'an endpoint that is not a URL',
      values: { 'storage.type': 'external', 'storage.external.endpoints': ['etcd:2379'] },
      message: "at '/storage/external/endpoints/0'",
    },
    {
      name: 'external TLS without its Secret',
      values: { 'storage.type': 'external', 'storage.external.endpoints': ['https://etcd:2379'] },
      message: 'set storage.external.tls.existingSecret',
    },
    {
      name: 'a certificate lifetime of zero days',
      values: { 'server.tls.validityDays': 0 },
      message: "at '/server/tls/validityDays': minimum: got 0, want 1",
    },
    {
      name: 'two controllers without leader election',
      values: { 'controller.leaderElection.enabled': false },
      message: 'controller.replicas > 1 needs controller.leaderElection.enabled=true',
    },
    {
      name: 'an audit stream name with a slash',
      values: { 'server.audit.streamName': 'a/b' },
      message: "at '/server/audit/streamName'",
    },
    {
      name: 'an audit stream sent to a file (no volume for it)',
      values: { 'server.audit.log': '/var/log/audit.jsonl' },
      message: "at '/server/audit/log': value must be one of 'stdout', 'none'",
    },
    {
      name: 'a ServiceMonitor for /metrics on the API port without a token',
      values: { 'serviceMonitor.enabled': true, 'server.metrics.port': 0 },
      message: 'set serviceMonitor.serverTokenSecret.name',
    },
    {
      name: 'an event-stream limit of zero',
      values: { 'server.limits.eventStreamsPerToken': 0 },
      message: "at '/server/limits/eventStreamsPerToken': minimum: got 0, want 1",
    },
    {
      name: 'a resync period that is not a duration',
      values: { 'controller.resync': 'ten minutes' },
      message: "at '/controller/resync'",
    },
  ];

  it.each(cases)('refuses $name with a message naming the value', async ({ values, message }) => {
    const result = await helm(['template', 'vault', chartDir, ...valueFlags(values)]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(message);
  });
});
