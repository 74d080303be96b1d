/**
 * The chart on a real control plane (kube-apiserver on etcd, no kubelet and no controllers):
 * install, upgrade, uninstall and reinstall; the rendered pods admitted under the restricted
 * Pod Security Standard; and the chart's RBAC checked with tokens of its own ServiceAccounts.
 */

import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type V1Pod,
  type V1PodTemplateSpec,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/lib/clock.js';
import { createLogger } from '../../src/lib/logger.js';
import { createApiPort } from '../../src/operator/api-port.js';
import { createOperator } from '../../src/operator/manager.js';
import { openVaultSession } from '../../src/operator/vault-session.js';
import { kubernetesTokenReviewer } from '../../src/server/token-review.js';
import { runWebhook } from '../../src/webhook/run.js';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import { startTestVault } from '../support/test-vault.js';
import {
  chartDir,
  type K8sObject,
  type PolicyRule,
  parseManifests,
  repoRoot,
  valueFlags,
} from './support.js';

const ns = 'vault';
const release = 'vault';

describe('the chart on a real control plane', () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let apps: AppsV1Api;

  const helmOk = async (args: string[]) => {
    const result = await cp.helm(args);
    expect(result.code, `helm ${args.join(' ')}\n${result.stderr}`).toBe(0);
    return result.stdout;
  };
  const secretData = async (name: string) =>
    (await core.readNamespacedSecret({ name, namespace: ns })).data ?? {};
  const tokenFor = async (serviceAccount: string) => {
    const response = await core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace: ns,
      body: { spec: { expirationSeconds: 600, audiences: [] } },
    });
    return response.status!.token;
  };

  beforeAll(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig().makeApiClient(CoreV1Api);
    apps = cp.kubeConfig().makeApiClient(AppsV1Api);
    await cp.createNamespace(ns, {
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/enforce-version': 'latest',
    });
  });
  afterAll(() => cp?.stop());

  it('installs: CRDs established, workloads, services, RBAC and the webhook registered', async () => {
    const notes = await helmOk(['install', release, chartDir, '--namespace', ns, '--timeout', '120s']);
    expect(notes).toContain('STATUS: deployed');
    expect(notes).toContain(`kubectl -n ${ns} get secret vault-root-key`);

    await cp.waitForCrds(['vaultcredentials.vault.ghoststack.io', 'vaultleases.vault.ghoststack.io']);
    const deployments = await apps.listNamespacedDeployment({ namespace: ns });
    expect(deployments.items.map((d) => [d.metadata!.name, d.spec!.replicas]).sort()).toEqual([
      ['vault-controller', 2],
      ['vault-server', 2],
      ['vault-webhook', 2],
    ]);
    const etcd = await apps.readNamespacedStatefulSet({ name: 'vault-etcd', namespace: ns });
    expect(etcd.spec!.replicas).toBe(3);
    expect(etcd.spec!.persistentVolumeClaimRetentionPolicy).toEqual({
      whenDeleted: 'Retain',
      whenScaled: 'Retain',
    });

    const services = await core.listNamespacedService({ namespace: ns });
    expect(services.items.map((s) => s.metadata!.name).sort()).toEqual([
      'vault',
      'vault-controller-metrics',
      'vault-etcd',
      'vault-webhook',
    ]);
    const secrets = await core.listNamespacedSecret({ namespace: ns });
    expect(
      secrets.items
        .map((s) => s.metadata!.name!)
        .filter((name) => !name.startsWith('sh.helm.release'))
        .sort(),
    ).toEqual([
      'vault-etcd-client-tls',
      'vault-etcd-tls',
      'vault-root-key',
      'vault-server-tls',
      'vault-webhook-tls',
    ]);
    const pdbs = await cp.kubectl(['get', 'pdb', '-n', ns, '-o', 'name']);
    expect(pdbs.stdout.trim().split('\n').sort()).toEqual([
      'poddisruptionbudget.policy/vault-controller',
      'poddisruptionbudget.policy/vault-etcd',
      'poddisruptionbudget.policy/vault-server',
      'poddisruptionbudget.policy/vault-webhook',
    ]);

    const mwc = await cp.kubectl(['get', 'mutatingwebhookconfiguration', 'vault-vault', '-o', 'json']);
    expect(mwc.code, mwc.stderr).toBe(0);
    const [hook] = JSON.parse(mwc.stdout).webhooks;
    expect(hook).toMatchObject({
      failurePolicy: 'Fail',
      reinvocationPolicy: 'IfNeeded',
      sideEffects: 'None',
      timeoutSeconds: 10,
      objectSelector: { matchLabels: { 'vault.ghoststack.io/inject': 'true' } },
    });
  });

  it('leaves pods that did not opt in alone, even with no webhook running', async () => {
    await cp.createNamespace('apps');
    await core.createNamespacedPod({ namespace: 'apps', body: plainPod('not-opted-in') });
    // An opted-in pod is refused while the webhook is down (failurePolicy Fail).
    const optedIn = plainPod('opted-in');
    optedIn.metadata!.labels = { 'vault.ghoststack.io/inject': 'true' };
    await expect(core.createNamespacedPod({ namespace: 'apps', body: optedIn })).rejects.toMatchObject({
      body: expect.stringContaining('inject.vault.ghoststack.io'),
    });
  });

  it('upgrades, keeping the root key, the etcd and API certificates and what the webhook wrote', async () => {
    const rootKey = await secretData('vault-root-key');
    const etcdTls = await secretData('vault-etcd-tls');
    const clientTls = await secretData('vault-etcd-client-tls');
    const serverTls = await secretData('vault-server-tls');
    // What the running webhook would have done by now: rotate (its Secret changes) and publish
    // a new CA bundle.
    const rotated = {
      ...(await secretData('vault-webhook-tls')),
      'previous-ca.crt': Buffer.from('old').toString('base64'),
    };
    const filled = await cp.kubectl([
      'patch',
      'secret',
      'vault-webhook-tls',
      '-n',
      ns,
      '--type=merge',
      '-p',
      JSON.stringify({ data: rotated }),
    ]);
    expect(filled.code, filled.stderr).toBe(0);
    const caBundle = Buffer.from('-----BEGIN CERTIFICATE-----\nplaceholder\n').toString('base64');
    const patched = await cp.kubectl([
      'patch',
      'mutatingwebhookconfiguration',
      'vault-vault',
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: caBundle }]),
    ]);
    expect(patched.code, patched.stderr).toBe(0);

    await helmOk([
      'upgrade',
      release,
      chartDir,
      '--namespace',
      ns,
      // `apps` exists now: the controller may import Secrets from it.
      ...valueFlags({
        'server.replicas': 3,
        'networkPolicy.enabled': true,
        'controller.secretImport.namespaces': ['apps'],
      }),
    ]);

    const server = await apps.readNamespacedDeployment({ name: 'vault-server', namespace: ns });
    expect(server.spec!.replicas).toBe(3);
    const policies = await cp.kubectl(['get', 'networkpolicy', '-n', ns, '-o', 'name']);
    expect(policies.stdout).toContain('networkpolicy.networking.k8s.io/vault-etcd');
    expect(await secretData('vault-root-key')).toEqual(rootKey);
    expect(await secretData('vault-etcd-tls')).toEqual(etcdTls);
    expect(await secretData('vault-etcd-client-tls')).toEqual(clientTls);
    // Injected agents trust this CA: an upgrade must not replace it.
    expect(await secretData('vault-server-tls')).toEqual(serverTls);
    expect(await secretData('vault-webhook-tls')).toEqual(rotated);
    const mwc = JSON.parse(
      (await cp.kubectl(['get', 'mutatingwebhookconfiguration', 'vault-vault', '-o', 'json'])).stdout,
    );
    expect(mwc.webhooks[0].clientConfig.caBundle).toBe(caBundle);

    const history = JSON.parse(await helmOk(['history', release, '--namespace', ns, '-o', 'json']));
    expect(history.map((h: { revision: number; status: string }) => [h.revision, h.status])).toEqual([
      [1, 'superseded'],
      [2, 'deployed'],
    ]);
  });

  it('refuses invalid values at install with the schema message', async () => {
    const result = await cp.helm([
      'install',
      'broken',
      chartDir,
      '--namespace',
      ns,
      ...valueFlags({ 'webhook.failurePolicy': 'Sometimes' }),
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'");
    const list = JSON.parse(await helmOk(['list', '--namespace', ns, '-o', 'json']));
    expect(list.map((r: { name: string }) => r.name)).toEqual([release]);
  });

  describe('restricted Pod Security Standard', () => {
    it('is enforced in the release namespace (a plain pod is refused)', async () => {
      await expect(
        core.createNamespacedPod({ namespace: ns, body: plainPod('too-loose') }),
      ).rejects.toMatchObject({
        body: expect.stringContaining('violates PodSecurity \\"restricted:latest\\"'),
      });
    });

    it('admits a pod from every workload the chart installed', async () => {
      const templates: Array<{ name: string; template: V1PodTemplateSpec; claims: string[] }> = [];
      for (const d of (await apps.listNamespacedDeployment({ namespace: ns })).items) {
        templates.push({ name: d.metadata!.name!, template: d.spec!.template, claims: [] });
      }
      for (const s of (await apps.listNamespacedStatefulSet({ namespace: ns })).items) {
        const claims = (s.spec!.volumeClaimTemplates ?? []).map((c) => c.metadata!.name!);
        templates.push({ name: s.metadata!.name!, template: s.spec!.template, claims });
      }
      expect(templates.map((t) => t.name).sort()).toEqual([
        'vault-controller',
        'vault-etcd',
        'vault-server',
        'vault-webhook',
      ]);
      for (const { name, template, claims } of templates) {
        const spec = structuredClone(template.spec!);
        // The StatefulSet controller would add one volume per claim template.
        spec.volumes = [
          ...(spec.volumes ?? []),
          ...claims.map((claim) => ({
            name: claim,
            persistentVolumeClaim: { claimName: `${claim}-${name}-0` },
          })),
        ];
        const pod: V1Pod = { metadata: { name: `${name}-admitted`, labels: { test: 'pss' } }, spec };
        const created = await core
          .createNamespacedPod({ namespace: ns, body: pod })
          .catch((err: { body?: string }) => {
            throw new Error(`pod of ${name} was refused: ${err.body ?? err}`);
          });
        expect(created.status?.phase).toBe('Pending');
      }
      await core.deleteCollectionNamespacedPod({ namespace: ns, labelSelector: 'test=pss' });
    });
  });

  describe('RBAC, checked with tokens of the chart ServiceAccounts', () => {
    type Check = {
      verb: string;
      group?: string;
      resource: string;
      subresource?: string;
      namespace?: string;
      name?: string;
    };
    const can = async (token: string, check: Check) => {
      const authz = cp.kubeConfigForToken(token).makeApiClient(AuthorizationV1Api);
      const review = await authz.createSelfSubjectAccessReview({
        body: {
          spec: {
            resourceAttributes: {
              verb: check.verb,
              group: check.group ?? '',
              resource: check.resource,
              subresource: check.subresource,
              namespace: check.namespace,
              name: check.name,
            },
          },
        },
      });
      return review.status?.allowed === true;
    };
    const describeCheck = (c: Check) =>
      `${c.verb} ${c.group ? `${c.group}/` : ''}${c.resource}${c.subresource ? `/${c.subresource}` : ''}` +
      `${c.name ? ` ${c.name}` : ''} in ${c.namespace ?? 'all namespaces'}`;
    const expectAll = async (token: string, checks: Check[], allowed: boolean) => {
      const wrong: string[] = [];
      for (const check of checks) if ((await can(token, check)) !== allowed) wrong.push(describeCheck(check));
      expect(wrong, allowed ? 'denied but needed' : 'allowed but not needed').toEqual([]);
    };

    /**
     * What the controller needs, read from deploy/rbac/operator.yaml (the operator's own
     * suite runs the controller with exactly those rights): every verb on every resource,
     * in an application namespace and, for reads, across all of them; Secrets (the
     * secret-reader role) only in `apps`, the namespace the release grants; the
     * leader-election Lease under the chart's name, in the release namespace.
     */
    const controllerNeeds = (): Check[] => {
      const reference = parseManifests(
        readFileSync(join(repoRoot, 'deploy', 'rbac', 'operator.yaml'), 'utf8'),
      );
      const checks: Check[] = [];
      for (const role of reference.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')) {
        for (const rule of role.rules as PolicyRule[]) {
          for (const group of rule.apiGroups ?? ['']) {
            for (const qualified of rule.resources ?? []) {
              const [resource, subresource] = qualified.split('/') as [string, string | undefined];
              for (const verb of rule.verbs) {
                const base = { verb, group, resource, subresource };
                if (role.kind === 'Role') {
                  const names = (rule.resourceNames ?? [undefined]).map((n) =>
                    n === 'vault-operator' ? 'vault-controller' : n,
                  );
                  for (const name of names) checks.push({ ...base, namespace: ns, name });
                } else if (role.metadata.name === 'vault-operator-secret-reader') {
                  checks.push({ ...base, namespace: 'apps' });
                } else {
                  checks.push({ ...base, namespace: 'apps' });
                  if (['get', 'list', 'watch'].includes(verb)) checks.push(base);
                }
              }
            }
          }
        }
      }
      return checks;
    };

    it('lets the controller do what it does', async () => {
      const needs = controllerNeeds();
      expect(needs.length).toBeGreaterThan(10);
      await expectAll(await tokenFor('vault-controller'), needs, true);
    });

    it('gives the controller nothing more: no Secret outside apps, no Secret writes, no other Leases, no RBAC', async () => {
      await expectAll(
        await tokenFor('vault-controller'),
        [
          // The root key and the etcd client certificate: with both it could decrypt the store.
          { verb: 'get', resource: 'secrets', namespace: ns, name: 'vault-root-key' },
          { verb: 'get', resource: 'secrets', namespace: ns, name: 'vault-etcd-client-tls' },
          { verb: 'list', resource: 'secrets', namespace: ns },
          { verb: 'list', resource: 'secrets' },
          { verb: 'get', resource: 'secrets', namespace: 'kube-system' },
          { verb: 'create', resource: 'secrets', namespace: 'apps' },
          { verb: 'update', resource: 'secrets', namespace: 'apps' },
          { verb: 'delete', resource: 'secrets', namespace: 'apps' },
          { verb: 'delete', group: 'vault.ghoststack.io', resource: 'vaultleases', namespace: 'apps' },
          {
            verb: 'update',
            group: 'coordination.k8s.io',
            resource: 'leases',
            namespace: ns,
            name: 'someone-else',
          },
          {
            verb: 'update',
            group: 'coordination.k8s.io',
            resource: 'leases',
            namespace: 'kube-system',
            name: 'vault-controller',
          },
          { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings' },
          { verb: 'create', resource: 'pods', namespace: 'apps' },
          {
            verb: 'create',
            resource: 'serviceaccounts',
            subresource: 'token',
            namespace: ns,
            name: 'vault-server',
          },
        ],
        false,
      );
    });

    it('lets the webhook keep its own certificate and caBundle, and nothing else', async () => {
      const token = await tokenFor('vault-webhook');
      await expectAll(
        token,
        [
          { verb: 'get', resource: 'secrets', namespace: ns, name: 'vault-webhook-tls' },
          { verb: 'update', resource: 'secrets', namespace: ns, name: 'vault-webhook-tls' },
          {
            verb: 'get',
            group: 'admissionregistration.k8s.io',
            resource: 'mutatingwebhookconfigurations',
            name: 'vault-vault',
          },
          {
            verb: 'patch',
            group: 'admissionregistration.k8s.io',
            resource: 'mutatingwebhookconfigurations',
            name: 'vault-vault',
          },
          {
            verb: 'get',
            group: 'vault.ghoststack.io',
            resource: 'vaultleases',
            namespace: 'apps',
            name: 'db',
          },
        ],
        true,
      );
      await expectAll(
        token,
        [
          { verb: 'get', resource: 'secrets', namespace: ns, name: 'vault-root-key' },
          { verb: 'create', resource: 'secrets', namespace: ns },
          { verb: 'list', resource: 'secrets', namespace: ns },
          {
            verb: 'patch',
            group: 'admissionregistration.k8s.io',
            resource: 'mutatingwebhookconfigurations',
            name: 'other',
          },
          {
            verb: 'create',
            group: 'admissionregistration.k8s.io',
            resource: 'mutatingwebhookconfigurations',
          },
          { verb: 'list', group: 'vault.ghoststack.io', resource: 'vaultleases' },
        ],
        false,
      );
    });

    it('lets the API server review tokens and nothing else', async () => {
      const token = await tokenFor('vault-server');
      await expectAll(
        token,
        [{ verb: 'create', group: 'authentication.k8s.io', resource: 'tokenreviews' }],
        true,
      );
      await expectAll(
        token,
        [
          { verb: 'get', resource: 'secrets', namespace: ns, name: 'vault-root-key' },
          { verb: 'list', group: 'vault.ghoststack.io', resource: 'vaultleases' },
          { verb: 'create', group: 'authorization.k8s.io', resource: 'subjectaccessreviews' },
        ],
        false,
      );
    });

    it('is enough for the real controller: it reconciles a VaultLease as the chart ServiceAccount', async () => {
      await cp.kubectl(['create', 'serviceaccount', 'app', '-n', 'apps']);
      const applied = await cp.kubectl(['apply', '-n', 'apps', '-f', '-'], { input: demoObjects });
      expect(applied.code, applied.stderr).toBe(0);

      // The controller as the chart runs it: a client of the API, logged in with a token of
      // the chart's controller ServiceAccount (audience vault), which the API reviews with a
      // token of the chart's server ServiceAccount and names the controller as the chart's
      // --kubernetes-controller flag does. It gets no root key and no store.
      const dir = await mkdtemp(join(tmpdir(), 'vault-chart-operator-'));
      const serverKubeconfig = join(dir, 'server.kubeconfig');
      writeFileSync(serverKubeconfig, cp.kubeConfigForToken(await tokenFor('vault-server')).exportConfig(), {
        mode: 0o600,
      });
      const vault = await startTestVault({
        kubernetes: {
          reviewer: await kubernetesTokenReviewer({ kubeconfigPath: serverKubeconfig }),
          controller: `${ns}:vault-controller`,
          audience: 'vault',
          maxTokenTtlMs: 3_600_000,
        },
      });
      let logs = '';
      const logger = createLogger({
        level: 'debug',
        destination: {
          write: (line: string) => {
            logs += line;
          },
        },
      });
      const vaultToken = (
        await core.createNamespacedServiceAccountToken({
          name: 'vault-controller',
          namespace: ns,
          body: { spec: { expirationSeconds: 600, audiences: ['vault'] } },
        })
      ).status!.token;
      const session = await openVaultSession({
        addr: vault.url,
        readToken: async () => vaultToken,
        clock: systemClock,
        logger,
      });
      const operator = createOperator({
        kubeConfig: cp.kubeConfigForToken(await tokenFor('vault-controller')),
        vault: createApiPort(session, logger),
        logger,
        identity: 'vault-controller-0',
        leaderElection: {
          namespace: ns,
          name: 'vault-controller',
          leaseDurationMs: 3_000,
          renewDeadlineMs: 2_000,
          retryPeriodMs: 500,
        },
        retry: { baseDelayMs: 100, maxDelayMs: 2_000 },
      });
      try {
        await operator.start();
        const custom = cp.kubeConfig().makeApiClient(CustomObjectsApi);
        const ref = { group: 'vault.ghoststack.io', version: 'v1alpha1', namespace: 'apps' };
        const phase = async (plural: string, name: string) =>
          ((await custom.getNamespacedCustomObject({ ...ref, plural, name })) as K8sObject).status?.phase;
        await eventually(
          'the VaultCredential to be Ready',
          async () => (await phase('vaultcredentials', 'db-password')) === 'Ready',
        );
        await eventually(
          'the VaultLease to be Active',
          async () => (await phase('vaultleases', 'db')) === 'Active',
        );

        const lease = (await custom.getNamespacedCustomObject({
          ...ref,
          plural: 'vaultleases',
          name: 'db',
        })) as K8sObject;
        expect(lease.status.identity).toBe('workload:system:serviceaccount:apps:app');
        expect(lease.metadata.finalizers).toContain('vault.ghoststack.io/revoke');
        const leader = await cp.kubectl([
          'get',
          'lease',
          'vault-controller',
          '-n',
          ns,
          '-o',
          'jsonpath={.spec.holderIdentity}',
        ]);
        expect(leader.stdout).toBe('vault-controller-0');
        const events = await cp.kubectl(['get', 'events.events.k8s.io', '-n', 'apps', '-o', 'name']);
        expect(events.stdout.trim()).not.toBe('');

        // Deleting it revokes in Vault, then the controller lets it go (finalizer).
        const deleted = await cp.kubectl(['delete', 'vaultlease', 'db', '-n', 'apps', '--wait=false']);
        expect(deleted.code, deleted.stderr).toBe(0);
        await eventually('the VaultLease to be gone', async () => {
          const got = await cp.kubectl(['get', 'vaultlease', 'db', '-n', 'apps']);
          return got.code !== 0 && got.stderr.includes('NotFound');
        }).catch(async (err) => {
          const obj = await cp.kubectl(['get', 'vaultlease', 'db', '-n', 'apps', '-o', 'yaml']);
          throw new Error(
            `${err.message}\n${obj.stdout}\ncontroller log:\n${logs.split('\n').slice(-30).join('\n')}`,
          );
        });
      } finally {
        await operator.stop();
        session.close();
        await vault.close();
        await rm(dir, { recursive: true, force: true });
      }
    }, 120_000);

    it('is enough for the real webhook: it keeps its certificate in the chart Secret and publishes the caBundle', async () => {
      let logs = '';
      const logger = createLogger({
        level: 'debug',
        destination: {
          write: (line: string) => {
            logs += line;
          },
        },
      });
      const started = runWebhook({
        kubeConfig: cp.kubeConfigForToken(await tokenFor('vault-webhook')),
        namespace: ns,
        host: '127.0.0.1',
        port: 0,
        mutate: {
          agentImage: 'ghcr.io/ghoststack/vault:0.1.0',
          agentImagePullPolicy: 'IfNotPresent',
          vaultAddr: 'http://vault.vault.svc:8200',
          resources: { cpuRequest: '10m', cpuLimit: '200m', memoryRequest: '48Mi', memoryLimit: '128Mi' },
          tokenAudience: 'vault',
          tokenExpirationSeconds: 600,
          healthPort: 8099,
        },
        // The names the chart passes (templates/webhook-deployment.yaml).
        configurationName: 'vault-vault',
        certSecret: 'vault-webhook-tls',
        dnsNames: ['vault-webhook.vault.svc', 'vault-webhook.vault.svc.cluster.local'],
        ipAddresses: [],
        checkLeases: true,
        clock: () => new Date(),
        logger,
      });
      const webhook = await started.catch((err: Error) => {
        throw new Error(`the webhook did not start as the chart ServiceAccount: ${err.message}\n${logs}`);
      });
      try {
        const data = await secretData('vault-webhook-tls');
        expect(Object.keys(data)).toEqual(expect.arrayContaining(['ca.crt', 'tls.crt', 'tls.key']));
        const mwc = JSON.parse(
          (await cp.kubectl(['get', 'mutatingwebhookconfiguration', 'vault-vault', '-o', 'json'])).stdout,
        );
        const bundle = Buffer.from(mwc.webhooks[0].clientConfig.caBundle, 'base64').toString('utf8');
        expect(bundle).toContain(Buffer.from(data['ca.crt']!, 'base64').toString('utf8').trim());
      } finally {
        await webhook.stop();
      }
    });
  });

  it('uninstalls, keeping the CRDs and the root key; a reinstall reuses the key', async () => {
    const rootKey = await secretData('vault-root-key');
    await helmOk(['uninstall', release, '--namespace', ns, '--wait', '--timeout', '120s']);

    expect((await apps.listNamespacedDeployment({ namespace: ns })).items).toEqual([]);
    expect((await apps.listNamespacedStatefulSet({ namespace: ns })).items).toEqual([]);
    const mwc = await cp.kubectl(['get', 'mutatingwebhookconfiguration', 'vault-vault']);
    expect(mwc.code).not.toBe(0);
    const crds = await cp.kubectl(['get', 'crd', '-o', 'name']);
    expect(crds.stdout).toContain('vaultleases.vault.ghoststack.io');
    expect(crds.stdout).toContain('vaultcredentials.vault.ghoststack.io');
    // Custom resources survive with their CRDs.
    const credential = await cp.kubectl(['get', 'vaultcredential', 'db-password', '-n', 'apps']);
    expect(credential.code, credential.stderr).toBe(0);
    expect(await secretData('vault-root-key')).toEqual(rootKey);

    await helmOk(['install', release, chartDir, '--namespace', ns]);
    expect(await secretData('vault-root-key')).toEqual(rootKey);
  });

  it('installs a second release in another namespace beside the first, with one replica and external etcd', async () => {
    await cp.createNamespace('vault-two', { 'pod-security.kubernetes.io/enforce': 'restricted' });
    await helmOk([
      'install',
      'second',
      chartDir,
      '--namespace',
      'vault-two',
      ...valueFlags({
        'server.replicas': 1,
        'controller.replicas': 1,
        'webhook.replicas': 1,
        'storage.type': 'external',
        'storage.external.endpoints': ['https://etcd.db.svc:2379'],
        'storage.external.tls.existingSecret': 'etcd-client',
      }),
    ]);
    const manifest = parseManifests(await helmOk(['get', 'manifest', 'second', '--namespace', 'vault-two']));
    expect(manifest.filter((o) => o.kind === 'PodDisruptionBudget')).toEqual([]);
    expect(manifest.filter((o) => o.kind === 'StatefulSet')).toEqual([]);
    const configs = await cp.kubectl(['get', 'mutatingwebhookconfiguration', '-o', 'name']);
    expect(configs.stdout.trim().split('\n').sort()).toEqual([
      'mutatingwebhookconfiguration.admissionregistration.k8s.io/second-vault-vault-two',
      'mutatingwebhookconfiguration.admissionregistration.k8s.io/vault-vault',
    ]);
  });
});

describe('a root key Secret created before the install under the default name', () => {
  let cp: ControlPlane;
  afterAll(() => cp?.stop());

  it('is used as it is, not generated and not taken over by Helm (the documented restore)', async () => {
    cp = await startControlPlane();
    const namespace = 'vault-restore';
    await cp.createNamespace(namespace, { 'pod-security.kubernetes.io/enforce': 'restricted' });
    const key = Buffer.alloc(32, 7).toString('base64');
    const created = await cp.kubectl([
      '-n',
      namespace,
      'create',
      'secret',
      'generic',
      'vault-root-key',
      `--from-literal=root-key=${key}`,
    ]);
    expect(created.code, created.stderr).toBe(0);

    const install = await cp.helm([
      'install',
      'vault',
      chartDir,
      '--namespace',
      namespace,
      ...valueFlags({
        'server.replicas': 1,
        'controller.replicas': 1,
        'webhook.replicas': 1,
        'etcd.replicas': 1,
      }),
    ]);
    expect(install.code, install.stderr).toBe(0);
    const secret = JSON.parse(
      (await cp.kubectl(['-n', namespace, 'get', 'secret', 'vault-root-key', '-o', 'json'])).stdout,
    );
    expect(Buffer.from(secret.data['root-key'], 'base64').toString()).toBe(key);
    expect(secret.metadata.annotations?.['meta.helm.sh/release-name']).toBeUndefined();
    const manifest = parseManifests(
      (await cp.helm(['get', 'manifest', 'vault', '--namespace', namespace])).stdout,
    );
    expect(manifest.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name)).not.toContain(
      'vault-root-key',
    );
    const server = manifest.find((o) => o.kind === 'Deployment' && o.metadata.name === 'vault-server');
    expect(JSON.stringify(server)).toContain('"name":"vault-root-key"');
  }, 300_000);
});

const demoObjects = `
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: db-password}
spec:
  type: password
  source: {generate: {length: 24}}
  access: {serviceAccounts: [app], defaultTtl: 15m, maxTtl: 1h}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: db}
spec:
  credentialRef: {name: db-password}
  serviceAccountName: app
  ttl: 10m
`;

/** Polls until `check` is true; fails with what it was waiting for. */
async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

function plainPod(name: string): V1Pod {
  return { metadata: { name }, spec: { containers: [{ name: 'app', image: 'busybox' }] } };
}
