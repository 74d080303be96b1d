/**
 * The chart for a second cluster (`server.enabled=false`): only the controller and the webhook,
 * pointed at a Vault that runs elsewhere, with nothing of the store or the root key; and the
 * other side, the API servers' `server.remoteClusters`. Rendered offline with real helm; the
 * same command lines run as processes against two control planes in second-cluster.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { restrictedViolations } from './pod-security.js';
import {
  chartDir,
  find,
  helm,
  type K8sObject,
  podTemplate,
  rbacRules,
  render,
  valueFlags,
  workloadKinds,
} from './support.js';

const caPem = [
  '-----BEGIN CERTIFICATE-----',
  'MIIBdzCCAR2gAwIBAgIUJ0sharedvaultca',
  '-----END CERTIFICATE-----',
].join('\n');

/** The values of docs/platform/helm.md, "A second cluster". */
const secondCluster = {
  'server.enabled': false,
  clusterName: 'second',
  'externalVault.address': 'https://vault.example.com:8200',
  'externalVault.caBundle': caPem,
};

const containerOf = (objs: K8sObject[], name: string) =>
  podTemplate(find(objs, 'Deployment', name)).spec.containers[0];
const volumeOf = (objs: K8sObject[], deployment: string, volume: string) =>
  podTemplate(find(objs, 'Deployment', deployment)).spec.volumes.find(
    (v: { name: string }) => v.name === volume,
  );

describe('helm template: a controller-only install for a second cluster', () => {
  let objects: K8sObject[];
  const rendered = async () => {
    objects ??= await render(secondCluster, { namespace: 'vault-system' });
    return objects;
  };

  it('passes helm lint --strict', async () => {
    const lint = await helm(['lint', '--strict', chartDir, ...valueFlags(secondCluster)]);
    expect(lint.code, lint.stdout + lint.stderr).toBe(0);
  });

  it('renders the controller and the webhook, and no API server, etcd, root key or store credential', async () => {
    const objs = await rendered();
    expect(
      objs
        .filter((o) => workloadKinds.includes(o.kind))
        .map((o) => `${o.kind}/${o.metadata.name}`)
        .sort(),
    ).toEqual(['Deployment/vault-controller', 'Deployment/vault-webhook']);
    expect(objs.filter((o) => o.metadata.labels?.['app.kubernetes.io/component'] === 'server')).toEqual([]);
    expect(objs.filter((o) => o.metadata.labels?.['app.kubernetes.io/component'] === 'etcd')).toEqual([]);
    // The only Secrets: the webhook's own serving certificate and the token reviewer's token.
    expect(
      objs
        .filter((o) => o.kind === 'Secret')
        .map((o) => `${o.metadata.name} ${o.type}`)
        .sort(),
    ).toEqual(['vault-token-reviewer kubernetes.io/service-account-token', 'vault-webhook-tls Opaque']);
    const text = JSON.stringify(objs);
    for (const forbidden of ['VAULT_ROOT_KEY', 'VAULT_ETCD', 'VAULT_STORE', 'root-key', 'etcd', '--store'])
      expect(text, forbidden).not.toContain(forbidden);
  });

  it('points the controller at the shared Vault, with its CA and this cluster name', async () => {
    const objs = await rendered();
    const controller = containerOf(objs, 'vault-controller');
    expect(controller.args).toEqual(
      expect.arrayContaining([
        'operator',
        'run',
        '--vault-addr=https://vault.example.com:8200',
        '--ca-file=/etc/vault/server-ca/ca.crt',
        '--cluster=second',
        '--token-file=/var/run/secrets/vault.ghoststack.io/serviceaccount/token',
      ]),
    );
    expect(volumeOf(objs, 'vault-controller', 'server-ca')).toEqual({
      name: 'server-ca',
      configMap: { name: 'vault-vault-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }], defaultMode: 0o440 },
    });
    expect(find(objs, 'ConfigMap', 'vault-vault-ca').data['ca.crt'].trim()).toBe(caPem);
  });

  it('gives the webhook, and so injected agents, the same address, CA and cluster name', async () => {
    const objs = await rendered();
    const webhook = containerOf(objs, 'vault-webhook');
    expect(webhook.args).toEqual(
      expect.arrayContaining([
        '--vault-addr=https://vault.example.com:8200',
        '--vault-ca-file=/etc/vault/server-ca/ca.crt',
        '--cluster-name=second',
      ]),
    );
    expect(volumeOf(objs, 'vault-webhook', 'server-ca')).toEqual(
      volumeOf(objs, 'vault-controller', 'server-ca'),
    );
  });

  it('creates a token reviewer for the shared API servers that may only create TokenReviews', async () => {
    const objs = await rendered();
    find(objs, 'ServiceAccount', 'vault-token-reviewer');
    expect(find(objs, 'Secret', 'vault-token-reviewer').metadata.annotations).toEqual({
      'kubernetes.io/service-account.name': 'vault-token-reviewer',
    });
    const rules = rbacRules(objs).filter(({ owner }) => owner.endsWith('-token-reviewer'));
    expect(rules).toEqual([
      {
        owner: 'ClusterRole/vault-vault-system-token-reviewer',
        rule: { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      },
    ]);
    const binding = find(objs, 'ClusterRoleBinding', 'vault-vault-system-token-reviewer');
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'vault-token-reviewer', namespace: 'vault-system' },
    ]);
  });

  it('passes the restricted Pod Security Standard', async () => {
    for (const workload of (await rendered()).filter((o) => workloadKinds.includes(o.kind)))
      expect(restrictedViolations(podTemplate(workload).spec), workload.metadata.name).toEqual([]);
  });

  it('leaves out NetworkPolicies and ServiceMonitors of the API server and etcd', async () => {
    const objs = await render(
      { ...secondCluster, 'networkPolicy.enabled': true, 'serviceMonitor.enabled': true },
      { namespace: 'vault-system' },
    );
    expect(
      objs
        .filter((o) => o.kind === 'NetworkPolicy' || o.kind === 'ServiceMonitor')
        .map((o) => `${o.kind}/${o.metadata.name}`)
        .sort(),
    ).toEqual([
      'NetworkPolicy/vault-controller',
      'NetworkPolicy/vault-webhook',
      'ServiceMonitor/vault-controller',
      'ServiceMonitor/vault-webhook',
    ]);
  });

  it.each([
    {
      name: 'an existing ConfigMap',
      values: { 'externalVault.caConfigMap': 'corp-ca', 'externalVault.caKey': 'bundle.pem' },
      volume: {
        configMap: { name: 'corp-ca', items: [{ key: 'bundle.pem', path: 'ca.crt' }], defaultMode: 0o440 },
      },
    },
    {
      name: 'an existing Secret',
      values: { 'externalVault.caSecret': 'vault-ca' },
      volume: {
        secret: { secretName: 'vault-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }], defaultMode: 0o440 },
      },
    },
  ])('takes the CA from $name instead, and renders no ConfigMap', async ({ values, volume }) => {
    const objs = await render(
      { ...secondCluster, 'externalVault.caBundle': '', ...values },
      { namespace: 'vault-system' },
    );
    expect(objs.filter((o) => o.kind === 'ConfigMap')).toEqual([]);
    for (const deployment of ['vault-controller', 'vault-webhook'])
      expect(volumeOf(objs, deployment, 'server-ca')).toEqual({ name: 'server-ca', ...volume });
  });

  it("trusts the image's CAs when no CA is given: no CA file, no volume", async () => {
    const objs = await render(
      { ...secondCluster, 'externalVault.caBundle': '' },
      { namespace: 'vault-system' },
    );
    for (const deployment of ['vault-controller', 'vault-webhook']) {
      expect(JSON.stringify(containerOf(objs, deployment).args)).not.toMatch(/ca-file/);
      expect(volumeOf(objs, deployment, 'server-ca')).toBeUndefined();
    }
  });
});

describe('helm template: API servers serving other clusters', () => {
  it('reviews each remote cluster with its kubeconfig from a Secret and gives its controller the role', async () => {
    const objs = await render({
      'server.remoteClusters': [
        { name: 'second', kubeconfigSecret: 'second-reviewer', controller: 'vault-system:vault-controller' },
        { name: 'third', kubeconfigSecret: 'third-reviewer', kubeconfigKey: 'config' },
      ],
    });
    const pod = podTemplate(find(objs, 'Deployment', 'vault-server')).spec;
    expect(pod.containers[0].args).toEqual(
      expect.arrayContaining([
        '--kubernetes-auth',
        '--kubernetes-controller=vault:vault-controller',
        '--kubernetes-cluster=second=/etc/vault/clusters/second/kubeconfig',
        '--kubernetes-controller=second=vault-system:vault-controller',
        '--kubernetes-cluster=third=/etc/vault/clusters/third/kubeconfig',
      ]),
    );
    expect(
      pod.containers[0].args.filter((a: string) => a.startsWith('--kubernetes-controller=')),
    ).toHaveLength(2);
    expect(pod.containers[0].volumeMounts).toEqual(
      expect.arrayContaining([
        { name: 'cluster-0', mountPath: '/etc/vault/clusters/second', readOnly: true },
        { name: 'cluster-1', mountPath: '/etc/vault/clusters/third', readOnly: true },
      ]),
    );
    expect(pod.volumes).toEqual(
      expect.arrayContaining([
        {
          name: 'cluster-0',
          secret: {
            secretName: 'second-reviewer',
            items: [{ key: 'kubeconfig', path: 'kubeconfig' }],
            defaultMode: 0o440,
          },
        },
        {
          name: 'cluster-1',
          secret: {
            secretName: 'third-reviewer',
            items: [{ key: 'config', path: 'kubeconfig' }],
            defaultMode: 0o440,
          },
        },
      ]),
    );
  });
});

describe('values that a second-cluster install refuses', () => {
  const remote = { name: 'second', kubeconfigSecret: 'second-reviewer' };
  const cases: Array<{ name: string; values: Record<string, unknown>; message: string }> = [
    {
      name: 'no API servers and no address of a shared Vault',
      values: { 'server.enabled': false, clusterName: 'second' },
      message: "at '/externalVault/address': minLength: got 0, want 1",
    },
    {
      name: 'no API servers and no cluster name',
      values: { 'server.enabled': false, 'externalVault.address': 'https://vault.example.com:8200' },
      message: "at '/clusterName': minLength: got 0, want 1",
    },
    {
      name: 'a shared Vault over plain HTTP (the controller would send its token in clear)',
      values: { ...secondCluster, 'externalVault.address': 'http://vault.example.com:8200' },
      message: "at '/externalVault/address'",
    },
    {
      name: 'a CA that is not PEM',
      values: { ...secondCluster, 'externalVault.caBundle': 'MIIB...' },
      message: "at '/externalVault/caBundle'",
    },
    {
      name: 'the CA given two ways',
      values: { ...secondCluster, 'externalVault.caSecret': 'vault-ca' },
      message: 'give the shared Vault',
    },
    {
      name: 'nothing to install',
      values: { ...secondCluster, 'controller.enabled': false, 'webhook.enabled': false },
      message: 'both are disabled',
    },
    {
      name: 'an external address beside its own API servers',
      values: { 'externalVault.address': 'https://vault.example.com:8200' },
      message: 'externalVault.address is for a controller-only install (server.enabled=false)',
    },
    {
      name: 'remote clusters without API servers to serve them',
      values: { ...secondCluster, 'server.remoteClusters': [remote] },
      message: 'server.remoteClusters configures this release',
    },
    {
      name: 'a remote cluster named twice',
      values: { 'server.remoteClusters': [remote, { ...remote, kubeconfigSecret: 'other' }] },
      message: 'server.remoteClusters names "second" twice',
    },
    {
      name: 'a remote cluster named like this one',
      values: { clusterName: 'second', 'server.remoteClusters': [remote] },
      message: 'which is this cluster (clusterName)',
    },
    {
      name: 'a remote cluster without its kubeconfig',
      values: { 'server.remoteClusters': [{ name: 'second' }] },
      message: "at '/server/remoteClusters/0': missing property 'kubeconfigSecret'",
    },
    {
      name: 'a remote controller that is not namespace:serviceaccount',
      values: { 'server.remoteClusters': [{ ...remote, controller: 'vault-controller' }] },
      message: "at '/server/remoteClusters/0/controller'",
    },
  ];

  it.each(cases)('refuses $name with a message naming the value', async ({ values, message }) => {
    const result = await helm(['template', 'vault', chartDir, ...valueFlags(values)]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(message);
  });
});
