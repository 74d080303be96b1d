/**
 * Red team, session 7: the version history of a credential with large values, on etcd.
 *
 * A version's value record carries its sealed value (up to 64 KiB of text, about 87 KiB
 * sealed for ASCII, more for other text). GET /v1/credentials/:name/versions read `limit`
 * (default 100) value records in one range; etcd's client refuses an answer over 4 MiB, so
 * the history of a credential with some 50 large versions answered 503 store_unavailable
 * at the default limit, every time.
 *
 * The migration of an older store's history (versions leaving the record get their metadata
 * written into their value records) read up to 50 dropped value records at once and rewrote
 * them in the version's own transaction: over 4 MiB to read, over etcd's 1.5 MiB request
 * limit to write. No new version could be stored for such a credential again.
 *
 * Real parts: a real etcd, real HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

let etcd: EtcdProcess;
let store: Store;
let vault: TestVault;
beforeAll(async () => {
  etcd = await startEtcd();
  store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 30_000 });
  vault = await startTestVault({ store });
}, 60_000);
afterAll(async () => {
  await vault?.close();
  await store?.close();
  await etcd?.destroy();
});

const big = (tag: string, i: number) => `${tag}-${i}-`.padEnd(65_536, 'x');

async function credentialWithVersions(name: string, count: number) {
  const created = await vault.call('POST', '/v1/credentials', {
    body: { name, type: 'generic', value: big(name, 1) },
  });
  expect(created.status, created.text).toBe(201);
  for (let i = 2; i <= count; i++) {
    const res = await vault.call('POST', `/v1/credentials/${name}/versions`, {
      body: { value: big(name, i) },
    });
    expect(res.status, res.text).toBe(201);
  }
}

describe('the versions of a credential with 64 KiB values', () => {
  it('are listed at the default and the largest page size', async () => {
    await credentialWithVersions('big', 60);
    const page = await vault.call('GET', '/v1/credentials/big/versions');
    expect(page.status, page.text.slice(0, 300)).toBe(200);
    expect(page.body.versions.map((v: { version: number }) => v.version)).toEqual(
      Array.from({ length: 60 }, (_, i) => i + 1),
    );
    expect(page.body.continue).toBeUndefined();
    const largest = await vault.call('GET', '/v1/credentials/big/versions?limit=1000');
    expect(largest.status).toBe(200);
    expect(largest.body.versions).toHaveLength(60);
    // Paged by 25: the same history, and no value in any answer.
    const seen: number[] = [];
    let next: string | undefined;
    do {
      const res = await vault.call(
        'GET',
        `/v1/credentials/big/versions?limit=25${next ? `&continue=${encodeURIComponent(next)}` : ''}`,
      );
      expect(res.status).toBe(200);
      expect(res.text).not.toContain('xxxxxxxx');
      seen.push(...res.body.versions.map((v: { version: number }) => v.version));
      next = res.body.continue;
    } while (next);
    expect(seen).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
  }, 60_000);

  it('an older store whose record lists every version still takes new versions', async () => {
    await credentialWithVersions('old', 60);
    const all = (await vault.call('GET', '/v1/credentials/old/versions')).body.versions;
    expect(all).toHaveLength(60);
    // As a store written before value records carried their metadata: every version in the
    // record, value records with their sealed value alone.
    for (let version = 1; version <= 60; version++) {
      const key = keys.value(vault.tenant, 'old', version);
      const { sealed } = JSON.parse((await store.get(key))!.value);
      await store.txn({ success: [{ type: 'put', key, value: JSON.stringify({ sealed }) }] });
    }
    const recordKey = keys.credential(vault.tenant, 'old');
    const record = JSON.parse((await store.get(recordKey))!.value);
    await store.txn({
      success: [{ type: 'put', key: recordKey, value: JSON.stringify({ ...record, versions: all }) }],
    });
    // Past the record cache.
    await new Promise((resolve) => setTimeout(resolve, 1_100));

    let listed = 60;
    for (let i = 61; i <= 90 && listed > 10; i++) {
      const res = await vault.call('POST', '/v1/credentials/old/versions', {
        body: { value: big('old', i) },
      });
      expect(res.status, res.text.slice(0, 300)).toBe(201);
      // Each write shrinks the record until it lists the latest 10.
      expect(res.body.versions.length).toBeLessThan(listed + 1);
      listed = res.body.versions.length;
    }
    expect(listed).toBe(10);
    // The whole history keeps its times and fingerprints, and old versions still lease.
    const history = await vault.call('GET', '/v1/credentials/old/versions?limit=1000');
    expect(history.status).toBe(200);
    const first60 = history.body.versions.slice(0, 60);
    expect(first60).toEqual(all);
    const lease = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'old', version: 3, ttl: '1m' },
    });
    expect(lease.status, lease.text.slice(0, 200)).toBe(201);
    const value = await vault.call('GET', `/v1/leases/${lease.body.id}/value`);
    expect(value.body.value).toBe(big('old', 3));
  }, 60_000);

  it('a tenant key rotation re-wraps them all (it read 100 value records per request: over 4 MiB)', async () => {
    const rotated = await vault.call('POST', '/v1/sys/keys/rotate', { body: {} });
    expect(rotated.status, rotated.text.slice(0, 300)).toBe(200);
    const lease = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'big', version: 7, ttl: '1m' },
    });
    expect(lease.status, lease.text.slice(0, 200)).toBe(201);
    expect((await vault.call('GET', `/v1/leases/${lease.body.id}/value`)).body.value).toBe(big('big', 7));
  }, 120_000);
});
