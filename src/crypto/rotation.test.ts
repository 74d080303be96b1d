import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openEmbeddedStore } from '../store/embedded-store.js';
import type { Store, Txn } from '../store/store.js';
import { CryptoError } from './errors.js';
import { createKeyring, type Keyring, type RotationProgress, type SealedValue } from './keyring.js';
import { localRootKey, type RootKeyProvider } from './root-key.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempStore(): Promise<Store> {
  const dir = mkdtempSync(join(tmpdir(), 'vault-rotation-'));
  const store = await openEmbeddedStore({ path: dir });
  cleanups.push(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

const valuesPrefix = (tenant: string) => `/vault/t/${tenant}/values/`;
const hmacKey = (tenant: string) => `/vault/keys/hmac/${tenant}`;
const recordKey = (tenant: string, name: string, version: number) =>
  `${valuesPrefix(tenant)}${name}/${String(version).padStart(10, '0')}`;

function keyringOn(store: Store, roots: RootKeyProvider[], pageSize = 4): Keyring {
  return createKeyring({
    store,
    roots,
    pageSize,
    // The layout core uses: values under the tenant, plus the tenant's fingerprint key.
    sealedPrefixes: (t) => [valuesPrefix(t), hmacKey(t)],
  });
}

/** Writes `count` credential values the way the core does: `{ sealed, ... }` JSON records. */
async function seedValues(store: Store, keyring: Keyring, tenant: string, count: number) {
  const values = new Map<string, { name: string; version: number; plaintext: string }>();
  for (let i = 0; i < count; i++) {
    const name = `cred-${String(i).padStart(3, '0')}`;
    const plaintext = `value-${tenant}-${i}-${randomBytes(4).toString('hex')}`;
    const sealed = await keyring.sealValue(tenant, name, 1, Buffer.from(plaintext));
    const key = recordKey(tenant, name, 1);
    await store.txn({
      success: [{ type: 'put', key, value: JSON.stringify({ sealed, createdBy: 'test' }) }],
    });
    values.set(key, { name, version: 1, plaintext });
  }
  return values;
}

async function sealedAt(store: Store, key: string): Promise<SealedValue> {
  return JSON.parse((await store.get(key))!.value).sealed;
}

async function expectAllOpen(
  store: Store,
  keyring: Keyring,
  tenant: string,
  values: Awaited<ReturnType<typeof seedValues>>,
) {
  for (const [key, { name, version, plaintext }] of values) {
    expect((await keyring.openValue(tenant, name, version, await sealedAt(store, key))).toString()).toBe(
      plaintext,
    );
  }
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection, but the promise resolved');
}

class SimulatedCrash extends Error {}

describe('tenant key rotation', () => {
  it('re-wraps every data key under the new version without touching ciphertexts, then retires the old one', async () => {
    const store = await tempStore();
    const keyring = keyringOn(store, [localRootKey(randomBytes(32))]);
    const values = await seedValues(store, keyring, 'acme', 25);
    const otherTenant = await seedValues(store, keyring, 'acme2', 3);
    await store.txn({
      success: [{ type: 'put', key: `${valuesPrefix('acme')}zz-note`, value: '{"note":"no sealed field"}' }],
    });
    const fingerprint = await keyring.sealValue('acme', '_audit-hmac', 1, randomBytes(32));
    await store.txn({
      success: [{ type: 'put', key: hmacKey('acme'), value: JSON.stringify({ sealed: fingerprint }) }],
    });
    const before = new Map(
      await Promise.all([...values.keys()].map(async (key) => [key, await sealedAt(store, key)] as const)),
    );

    const progress: RotationProgress[] = [];
    const result = await keyring.rotateTenantKey('acme', { onProgress: (p) => void progress.push(p) });
    expect(result).toEqual({ tenant: 'acme', from: 1, to: 2, rewrapped: 26, unreadable: [], resumed: false });

    for (const [key, old] of before) {
      const now = await sealedAt(store, key);
      expect(now.tenantKeyVersion).toBe(2);
      expect(now.ciphertext).toBe(old.ciphertext);
      expect(now.wrappedDataKey).not.toBe(old.wrappedDataKey);
      expect(JSON.parse((await store.get(key))!.value).createdBy).toBe('test');
    }
    await expectAllOpen(store, keyring, 'acme', values);
    expect(
      (await keyring.openValue('acme', '_audit-hmac', 1, await sealedAt(store, hmacKey('acme')))).equals(
        await keyring.openValue('acme', '_audit-hmac', 1, fingerprint),
      ),
    ).toBe(true);
    // The other tenant (whose prefix starts the same way) is untouched.
    for (const key of otherTenant.keys()) expect((await sealedAt(store, key)).tenantKeyVersion).toBe(1);
    await expectAllOpen(store, keyring, 'acme2', otherTenant);
    expect((await store.get(`${valuesPrefix('acme')}zz-note`))!.value).toBe('{"note":"no sealed field"}');

    expect(progress.at(-1)).toEqual({ done: 27, total: 27 });
    expect(progress.map((p) => p.done)).toEqual([...progress.map((p) => p.done)].sort((a, b) => a - b));
    const status = (await keyring.status()).tenants.find((t) => t.tenant === 'acme')!;
    expect(status.currentVersion).toBe(2);
    expect(status.versions.map((v) => [v.version, v.state])).toEqual([
      [1, 'retired'],
      [2, 'active'],
    ]);
    expect(await store.get('/vault/keys/rotations/tenant/acme')).toBeUndefined();
    expect((await keyring.sealValue('acme', 'new', 1, Buffer.from('n'))).tenantKeyVersion).toBe(2);

    const again = await keyring.rotateTenantKey('acme');
    expect(again).toMatchObject({ from: 2, to: 3, rewrapped: 26 });
    await expectAllOpen(store, keyring, 'acme', values);
  });

  it('resumes after a crash half-way, from its saved cursor, in another process', async () => {
    const store = await tempStore();
    const root = localRootKey(randomBytes(32));
    const first = keyringOn(store, [root]);
    const values = await seedValues(store, first, 'acme', 30);

    const crash = rejection(
      first.rotateTenantKey('acme', {
        onProgress: ({ done }) => {
          if (done >= 12) throw new SimulatedCrash('power cut');
        },
      }),
    );
    expect(await crash).toBeInstanceOf(SimulatedCrash);
    const rotation = JSON.parse((await store.get('/vault/keys/rotations/tenant/acme'))!.value);
    expect(rotation).toMatchObject({
      from: 1,
      to: 2,
      phase: 'rewrap',
      prefixes: [valuesPrefix('acme'), hmacKey('acme')],
    });
    expect(rotation.cursor.after).toBe(recordKey('acme', 'cred-011', 1));
    const versions = await Promise.all(
      [...values.keys()].map(async (key) => (await sealedAt(store, key)).tenantKeyVersion),
    );
    expect(versions.filter((v) => v === 2)).toHaveLength(12);
    // Mid-rotation everything still opens, and new values use the new key.
    await expectAllOpen(store, first, 'acme', values);
    expect((await first.sealValue('acme', 'during', 1, Buffer.from('d'))).tenantKeyVersion).toBe(2);
    expect((await first.status()).rotations.tenants).toEqual([
      { tenant: 'acme', from: 1, to: 2, phase: 'rewrap', startedAt: expect.any(String) },
    ]);

    const second = keyringOn(store, [root]);
    const progress: RotationProgress[] = [];
    const resumed = await second.resumeRotations({ onProgress: (p) => void progress.push(p) });
    expect(resumed.failed).toEqual([]);
    expect(resumed.tenants).toEqual([
      { tenant: 'acme', from: 1, to: 2, rewrapped: 18, unreadable: [], resumed: true },
    ]);
    expect(progress[0]).toEqual({ done: 12, total: 30 });
    expect(progress.at(-1)).toEqual({ done: 30, total: 30 });
    for (const key of values.keys()) expect((await sealedAt(store, key)).tenantKeyVersion).toBe(2);
    await expectAllOpen(store, second, 'acme', values);
    expect(await store.get('/vault/keys/rotations/tenant/acme')).toBeUndefined();
    expect((await second.resumeRotations()).tenants).toEqual([]);
  });

  it('stops on abort and a second rotate call resumes instead of starting another', async () => {
    const store = await tempStore();
    const keyring = keyringOn(store, [localRootKey(randomBytes(32))]);
    const values = await seedValues(store, keyring, 'acme', 10);
    const controller = new AbortController();
    const err = await rejection(
      keyring.rotateTenantKey('acme', {
        signal: controller.signal,
        onProgress: ({ done }) => void (done >= 4 && controller.abort()),
      }),
    );
    expect(err.name).toBe('AbortError');
    const result = await keyring.rotateTenantKey('acme');
    expect(result).toMatchObject({ from: 1, to: 2, resumed: true, rewrapped: 6 });
    await expectAllOpen(store, keyring, 'acme', values);
    expect((await keyring.status()).tenants[0]!.versions.map((v) => v.version)).toEqual([1, 2]);
  });

  it('retries when the owner changes a record under it, and sweeps up values sealed with the old key meanwhile', async () => {
    const base = await tempStore();
    const root = localRootKey(randomBytes(32));
    const seeding = keyringOn(base, [root]);
    const values = await seedValues(base, seeding, 'acme', 8);
    // A value sealed under version 1 by a request that was in flight when the rotation began.
    const straggler = await seeding.sealValue('acme', 'aaa-straggler', 1, Buffer.from('late'));

    // The owner of one record rewrites it between the rotation's read and its compare-and-swap.
    const contested = recordKey('acme', 'cred-005', 1);
    let interfered = false;
    const store: Store = {
      ...base,
      kind: base.kind,
      async txn(txn: Txn) {
        const target = txn.success[0];
        if (!interfered && target?.type === 'put' && target.key === contested) {
          interfered = true;
          const current = JSON.parse((await base.get(contested))!.value);
          await base.txn({
            success: [
              { type: 'put', key: contested, value: JSON.stringify({ ...current, label: 'edited' }) },
            ],
          });
        }
        return base.txn(txn);
      },
    };
    const keyring = keyringOn(store, [root]);
    let planted = false;
    const result = await keyring.rotateTenantKey('acme', {
      onProgress: async ({ done }) => {
        if (done >= 4 && !planted) {
          planted = true;
          // Sorted before everything the first pass has already walked past.
          const key = recordKey('acme', 'aaa-straggler', 1);
          await base.txn({ success: [{ type: 'put', key, value: JSON.stringify({ sealed: straggler }) }] });
        }
      },
    });
    expect(interfered).toBe(true);
    expect(result.rewrapped).toBe(9);
    expect(JSON.parse((await base.get(contested))!.value).label).toBe('edited');
    expect((await sealedAt(base, contested)).tenantKeyVersion).toBe(2);
    const late = await sealedAt(base, recordKey('acme', 'aaa-straggler', 1));
    expect(late.tenantKeyVersion).toBe(2);
    expect((await keyring.openValue('acme', 'aaa-straggler', 1, late)).toString()).toBe('late');
    await expectAllOpen(base, keyring, 'acme', values);
  });

  it('reports values it cannot open instead of blocking, and refuses a tenant without a key', async () => {
    const store = await tempStore();
    const keyring = keyringOn(store, [localRootKey(randomBytes(32))]);
    const values = await seedValues(store, keyring, 'acme', 3);
    const broken = recordKey('acme', 'broken', 1);
    const good = await sealedAt(store, recordKey('acme', 'cred-000', 1));
    await store.txn({
      success: [
        { type: 'put', key: broken, value: JSON.stringify({ sealed: { ...good, credential: 'broken' } }) },
      ],
    });
    const result = await keyring.rotateTenantKey('acme');
    expect(result.unreadable).toEqual([broken]);
    expect(result.rewrapped).toBe(3);
    await expectAllOpen(store, keyring, 'acme', values);
    const err = await rejection(keyring.rotateTenantKey('nobody'));
    expect(err).toBeInstanceOf(CryptoError);
    expect((err as CryptoError).reason).toBe('key_not_found');
  });
});

describe('root key rotation', () => {
  async function seedTenants(store: Store, keyring: Keyring) {
    const all = new Map<string, Awaited<ReturnType<typeof seedValues>>>();
    for (const tenant of ['t1', 't2', 't3', 't4', 't5'])
      all.set(tenant, await seedValues(store, keyring, tenant, 2));
    await keyring.rotateTenantKey('t2');
    await keyring.rotateTenantKey('t2');
    await keyring.rotateTenantKey('t4');
    return all;
  }

  async function expectEverythingOpens(
    store: Store,
    keyring: Keyring,
    all: Awaited<ReturnType<typeof seedTenants>>,
  ) {
    for (const [tenant, values] of all) await expectAllOpen(store, keyring, tenant, values);
  }

  it('re-wraps every tenant key under the new root, after which the old root is not needed', async () => {
    const store = await tempStore();
    const oldRoot = localRootKey(randomBytes(32));
    const newRoot = localRootKey(randomBytes(32));
    const keyring = keyringOn(store, [oldRoot]);
    const all = await seedTenants(store, keyring);
    const valuesBefore = (await store.range('/vault/t/')).kvs.map((kv) => kv.value);

    const progress: RotationProgress[] = [];
    const result = await keyring.rotateRootKey(newRoot, { onProgress: (p) => void progress.push(p) });
    // 5 tenants, 8 key versions (t2 has 3, t4 has 2), plus a `current` record each.
    expect(result).toEqual({ from: oldRoot.id, to: newRoot.id, rewrapped: 8, resumed: false });
    expect(progress.at(-1)).toEqual({ done: 13, total: 13 });
    expect(keyring.rootKeyId).toBe(newRoot.id);
    const status = await keyring.status();
    expect(status.rotations.root).toBeNull();
    for (const tenant of status.tenants) expect(tenant.rootKeyIds).toEqual([newRoot.id]);
    // No value record changed: only tenant key records were re-wrapped.
    expect((await store.range('/vault/t/')).kvs.map((kv) => kv.value)).toEqual(valuesBefore);

    await expectEverythingOpens(store, keyringOn(store, [newRoot]), all);
    const stale = await rejection(
      keyringOn(store, [oldRoot]).openValue(
        't1',
        'cred-000',
        1,
        await sealedAt(store, recordKey('t1', 'cred-000', 1)),
      ),
    );
    expect((stale as CryptoError).reason).toBe('root_key_unavailable');
    // New tenants are wrapped by the new root too.
    await keyring.ensureTenantKey('t6');
    expect((await keyring.status()).tenants.find((t) => t.tenant === 't6')!.rootKeyIds).toEqual([newRoot.id]);
    expect(await keyring.rotateRootKey(newRoot)).toMatchObject({ rewrapped: 0 });
  });

  it('resumes after a crash half-way, and only a process holding the new root can finish it', async () => {
    const store = await tempStore();
    const oldRoot = localRootKey(randomBytes(32));
    const newRoot = localRootKey(randomBytes(32));
    const keyring = keyringOn(store, [oldRoot], 3);
    const all = await seedTenants(store, keyring);

    const crash = await rejection(
      keyring.rotateRootKey(newRoot, {
        onProgress: ({ done }) => {
          if (done >= 6) throw new SimulatedCrash('kill -9');
        },
      }),
    );
    expect(crash).toBeInstanceOf(SimulatedCrash);
    const mixed = await keyringOn(store, [oldRoot]).status();
    expect(mixed.rotations.root).toMatchObject({ from: oldRoot.id, to: newRoot.id, phase: 'rewrap' });
    expect(new Set(mixed.tenants.flatMap((t) => t.rootKeyIds))).toEqual(new Set([oldRoot.id, newRoot.id]));
    // With both roots, everything opens mid-rotation.
    await expectEverythingOpens(store, keyringOn(store, [oldRoot, newRoot]), all);

    // A process restarted with only the old root cannot continue, says so, and changes nothing.
    const oldOnly = await keyringOn(store, [oldRoot]).resumeRotations();
    expect(oldOnly.root).toBeNull();
    expect(oldOnly.failed).toEqual([{ rotation: 'root', message: expect.stringContaining(newRoot.id) }]);
    // Rotating to a different root while this one is unfinished is refused.
    const third = localRootKey(randomBytes(32));
    const conflict = await rejection(keyringOn(store, [oldRoot]).rotateRootKey(third));
    expect((conflict as CryptoError).reason).toBe('rotation_conflict');

    const restarted = keyringOn(store, [newRoot, oldRoot], 3);
    const resumed = await restarted.resumeRotations();
    expect(resumed.failed).toEqual([]);
    expect(resumed.root).toMatchObject({ from: oldRoot.id, to: newRoot.id, resumed: true });
    const status = await restarted.status();
    expect(status.rotations.root).toBeNull();
    for (const tenant of status.tenants) expect(tenant.rootKeyIds).toEqual([newRoot.id]);
    await expectEverythingOpens(store, keyringOn(store, [newRoot]), all);
  });

  it('fails, rather than finishing, when a tenant key is wrapped by a root it does not hold', async () => {
    const store = await tempStore();
    const lost = localRootKey(randomBytes(32));
    const current = localRootKey(randomBytes(32));
    await keyringOn(store, [lost]).ensureTenantKey('orphan');
    const keyring = keyringOn(store, [current]);
    await keyring.ensureTenantKey('fine');
    const err = await rejection(keyring.rotateRootKey(localRootKey(randomBytes(32))));
    expect((err as CryptoError).reason).toBe('root_key_unavailable');
    expect(err.message).toContain(lost.id);
    expect((await keyring.status()).rotations.root).not.toBeNull();
  });
});
