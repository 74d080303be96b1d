import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('concurrent changes (group commit)', () => {
  let vault: TestVault;

  beforeAll(async () => {
    vault = await startTestVault();
    await vault.call('POST', '/v1/credentials', { body: { name: 'hot', type: 'generic', value: 'v' } });
  });
  afterAll(() => vault.close());

  it('issues 100 leases at once, each with its own audit record, and the chain verifies', async () => {
    const results = await Promise.all(
      Array.from({ length: 100 }, () =>
        vault.call('POST', '/v1/leases', { body: { credentialName: 'hot', ttl: '5m' } }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(100).fill(201));
    const ids = new Set(results.map((r) => r.body.id));
    expect(ids.size).toBe(100);
    const records = (await vault.call('GET', '/v1/audit?action=lease.create&limit=1000')).body.records;
    expect(new Set(records.map((r: { resource: string }) => r.resource.slice('lease/'.length)))).toEqual(ids);
    expect((await vault.call('GET', '/v1/audit/verify')).body.ok).toBe(true);
  });

  it('renews one lease 20 times at once without losing a renewal', async () => {
    const lease = await vault.call('POST', '/v1/leases', { body: { credentialName: 'hot', ttl: '5m' } });
    const renewals = await Promise.all(
      Array.from({ length: 20 }, () => vault.call('POST', `/v1/leases/${lease.body.id}/renew`, { body: {} })),
    );
    expect(renewals.map((r) => r.status)).toEqual(Array(20).fill(200));
    const after = await vault.call('GET', `/v1/leases/${lease.body.id}`);
    expect(after.body.renewCount).toBe(20);
    expect((await vault.call('GET', '/v1/audit/verify')).body.ok).toBe(true);
  });

  it('a create racing a delete of the same credential never leaves a lease on a deleted credential', async () => {
    await vault.call('POST', '/v1/credentials', { body: { name: 'doomed', type: 'generic', value: 'v' } });
    const [created, deleted] = await Promise.all([
      vault.call('POST', '/v1/leases', { body: { credentialName: 'doomed', ttl: '5m' } }),
      vault.call('DELETE', '/v1/credentials/doomed'),
    ]);
    expect(deleted.status).toBe(200);
    if (created.status === 201) {
      // The lease landed first, so the delete revoked it.
      expect(deleted.body.leaseIds).toContain(created.body.id);
    } else {
      expect(created.status).toBe(404);
    }
  });
});
