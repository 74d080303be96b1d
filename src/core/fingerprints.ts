import { createHmac, randomBytes } from 'node:crypto';
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

  return {
    async of(tenant: string, value: string | Buffer): Promise<string> {
      return `hmac-sha256:${createHmac('sha256', await hmacKey(tenant))
        .update(value)
        .digest('base64url')}`;
    },
    forget(tenant: string) {
      cache.delete(tenant);
    },
  };
}

export type Fingerprints = ReturnType<typeof createFingerprints>;
