import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openEmbeddedStore } from '../store/embedded-store.js';
import type { Store } from '../store/store.js';
import { CryptoError } from './errors.js';
import { createKeyring, type Keyring, type SealedValue } from './keyring.js';
import { localRootKey, type RootKeyProvider } from './root-key.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempStore(): Promise<{ store: Store; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'vault-keyring-'));
  const store = await openEmbeddedStore({ path: dir });
  cleanups.push(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, dir };
}

const valuesPrefix = (tenant: string) => `/vault/t/${tenant}/values/`;

function keyringOn(store: Store, roots: RootKeyProvider[], cacheTtlMs = 60_000): Keyring {
  return createKeyring({
    store,
    roots,
    sealedPrefixes: (t) => [valuesPrefix(t)],
    cache: { ttlMs: cacheTtlMs },
  });
}

async function rejection(promise: Promise<unknown>): Promise<CryptoError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(CryptoError);
    return err as CryptoError;
  }
  throw new Error('expected a CryptoError, but nothing was thrown');
}

const encodings = ['utf8', 'hex', 'base64', 'base64url'] as const;
const spellings = (secret: Buffer) => encodings.map((encoding) => secret.toString(encoding));

describe('keyring', () => {
  it('creates one tenant key per tenant, idempotently, wrapped by the root key', async () => {
    const { store } = await tempStore();
    const root = localRootKey(randomBytes(32));
    const keyring = keyringOn(store, [root]);
    expect(await keyring.ensureTenantKey('acme')).toBe(1);
    expect(await keyring.ensureTenantKey('acme')).toBe(1);
    expect(await keyring.ensureTenantKey('other')).toBe(1);
    const record = JSON.parse((await store.get('/vault/keys/tenants/acme/1'))!.value);
    expect(record).toMatchObject({ version: 1, rootKeyId: root.id, state: 'active' });
    expect(record.wrapped).toMatch(/^vault:v1:/);
    expect(JSON.parse((await store.get('/vault/keys/tenants/acme/current'))!.value)).toEqual({ version: 1 });
  });

  it('creates exactly one key when many callers race, even from separate keyrings', async () => {
    const { store } = await tempStore();
    const root = localRootKey(randomBytes(32));
    const keyrings = Array.from({ length: 4 }, () => keyringOn(store, [root]));
    const versions = await Promise.all(
      Array.from({ length: 24 }, (_, i) => keyrings[i % keyrings.length]!.ensureTenantKey('race')),
    );
    expect(new Set(versions)).toEqual(new Set([1]));
    const { kvs } = await store.range('/vault/keys/tenants/race/');
    expect(kvs.map((kv) => kv.key).sort()).toEqual([
      '/vault/keys/tenants/race/1',
      '/vault/keys/tenants/race/current',
    ]);
    // Every keyring seals and opens with that one key.
    const sealed = await keyrings[0]!.sealValue('race', 'db', 1, Buffer.from('v'));
    for (const keyring of keyrings)
      expect((await keyring.openValue('race', 'db', 1, sealed)).toString()).toBe('v');
  });

  it('seals with a fresh data key per value and opens only at the same tenant, credential and version', async () => {
    const { store } = await tempStore();
    const keyring = keyringOn(store, [localRootKey(randomBytes(32))]);
    const value = Buffer.from('sk_live_round_trip');
    const a = await keyring.sealValue('acme', 'stripe', 1, value);
    const b = await keyring.sealValue('acme', 'stripe', 1, value);
    expect(a).toMatchObject({
      tenantKeyVersion: 1,
      tenant: 'acme',
      credential: 'stripe',
      credentialVersion: 1,
    });
    expect(a.ciphertext).not.toBe(b.ciphertext);
    expect(a.wrappedDataKey).not.toBe(b.wrappedDataKey);
    expect((await keyring.openValue('acme', 'stripe', 1, a)).equals(value)).toBe(true);
    expect((await keyring.openValue('acme', 'stripe', 1, JSON.parse(JSON.stringify(b)))).equals(value)).toBe(
      true,
    );
    expect(
      (
        await keyring.openValue(
          'acme',
          'empty',
          3,
          await keyring.sealValue('acme', 'empty', 3, Buffer.alloc(0)),
        )
      ).length,
    ).toBe(0);
  });

  it('fails to open a sealed value moved to another credential, version or tenant, or spliced with another', async () => {
    const { store } = await tempStore();
    const keyring = keyringOn(store, [localRootKey(randomBytes(32))]);
    await keyring.ensureTenantKey('other');
    const sealed = await keyring.sealValue('acme', 'db', 2, Buffer.from('secret'));
    const sibling = await keyring.sealValue('acme', 'db', 3, Buffer.from('secret'));
    const moves: Array<[string, string, number, SealedValue]> = [
      ['acme', 'db2', 2, sealed],
      ['acme', 'db', 1, sealed],
      ['acme', 'db', 3, sealed],
      ['other', 'db', 2, sealed],
      // The informational binding fields are not trusted: rewriting them changes nothing.
      ['acme', 'db2', 2, { ...sealed, credential: 'db2' }],
      ['acme', 'db', 3, { ...sealed, credentialVersion: 3 }],
      // Half of one value with half of another.
      ['acme', 'db', 2, { ...sealed, ciphertext: sibling.ciphertext }],
      ['acme', 'db', 2, { ...sealed, wrappedDataKey: sibling.wrappedDataKey }],
      ['acme', 'db', 2, { ...sealed, tenantKeyVersion: 2 }],
      ['acme', 'db', 2, { ...sealed, ciphertext: sealed.wrappedDataKey }],
    ];
    for (const [tenant, credential, version, value] of moves) {
      const err = await rejection(keyring.openValue(tenant, credential, version, value));
      expect(err.reason).toBe('decrypt_failed');
      expect(err.message).not.toContain('secret');
    }
    expect((await keyring.openValue('acme', 'db', 2, sealed)).toString()).toBe('secret');
  });

  it('rejects malformed input with typed errors', async () => {
    const { store } = await tempStore();
    const keyring = keyringOn(store, [localRootKey(randomBytes(32))]);
    const sealed = await keyring.sealValue('acme', 'db', 1, Buffer.from('x'));
    expect((await rejection(keyring.sealValue('a/b', 'db', 1, Buffer.from('x')))).reason).toBe(
      'bad_reference',
    );
    expect((await rejection(keyring.sealValue('acme:1', 'db', 1, Buffer.from('x')))).reason).toBe(
      'bad_reference',
    );
    expect((await rejection(keyring.sealValue('acme', '', 1, Buffer.from('x')))).reason).toBe(
      'bad_reference',
    );
    expect((await rejection(keyring.sealValue('acme', 'db', 0, Buffer.from('x')))).reason).toBe(
      'bad_reference',
    );
    expect((await rejection(keyring.openValue('acme', 'db', 1, {} as SealedValue))).reason).toBe(
      'decrypt_failed',
    );
    expect(
      (await rejection(keyring.openValue('acme', 'db', 1, { ...sealed, wrappedDataKey: 'nope' }))).reason,
    ).toBe('decrypt_failed');
    const unknownVersion = await rejection(
      keyring.openValue('acme', 'db', 1, { ...sealed, tenantKeyVersion: 9 }),
    );
    expect(unknownVersion.reason).toBe('decrypt_failed');
  });

  it('keeps plaintext values and keys out of the store, its files and error messages', async () => {
    const { store, dir } = await tempStore();
    const rootKey = randomBytes(32);
    const root = localRootKey(rootKey);
    const keyring = keyringOn(store, [root]);
    const canary = Buffer.from(`canary-${randomBytes(12).toString('hex')}`);
    const messages: string[] = [];
    for (let version = 1; version <= 5; version++) {
      const sealed = await keyring.sealValue('acme', 'canary', version, canary);
      await store.txn({
        success: [
          { type: 'put', key: `${valuesPrefix('acme')}canary/${version}`, value: JSON.stringify({ sealed }) },
        ],
      });
      for (const attempt of [
        keyring.openValue('acme', 'canary', version + 1, sealed),
        keyring.openValue('acme', 'other', version, sealed),
      ]) {
        messages.push((await rejection(attempt)).message);
      }
    }
    await keyring.rotateTenantKey('acme');
    const tenantKeys = await Promise.all(
      [1, 2].map(async (version) => {
        const record = JSON.parse((await store.get(`/vault/keys/tenants/acme/${version}`))!.value);
        return root.unwrap(record.wrapped, `vault:tenant-key:acme:v${version}`);
      }),
    );
    const secrets = [canary, rootKey, ...tenantKeys].flatMap(spellings);
    const { kvs } = await store.range('/');
    expect(kvs.length).toBeGreaterThan(5);
    const files = readdirSync(dir).map((name) => readFileSync(join(dir, name)));
    const everything = [...kvs.map((kv) => `${kv.key} ${kv.value}`), ...messages];
    for (const secret of secrets) {
      for (const text of everything) expect(text).not.toContain(secret);
      for (const file of files) expect(file.includes(Buffer.from(secret))).toBe(false);
    }
    for (const secret of [canary, rootKey, ...tenantKeys]) {
      for (const file of files) expect(file.includes(secret)).toBe(false);
    }
  });

  it('crypto-shreds a tenant: its values never open again, everywhere, and other tenants are untouched', async () => {
    const { store } = await tempStore();
    const root = localRootKey(randomBytes(32));
    const keyring = keyringOn(store, [root]);
    const replica = keyringOn(store, [root], 0);
    const sealed = await keyring.sealValue('doomed', 'db', 1, Buffer.from('bye'));
    const kept = await keyring.sealValue('kept', 'db', 1, Buffer.from('stay'));
    expect((await keyring.openValue('doomed', 'db', 1, sealed)).toString()).toBe('bye');
    expect((await replica.openValue('doomed', 'db', 1, sealed)).toString()).toBe('bye');

    await keyring.shredTenant('doomed');
    expect((await store.range('/vault/keys/tenants/doomed/')).kvs).toEqual([]);
    for (const ring of [keyring, replica, keyringOn(store, [root])]) {
      const err = await rejection(ring.openValue('doomed', 'db', 1, sealed));
      expect(err.reason).toBe('key_destroyed');
      expect(err.message).toContain('tenant key destroyed');
      expect((await ring.openValue('kept', 'db', 1, kept)).toString()).toBe('stay');
    }
    expect((await keyring.status()).shredded.map((entry) => entry.tenant)).toEqual(['doomed']);

    // A tenant created again under the same name gets new keys; the old values stay destroyed.
    expect(await keyring.ensureTenantKey('doomed')).toBe(2);
    const fresh = await keyring.sealValue('doomed', 'db', 1, Buffer.from('new life'));
    expect((await keyring.openValue('doomed', 'db', 1, fresh)).toString()).toBe('new life');
    expect((await rejection(keyring.openValue('doomed', 'db', 1, sealed))).reason).toBe('key_destroyed');
    await keyring.shredTenant('doomed');
    expect((await rejection(replica.openValue('doomed', 'db', 1, fresh))).reason).toBe('key_destroyed');
  });

  it('needs the root key that wrapped a tenant key, and says which one is missing', async () => {
    const { store } = await tempStore();
    const root = localRootKey(randomBytes(32));
    const sealed = await keyringOn(store, [root]).sealValue('acme', 'db', 1, Buffer.from('x'));
    const stranger = keyringOn(store, [localRootKey(randomBytes(32))]);
    const err = await rejection(stranger.openValue('acme', 'db', 1, sealed));
    expect(err.reason).toBe('root_key_unavailable');
    expect(err.message).toContain(root.id);
    // The same root given as an old root is enough.
    const withOld = keyringOn(store, [localRootKey(randomBytes(32)), root]);
    expect((await withOld.openValue('acme', 'db', 1, sealed)).toString()).toBe('x');
  });

  it('reports key status without secrets', async () => {
    const { store } = await tempStore();
    const root = localRootKey(randomBytes(32));
    const keyring = keyringOn(store, [root]);
    await keyring.ensureTenantKey('b');
    await keyring.ensureTenantKey('a');
    await keyring.rotateTenantKey('a');
    const status = await keyring.status();
    expect(status.rootKeyId).toBe(root.id);
    expect(status.rotations).toEqual({ root: null, tenants: [] });
    expect(status.tenants).toEqual([
      {
        tenant: 'a',
        currentVersion: 2,
        versions: [
          { version: 1, state: 'retired', rootKeyId: root.id, createdAt: expect.any(String) },
          { version: 2, state: 'active', rootKeyId: root.id, createdAt: expect.any(String) },
        ],
        rootKeyIds: [root.id],
      },
      expect.objectContaining({ tenant: 'b', currentVersion: 1 }),
    ]);
    expect(JSON.stringify(status)).not.toContain('vault:v1:');
  });
});
