/**
 * Every Kubernetes manifest the documentation shows (the YAML blocks of every page in docs/ and
 * the files in examples/) is applied to a real API server with the CRDs installed: an
 * example that its own CRD's schema or CEL rules refuse fails here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { type OperatorEnv, repoFile, setupOperatorEnv } from './support.js';

interface KubeManifest {
  apiVersion: string;
  kind: string;
  metadata?: { namespace?: string };
  spec?: { serviceAccountName?: string };
}

interface Manifest {
  source: string;
  objects: KubeManifest[];
}

const isObject = (doc: unknown): doc is KubeManifest =>
  typeof doc === 'object' && doc !== null && 'apiVersion' in doc && 'kind' in doc;

/**
 * The Kubernetes objects of one YAML text (a block may also hold a fragment, such as a pod
 * template's metadata), or undefined when it holds none (Helm values, compose files).
 */
function manifest(source: string, yaml: string): Manifest | undefined {
  const objects = parseAllDocuments(yaml)
    .map((doc) => doc.toJS() as unknown)
    .filter(isObject);
  return objects.length > 0 ? { source, objects } : undefined;
}

function documented(): Manifest[] {
  const found: Manifest[] = [];
  const docDir = repoFile('docs/');
  const pages = readdirSync(docDir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.md') && !f.startsWith('.vitepress'))
    .sort();
  for (const file of pages) {
    const text = readFileSync(`${docDir}${file}`, 'utf8');
    let index = 0;
    for (const block of text.matchAll(/```yaml\n([\s\S]*?)```/g)) {
      const m = manifest(`docs/${file} (yaml block ${++index})`, block[1] ?? '');
      if (m) found.push(m);
    }
  }
  const exampleDir = repoFile('examples/');
  for (const file of readdirSync(exampleDir).filter((f) => /\.ya?ml$/.test(f))) {
    const m = manifest(`examples/${file}`, readFileSync(`${exampleDir}${file}`, 'utf8'));
    if (m) found.push(m);
  }
  return found;
}

let env: OperatorEnv;

beforeAll(async () => {
  env = await setupOperatorEnv();
}, 180_000);

afterAll(async () => {
  await env?.close();
});

describe('documented examples', { timeout: 90_000 }, () => {
  const manifests = documented();

  it('include the operator docs and every file of examples/', () => {
    const sources = manifests.map((m) => m.source);
    expect(sources.filter((s) => s.startsWith('docs/kubernetes/resources.md')).length).toBeGreaterThanOrEqual(
      2,
    );
    expect(sources.filter((s) => s.startsWith('examples/'))).toHaveLength(
      readdirSync(repoFile('examples/')).filter((f) => /\.ya?ml$/.test(f)).length,
    );
  });

  it.each(manifests.map((m) => [m.source, m] as const))('%s is accepted by the API server', async (_, m) => {
    for (const object of m.objects) {
      const ns = object.metadata?.namespace ?? 'default';
      await env.cp.createNamespace(ns).catch(() => {});
      // A pod example names its ServiceAccount, which the reader is assumed to have.
      const sa = object.kind === 'Pod' ? object.spec?.serviceAccountName : undefined;
      if (sa) await env.cp.kubectl(['create', 'serviceaccount', sa, '-n', ns]);
    }
    // Server-side dry run: the API server's full validation (schema, CEL, admission), nothing stored.
    const result = await env.cp.kubectl(['apply', '--dry-run=server', '-f', '-'], {
      input: m.objects.map((o) => stringify(o)).join('---\n'),
    });
    expect(result.code, `${m.source}:\n${result.stderr}`).toBe(0);
  });
});
