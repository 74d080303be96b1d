import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { dumpEtcd, type EtcdProcess, startEtcd } from '../support/etcd.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('the API on a real etcd', () => {
  let etcd: EtcdProcess;
  let store: Store;
  let vault: TestVault;
  const canary = `CANARY-ETCD-${randomBytes(10).toString('hex')}`;

  beforeAll(async () => {
    etcd = await startEtcd();
    store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 1500 });
    vault = await startTestVault({ store });
  });
  afterAll(async () => {
    await vault?.close();
    await store?.close();
    await etcd?.destroy();
  });

  it('stores only ciphertext: a raw dump of etcd holds no plaintext value', async () => {
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'canary', type: 'password', value: canary },
    });
    expect(created.status).toBe(201);
    const lease = await vault.call('POST', '/v1/leases', { body: { credentialName: 'canary', ttl: '5m' } });
    expect(lease.body.value).toBe(canary);
    const dump = await dumpEtcd(etcd);
    expect(dump.length).toBeGreaterThan(5);
    const forms = [canary, Buffer.from(canary).toString('base64'), Buffer.from(canary).toString('base64url')];
    for (const { key, value } of dump) {
      for (const form of forms) {
        expect(key.includes(form)).toBe(false);
        expect(value.includes(form)).toBe(false);
      }
    }
  });

  it('revokes more leases than etcd allows operations in one transaction', async () => {
    await vault.call('POST', '/v1/credentials', { body: { name: 'crowded', type: 'generic', value: 'v' } });
    for (let i = 0; i < 3; i++) {
      await Promise.all(
        Array.from({ length: 45 }, () =>
          vault.call('POST', '/v1/leases', { body: { credentialName: 'crowded', ttl: '5m' } }),
        ),
      );
    }
    const revoked = await vault.call('POST', '/v1/leases/revoke', { body: { credentialName: 'crowded' } });
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked).toBe(135);
    expect(
      (await vault.call('GET', '/v1/leases?state=active&credentialName=crowded&limit=1000')).body.leases,
    ).toEqual([]);
  });

  it('answers 503 while etcd is down, writes nothing half-way, and recovers without a restart', async () => {
    const before = (await vault.call('GET', '/v1/audit/verify')).body;
    expect(before.ok).toBe(true);
    const leasesBefore = (await vault.call('GET', '/v1/leases?limit=1000')).body.leases.length;

    await etcd.stop();
    const down = await vault.call('POST', '/v1/leases', { body: { credentialName: 'canary', ttl: '5m' } });
    expect(down.status).toBe(503);
    expect(down.body.error.code).toBe('store_unavailable');
    expect(down.body.error.message).toMatch(/unavailable|unreachable|retry/i);
    const ready = await fetch(`${vault.url}/readyz`);
    expect(ready.status).toBe(503);

    await etcd.restart();
    let recovered = 0;
    for (let i = 0; i < 60 && recovered !== 201; i++) {
      recovered = (await vault.call('POST', '/v1/leases', { body: { credentialName: 'canary', ttl: '5m' } }))
        .status;
      if (recovered !== 201) await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(recovered).toBe(201);
    expect((await fetch(`${vault.url}/readyz`)).status).toBe(200);
    const after = (await vault.call('GET', '/v1/audit/verify')).body;
    expect(after.ok).toBe(true);
    // Exactly one more lease: the failed attempts left nothing behind.
    expect((await vault.call('GET', '/v1/leases?limit=1000')).body.leases.length).toBe(leasesBefore + 1);
  });
});
