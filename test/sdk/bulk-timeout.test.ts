import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault } from '../../src/sdk/index.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

/**
 * A bulk revocation answers once every lease is revoked: with many leases that is longer than
 * a client's usual time limit, which must not give up on a revocation that is still going.
 * Here every store transaction takes 400 ms and the client's limit is 500 ms.
 */
describe('SDK calls that revoke many leases', () => {
  let vault: TestVault;
  let slow = false;
  let client: Vault;

  beforeAll(async () => {
    const inner = await openEmbeddedStore({ path: await mkdtemp(join(tmpdir(), 'vault-bulk-timeout-')) });
    const store = storeWith(inner, (real) => ({
      txn: async (txn) => {
        if (slow) await new Promise((resolve) => setTimeout(resolve, 400));
        return real.txn(txn);
      },
    }));
    vault = await startTestVault({ store });
    client = await Vault.connect({
      addr: vault.url,
      token: vault.rootToken,
      tenant: vault.tenant,
      timeoutMs: 500,
    });
    for (const name of ['bulk-a', 'bulk-b', 'bulk-c']) {
      await client.credentials.create({ name, type: 'generic', value: `${name}-value` });
      for (let i = 0; i < 60; i++) await client.leases.create({ credentialName: name, ttl: '1h' });
    }
  }, 120_000);
  afterAll(() => vault?.close());

  it('revokeBulk, credentials.rotate with revokeOldLeases and credentials.delete outlast the client’s time limit', async () => {
    slow = true;
    const started = Date.now();
    expect((await client.leases.revokeBulk({ credentialName: 'bulk-a' })).revoked).toBe(60);
    const rotated = await client.credentials.rotate('bulk-b', { value: 'bulk-b-v2', revokeOldLeases: true });
    expect(rotated.currentVersion).toBe(2);
    expect((await client.credentials.delete('bulk-c')).revoked).toBe(60);
    // They did take longer than the limit each: otherwise this test proves nothing.
    expect(Date.now() - started).toBeGreaterThan(3 * 500);
    slow = false;
    expect(await client.leases.list({ state: 'active' })).toEqual([]);
  }, 60_000);
});
