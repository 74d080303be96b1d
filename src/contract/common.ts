import { z } from 'zod';
import { durationHelp, parseDuration } from '../lib/duration.js';

const dnsLabel = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';

/**
 * A tenant: a DNS label, so a Kubernetes namespace name is a valid tenant id; or
 * `<cluster>.<namespace>`, the tenant of a namespace of a named cluster (tenancy.ts). Neither
 * part holds a dot, so the pair reads back unambiguously, and no tenant id is a store-key
 * prefix of another.
 */
export const tenantId = z
  .string()
  .regex(
    new RegExp(`^${dnsLabel}(\\.${dnsLabel})?$`),
    'a tenant is 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit, optionally prefixed by a cluster name and "." ("prod-eu.shop")',
  );

/** A cluster name, as Kubernetes logins and controllers name their cluster: a DNS label. */
export const clusterName = z
  .string()
  .regex(
    new RegExp(`^${dnsLabel}$`),
    'a cluster name is 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit',
  );

/** A Kubernetes namespace name: a DNS label. */
export const namespaceName = z
  .string()
  .regex(
    new RegExp(`^${dnsLabel}$`),
    'a namespace is 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit',
  );

/** Names of credentials and policies: safe in store keys, URLs, file names and Kubernetes. */
export const resourceName = z
  .string()
  .regex(
    /^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/,
    'a name is 1-253 letters, digits, ".", "_" or "-", starting and ending with a letter or digit',
  );

export const identityType = z.enum(['human', 'agent', 'workload']);
export type IdentityType = z.infer<typeof identityType>;

export const identityName = z
  .string()
  .min(1, 'an identity name must not be empty')
  .max(253, 'an identity name is at most 253 characters')
  .regex(/^[A-Za-z0-9@._:-]+$/, 'an identity name uses letters, digits and "@", ".", "_", ":" or "-"');

export const identity = z.strictObject({ type: identityType, name: identityName });
export type Identity = z.infer<typeof identity>;

/** A duration string such as "15m"; validated here, parsed to milliseconds by the services. */
export const duration = z.string().superRefine((value, ctx) => {
  const parsed = parseDuration(value);
  if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
});

/** The most labels a credential, lease or identity carries. */
export const maxLabels = 32;

export const labels = z
  .record(
    z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/, 'a label key is like "environment"'),
    z.string().max(253, 'a label value is at most 253 characters'),
  )
  .refine((value) => Object.keys(value).length <= maxLabels, `at most ${maxLabels} labels`);

const utf8 = new TextEncoder();

/** A secret value as sent over the API: UTF-8 text up to 64 KiB (its bytes, not characters). */
export const secretValue = z
  .string()
  .min(1, 'the value must not be empty')
  .max(65_536, 'the value is at most 64 KiB')
  .refine((value) => value.length <= 16_384 || utf8.encode(value).length <= 65_536, {
    message: 'the value is at most 64 KiB (65,536 bytes of UTF-8)',
  });

export const timestamp = z.iso.datetime();

/**
 * A page size in a query: a whole number from 1 to 1000, in decimal, given once (a repeated
 * or hexadecimal `limit` is refused, not read as NaN or 16).
 */
export const pageLimit = (byDefault: number) =>
  z.preprocess(
    (value) => (typeof value === 'string' && /^[0-9]{1,7}$/.test(value) ? Number(value) : value),
    z
      .number({ error: 'limit is a whole number from 1 to 1000, given once' })
      .int('limit is a whole number from 1 to 1000')
      .min(1, 'limit is at least 1')
      .max(1000, 'limit is at most 1000')
      .default(byDefault),
  );

export const errorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    requestId: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type ErrorBody = z.infer<typeof errorBody>;

export { durationHelp };
