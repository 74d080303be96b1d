/**
 * The custom resource reference, from the CRDs that src/k8s/crd-schema.ts builds from the zod
 * schemas (the same objects written to crds/, which `kubectl explain` reads).
 */
import { crdFiles } from '../../../src/k8s/crd-schema.js';
import { code, describeField, generatedNotice, table, text } from '../markdown.js';
import { flatten, type JsonSchema } from '../schema-fields.js';

interface Crd {
  metadata: { name: string };
  spec: {
    group: string;
    names: { kind: string; plural: string; shortNames: string[] };
    versions: Array<{
      name: string;
      additionalPrinterColumns: Array<{ name: string; type: string; jsonPath: string; priority?: number }>;
      schema: { openAPIV3Schema: JsonSchema };
    }>;
  };
}

type Rule = { rule: string; message: string };

/** Every CEL rule in the schema, with the path of the node that carries it. */
function rulesOf(node: JsonSchema, path = ''): Array<{ path: string; rule: Rule }> {
  const found = ((node['x-kubernetes-validations'] as Rule[] | undefined) ?? []).map((rule) => ({
    path: path || '(the object)',
    rule,
  }));
  for (const [name, child] of Object.entries((node.properties as Record<string, JsonSchema>) ?? {})) {
    found.push(...rulesOf(child, path ? `${path}.${name}` : name));
  }
  const items = node.items as JsonSchema | undefined;
  if (items) found.push(...rulesOf(items, `${path}[]`));
  return found;
}

function crdSection(crd: Crd): string {
  const version = crd.spec.versions[0]!;
  const schema = version.schema.openAPIV3Schema;
  const { kind, plural, shortNames } = crd.spec.names;
  // The API server allows nothing but a type on the root metadata, so its text is here.
  const rows = flatten(schema).map((row) =>
    row.path === 'metadata' && !row.description
      ? {
          ...row,
          description:
            "Standard object metadata (name, namespace, labels); the namespace is the object's Vault tenant.",
        }
      : row,
  );
  const rules = rulesOf(schema);
  return [
    `## ${kind}`,
    '',
    text(String(schema.description ?? '')),
    '',
    `\`apiVersion: ${crd.spec.group}/${version.name}\`, namespaced; \`kubectl get ${plural}\` (short: ${shortNames.map((s) => code(s)).join(', ')}). \`kubectl explain ${plural}.spec\` shows the same descriptions.`,
    '',
    '### Fields',
    '',
    table(
      ['field', 'type', 'required', 'description'],
      rows.map((row) => [
        code(row.path),
        code(row.type),
        row.required ? 'yes' : '',
        text(describeField(row.description, row.constraints)),
      ]),
    ),
    '',
    '### Rules the API server checks',
    '',
    table(
      ['on', 'message'],
      rules.map(({ path, rule }) => [code(path), text(rule.message)]),
    ),
    '',
    '### Columns of `kubectl get`',
    '',
    table(
      ['column', 'from', 'shown'],
      version.additionalPrinterColumns.map((column) => [
        column.name,
        code(column.jsonPath),
        column.priority ? 'with `-o wide`' : 'always',
      ]),
    ),
  ].join('\n');
}

export function crdPage(): string {
  const crds = crdFiles().map(({ object }) => object as unknown as Crd);
  return [
    generatedNotice('the CRD schemas (src/k8s/resources.ts via src/k8s/crd-schema.ts, written to crds/)'),
    '',
    '# Custom resources reference',
    '',
    `The fields of the \`${crds[0]!.spec.group}\` resources, as the CRDs in \`crds/\` (and \`charts/vault/crds/\`) define them. How to use them: [Kubernetes for app teams](/kubernetes/).`,
    '',
    ...crds.flatMap((crd) => [crdSection(crd), '']),
  ].join('\n');
}
