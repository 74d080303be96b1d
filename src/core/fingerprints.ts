import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Store } from '../store/store.js';
import type { KeyringPort } from './deps.js';
import { keys } from './keys.js';

const HMAC_KEY_NAME = '_audit-hmac';

/**
 * Per-tenant keyed HMACs of values: credential fingerprints and the "was this value ever
 * issued" lookup compare HMACs, so no value is ever stored for them. The HMAC key is kept
 * sealed under the tenant key, so crypto-shredding a tenant destroys it too.
 */
export function createFingerprints(deps: { store: Store; keyring: KeyringPort }) {
  const cache = new Map<string, Buffer>();

  async function hmacKey(tenant: string): Promise<Buffer> {
    const cached = cache.get(tenant);
    if (cached) return cached;
    const key = keys.hmacKey(tenant);
    let kv = await deps.store.get(key);
    if (!kv) {
      const sealed = await deps.keyring.sealValue(tenant, HMAC_KEY_NAME, 1, randomBytes(32));
      await deps.store.txn({
        compare: [{ key, modRevision: 0 }],
        success: [{ type: 'put', key, value: JSON.stringify({ sealed }) }],
      });
      kv = await deps.store.get(key);
    }
    if (!kv) throw new Error('the fingerprint key could not be created');
    const { sealed } = JSON.parse(kv.value) as { sealed: never };
    const opened = await deps.keyring.openValue(tenant, HMAC_KEY_NAME, 1, sealed);
    cache.set(tenant, opened);
    return opened;
  }

  async function of(tenant: string, value: string | Buffer): Promise<string> {
    return `hmac-sha256:${createHmac('sha256', await hmacKey(tenant))
      .update(value)
      .digest('base64url')}`;
  }

  /**
   * A credential version's fingerprint: keyed by the tenant's HMAC key *and* scoped to the
   * credential's name and version, so equal values give unequal fingerprints everywhere else.
   * Whoever may see metadata, but not read values, then cannot test a guess by comparing
   * fingerprints (of a probe credential they create, or of a version they put); Vault
   * compares values itself (`matchesVersion`) where a caller may know the answer.
   */
  async function ofVersion(tenant: string, name: string, version: number, value: string): Promise<string> {
    const scope = `credential-version\0${name}\0${version}\0`;
    return `hmac-sha256:${createHmac('sha256', await hmacKey(tenant))
      .update(scope)
      .update(value)
      .digest('base64url')}`;
  }

  return {
    /**
     * The tenant-wide HMAC of a value: the audit trail's `valueHmac`, which `POST
     * /v1/audit/lookup` (admins) matches. Never shown as a credential's fingerprint.
     */
    of,
    ofVersion,
    /**
     * Whether `value` is the value of `name`'s `version`, whose stored fingerprint is `stored`
     * (scoped, or tenant-wide as versions written before scoping carry).
     */
    async matchesVersion(
      tenant: string,
      name: string,
      version: number,
      value: string,
      stored: string,
    ): Promise<boolean> {
      const candidates = [await ofVersion(tenant, name, version, value), await of(tenant, value)];
      const want = Buffer.from(stored);
      return candidates
        .map((candidate) => Buffer.from(candidate))
        .map((got) => got.length === want.length && timingSafeEqual(got, want))
        .some(Boolean);
    },
    /**
     * Seals `plaintext` for this tenant (AES-256-GCM under a key derived from the HMAC key),
     * bound to `context`: for tokens handed to clients that must reveal nothing and come back
     * unchanged (list continuation tokens).
     */
    async seal(tenant: string, context: string, plaintext: string): Promise<string> {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', tokenKey(await hmacKey(tenant)), iv).setAAD(
        Buffer.from(context),
      );
      const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64url');
    },

    /** What `seal` sealed for this tenant and context, or undefined for anything else. */
    async open(tenant: string, context: string, token: string): Promise<string | undefined> {
      const bytes = Buffer.from(token, 'base64url');
      if (bytes.length < 29) return undefined;
      try {
        const decipher = createDecipheriv(
          'aes-256-gcm',
          tokenKey(await hmacKey(tenant)),
          bytes.subarray(0, 12),
        )
          .setAAD(Buffer.from(context))
          .setAuthTag(bytes.subarray(12, 28));
        return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString('utf8');
      } catch {
        return undefined;
      }
    },
    forget(tenant: string) {
      cache.delete(tenant);
    },
  };
}

export type Fingerprints = ReturnType<typeof createFingerprints>;

/** The sealing key: its own key, derived from the tenant's HMAC key. */
const tokenKey = (hmacKey: Buffer) =>
  createHmac('sha256', hmacKey).update('vault sealed-token key v1').digest();
