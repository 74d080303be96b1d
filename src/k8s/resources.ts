/**
 * The v1alpha1 custom resources, as zod schemas. These are the source of truth: the
 * controller parses every object it reads with them, and src/k8s/generate-crds.ts turns them
 * into the CRD YAML in crds/ (a test fails when the two differ). Rules a structural schema
 * cannot express are CEL rules attached with `.meta({ 'x-kubernetes-validations': ... })`,
 * so they travel with the schema they guard.
 */

import { z } from 'zod';
import { labels, maxLabels, resourceName } from '../contract/common.js';
import {
  controllerOwnerLabel,
  credentialTypes,
  postgresEngineConfig,
  redisEngineConfig,
} from '../contract/credentials.js';
import { managedPolicyPrefix } from '../contract/policies.js';
import { parseDuration } from '../lib/duration.js';

export const group = 'vault.ghoststack.io';
export const version = 'v1alpha1';
export const apiVersion = `${group}/${version}`;

/** Finalizer on both kinds: the controller revokes in Vault before the object goes away. */
export const finalizer = `${group}/revoke`;

type CelRule = { rule: string; message: string; fieldPath?: string; reason?: string };
const cel = (...rules: CelRule[]) => ({ 'x-kubernetes-validations': rules });

/**
 * Durations in Kubernetes resources use Go's units (ms, s, m, h) so that CEL's `duration()`
 * can compare them in the API server; "48h" instead of "2d". The Vault API accepts the same.
 */
const kubeDurationPattern = '^([0-9]+(ms|s|m|h))+$';
export const kubeDurationHelp = 'a duration like "90s", "15m" or "1h30m" (units ms, s, m, h)';

export const kubeDuration = z
  .string()
  .max(32)
  .superRefine((value, ctx) => {
    const parsed = parseDuration(value);
    if (!new RegExp(kubeDurationPattern).test(value)) {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not ${kubeDurationHelp}` });
    } else if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
  })
  .meta({
    ...cel({
      rule: `self.matches('${kubeDurationPattern}') && duration(self) > duration('0s')`,
      message: `must be ${kubeDurationHelp}, greater than zero`,
    }),
  });

const objectName = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
    'a Kubernetes object name (lowercase letters, digits, "-", ".")',
  );

const condition = z.object({
  type: z.string().max(316).describe('The condition, e.g. Ready or RenewBeforeAdjusted.'),
  status: z.enum(['True', 'False', 'Unknown']).describe('Whether the condition holds.'),
  reason: z.string().max(1024).describe('A CamelCase word for why, e.g. Synced, Denied, AlreadyExists.'),
  message: z.string().max(32_768).describe('What happened and what to do about it, for people.'),
  lastTransitionTime: z.string().describe('When status last changed (RFC 3339).'),
  observedGeneration: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe('The metadata.generation this condition was computed from.'),
});
export type Condition = z.infer<typeof condition>;

const conditions = z
  .array(condition)
  .max(8)
  .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })
  .describe('The latest observations of the object, one per type (Ready says why a phase was reached).');

const observedGeneration = z
  .number()
  .int()
  .min(0)
  .optional()
  .describe('The metadata.generation the controller last acted on; behind generation while it catches up.');

// ---------------------------------------------------------------------------------------
// VaultCredential

const secretKeyRef = (keyHelp: string) =>
  z.strictObject({
    name: objectName.describe('A Secret in the same namespace.'),
    key: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[-._a-zA-Z0-9]+$/, 'a Secret data key')
      .describe(keyHelp),
  });

const consentHelp =
  'The Secret must consent, as for secretRef (label vault.ghoststack.io/import: "true" and an annotation naming this VaultCredential).';

/**
 * A dynamic credential: the engine's admin connection comes from a Secret (imported under the
 * same consent rules as secretRef, and never written anywhere else), the rest from the spec.
 */
export const dynamicSource = z
  .strictObject({
    postgres: z
      .strictObject({
        connectionSecretRef: secretKeyRef(
          'The key holding the admin connection URL, postgres://USER:PASSWORD@HOST:PORT/DATABASE.',
        ).describe(`The admin connection; every change of the key becomes a new version. ${consentHelp}`),
        creationStatements: postgresEngineConfig.shape.creationStatements.describe(
          'SQL run for each lease after its LOGIN role is created (VALID UNTIL the lease end); {{name}} is the role, quoted, and the only placeholder.',
        ),
        scramIterations: postgresEngineConfig.shape.scramIterations.describe(
          "PBKDF2 iterations of each lease's SCRAM-SHA-256 verifier; default 4096. Lease passwords are 192 random bits, so fewer make issuing and logins cheaper at no loss, if every client accepts them (pgjdbc with com.ongres.scram 2.x needs 4096).",
        ),
      })
      .optional()
      .describe('PostgreSQL: each lease gets its own role, dropped when the lease ends.'),
    redis: z
      .strictObject({
        connectionSecretRef: secretKeyRef(
          'The key holding the admin connection URL, redis://USER:PASSWORD@HOST:PORT.',
        ).describe(`The admin connection; every change of the key becomes a new version. ${consentHelp}`),
        aclRules: redisEngineConfig.shape.aclRules.describe(
          'ACL rules of each lease\'s user, one token each (e.g. "~cache:*", "+get"); no password rules.',
        ),
      })
      .optional()
      .describe('Redis: each lease gets its own ACL user, deleted when the lease ends.'),
  })
  .describe(
    'Issue every lease its own upstream account that stops working when the lease ends: exactly one of postgres, redis.',
  )
  .meta(
    cel({
      rule: '[has(self.postgres), has(self.redis)].filter(x, x).size() == 1',
      message: 'spec.source.dynamic must set exactly one of postgres or redis',
    }),
  );
export type DynamicSource = z.output<typeof dynamicSource>;

export const credentialSource = z
  .strictObject({
    secretRef: secretKeyRef('The key in the Secret whose value is imported.')
      .optional()
      .describe('Import the value from a Secret key; every change of that key becomes a new version.'),
    generate: z
      .strictObject({
        length: z.number().int().min(8).max(4096).default(32).describe('Characters in the value.'),
        alphabet: z
          .enum(['alphanumeric', 'hex', 'base64url', 'printable'])
          .default('alphanumeric')
          .describe('The characters the value is drawn from.'),
      })
      .optional()
      .describe('Generate a random value (and a fresh one at every rotation).'),
    external: z
      .strictObject({})
      .optional()
      .describe(
        'The credential and its value are managed through the Vault API; this resource grants access.',
      ),
    dynamic: dynamicSource.optional(),
  })
  .describe('Where the value comes from: exactly one of secretRef, generate, external, dynamic.')
  .meta(
    cel({
      rule: '[has(self.secretRef), has(self.generate), has(self.external), has(self.dynamic)].filter(x, x).size() == 1',
      message: 'spec.source must set exactly one of secretRef, generate, external or dynamic',
    }),
  );

export const credentialAccess = z
  .strictObject({
    serviceAccounts: z
      .array(objectName)
      .max(64)
      .optional()
      .describe('ServiceAccounts of this namespace that may lease the credential.'),
    agents: z
      .array(
        z
          .string()
          .min(1)
          .max(253)
          .regex(/^[A-Za-z0-9@._:-]+$/, 'an agent identity name'),
      )
      .max(64)
      .optional()
      .describe('Agent identities of the tenant that may lease the credential.'),
    defaultTtl: kubeDuration.optional().describe('TTL of a lease that asks for none.'),
    maxTtl: kubeDuration.optional().describe('The longest lease (including renewals) this grants.'),
  })
  .describe(
    'Who may lease the credential, and for how long: the controller writes it as a Vault policy attached to exactly these identities.',
  )
  .meta(
    cel({
      rule: '!has(self.defaultTtl) || !has(self.maxTtl) || duration(self.defaultTtl) <= duration(self.maxTtl)',
      message: 'spec.access.defaultTtl must not exceed spec.access.maxTtl',
    }),
  );

/** spec.metadata leaves room for the owner label the controller adds in Vault. */
const maxSpecLabels = maxLabels - 1;
const ownerLabelMessage = `spec.metadata may not set ${controllerOwnerLabel}: the controller sets it on the credentials it creates`;

/** The Vault policy that carries a VaultCredential's spec.access is named this plus its name. */
export const credentialPolicyPrefix = managedPolicyPrefix;
/** The longest VaultCredential name whose policy name Vault accepts (253 characters). */
export const maxCredentialName = 253 - credentialPolicyPrefix.length;

/** Rules on the whole VaultCredential object (CEL at the root sees metadata.name). */
export const vaultCredentialObjectRules = cel({
  rule: `size(self.metadata.name) <= ${maxCredentialName}`,
  message: `a VaultCredential name is at most ${maxCredentialName} characters (its Vault policy is ${credentialPolicyPrefix}<name>)`,
});

export const vaultCredentialSpec = z
  .strictObject({
    type: z
      .enum(credentialTypes)
      .describe('The credential type.')
      .meta(cel({ rule: 'self == oldSelf', message: 'spec.type is immutable' })),
    metadata: labels
      .refine(
        (value) => Object.keys(value).length <= maxSpecLabels,
        `at most ${maxSpecLabels} labels (Vault allows ${maxLabels}; the controller adds ${controllerOwnerLabel})`,
      )
      // The owner label says which VaultCredential created a credential (and deletes it with
      // itself); written by hand it would claim an external credential. Vault refuses it too.
      .refine((value) => !(controllerOwnerLabel in value), ownerLabelMessage)
      .meta({
        maxProperties: maxSpecLabels,
        ...cel({ rule: `!('${controllerOwnerLabel}' in self)`, message: ownerLabelMessage }),
      })
      .optional()
      .describe('Labels stored with the credential in Vault (policies can match them).'),
    source: credentialSource,
    access: credentialAccess.optional(),
    rotation: z
      .strictObject({
        interval: kubeDuration.optional().describe('Rotate a generated value this often.'),
      })
      .optional()
      .describe('Scheduled rotation (only with source.generate).'),
  })
  .meta(
    cel({
      rule: '!has(self.rotation) || !has(self.rotation.interval) || has(self.source.generate)',
      message:
        'spec.rotation.interval needs spec.source.generate (other sources change when their value does)',
    }),
  );
export type VaultCredentialSpec = z.output<typeof vaultCredentialSpec>;

export const credentialPhases = ['Pending', 'Ready', 'Failed'] as const;

export const vaultCredentialStatus = z.object({
  phase: z
    .enum(credentialPhases)
    .optional()
    .describe(
      'Pending until the credential is in Vault, Ready when in line with the spec, Failed (see the Ready condition).',
    ),
  version: z.number().int().min(0).optional().describe('The current version in Vault.'),
  fingerprint: z
    .string()
    .max(128)
    .optional()
    .describe(
      'HMAC of the current version (scoped to credential and version, so equal values differ; never the value).',
    ),
  rotatedAt: z.string().optional().describe('When the current version was created.'),
  secretResourceVersion: z.string().max(64).optional().describe('The Secret resourceVersion last imported.'),
  policy: z.string().max(253).optional().describe('The Vault policy that carries spec.access.'),
  identities: z
    .array(z.string().max(300))
    .max(128)
    .optional()
    .describe('Vault identities the policy is attached to ("type:name").'),
  observedGeneration,
  conditions: conditions.optional(),
});
export type VaultCredentialStatus = z.infer<typeof vaultCredentialStatus>;

// ---------------------------------------------------------------------------------------
// VaultLease

export const leasePhases = ['Pending', 'Active', 'Expired', 'Revoked', 'Denied', 'Failed'] as const;
export type LeasePhase = (typeof leasePhases)[number];

export const vaultLeaseSpec = z
  .strictObject({
    credentialRef: z
      .strictObject({ name: resourceName.max(253).describe('The credential name in Vault.') })
      .describe('The credential to lease (usually a VaultCredential of this namespace).'),
    ttl: kubeDuration.optional().describe("The lease TTL; defaults to the credential's default TTL."),
    identity: z
      .strictObject({
        type: z.enum(['human', 'agent', 'workload']).describe('The kind of identity.'),
        name: z
          .string()
          .min(1)
          .max(253)
          .regex(/^[A-Za-z0-9@._:-]+$/)
          .describe(
            'Its name, e.g. claude-code, or system:serviceaccount:<namespace>:<name> for a workload.',
          ),
      })
      .optional()
      .describe('The identity the lease is for.'),
    serviceAccountName: objectName
      .optional()
      .describe('Shorthand for the workload identity system:serviceaccount:<namespace>:<name>.'),
    renewal: z
      .strictObject({
        enabled: z.boolean().default(false).describe('Renew the lease before it expires.'),
        maxTtl: kubeDuration.optional().describe('Renew until the lease is this old; then it expires.'),
        renewBefore: kubeDuration
          .optional()
          .describe('Renew this long before expiry; default a third of the TTL.'),
      })
      .optional()
      .describe('Automatic renewal; without it the lease expires at its TTL.'),
    onExpiry: z
      .enum(['wipe', 'keep', 'restart'])
      .default('wipe')
      .describe('What consumers do at expiry: wipe the files, keep them, or restart the owning workload.'),
  })
  .meta(
    cel(
      {
        rule: 'has(self.identity) != has(self.serviceAccountName)',
        message: 'spec must set exactly one of identity or serviceAccountName',
      },
      {
        rule: '!has(self.ttl) || !has(self.renewal) || !has(self.renewal.maxTtl) || duration(self.ttl) <= duration(self.renewal.maxTtl)',
        message: 'spec.ttl must not exceed spec.renewal.maxTtl',
      },
      {
        rule: '!has(self.ttl) || !has(self.renewal) || !has(self.renewal.renewBefore) || duration(self.renewal.renewBefore) < duration(self.ttl)',
        message: 'spec.renewal.renewBefore must be shorter than spec.ttl',
      },
      // Without spec.ttl the TTL is the credential's default, which only the controller knows:
      // it renews at a third of the TTL when renewBefore is not shorter (RenewBeforeAdjusted).
      {
        rule: '!has(self.renewal) || !has(self.renewal.renewBefore) || !has(self.renewal.maxTtl) || duration(self.renewal.renewBefore) < duration(self.renewal.maxTtl)',
        message: 'spec.renewal.renewBefore must be shorter than spec.renewal.maxTtl',
      },
    ),
  );
export type VaultLeaseSpec = z.output<typeof vaultLeaseSpec>;

export const vaultLeaseStatus = z.object({
  phase: z
    .enum(leasePhases)
    .optional()
    .describe('Where the lease stands; Denied and Failed carry the reason in the Ready condition.'),
  leaseId: z.string().max(128).optional().describe('The lease id in Vault.'),
  identity: z.string().max(300).optional().describe('The identity the lease is for, as "type:name".'),
  version: z.number().int().min(0).optional().describe('The credential version leased.'),
  issuedAt: z.string().optional().describe('When the lease was issued (RFC 3339).'),
  expiresAt: z.string().optional().describe('When the lease expires unless renewed (RFC 3339).'),
  maxExpiresAt: z.string().optional().describe('The latest renewal can extend it to (RFC 3339).'),
  ttlSeconds: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe('The TTL granted at issue (each renewal extends by it).'),
  renewCount: z.number().int().min(0).optional().describe('Renewals so far.'),
  observedGeneration,
  conditions: conditions.optional(),
});
export type VaultLeaseStatus = z.infer<typeof vaultLeaseStatus>;

// ---------------------------------------------------------------------------------------
// Objects as read from the API server.

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: Array<{
    apiVersion: string;
    kind: string;
    name: string;
    uid: string;
    controller?: boolean;
  }>;
}

export interface VaultCredentialObject {
  apiVersion: string;
  kind: 'VaultCredential';
  metadata: ObjectMeta;
  spec: VaultCredentialSpec;
  status?: VaultCredentialStatus;
}

export interface VaultLeaseObject {
  apiVersion: string;
  kind: 'VaultLease';
  metadata: ObjectMeta;
  spec: VaultLeaseSpec;
  status?: VaultLeaseStatus;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; message: string };

const issuesText = (error: z.ZodError) =>
  error.issues
    .map((issue) => `${issue.path.length ? `spec.${issue.path.join('.')}: ` : ''}${issue.message}`)
    .join('; ');

/** Parses an object's spec and status; a spec the CRD let through but zod refuses is reported, not thrown. */
function parseObject<S, T>(
  raw: { metadata?: unknown; spec?: unknown; status?: unknown },
  spec: z.ZodType<S>,
  status: z.ZodType<T>,
): ParseResult<{ spec: S; status: T | undefined }> {
  const parsedSpec = spec.safeParse(raw.spec ?? {});
  if (!parsedSpec.success) return { ok: false, message: issuesText(parsedSpec.error) };
  const parsedStatus = status.safeParse(raw.status ?? {});
  // A status we cannot read is treated as empty: the controller rebuilds it.
  return {
    ok: true,
    value: { spec: parsedSpec.data, status: parsedStatus.success ? parsedStatus.data : undefined },
  };
}

export function parseVaultCredential(raw: KubeObject): ParseResult<VaultCredentialObject> {
  const parsed = parseObject(raw, vaultCredentialSpec, vaultCredentialStatus);
  if (!parsed.ok) return parsed;
  return {
    ok: true,
    value: { apiVersion, kind: 'VaultCredential', metadata: raw.metadata as ObjectMeta, ...parsed.value },
  };
}

export function parseVaultLease(raw: KubeObject): ParseResult<VaultLeaseObject> {
  const parsed = parseObject(raw, vaultLeaseSpec, vaultLeaseStatus);
  if (!parsed.ok) return parsed;
  return {
    ok: true,
    value: { apiVersion, kind: 'VaultLease', metadata: raw.metadata as ObjectMeta, ...parsed.value },
  };
}

/** The untyped shape of anything read from the API server. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: unknown;
  status?: unknown;
  [field: string]: unknown;
}
