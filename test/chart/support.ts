/**
 * Helpers for the chart tests: run helm offline (lint, template), parse what it renders, and
 * pick out the pieces the tests assert on (pod templates, RBAC rules).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { resolveAssets } from '../support/assets.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const chartDir = join(repoRoot, 'charts', 'vault');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
  };
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests are arbitrary YAML
  [field: string]: any;
}

export interface HelmResult {
  stdout: string;
  stderr: string;
  code: number;
}

let helmHome: string | undefined;

/** Runs the test helm binary with its caches in a throw-away directory (no cluster needed). */
export function helm(args: string[]): Promise<HelmResult> {
  helmHome ??= mkdtempSync(join(tmpdir(), 'vault-chart-helm-'));
  const home = helmHome;
  return new Promise((resolve) => {
    execFile(
      resolveAssets().helm,
      args,
      {
        encoding: 'utf8',
        maxBuffer: 32 * 1024 * 1024,
        timeout: 120_000,
        env: {
          PATH: process.env.PATH,
          HOME: home,
          HELM_CACHE_HOME: join(home, 'cache'),
          HELM_CONFIG_HOME: join(home, 'config'),
          HELM_DATA_HOME: join(home, 'data'),
          // Offline renders must not pick up a developer's cluster.
          KUBECONFIG: join(home, 'no-kubeconfig'),
        },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ stdout, stderr, code });
      },
    );
  });
}

/** Values as `--set`-free `--set-json` flags, so types survive (numbers stay numbers). */
export function valueFlags(values: Record<string, unknown>): string[] {
  return Object.entries(values).flatMap(([path, value]) => [
    '--set-json',
    `${path}=${JSON.stringify(value)}`,
  ]);
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]?.message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((obj): obj is K8sObject => obj !== null && typeof obj === 'object' && 'kind' in obj);
}

/** `helm template` and the parsed objects; throws with helm's message when it fails. */
export async function render(
  values: Record<string, unknown> = {},
  { release = 'vault', namespace = 'vault' } = {},
): Promise<K8sObject[]> {
  const result = await helm(['template', release, chartDir, '--namespace', namespace, ...valueFlags(values)]);
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) {
    const have = objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ');
    throw new Error(`no ${kind}/${name} among: ${have}`);
  }
  return found;
}

export const workloadKinds = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob'];

/** The pod template of a workload. */
export function podTemplate(workload: K8sObject): { metadata: K8sObject['metadata']; spec: K8sObject } {
  if (workload.kind === 'CronJob') return workload.spec.jobTemplate.spec.template;
  return workload.spec.template;
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
  nonResourceURLs?: string[];
}

export function rbacRules(objects: K8sObject[]): Array<{ owner: string; rule: PolicyRule }> {
  return objects
    .filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole')
    .flatMap((o) =>
      ((o.rules ?? []) as PolicyRule[]).map((rule) => ({ owner: `${o.kind}/${o.metadata.name}`, rule })),
    );
}

/** A rule with its lists sorted, so that two spellings of the same grant compare equal. */
export function normalizeRule(rule: PolicyRule, renames: Record<string, string> = {}): PolicyRule {
  const sorted = (list?: string[]) =>
    list ? [...list].map((item) => renames[item] ?? item).sort() : undefined;
  return Object.fromEntries(
    Object.entries({
      apiGroups: sorted(rule.apiGroups),
      resources: sorted(rule.resources),
      resourceNames: sorted(rule.resourceNames),
      verbs: sorted(rule.verbs) ?? [],
    }).filter(([, value]) => value !== undefined),
  ) as unknown as PolicyRule;
}
