/**
 * The product on a real cluster, as a platform team and its workloads use it: the chart
 * installed unmodified with the image built from the Dockerfile, real pods whose apps run as
 * a non-root uid other than the agent's, revocations observed from inside the running pod.
 * The scenarios run in order on one cluster (starting it and installing take minutes).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { valueFlags } from '../chart/support.js';
import { resolveAssets } from '../support/assets.js';
import { type Cluster, clusterUnavailable, startCluster } from '../support/cluster.js';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';
import {
  apply,
  clusterNetns,
  documentedObjects,
  execIn,
  installValues,
  nodeIp,
  percentile,
  podCidr,
  readyPod,
  release,
  until,
  VaultApi,
  vaultNamespace,
} from './support.js';

const unavailable = clusterUnavailable();
const chartDir = new URL('../../charts/vault', import.meta.url).pathname;
const app = 'shop';
const appUid = 20000;
const minute = 60_000;

/** An opted-in workload: the app container runs as `appUid`, as a real image's USER would. */
function deployment(name: string, annotations: Record<string, string>, extraPodSpec: object = {}) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: app },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name, 'vault.ghoststack.io/inject': 'true' }, annotations },
        spec: {
          serviceAccountName: 'billing',
          securityContext: {
            runAsNonRoot: true,
            fsGroup: appUid,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          terminationGracePeriodSeconds: 10,
          containers: [
            {
              name: 'app',
              image: 'docker.io/local/busybox:1',
              imagePullPolicy: 'Never',
              command: ['sleep', '36000'],
              securityContext: {
                runAsUser: appUid,
                runAsGroup: appUid,
                allowPrivilegeEscalation: false,
                capabilities: { drop: ['ALL'] },
              },
            },
          ],
          ...extraPodSpec,
        },
      },
    },
  };
}

function generatedCredential(name: string) {
  return {
    apiVersion: 'vault.ghoststack.io/v1alpha1',
    kind: 'VaultCredential',
    metadata: { name, namespace: app },
    spec: {
      type: 'password',
      source: { generate: { length: 32 } },
      access: { serviceAccounts: ['billing'], defaultTtl: '15m', maxTtl: '1h' },
    },
  };
}

/**
 * Logs into PostgreSQL from inside a pod with the URL given on stdin: `connected as ROLE` or
 * `refused: MESSAGE`.
 */
const loginScript = `
const { Client } = require('pg');
let url = '';
process.stdin.on('data', (chunk) => { url += chunk; }).on('end', async () => {
  const db = new Client({ connectionString: url.trim(), connectionTimeoutMillis: 5000 });
  db.on('error', () => {});
  try {
    await db.connect();
    const { rows } = await db.query('SELECT current_user AS role');
    console.log('connected as ' + rows[0].role);
  } catch (err) {
    console.log('refused: ' + err.message);
  } finally {
    await db.end().catch(() => {});
  }
});`;

describe.skipIf(unavailable)('on a real cluster', () => {
  let cluster: Cluster;
  let api: VaultApi;
  let db: Postgres | undefined;
  let installOutput = '';

  const phaseOf = async (kind: string, name: string) =>
    (await cluster.k(['-n', app, 'get', kind, name, '-o', 'jsonpath={.status.phase}'])).trim();

  /** The active lease ids of a credential in the app's tenant. */
  const activeLeases = async (credentialName: string): Promise<string[]> => {
    const body = await api.ok('GET', `/v1/leases?credentialName=${credentialName}&state=active`);
    return (body.leases ?? body.items ?? body).map((l: { id: string }) => l.id);
  };

  beforeAll(async () => {
    cluster = await startCluster();
    // The README's install, step by step.
    await cluster.k(['create', 'namespace', vaultNamespace]);
    await cluster.k(['label', 'namespace', vaultNamespace, 'pod-security.kubernetes.io/enforce=restricted']);
    const result = await cluster.helm(
      [
        'install',
        release,
        chartDir,
        '-n',
        vaultNamespace,
        ...valueFlags(installValues),
        '--wait',
        '--timeout',
        '10m',
      ],
      { timeoutMs: 11 * minute },
    );
    installOutput = result.stdout + result.stderr;
    if (result.code !== 0) {
      const pods = await cluster.kubectl(['get', 'pods', '-A', '-o', 'wide']);
      const events = await cluster.kubectl(['get', 'events', '-A', '--sort-by=.lastTimestamp']);
      throw new Error(
        `helm install failed:\n${installOutput}\n${pods.stdout}\n${events.stdout.slice(-4000)}\n${cluster.log('kubelet', 40)}`,
      );
    }
    api = await VaultApi.open(cluster);
  }, 100 * minute);

  afterAll(async () => {
    api?.close();
    // Before the cluster: the server holds the cluster's network namespace while it runs.
    await db?.close();
    await cluster?.stop();
  }, 5 * minute);

  it(
    '1. helm install: server, controller, webhook and a 3-member etcd Ready; NOTES give the first token',
    async () => {
      // helm --wait saw the minimum available; every replica Ready may take longer on a busy node.
      const readinessOf = async () => {
        const workloads = JSON.parse(
          await cluster.k(['-n', vaultNamespace, 'get', 'deploy,statefulset', '-o', 'json']),
        );
        return Object.fromEntries(
          workloads.items.map((w: any) => [
            `${w.kind}/${w.metadata.name}`,
            `${w.status.readyReplicas}/${w.spec.replicas}`,
          ]),
        ) as Record<string, string>;
      };
      const readiness = await until('every replica Ready', 5 * minute, async () => {
        const now = await readinessOf();
        return Object.values(now).every((r) => r.split('/')[0] === r.split('/')[1]) ? now : undefined;
      }).catch(readinessOf);
      expect(readiness).toEqual({
        [`Deployment/${release}-server`]: '2/2',
        [`Deployment/${release}-controller`]: '2/2',
        [`Deployment/${release}-webhook`]: '2/2',
        [`StatefulSet/${release}-etcd`]: '3/3',
      });

      // The documented first-token path, run as NOTES print it, from outside the cluster.
      expect(installOutput).toContain('vault operator root-token');
      const token = (
        await cluster.k(
          [
            '-n',
            vaultNamespace,
            'exec',
            `deploy/${release}-server`,
            '--',
            'vault',
            'operator',
            'root-token',
            '--tenant',
            app,
            '--name',
            'platform@example.com',
            '--ttl',
            '1h',
          ],
          { timeoutMs: 2 * minute },
        )
      ).trim();
      expect(token).toMatch(/^\S{20,}$/);
      api.token = token;
      api.tenant = app;
      const whoami = await api.ok('GET', '/v1/auth/whoami');
      expect(whoami.identity).toEqual({ type: 'human', name: 'platform@example.com' });
    },
    8 * minute,
  );

  it(
    '2. VaultCredential and VaultLease go Active; an opted-in Deployment reads both file forms as another uid',
    async () => {
      await cluster.k(['create', 'namespace', app]);
      await apply(cluster, [
        { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'billing', namespace: app } },
        ...['db', 'c1', 'c2', 'c3', 'c4', 'c5'].map(generatedCredential),
        {
          apiVersion: 'vault.ghoststack.io/v1alpha1',
          kind: 'VaultLease',
          metadata: { name: 'db-lease', namespace: app },
          spec: { credentialRef: { name: 'db' }, serviceAccountName: 'billing', ttl: '10m' },
        },
      ]);
      for (const name of ['db', 'c1', 'c2', 'c3', 'c4', 'c5']) {
        await until(
          `VaultCredential ${name} Ready`,
          2 * minute,
          async () => (await phaseOf('vaultcredential', name)) === 'Ready',
        );
      }
      await until(
        'VaultLease db-lease Active',
        2 * minute,
        async () => (await phaseOf('vaultlease', 'db-lease')) === 'Active',
      );

      // The lease-<file> form: the RoleBinding the docs give (and the webhook's refusal names).
      await cluster.k([
        'create',
        'rolebinding',
        'billing-vaultlease-reader',
        `--namespace=${app}`,
        `--clusterrole=${release}-${vaultNamespace}-vaultlease-reader`,
        `--serviceaccount=${app}:billing`,
      ]);
      await apply(cluster, [
        deployment('billing', {
          'vault.ghoststack.io/credential-db': 'db',
          'vault.ghoststack.io/lease-db-lease': 'db-lease',
          ...Object.fromEntries(
            ['c1', 'c2', 'c3', 'c4', 'c5'].map((c) => [`vault.ghoststack.io/credential-${c}`, c]),
          ),
        }),
      ]);
      const pod = await readyPod(cluster, app, 'app=billing', 4 * minute);
      const listing = await execIn(cluster, app, pod, 'app', 'id -u; ls -ln /vault/secrets');
      expect(listing.split('\n')[0]).toBe(String(appUid));

      const fromFile = await execIn(cluster, app, pod, 'app', 'cat /vault/secrets/db');
      const fromLease = await execIn(cluster, app, pod, 'app', 'cat /vault/secrets/db-lease');
      // The same credential, read by the platform team through its own lease.
      const adminLease = await api.ok('POST', '/v1/leases', { credentialName: 'db', ttl: '1m' });
      expect(fromFile).toBe(adminLease.value);
      expect(fromLease).toBe(adminLease.value);
      await api.ok('POST', `/v1/leases/${adminLease.id}/revoke`);
      // The files are on the pod's tmpfs, not in the app's writable layer.
      expect(
        await execIn(cluster, app, pod, 'app', 'awk \'$2 == "/vault/secrets" {print $3, $4}\' /proc/mounts'),
      ).toMatch(/^tmpfs ro[,\s]/);
    },
    6 * minute,
  );

  it(
    '3. a revoked or expired lease: the file is gone inside the running pod at once (goal 1 s, measured and printed); the agent stays up and leases nothing again',
    async () => {
      const pod = await readyPod(cluster, app, 'app=billing');
      const restartsBefore = await agentRestarts(pod);
      const samples: Record<string, number> = {};

      const timeGone = async (file: string, act: () => Promise<void>) => {
        const watcher = watchFileGone(pod, `/vault/secrets/${file}`);
        await watcher.started;
        const t0 = uptimeMs();
        await act();
        const goneAtMs = await watcher.gone;
        samples[file] = goneAtMs - t0;
      };

      for (const c of ['c1', 'c2', 'c3']) {
        const [leaseId] = await activeLeases(c);
        expect(leaseId).toBeDefined();
        await timeGone(c, async () => {
          await api.ok('POST', `/v1/leases/${leaseId}/revoke`);
        });
      }
      await timeGone('c4', async () => {
        await api.ok('DELETE', '/v1/credentials/c4');
      });
      await timeGone('db-lease', async () => {
        await cluster.k(['-n', app, 'delete', 'vaultlease', 'db-lease', '--wait=false']);
      });
      const p99 = percentile(Object.values(samples), 99);
      process.stdout.write(
        `revocation → file gone inside the pod (ms): ${JSON.stringify(samples)}; p99 ${p99}\n`,
      );
      // The goal is 1 s at p99 (measured: 30-190 ms on an idle node). The assertion is
      // functional (gone at all, and promptly) so that a busy CI machine cannot fail it;
      // the numbers are printed above for the record.
      expect(p99).toBeLessThan(15_000);

      // Nothing comes back: no new lease of a revoked credential, no restart of the agent.
      await new Promise((r) => setTimeout(r, 5000));
      expect(await activeLeases('c1')).toEqual([]);
      const files = await execIn(cluster, app, pod, 'app', 'ls /vault/secrets');
      expect(files.split('\n').filter(Boolean).sort()).toEqual(['c5', 'db']);
      expect(await agentRestarts(pod)).toBe(restartsBefore);

      // Expiry: a VaultLease with a short TTL and no renewal.
      await apply(cluster, [
        {
          apiVersion: 'vault.ghoststack.io/v1alpha1',
          kind: 'VaultLease',
          metadata: { name: 'short', namespace: app },
          spec: { credentialRef: { name: 'c5' }, serviceAccountName: 'billing', ttl: '60s' },
        },
      ]);
      await until(
        'VaultLease short Active',
        minute,
        async () => (await phaseOf('vaultlease', 'short')) === 'Active',
      );
      // A new rollout that names only what still exists (a pod naming a deleted VaultLease or
      // credential would rightly never start).
      await cluster.k([
        '-n',
        app,
        'patch',
        'deploy',
        'billing',
        '--type',
        'json',
        '-p',
        JSON.stringify([
          {
            op: 'replace',
            path: '/spec/template/metadata/annotations',
            value: { 'vault.ghoststack.io/credential-db': 'db', 'vault.ghoststack.io/lease-short': 'short' },
          },
        ]),
      ]);
      await until('the rollout with the short lease', 3 * minute, async () => {
        const name = await readyPod(cluster, app, 'app=billing');
        return name !== pod &&
          (await execIn(cluster, app, name, 'app', 'ls /vault/secrets')).includes('short')
          ? name
          : undefined;
      });
      const next = await readyPod(cluster, app, 'app=billing');
      const expiresAt = Date.parse(
        (
          await cluster.k(['-n', app, 'get', 'vaultlease', 'short', '-o', 'jsonpath={.status.expiresAt}'])
        ).trim(),
      );
      const watcher = watchFileGone(next, '/vault/secrets/short');
      await watcher.started;
      // expiresAt on the uptime clock of the pod's watch.
      const expiresAtUptime = expiresAt - Date.now() + uptimeMs();
      const gone = await watcher.gone;
      process.stdout.write(
        `expiry → file gone inside the pod: ${gone - expiresAtUptime} ms after expiresAt\n`,
      );
      expect(gone - expiresAtUptime).toBeLessThan(15_000);
    },
    8 * minute,
  );

  it(
    '4. a Job with the injected native sidecar completes; deleting a pod revokes its leases, audited as the workload',
    async () => {
      await apply(cluster, [
        {
          apiVersion: 'batch/v1',
          kind: 'Job',
          metadata: { name: 'reader', namespace: app },
          spec: {
            backoffLimit: 0,
            template: {
              ...deployment('reader', { 'vault.ghoststack.io/credential-db': 'db' }).spec.template,
              spec: {
                ...deployment('reader', {}).spec.template.spec,
                restartPolicy: 'Never',
                containers: [
                  {
                    ...deployment('reader', {}).spec.template.spec.containers[0],
                    command: ['sh', '-c', 'test -s /vault/secrets/db && echo read'],
                  },
                ],
              },
            },
          },
        },
      ]);
      await cluster.k(['-n', app, 'wait', '--for=condition=Complete', 'job/reader', '--timeout=180s'], {
        timeoutMs: 4 * minute,
      });
      expect((await cluster.k(['-n', app, 'logs', 'job/reader', '-c', 'app'])).trim()).toBe('read');

      // SIGTERM path: the running billing pod is deleted; its agent revokes what it holds.
      const pod = await readyPod(cluster, app, 'app=billing');
      const held = await activeLeases('db');
      expect(held.length).toBeGreaterThan(0);
      const since = new Date().toISOString();
      await cluster.k(['-n', app, 'delete', 'pod', pod, '--wait=true'], { timeoutMs: 2 * minute });
      const identity = `system:serviceaccount:${app}:billing`;
      const revokes = await until('revocations audited as the workload', minute, async () => {
        const body = await api.ok(
          'GET',
          `/v1/audit?action=lease.revoke&identityName=${encodeURIComponent(identity)}&since=${since}&limit=100`,
        );
        const records = (body.records ?? body) as {
          actor: { name: string };
          outcome: string;
          resource: string;
        }[];
        return records.length > 0 ? records : undefined;
      });
      expect(revokes.every((r) => r.actor.name === identity && r.outcome === 'allowed')).toBe(true);
    },
    5 * minute,
  );

  it(
    '5. the webhook down refuses opted-in pods only; a killed controller leader hands over without double issuance; a killed etcd member loses nothing',
    async () => {
      const pod = (name: string, inject: boolean) => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name,
          namespace: app,
          labels: inject ? { 'vault.ghoststack.io/inject': 'true' } : {},
          annotations: inject ? { 'vault.ghoststack.io/credential-db': 'db' } : {},
        },
        spec: deployment(name, {}).spec.template.spec,
      });
      const webhook = ['-n', vaultNamespace, 'scale', `deploy/${release}-webhook`];
      await cluster.k([...webhook, '--replicas=0']);
      await until('webhook pods gone', 2 * minute, async () => {
        const out = await cluster.k([
          '-n',
          vaultNamespace,
          'get',
          'endpointslices',
          '-l',
          `kubernetes.io/service-name=${release}-webhook`,
          '-o',
          'json',
        ]);
        return JSON.parse(out).items.every((s: { endpoints?: unknown[] }) => !s.endpoints?.length);
      });
      const refused = await cluster.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify(pod('opted-in', true)),
      });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/inject\.vault\.ghoststack\.io/);
      await apply(cluster, [pod('plain', false)]);
      await cluster.k([...webhook, '--replicas=2']);
      await cluster.k(
        ['-n', vaultNamespace, 'rollout', 'status', `deploy/${release}-webhook`, '--timeout=180s'],
        {
          timeoutMs: 4 * minute,
        },
      );
      await until('injection works again', 2 * minute, async () => {
        const result = await cluster.kubectl(['apply', '-f', '-'], {
          input: JSON.stringify(pod('opted-in', true)),
        });
        return result.code === 0;
      });
      const injected = JSON.parse(await cluster.k(['-n', app, 'get', 'pod', 'opted-in', '-o', 'json']));
      expect(injected.spec.initContainers.map((c: { name: string }) => c.name)).toContain('vault-agent');

      // The controller leader is killed; the standby takes over and issues each lease once.
      const leaseObject = [
        '-n',
        vaultNamespace,
        'get',
        'lease',
        `${release}-controller`,
        '-o',
        'jsonpath={.spec.holderIdentity}',
      ];
      const leader = (await cluster.k(leaseObject)).trim();
      expect(leader).not.toBe('');
      await cluster.k(['-n', vaultNamespace, 'delete', 'pod', leader, '--grace-period=0', '--force']);
      await apply(cluster, [
        {
          apiVersion: 'vault.ghoststack.io/v1alpha1',
          kind: 'VaultLease',
          metadata: { name: 'during-failover', namespace: app },
          spec: { credentialRef: { name: 'c5' }, serviceAccountName: 'billing', ttl: '10m' },
        },
      ]);
      await until(
        'VaultLease during-failover Active',
        2 * minute,
        async () => (await phaseOf('vaultlease', 'during-failover')) === 'Active',
      );
      const newLeader = (await cluster.k(leaseObject)).trim();
      expect(newLeader).not.toBe(leader);
      const uid = (
        await cluster.k(['-n', app, 'get', 'vaultlease', 'during-failover', '-o', 'jsonpath={.metadata.uid}'])
      ).trim();
      const issued = await api.ok(
        'GET',
        `/v1/leases?labels=${encodeURIComponent(`vault.ghoststack.io/vaultlease-uid=${uid}`)}`,
      );
      expect((issued.leases ?? issued).length).toBe(1);

      // One etcd member killed under load: every request succeeds, at most after retries, and
      // every lease a client was given exists afterwards.
      const ids: string[] = [];
      const failures: string[] = [];
      let retries = 0;
      const createWithRetry = async () => {
        for (let attempt = 0; attempt < 20; attempt++) {
          const res = await api
            .call('POST', '/v1/leases', { credentialName: 'c5', ttl: '5m' })
            .catch((err: Error) => ({
              status: 0,
              body: err.message,
            }));
          if (res.status === 201 || res.status === 200) return ids.push(res.body.id);
          if (res.status === 503 || res.status === 0) {
            retries++;
            await new Promise((r) => setTimeout(r, 250));
            continue;
          }
          return failures.push(`${res.status} ${JSON.stringify(res.body)}`);
        }
        failures.push('gave up after 20 attempts');
      };
      const load = (async () => {
        for (let i = 0; i < 40; i++)
          await Promise.all([createWithRetry(), createWithRetry(), createWithRetry()]);
      })();
      await new Promise((r) => setTimeout(r, 2000));
      await cluster.k([
        '-n',
        vaultNamespace,
        'delete',
        'pod',
        `${release}-etcd-1`,
        '--grace-period=0',
        '--force',
      ]);
      await load;
      process.stdout.write(
        `etcd member killed under load: ${ids.length} leases, ${retries} retried errors\n`,
      );
      expect(failures).toEqual([]);
      expect(ids.length).toBe(120);
      // Each lease exists. Reads that reach a member while its pod is being replaced are sent to
      // another by the store (test/store/etcd-cluster.test.ts holds that to zero failures on
      // loopback); here a 503 is retried as the creates were, so the check is about loss.
      const readStatus = async (id: string) => {
        for (let attempt = 1; ; attempt++) {
          const { status } = await api.call('GET', `/v1/leases/${id}`).catch(() => ({ status: 0 }));
          if ((status !== 503 && status !== 0) || attempt >= 20) return status;
          await new Promise((r) => setTimeout(r, 250));
        }
      };
      for (const id of ids) expect(await readStatus(id)).toBe(200);
    },
    10 * minute,
  );

  it(
    '6. a namespace under the restricted Pod Security Standard runs an injected pod',
    async () => {
      const ns = 'strict';
      await apply(cluster, [
        {
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: { name: ns, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } },
        },
        { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'billing', namespace: ns } },
        { ...generatedCredential('db'), metadata: { name: 'db', namespace: ns } },
      ]);
      const workload = deployment('strict-app', { 'vault.ghoststack.io/credential-db': 'db' });
      await apply(cluster, [{ ...workload, metadata: { name: 'strict-app', namespace: ns } }]);
      const pod = await readyPod(cluster, ns, 'app=strict-app', 4 * minute);
      expect((await execIn(cluster, ns, pod, 'app', 'wc -c < /vault/secrets/db')).trim()).toBe('32');
    },
    5 * minute,
  );

  it.skipIf(!postgresAvailable())(
    "7. a pod through the injector holds its own PostgreSQL role per lease (the documented manifests); a deleted pod's role is dropped and its URL refused",
    async () => {
      const t0 = Date.now();
      // PostgreSQL on the node's network, where pods and the Vault server pods reach it.
      db = await startPostgres({ listen: nodeIp, clients: podCidr, netns: clusterNetns(cluster) });
      try {
        await db.query('CREATE TABLE public.orders (id int); INSERT INTO public.orders VALUES (1), (2), (3)');
        // Lease roles only: `vault_revoked`, which owns what revoked leases left, stays.
        const roles = async () =>
          (
            await db!.query<{ rolname: string; rolvaliduntil: Date | null }>(
              "SELECT rolname, rolvaliduntil FROM pg_roles WHERE rolname LIKE 'vault\\_lease\\_%'",
            )
          ).rows;

        // As a platform team would: the namespace and its ServiceAccount (step 2 made them when
        // it ran), then the page's manifests, the Secret holding this server's admin URL.
        await apply(cluster, [
          { apiVersion: 'v1', kind: 'Namespace', metadata: { name: app } },
          { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'billing', namespace: app } },
        ]);
        // The controller reads Secrets only where the release lets it: grant `shop` (the page's
        // note, docs/platform/helm.md's controller.secretImport.namespaces).
        const granted = await cluster.helm(
          [
            'upgrade',
            release,
            chartDir,
            '-n',
            vaultNamespace,
            '--reuse-values',
            ...valueFlags({ 'controller.secretImport.namespaces': [app] }),
            '--wait',
            '--timeout',
            '5m',
          ],
          { timeoutMs: 6 * minute },
        );
        expect(granted.code, granted.stdout + granted.stderr).toBe(0);
        const objects = documentedObjects('guide/dynamic.md', 'name: orders-reader');
        expect(objects.map((o) => o.kind)).toEqual(['Secret', 'VaultCredential', 'Deployment']);
        (objects[0] as { kind: string; stringData: { url: string } }).stringData.url = db.adminUrl;
        await apply(cluster, objects);
        await until(
          'VaultCredential orders-db Ready',
          2 * minute,
          async () => (await phaseOf('vaultcredential', 'orders-db')) === 'Ready',
        );

        /** What the replicas show, for a failure's message: phases, the app's and the agent's logs. */
        const readerState = async () => {
          const show = async (args: string[]) => {
            const result = await cluster.kubectl(['-n', app, ...args]);
            return `$ kubectl ${args.join(' ')}\n${result.stdout}${result.stderr}`;
          };
          const parts = [await show(['get', 'pods', '-l', 'app=orders-reader', '-o', 'wide'])];
          for (const container of ['app', 'vault-agent'])
            parts.push(await show(['logs', '-l', 'app=orders-reader', '-c', container, '--tail', '15']));
          parts.push(await show(['get', 'events', '--sort-by=.lastTimestamp']));
          return parts.join('\n').slice(-8000);
        };

        /** The role each Running replica's app logged in as, by pod. */
        const loggedIn = (count: number) =>
          until(`${count} replicas logged in`, 4 * minute, async () => {
            const { items } = JSON.parse(
              await cluster.k(['-n', app, 'get', 'pods', '-l', 'app=orders-reader', '-o', 'json']),
            ) as {
              items: {
                metadata: { name: string; deletionTimestamp?: string };
                status?: { phase?: string };
              }[];
            };
            const pods = items.filter((p) => !p.metadata.deletionTimestamp && p.status?.phase === 'Running');
            const seen: Record<string, string> = {};
            for (const pod of pods) {
              const log = await cluster.k(['-n', app, 'logs', pod.metadata.name, '-c', 'app']);
              const match = /^connected as (vault_lease_[\w-]+), 3 orders$/m.exec(log);
              if (match) seen[pod.metadata.name] = match[1]!;
            }
            return Object.keys(seen).length === count ? seen : undefined;
          }).catch(async (err) => {
            throw new Error(`${(err as Error).message}\n${await readerState()}`);
          });
        const first = await loggedIn(2);
        const [podA, podB] = Object.keys(first) as [string, string];
        const [roleA, roleB] = [first[podA]!, first[podB]!];
        expect(roleA).not.toBe(roleB);
        // Real roles in the database, which itself refuses them after the lease's end (ttl 1h).
        const inDb = await roles();
        expect(inDb.map((r) => r.rolname).sort()).toEqual([roleA, roleB].sort());
        for (const role of inDb) {
          const left = (role.rolvaliduntil?.getTime() ?? Number.POSITIVE_INFINITY) - Date.now();
          expect(left).toBeGreaterThan(50 * minute);
          expect(left).toBeLessThanOrEqual(61 * minute);
        }

        const urlOf = async (pod: string) =>
          (await execIn(cluster, app, pod, 'app', 'cat /vault/secrets/db-url')).trim();
        const loginFrom = async (pod: string, url: string) =>
          (
            await cluster.k(['-n', app, 'exec', '-i', pod, '-c', 'app', '--', 'node', '-e', loginScript], {
              input: url,
              timeoutMs: minute,
            })
          ).trim();
        const urlA = await urlOf(podA);
        expect(new URL(urlA).username).toBe(roleA);
        // The pods' network reaches the database with a lease's URL (the control for the refusal below).
        expect(await loginFrom(podB, urlA)).toBe(`connected as ${roleA}`);

        // The pod goes away: its agent revokes the lease and the role is dropped.
        const deleted = Date.now();
        await cluster.k(['-n', app, 'delete', 'pod', podA, '--wait=true'], { timeoutMs: 2 * minute });
        await until(`${roleA} dropped`, 2 * minute, async () =>
          (await roles()).every((r) => r.rolname !== roleA),
        );
        process.stdout.write(`pod deleted → its PostgreSQL role dropped: ${Date.now() - deleted} ms\n`);
        expect(await loginFrom(podB, urlA)).toMatch(
          /^refused: (password authentication failed|role .* does not exist)/,
        );
        expect(await loginFrom(podB, await urlOf(podB))).toBe(`connected as ${roleB}`);
        // The ReplicaSet's replacement leases a role of its own.
        const second = await loggedIn(2);
        expect(second[podB]).toBe(roleB);
        const replacement = Object.keys(second).find((p) => p !== podB)!;
        expect([roleA, roleB]).not.toContain(second[replacement]);

        // Cleanup as a user would; every role goes with its pod.
        await cluster.k(['-n', app, 'delete', 'deployment', 'orders-reader', '--wait=true']);
        await until('every lease role dropped', 2 * minute, async () => (await roles()).length === 0);
        await cluster.k(['-n', app, 'delete', 'vaultcredential', 'orders-db', '--wait=true'], {
          timeoutMs: 2 * minute,
        });
        await cluster.k(['-n', app, 'delete', 'secret', 'orders-db-admin']);
        process.stdout.write(`step 7 (dynamic PostgreSQL through the injector): ${Date.now() - t0} ms\n`);
      } finally {
        await db.close();
      }
    },
    8 * minute,
  );

  /** Restarts of the injected agent container of a pod. */
  async function agentRestarts(pod: string): Promise<number> {
    const status = JSON.parse(await cluster.k(['-n', app, 'get', 'pod', pod, '-o', 'json'])).status;
    const all = [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])];
    const agent = all.find((c: any) => c.name === 'vault-agent');
    if (!agent) throw new Error(`no vault-agent container in ${pod}`);
    return agent.restartCount;
  }

  /**
   * Watches a file from inside the app container: resolves `started` once the watch runs, and
   * `gone` with the moment the file disappeared as the pod saw it, in ms of the kernel's uptime
   * clock (`/proc/uptime`, 10 ms resolution; busybox's date has no sub-second format), which
   * the host shares: compare with `uptimeMs()`.
   */
  function watchFileGone(pod: string, path: string) {
    const child = spawn(
      resolveAssets().kubectl,
      [
        '--kubeconfig',
        cluster.kubeconfigPath,
        '-n',
        app,
        'exec',
        pod,
        '-c',
        'app',
        '--',
        'sh',
        '-c',
        `test -e ${path} || { echo missing; exit 1; }; echo watching; while [ -e ${path} ]; do usleep 2000; done; echo gone $(cut -d" " -f1 /proc/uptime)`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let resolveStarted: () => void;
    let rejectStarted: (err: Error) => void;
    const started = new Promise<void>((resolve, reject) => {
      resolveStarted = resolve;
      rejectStarted = reject;
    });
    const gone = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill();
        reject(new Error(`${path} still there after 60 s`));
      }, 60_000);
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('watching')) resolveStarted();
        const match = /gone (\d+\.\d+)/.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve(Math.round(Number(match[1]) * 1000));
        }
      });
      child.stderr.on('data', (chunk: Buffer) => {
        out += chunk.toString();
      });
      child.on('exit', (code) => {
        if (code !== 0) {
          clearTimeout(timer);
          const err = new Error(`watching ${path} in ${pod}: exit ${code}: ${out}`);
          rejectStarted(err);
          reject(err);
        }
      });
    });
    gone.catch(() => {});
    return { started, gone };
  }
});

/** The kernel's uptime clock in ms, as `/proc/uptime` shows it inside pods too. */
function uptimeMs(): number {
  return Math.round(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000);
}
