import { cp as copyDir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';

const fixture = (path: string) => fileURLToPath(new URL(`../fixtures/${path}`, import.meta.url));
const crdFile = fixture('placeholder-crd.yaml');
const chartDir = fixture('smoke-chart');
const crdName = 'placeholders.smoke.vault.ghoststack.io';

describe('manifests, kubectl and helm against the control plane', () => {
  let cp: ControlPlane;
  let core: CoreV1Api;

  beforeAll(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig().makeApiClient(CoreV1Api);
  });
  afterAll(() => cp?.stop());

  describe('a CustomResourceDefinition', () => {
    it('applies and becomes Established', async () => {
      const applied = await cp.kubectl(['apply', '-f', crdFile]);
      expect(applied.code, applied.stderr).toBe(0);
      await cp.waitForCrds([crdName]);

      const crd = await cp
        .kubeConfig()
        .makeApiClient(ApiextensionsV1Api)
        .readCustomResourceDefinition({ name: crdName });
      const established = crd.status?.conditions?.find((c) => c.type === 'Established');
      expect(established?.status).toBe('True');
    });

    it('serves the new kind once Established', async () => {
      await cp.createNamespace('crd');
      const custom = cp.kubeConfig().makeApiClient(CustomObjectsApi);
      const ref = {
        group: 'smoke.vault.ghoststack.io',
        version: 'v1alpha1',
        namespace: 'crd',
        plural: 'placeholders',
      };
      await custom.createNamespacedCustomObject({
        ...ref,
        body: {
          apiVersion: 'smoke.vault.ghoststack.io/v1alpha1',
          kind: 'Placeholder',
          metadata: { name: 'first' },
          spec: { size: 3, message: 'hi' },
        },
      });
      const got = (await custom.getNamespacedCustomObject({ ...ref, name: 'first' })) as { spec: unknown };
      expect(got.spec).toEqual({ size: 3, message: 'hi' });
      const listed = await cp.kubectl(['get', 'placeholders', '-n', 'crd']);
      expect(listed.stdout).toMatch(/first\s+3/);
    });

    it('rejects an object that breaks its schema', async () => {
      const bad = await cp.kubectl(['apply', '-n', 'crd', '-f', '-'], {
        input: [
          'apiVersion: smoke.vault.ghoststack.io/v1alpha1',
          'kind: Placeholder',
          'metadata: {name: bad}',
          'spec: {size: 0}',
        ].join('\n'),
      });
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/spec\.size.*should be greater than or equal to 1/);
    });
  });

  describe('kubectl apply -f', () => {
    it('creates a ConfigMap that reads back through the API', async () => {
      const manifest = join(cp.workDir, 'configmap.yaml');
      await writeFile(
        manifest,
        [
          'apiVersion: v1',
          'kind: ConfigMap',
          'metadata: {name: applied, namespace: default}',
          'data: {color: blue}',
        ].join('\n'),
      );
      const applied = await cp.kubectl(['apply', '-f', manifest]);
      expect(applied.code, applied.stderr).toBe(0);
      expect(applied.stdout).toContain('configmap/applied created');

      const stored = await core.readNamespacedConfigMap({ name: 'applied', namespace: 'default' });
      expect(stored.data).toEqual({ color: 'blue' });
      const again = await cp.kubectl(['apply', '-f', manifest]);
      expect(again.stdout).toContain('configmap/applied unchanged');
    });
  });

  describe('helm', () => {
    it('lints the chart', async () => {
      const lint = await cp.helm(['lint', chartDir]);
      expect(lint.code, lint.stdout + lint.stderr).toBe(0);
      expect(lint.stdout).toContain('0 chart(s) failed');
    });

    it('fails lint for a chart whose template does not render', async () => {
      const broken = join(cp.workDir, 'broken-chart');
      await copyDir(chartDir, broken, { recursive: true });
      await writeFile(
        join(broken, 'templates', 'broken.yaml'),
        'kind: ConfigMap\nname: {{ .Values.nope.deeper }}\n',
      );
      const lint = await cp.helm(['lint', broken]);
      expect(lint.code).not.toBe(0);
      expect(lint.stdout + lint.stderr).toContain('broken.yaml');
    });

    it('templates the chart with overridden values', async () => {
      const rendered = await cp.helm(['template', 'demo', chartDir, '--set', 'greeting=bonjour']);
      expect(rendered.code, rendered.stderr).toBe(0);
      const docs = parseAllDocuments(rendered.stdout)
        .map(
          (d) => d.toJS() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> },
        )
        .filter((d) => d?.kind);
      expect(docs).toHaveLength(1);
      expect(docs[0]).toMatchObject({
        kind: 'ConfigMap',
        metadata: { name: 'demo-smoke' },
        // Offline, helm renders for the Kubernetes version stamped into it at build time.
        data: { greeting: 'bonjour', kubeVersion: expect.stringMatching(/^v1\.34\./) },
      });
    });

    it('installs, lists and uninstalls a release', async () => {
      const installed = await cp.helm([
        'install',
        'smoke',
        chartDir,
        '--namespace',
        'helm-smoke',
        '--create-namespace',
        '--wait',
        '--timeout',
        '60s',
      ]);
      expect(installed.code, installed.stderr).toBe(0);
      const cm = await core.readNamespacedConfigMap({ name: 'smoke-smoke', namespace: 'helm-smoke' });
      // Installing, helm renders for the server it talks to.
      expect(cm.data).toEqual({ greeting: 'hello', kubeVersion: cp.serverVersion.gitVersion });

      const list = await cp.helm(['list', '--namespace', 'helm-smoke', '-o', 'json']);
      expect(list.code, list.stderr).toBe(0);
      expect(JSON.parse(list.stdout)).toEqual([
        expect.objectContaining({ name: 'smoke', status: 'deployed' }),
      ]);

      const uninstalled = await cp.helm(['uninstall', 'smoke', '--namespace', 'helm-smoke', '--wait']);
      expect(uninstalled.code, uninstalled.stderr).toBe(0);
      await expect(
        core.readNamespacedConfigMap({ name: 'smoke-smoke', namespace: 'helm-smoke' }),
      ).rejects.toMatchObject({ code: 404 });
      const after = await cp.helm(['list', '--namespace', 'helm-smoke', '-o', 'json']);
      expect(JSON.parse(after.stdout)).toEqual([]);
    });

    it('refuses to install when a required value is missing', async () => {
      const install = await cp.helm([
        'install',
        'empty',
        chartDir,
        '--namespace',
        'default',
        '--set',
        'greeting=',
      ]);
      expect(install.code).not.toBe(0);
      expect(install.stderr).toContain('greeting is required');
    });
  });
});
