import { z } from 'zod';
import { duration, labels, resourceName, secretValue } from './common.js';

export const credentialTypes = [
  'api-key',
  'password',
  'database-url',
  'ssh-key',
  'certificate',
  'generic',
] as const;
export const credentialType = z.enum(credentialTypes);
export type CredentialType = z.infer<typeof credentialType>;

/** How a value is generated when none is given (rotate, or a generated credential). */
export const generateSpec = z.strictObject({
  length: z.number().int().min(8).max(4096).default(32),
  alphabet: z.enum(['alphanumeric', 'hex', 'base64url', 'printable']).default('alphanumeric'),
});
export type GenerateSpec = z.infer<typeof generateSpec>;

export const leaseDefaults = z.strictObject({
  defaultTtl: duration.optional(),
  maxTtl: duration.optional(),
});

export const createCredentialRequest = z.strictObject({
  name: resourceName,
  type: credentialType,
  value: secretValue.optional(),
  generate: generateSpec.optional(),
  metadata: labels.optional(),
  leases: leaseDefaults.optional(),
});
export type CreateCredentialRequest = z.input<typeof createCredentialRequest>;

export const putVersionRequest = z.strictObject({ value: secretValue });

export const rotateRequest = z.strictObject({
  value: secretValue.optional(),
  generate: generateSpec.optional(),
  /** Revoke the leases of older versions at once instead of letting them run out. */
  revokeOldLeases: z.boolean().default(false),
});

export const updateCredentialRequest = z.strictObject({
  metadata: labels.optional(),
  leases: leaseDefaults.optional(),
});

export const credentialVersion = z.object({
  version: z.number().int(),
  createdAt: z.string(),
  /** HMAC fingerprint of the value under the tenant's audit key; never the value. */
  fingerprint: z.string(),
});

export const credential = z.object({
  name: z.string(),
  type: credentialType,
  metadata: z.record(z.string(), z.string()),
  leases: z.object({ defaultTtl: z.string().optional(), maxTtl: z.string().optional() }).optional(),
  currentVersion: z.number().int(),
  versions: z.array(credentialVersion),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Credential = z.infer<typeof credential>;

export const listCredentialsQuery = z.strictObject({
  prefix: z.string().max(253).optional(),
  /** "key=value" label selectors, comma-separated. */
  labels: z.string().max(2048).optional(),
});
