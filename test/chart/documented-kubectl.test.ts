/**
 * Kubernetes commands of the docs, run as written against a real kube-apiserver with the real
 * kubectl and helm:
 *
 * - `kubectl apply -f crds/ -f deploy/rbac/operator.yaml` on a fresh cluster (the namespace it
 *   uses does not exist yet), and the RoleBinding that then lets the operator read Secrets in
 *   one namespace and nowhere else;
 * - the chart upgrade of docs/platform/helm.md after a plain `helm install`: helm created the CRDs
 *   (its field manager owns every field), so a server-side apply of changed CRDs must take
 *   those fields over, and the CRDs in the cluster must be the new ones afterwards.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import { documentedBlock, runDocumented } from './documented.js';
import { chartDir, repoRoot } from './support.js';

describe('kubectl apply -f crds/ -f deploy/rbac/operator.yaml', () => {
  let cp: ControlPlane;
  afterAll(() => cp?.stop());

  it('works on a fresh cluster: the namespace comes with the RBAC', async () => {
    cp = await startControlPlane();
    const line = documentedBlock('docs/kubernetes/resources.md', '# Kubernetes operator')
      .split('\n')
      .find((l) => l.startsWith('kubectl apply'))!
      // The comment after the command is the reader's, not the shell's.
      .replace(/\s+#.*$/, '');
    expect(line).toBe('kubectl apply -f crds/ -f deploy/rbac/operator.yaml');
    const result = await runDocumented(cp.kubeconfigPath, line, repoRoot);
    expect(result.code, result.stderr).toBe(0);
    const sa = await cp.kubectl([
      '-n',
      'vault-system',
      'get',
      'serviceaccount',
      'vault-operator',
      '-o',
      'name',
    ]);
    expect(sa.stdout.trim()).toBe('serviceaccount/vault-operator');

    const operator = '--as=system:serviceaccount:vault-system:vault-operator';
    const canList = async (...where: string[]) =>
      (await cp.kubectl(['auth', 'can-i', 'list', 'secrets', ...where, operator])).stdout.trim();
    // deploy/rbac alone grants no Secret anywhere.
    expect(await canList('-n', 'vault-system')).toBe('no');
    expect(await canList('-A')).toBe('no');
    const block = documentedBlock('docs/kubernetes/resources.md', '# Kubernetes operator');
    const binding = /^kubectl -n shop create rolebinding .*\\\n.*$/m.exec(block)?.[0];
    expect(binding, 'the documented RoleBinding command').toBeDefined();
    await cp.createNamespace('shop');
    const bound = await runDocumented(cp.kubeconfigPath, binding!, repoRoot);
    expect(bound.code, bound.stderr).toBe(0);
    expect(await canList('-n', 'shop')).toBe('yes');
    expect(await canList('-n', 'vault-system')).toBe('no');
    expect(await canList('-A')).toBe('no');
  }, 300_000);
});

describe('the documented upgrade after a plain helm install', () => {
  let cp: ControlPlane;
  let oldChart: string;
  afterAll(async () => {
    await cp?.stop();
    if (oldChart) rmSync(oldChart, { recursive: true, force: true });
  });

  it('replaces the CRDs helm created, then upgrades the release', async () => {
    cp = await startControlPlane();
    // The release as installed from an older chart: same CRDs but for a description.
    oldChart = mkdtempSync(join(tmpdir(), 'vault-old-chart-'));
    cpSync(chartDir, join(oldChart, 'charts/vault'), { recursive: true });
    const crdDir = join(oldChart, 'charts/vault/crds');
    for (const file of readdirSync(crdDir)) {
      const text = readFileSync(join(crdDir, file), 'utf8');
      writeFileSync(join(crdDir, file), text.replace(/description: /, 'description: (old) '));
    }
    await cp.createNamespace('vault-system');
    const install = await cp.helm([
      'install',
      'vault',
      join(oldChart, 'charts/vault'),
      '--namespace',
      'vault-system',
    ]);
    expect(install.code, install.stderr).toBe(0);
    const description = async () =>
      (
        await cp.kubectl([
          'get',
          'crd',
          'vaultleases.vault.ghoststack.io',
          '-o',
          'jsonpath={.spec.versions[0].schema.openAPIV3Schema.description}',
        ])
      ).stdout;
    expect(await description()).toMatch(/^\(old\) /);

    const upgrade = documentedBlock('docs/platform/helm.md', '## Upgrade');
    expect(upgrade).toContain('kubectl apply --server-side');
    const result = await runDocumented(cp.kubeconfigPath, upgrade, repoRoot);
    expect(result.code, `${upgrade}\n${result.stderr}`).toBe(0);
    expect(await description()).not.toMatch(/^\(old\) /);
    const status = await cp.helm(['status', 'vault', '--namespace', 'vault-system', '-o', 'json']);
    expect(JSON.parse(status.stdout).version).toBe(2);
  }, 600_000);
});
