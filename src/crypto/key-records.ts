/**
 * Where the keyring keeps its records in the store, what they hold, and the additional data
 * that binds each ciphertext to its place. Nothing here holds a plaintext key: tenant keys are
 * stored only wrapped by a root key.
 */
import { z } from 'zod';
import { CryptoError } from './errors.js';

const tenantPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Tenant names end up in store keys and key ids, so they must not contain '/' or ':'. */
export function checkTenant(tenant: string): void {
  if (typeof tenant !== 'string' || !tenantPattern.test(tenant)) {
    throw new CryptoError(
      'bad_reference',
      'a tenant name must be 1 to 128 characters of letters, digits, ".", "_" and "-", starting with a letter or digit',
    );
  }
}

export const keyPaths = {
  allTenantKeys: '/vault/keys/tenants/',
  tenantKeys: (tenant: string) => `/vault/keys/tenants/${tenant}/`,
  tenantKey: (tenant: string, version: number) => `/vault/keys/tenants/${tenant}/${version}`,
  tenantCurrent: (tenant: string) => `/vault/keys/tenants/${tenant}/current`,
  allTenantRotations: '/vault/keys/rotations/tenant/',
  tenantRotation: (tenant: string) => `/vault/keys/rotations/tenant/${tenant}`,
  rootRotation: '/vault/keys/rotations/root',
  shredded: (tenant: string) => `/vault/keys/shredded/${tenant}`,
};

/** Splits a key under allTenantKeys into its tenant and its last segment (a version or "current"). */
export function parseTenantKeyPath(key: string): { tenant: string; leaf: string } | undefined {
  const rest = key.slice(keyPaths.allTenantKeys.length).split('/');
  if (!key.startsWith(keyPaths.allTenantKeys) || rest.length !== 2) return undefined;
  return { tenant: rest[0]!, leaf: rest[1]! };
}

const isoDate = z.string().min(1);
const positiveInt = z.number().int().min(1).max(0xffffffff);

export const tenantKeyRecordSchema = z.object({
  version: positiveInt,
  /** The 32-byte tenant key, wrapped by the root key `rootKeyId` with AAD tenantKeyAad(tenant, version). */
  wrapped: z.string().min(1),
  rootKeyId: z.string().min(1),
  createdAt: isoDate,
  /** `active` keys may seal new values; `retired` ones only open what they sealed before. */
  state: z.enum(['active', 'retired']),
});
export type TenantKeyRecord = z.infer<typeof tenantKeyRecordSchema>;

export const currentRecordSchema = z.object({ version: positiveInt });

/** Where a walk over records stands: the index into `prefixes` and the last key done there. */
export const cursorSchema = z.object({ prefix: z.number().int().min(0), after: z.string().nullable() });
export type Cursor = z.infer<typeof cursorSchema>;

/**
 * A walk does a `rewrap` pass over everything, then a `sweep` pass from the start that catches
 * records written with the old key by requests that were in flight when the rotation began.
 */
const phase = z.enum(['rewrap', 'sweep']);

export const tenantRotationRecordSchema = z.object({
  from: positiveInt,
  to: positiveInt,
  /** Store prefixes whose JSON records carry a `sealed` field (fixed when the rotation starts). */
  prefixes: z.array(z.string().min(1)),
  phase,
  cursor: cursorSchema,
  startedAt: isoDate,
});
export type TenantRotationRecord = z.infer<typeof tenantRotationRecordSchema>;

export const rootRotationRecordSchema = z.object({
  from: z.string().min(1),
  to: z.string().min(1),
  phase,
  cursor: cursorSchema,
  startedAt: isoDate,
});
export type RootRotationRecord = z.infer<typeof rootRotationRecordSchema>;

/** Left behind by shredTenant so that later reads say "destroyed" rather than "not found". */
export const shreddedRecordSchema = z.object({
  /** Every tenant key version up to this one was destroyed; new keys start above it. */
  destroyedThrough: z.number().int().min(0),
  shreddedAt: isoDate,
});
export type ShreddedRecord = z.infer<typeof shreddedRecordSchema>;

/**
 * A credential version's value as callers store it inside their own records. `tenant`,
 * `credential` and `credentialVersion` say where the value was sealed; they let a rotation
 * re-wrap the data key without knowing the caller's record layout, and they are not trusted
 * on open: the AAD is rebuilt from the caller's arguments, so a value moved elsewhere fails.
 */
export const sealedValueSchema = z.object({
  /** The data key, sealed under tenant key `tenantKeyVersion` (key id `tenant:<tenant>`). */
  wrappedDataKey: z.string().min(1),
  /** The value, sealed under the data key. */
  ciphertext: z.string().min(1),
  tenantKeyVersion: positiveInt,
  tenant: z.string().min(1),
  credential: z.string().min(1),
  credentialVersion: positiveInt,
});
export type SealedValue = z.infer<typeof sealedValueSchema>;

export const tenantKeyId = (tenant: string) => `tenant:${tenant}`;
export const DATA_KEY_ID = 'data';

// Each AAD starts with its purpose, so a blob made for one purpose never opens as another.
// Tenant names cannot contain ':' and JSON encodes a list of strings unambiguously.
export const tenantKeyAad = (tenant: string, version: number) => `vault:tenant-key:${tenant}:v${version}`;
export const dataKeyAad = (tenant: string, credential: string, version: number) =>
  `vault:data-key:${JSON.stringify([tenant, credential, version])}`;
export const valueAad = (tenant: string, credential: string, version: number) =>
  `vault:value:${JSON.stringify([tenant, credential, version])}`;

/** Parses a JSON record with a schema; undefined when the record is missing. */
export function parseRecord<T>(schema: z.ZodType<T>, key: string, value: string | undefined): T | undefined {
  if (value === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    throw new CryptoError('decrypt_failed', `key record ${key} is not valid JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new CryptoError('decrypt_failed', `key record ${key} is malformed`);
  return parsed.data;
}
