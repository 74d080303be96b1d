/**
 * Tenant keys in the store: one 32-byte key per tenant and version, stored only wrapped by a
 * root key, with a `current` pointer naming the version that seals new values.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import { isVaultError } from '../lib/errors.js';
import type { Store } from '../store/store.js';
import { KEY_BYTES } from './blob.js';
import { CryptoError } from './errors.js';
import type { KeyCache } from './key-cache.js';
import {
  checkTenant,
  currentRecordSchema,
  keyPaths,
  parseRecord,
  rootRotationRecordSchema,
  shreddedRecordSchema,
  type TenantKeyRecord,
  tenantKeyAad,
  tenantKeyRecordSchema,
} from './key-records.js';
import type { RootKeyProvider } from './root-key.js';

/** Compare-and-swap loops give up after this many lost races and report a conflict. */
export const MAX_CAS_ATTEMPTS = 8;

/** The root keys this process holds: the active one wraps, any of them unwraps. */
export interface RootSet {
  active(): RootKeyProvider;
  find(id: string): RootKeyProvider | undefined;
  /** Makes `root` the active root; the previous ones stay available for unwrapping. */
  activate(root: RootKeyProvider): void;
}

export function createRootSet(roots: RootKeyProvider[]): RootSet {
  if (roots.length === 0) throw new CryptoError('bad_root_key', 'the keyring needs at least one root key');
  const list = [...roots];
  return {
    active: () => list[0]!,
    find: (id) => list.find((root) => root.id === id),
    activate(root) {
      const others = list.filter((known) => known.id !== root.id);
      list.splice(0, list.length, root, ...others);
    },
  };
}

export interface TenantKeys {
  /** The current version, creating version 1 (or the first after a shred) when there is none. */
  ensure(tenant: string): Promise<number>;
  /** The unwrapped key of one version; CryptoError key_destroyed / key_not_found otherwise. */
  key(tenant: string, version: number): Promise<Buffer>;
  /** A new record for `key`, wrapped by the active root. */
  wrapRecord(tenant: string, version: number, key: Buffer): Promise<TenantKeyRecord>;
  unwrapRecord(tenant: string, record: TenantKeyRecord): Promise<Buffer>;
  /** Called after a shred: forget cached keys, and drop unwraps that were in flight. */
  forget(tenant: string): void;
}

export function createTenantKeys(deps: {
  store: Store;
  roots: RootSet;
  clock: Clock;
  cache: KeyCache;
}): TenantKeys {
  const { store, roots, clock, cache } = deps;
  // Bumped on shred, so an unwrap that started before the shred is not cached after it.
  const generations = new Map<string, number>();

  async function wrapRecord(tenant: string, version: number, key: Buffer): Promise<TenantKeyRecord> {
    // During a root rotation, wrap with its target when this process holds it, so a key created
    // by this process behind the rotation's cursor does not stay under the old root.
    const rotationKv = await store.get(keyPaths.rootRotation);
    const rotation = parseRecord(rootRotationRecordSchema, keyPaths.rootRotation, rotationKv?.value);
    const root = (rotation && roots.find(rotation.to)) || roots.active();
    return {
      version,
      wrapped: await root.wrap(key, tenantKeyAad(tenant, version)),
      rootKeyId: root.id,
      createdAt: clock().toISOString(),
      state: 'active',
    };
  }

  async function unwrapRecord(tenant: string, record: TenantKeyRecord): Promise<Buffer> {
    const root = roots.find(record.rootKeyId);
    if (!root) {
      throw new CryptoError(
        'root_key_unavailable',
        `tenant key ${tenant} v${record.version} is wrapped by root key ${record.rootKeyId}, which this process ` +
          'was not given: start it with that root key (as the active or an old root) or finish the root rotation',
      );
    }
    let key: Buffer;
    try {
      key = await root.unwrap(record.wrapped, tenantKeyAad(tenant, record.version));
    } catch (err) {
      if (isVaultError(err)) throw err;
      const failure = new CryptoError(
        'decrypt_failed',
        `root key ${root.id} could not unwrap tenant key ${tenant} v${record.version}`,
      );
      failure.cause = err;
      throw failure;
    }
    if (key.length !== KEY_BYTES) {
      key.fill(0);
      throw new CryptoError(
        'decrypt_failed',
        `tenant key ${tenant} v${record.version} did not unwrap to 32 bytes`,
      );
    }
    return key;
  }

  async function destroyedThrough(tenant: string): Promise<{ through: number; modRevision: number }> {
    const kv = await store.get(keyPaths.shredded(tenant));
    const record = parseRecord(shreddedRecordSchema, keyPaths.shredded(tenant), kv?.value);
    return { through: record?.destroyedThrough ?? 0, modRevision: kv?.modRevision ?? 0 };
  }

  return {
    wrapRecord,
    unwrapRecord,

    async ensure(tenant) {
      checkTenant(tenant);
      const currentKey = keyPaths.tenantCurrent(tenant);
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        const current = await store.get(currentKey);
        const existing = parseRecord(currentRecordSchema, currentKey, current?.value);
        if (existing) return existing.version;

        const shredded = await destroyedThrough(tenant);
        const version = shredded.through + 1;
        const key = randomBytes(KEY_BYTES);
        const record = await wrapRecord(tenant, version, key);
        const result = await store.txn({
          compare: [
            { key: currentKey, modRevision: 0 },
            { key: keyPaths.tenantKey(tenant, version), modRevision: 0 },
            { key: keyPaths.shredded(tenant), modRevision: shredded.modRevision },
          ],
          success: [
            { type: 'put', key: keyPaths.tenantKey(tenant, version), value: JSON.stringify(record) },
            { type: 'put', key: currentKey, value: JSON.stringify({ version }) },
          ],
        });
        if (result.succeeded) {
          cache.set(tenant, version, key);
          return version;
        }
        key.fill(0);
      }
      throw new CryptoError(
        'rotation_conflict',
        `could not create a key for tenant ${tenant}: the store kept changing`,
      );
    },

    async key(tenant, version) {
      checkTenant(tenant);
      const cached = cache.get(tenant, version);
      if (cached) return cached;
      const generation = generations.get(tenant) ?? 0;
      const path = keyPaths.tenantKey(tenant, version);
      const kv = await store.get(path);
      const record = parseRecord(tenantKeyRecordSchema, path, kv?.value);
      if (!record) {
        if (version <= (await destroyedThrough(tenant)).through) {
          throw new CryptoError(
            'key_destroyed',
            `tenant key destroyed: the keys of tenant ${tenant} were shredded, so its values can never be decrypted`,
          );
        }
        throw new CryptoError('key_not_found', `tenant ${tenant} has no key version ${version}`);
      }
      if (record.version !== version)
        throw new CryptoError('decrypt_failed', `key record ${path} is malformed`);
      const key = await unwrapRecord(tenant, record);
      if ((generations.get(tenant) ?? 0) !== generation) {
        key.fill(0);
        throw new CryptoError(
          'key_destroyed',
          `tenant key destroyed: the keys of tenant ${tenant} were shredded, so its values can never be decrypted`,
        );
      }
      cache.set(tenant, version, key);
      return key;
    },

    forget(tenant) {
      generations.set(tenant, (generations.get(tenant) ?? 0) + 1);
      cache.forgetTenant(tenant);
    },
  };
}
