/**
 * Each tenant's audit keys: an HMAC key that links its chain and an Ed25519 key that signs
 * its checkpoints. Both are sealed together under the tenant key (itself wrapped by the
 * root key) in one record, so the store never holds them in the clear, tenant key rotation
 * re-wraps them like any sealed value, and crypto-shredding the tenant destroys them.
 *
 * The public key is never read from the store: it is derived from the opened private key,
 * so replacing a clear field cannot make the server publish a key an attacker chose.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { CryptoError } from '../crypto/errors.js';
import type { Compare, Op, Store } from '../store/store.js';
import type { KeyringPort } from './deps.js';
import { keys } from './keys.js';

const SEALED_NAME = '_audit-keys';

export interface AuditKeys {
  hmac: Buffer;
  signing: KeyObject;
  publicKey: KeyObject;
  /** SPKI PEM of the public key. */
  publicKeyPem: string;
  keyId: string;
}

interface SealedPayload {
  hmac: string;
  ed25519: string;
}

export function publicKeyId(publicKey: KeyObject): string {
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return createHash('sha256').update(raw).digest('hex').slice(0, 16);
}

function fromPayload(payload: SealedPayload): AuditKeys {
  const signing = createPrivateKey({
    key: Buffer.from(payload.ed25519, 'base64'),
    format: 'der',
    type: 'pkcs8',
  });
  const publicKey = createPublicKey(signing);
  return {
    hmac: Buffer.from(payload.hmac, 'base64'),
    signing,
    publicKey,
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    keyId: publicKeyId(publicKey),
  };
}

export function createAuditKeys(deps: { store: Store; keyring: KeyringPort }) {
  const cache = new Map<string, AuditKeys>();

  return {
    /** The tenant's keys, or undefined when it has none yet (a new tenant, or a chain from before keyed links). */
    async load(tenant: string): Promise<AuditKeys | undefined> {
      const cached = cache.get(tenant);
      if (cached) return cached;
      const kv = await deps.store.get(keys.auditKeys(tenant));
      if (!kv) return undefined;
      // A record that is not a sealed value of this tenant was written by someone else: it
      // fails like a seal that does not open (a tamper), never as an internal error.
      const damaged = () =>
        new CryptoError('decrypt_failed', `the audit key record of tenant "${tenant}" is malformed`);
      let sealed: unknown;
      try {
        sealed = (JSON.parse(kv.value) as { sealed?: unknown }).sealed;
      } catch {
        throw damaged();
      }
      if (typeof sealed !== 'object' || sealed === null) throw damaged();
      const opened = await deps.keyring.openValue(tenant, SEALED_NAME, 1, sealed as never);
      let auditKeys: AuditKeys;
      try {
        auditKeys = fromPayload(JSON.parse(opened.toString('utf8')) as SealedPayload);
      } catch {
        throw damaged();
      } finally {
        opened.fill(0);
      }
      cache.set(tenant, auditKeys);
      return auditKeys;
    },

    /**
     * Fresh keys and the create-only write that stores them, to commit in the same
     * transaction as the first keyed record (so a chain never has keys without a keyed record).
     */
    async generate(tenant: string): Promise<{ keys: AuditKeys; op: Op; compare: Compare }> {
      const { privateKey } = generateKeyPairSync('ed25519');
      const payload: SealedPayload = {
        hmac: randomBytes(32).toString('base64'),
        ed25519: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
      };
      const plaintext = Buffer.from(JSON.stringify(payload), 'utf8');
      const sealed = await deps.keyring.sealValue(tenant, SEALED_NAME, 1, plaintext);
      plaintext.fill(0);
      const key = keys.auditKeys(tenant);
      return {
        keys: fromPayload(payload),
        op: { type: 'put', key, value: JSON.stringify({ sealed }) },
        compare: { key, modRevision: 0 },
      };
    },

    remember(tenant: string, auditKeys: AuditKeys) {
      cache.set(tenant, auditKeys);
    },

    forget() {
      cache.clear();
    },
  };
}

export type AuditKeyring = ReturnType<typeof createAuditKeys>;
