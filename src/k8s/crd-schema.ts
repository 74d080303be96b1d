/**
 * Builds the CustomResourceDefinitions from the zod schemas in resources.ts: zod 4's JSON
 * Schema (OpenAPI 3.0 flavour) made structural, the way the API server requires: no
 * `additionalProperties: false` (unknown fields are pruned instead), no `$schema`, no
 * unbounded integer limits, every node typed.
 */
import { z } from 'zod';
import {
  group,
  vaultCredentialObjectRules,
  vaultCredentialSpec,
  vaultCredentialStatus,
  vaultLeaseSpec,
  vaultLeaseStatus,
  version,
} from './resources.js';

type JsonSchema = { [key: string]: unknown };

const dropped = new Set(['$schema', 'propertyNames', 'id']);

/** Rewrites a zod-generated JSON schema node (recursively) into a structural OpenAPI v3 schema. */
export function toStructural(node: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (dropped.has(key)) continue;
    if (key === 'additionalProperties' && value === false) continue;
    if (
      (key === 'minimum' && value === Number.MIN_SAFE_INTEGER) ||
      (key === 'maximum' && value === Number.MAX_SAFE_INTEGER)
    )
      continue;
    if (key === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(value as Record<string, JsonSchema>).map(([name, child]) => [
          name,
          toStructural(child),
        ]),
      );
    } else if (
      (key === 'items' || key === 'additionalProperties') &&
      typeof value === 'object' &&
      value !== null
    ) {
      out[key] = toStructural(value as JsonSchema);
    } else if (key === 'anyOf' || key === 'oneOf' || key === 'allOf') {
      throw new Error(`${key} is not structural; express the rule with CEL instead`);
    } else {
      out[key] = value;
    }
  }
  return out;
}

const schemaOf = (schema: z.ZodType): JsonSchema =>
  toStructural(
    z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'throw' }) as JsonSchema,
  );

const specDescriptions: Record<string, string> = {
  VaultCredential: 'The desired credential: its type, where its value comes from, and who may lease it.',
  VaultLease:
    'The desired lease: which credential, for which identity, for how long, and what happens at expiry.',
};

interface KindNames {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
}

function crd(
  names: KindNames,
  spec: z.ZodType,
  status: z.ZodType,
  description: string,
  columns: Array<Record<string, unknown>>,
  rules: Record<string, unknown> = {},
) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${names.plural}.${group}`,
      labels: { 'app.kubernetes.io/part-of': 'vault' },
    },
    spec: {
      group,
      scope: 'Namespaced',
      names: { ...names, listKind: `${names.kind}List`, categories: ['vault'] },
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description,
              required: ['spec'],
              ...rules,
              properties: {
                apiVersion: {
                  type: 'string',
                  description: `The versioned schema of this object: ${group}/${version}.`,
                },
                kind: { type: 'string', description: `The kind of this object: ${names.kind}.` },
                // The API server refuses anything on metadata but its type (not even a description).
                metadata: { type: 'object' },
                spec: { ...schemaOf(spec), description: specDescriptions[names.kind] },
                status: {
                  ...schemaOf(status),
                  description: 'What the controller observed and did; written by the controller only.',
                },
              },
            },
          },
        },
      ],
    },
  };
}

export const vaultCredentialCrd = () =>
  crd(
    {
      kind: 'VaultCredential',
      plural: 'vaultcredentials',
      singular: 'vaultcredential',
      shortNames: ['vcred'],
    },
    vaultCredentialSpec,
    vaultCredentialStatus,
    'A credential in Vault (tenant = this namespace), its source and who may lease it.',
    [
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Type', type: 'string', jsonPath: '.spec.type' },
      { name: 'Version', type: 'integer', jsonPath: '.status.version' },
      { name: 'Fingerprint', type: 'string', jsonPath: '.status.fingerprint', priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
    vaultCredentialObjectRules,
  );

export const vaultLeaseCrd = () =>
  crd(
    { kind: 'VaultLease', plural: 'vaultleases', singular: 'vaultlease', shortNames: ['vlease'] },
    vaultLeaseSpec,
    vaultLeaseStatus,
    'A time-limited lease of a Vault credential for one identity (tenant = this namespace).',
    [
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Credential', type: 'string', jsonPath: '.spec.credentialRef.name' },
      { name: 'Identity', type: 'string', jsonPath: '.status.identity' },
      // kubectl renders a future `date` as "<invalid>", so the expiry is shown as a timestamp.
      { name: 'Expires', type: 'string', jsonPath: '.status.expiresAt' },
      { name: 'Renewals', type: 'integer', jsonPath: '.status.renewCount', priority: 1 },
      { name: 'Lease', type: 'string', jsonPath: '.status.leaseId', priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  );

/** The files in crds/ and their objects. */
export const crdFiles = () => [
  { file: 'vaultcredentials.yaml', object: vaultCredentialCrd() },
  { file: 'vaultleases.yaml', object: vaultLeaseCrd() },
];
