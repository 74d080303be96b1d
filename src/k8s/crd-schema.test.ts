import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { crdFiles, toStructural } from './crd-schema.js';
import { renderCrds } from './generate-crds.js';
import { parseVaultLease, vaultCredentialSpec, vaultLeaseSpec } from './resources.js';

describe('CRDs generated from the zod schemas', () => {
  it('match the files in crds/ (run `npx tsx src/k8s/generate-crds.ts` after changing resources.ts)', () => {
    for (const { path, content } of renderCrds()) expect(readFileSync(path, 'utf8'), path).toBe(content);
  });

  it('are structural: no additionalProperties false, no unions', () => {
    const text = renderCrds()
      .map((c) => c.content)
      .join('\n');
    expect(text).not.toMatch(/additionalProperties: false/);
    expect(text).not.toMatch(/anyOf|oneOf|\$schema/);
    expect(() => toStructural({ anyOf: [] })).toThrow(/not structural/);
  });

  it('describe every field but metadata, so `kubectl explain` and the reference page explain each one', () => {
    type Node = { description?: string; properties?: Record<string, Node>; items?: Node };
    const undescribed = (node: Node, path: string): string[] => [
      ...Object.entries(node.properties ?? {}).flatMap(([name, child]) => [
        ...(child.description ? [] : [`${path}.${name}`]),
        ...undescribed(child, `${path}.${name}`),
      ]),
      ...(node.items ? undescribed(node.items, `${path}[]`) : []),
    ];
    for (const { file, object } of crdFiles()) {
      const root = object.spec.versions[0]!.schema.openAPIV3Schema as Node;
      expect(root.description, file).toBeTruthy();
      // The API server refuses a CRD whose root metadata carries more than its type.
      expect(root.properties?.metadata).toEqual({ type: 'object' });
      expect(undescribed(root, file)).toEqual([`${file}.metadata`]);
    }
  });
});

describe('resource schemas', () => {
  it('default onExpiry and renewal.enabled, and accept a ServiceAccount lease', () => {
    const spec = vaultLeaseSpec.parse({
      credentialRef: { name: 'x' },
      serviceAccountName: 'app',
      renewal: {},
    });
    expect(spec.onExpiry).toBe('wipe');
    expect(spec.renewal?.enabled).toBe(false);
  });

  it('reject durations CEL cannot compare, unknown fields and bad types', () => {
    expect(
      vaultLeaseSpec.safeParse({ credentialRef: { name: 'x' }, serviceAccountName: 'a', ttl: '2d' }).success,
    ).toBe(false);
    expect(
      vaultLeaseSpec.safeParse({ credentialRef: { name: 'x' }, serviceAccountName: 'a', ttl: '0s' }).success,
    ).toBe(false);
    expect(vaultCredentialSpec.safeParse({ type: 'nope', source: { external: {} } }).success).toBe(false);
    expect(
      vaultCredentialSpec.safeParse({ type: 'generic', source: { external: {} }, extra: 1 }).success,
    ).toBe(false);
  });

  it('report an unreadable spec instead of throwing', () => {
    const parsed = parseVaultLease({
      metadata: { name: 'x', namespace: 'n', uid: 'u' },
      spec: { credentialRef: {}, serviceAccountName: 'a' },
    });
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toContain('spec.credentialRef.name');
  });
});
