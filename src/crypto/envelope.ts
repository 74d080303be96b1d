/**
 * Envelope encryption of one credential version: a fresh data key seals the value, and the
 * tenant key seals the data key. Both blobs are bound to (tenant, credential, version).
 * Pure functions of keys and inputs; the keyring finds the keys.
 */
import { randomBytes } from 'node:crypto';
import { KEY_BYTES, open, parseBlob, seal } from './blob.js';
import { CryptoError } from './errors.js';
import {
  DATA_KEY_ID,
  dataKeyAad,
  type SealedValue,
  sealedValueSchema,
  tenantKeyId,
  valueAad,
} from './key-records.js';

export interface ValueRef {
  tenant: string;
  credential: string;
  version: number;
}

export function checkValueRef(ref: ValueRef): void {
  if (typeof ref.credential !== 'string' || ref.credential.length === 0) {
    throw new CryptoError('bad_reference', 'a credential name must be a non-empty string');
  }
  if (!Number.isInteger(ref.version) || ref.version < 1 || ref.version > 0xffffffff) {
    throw new CryptoError('bad_reference', 'a credential version must be a positive 32-bit integer');
  }
}

export function sealWithTenantKey(
  tenantKey: Buffer,
  tenantKeyVersion: number,
  ref: ValueRef,
  plaintext: Buffer,
): SealedValue {
  const dataKey = randomBytes(KEY_BYTES);
  try {
    const ciphertext = seal(dataKey, plaintext, valueAad(ref.tenant, ref.credential, ref.version), {
      keyId: DATA_KEY_ID,
      keyVersion: ref.version,
    });
    const wrappedDataKey = seal(tenantKey, dataKey, dataKeyAad(ref.tenant, ref.credential, ref.version), {
      keyId: tenantKeyId(ref.tenant),
      keyVersion: tenantKeyVersion,
    });
    return {
      wrappedDataKey,
      ciphertext,
      tenantKeyVersion,
      tenant: ref.tenant,
      credential: ref.credential,
      credentialVersion: ref.version,
    };
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Validates a sealed value's shape and returns the tenant key version its data key is wrapped
 * under, checking that the wrap belongs to `tenant` before any key is fetched.
 */
export function sealedKeyVersion(
  tenant: string,
  sealed: unknown,
): { sealed: SealedValue; keyVersion: number } {
  const parsed = sealedValueSchema.safeParse(sealed);
  if (!parsed.success) throw new CryptoError('decrypt_failed', 'the sealed value is malformed');
  const header = parseBlob(parsed.data.wrappedDataKey);
  if (header.keyId !== tenantKeyId(tenant) || header.keyVersion !== parsed.data.tenantKeyVersion) {
    throw new CryptoError('decrypt_failed', `the sealed value does not belong to tenant ${tenant}`);
  }
  return { sealed: parsed.data, keyVersion: header.keyVersion };
}

/** Opens a value; the AAD comes from `ref` (where the caller found it), never from the blob. */
export function openWithTenantKey(tenantKey: Buffer, ref: ValueRef, sealed: SealedValue): Buffer {
  const dataKey = open(tenantKey, sealed.wrappedDataKey, dataKeyAad(ref.tenant, ref.credential, ref.version));
  try {
    return open(dataKey, sealed.ciphertext, valueAad(ref.tenant, ref.credential, ref.version));
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Re-wraps the data key under another tenant key version; the value's ciphertext is unchanged.
 * The binding recorded in `sealed` is used to open the old wrap, which succeeds only if it is
 * the binding the data key was sealed with, and the new wrap carries the same binding.
 */
export function rewrapDataKey(
  fromKey: Buffer,
  toKey: Buffer,
  toVersion: number,
  sealed: SealedValue,
): SealedValue {
  const aad = dataKeyAad(sealed.tenant, sealed.credential, sealed.credentialVersion);
  const dataKey = open(fromKey, sealed.wrappedDataKey, aad);
  try {
    const wrappedDataKey = seal(toKey, dataKey, aad, {
      keyId: tenantKeyId(sealed.tenant),
      keyVersion: toVersion,
    });
    return { ...sealed, wrappedDataKey, tenantKeyVersion: toVersion };
  } finally {
    dataKey.fill(0);
  }
}
