import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('lease records past their retention', () => {
  let vault: TestVault;
  let offsetMs = 0;
  const clock = () => new Date(Date.now() + offsetMs);

  beforeAll(async () => {
    vault = await startTestVault({ clock });
    await vault.call('POST', '/v1/credentials', { body: { name: 'k', type: 'generic', value: 'v' } });
  });
  afterAll(() => vault.close());

  it('are deleted after 24 h, while active leases, recent ones and the audit trail stay', async () => {
    const revoked = await vault.call('POST', '/v1/leases', { body: { credentialName: 'k', ttl: '1h' } });
    await vault.call('POST', `/v1/leases/${revoked.body.id}/revoke`);
    const expiring = await vault.call('POST', '/v1/leases', { body: { credentialName: 'k', ttl: '1m' } });

    expect(await vault.core.purger.purgeAll()).toBe(0);
    offsetMs = 23 * 3_600_000;
    expect(await vault.core.purger.purgeAll()).toBe(0);
    const long = await vault.call('POST', '/v1/leases', { body: { credentialName: 'k', ttl: '12h' } });
    const recentlyRevoked = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'k', ttl: '1h' },
    });
    await vault.call('POST', `/v1/leases/${recentlyRevoked.body.id}/revoke`);

    offsetMs = 25 * 3_600_000;
    expect(await vault.core.purger.purgeAll()).toBe(2);
    expect((await vault.call('GET', `/v1/leases/${revoked.body.id}`)).status).toBe(404);
    expect((await vault.call('GET', `/v1/leases/${expiring.body.id}`)).status).toBe(404);
    expect((await vault.call('GET', `/v1/leases/${long.body.id}`)).body.state).toBe('active');
    expect((await vault.call('GET', `/v1/leases/${recentlyRevoked.body.id}`)).body.state).toBe('revoked');

    const trail = await vault.call('GET', `/v1/audit?resource=lease/${revoked.body.id}`);
    // Its whole history is still there (and the 404 lookup above, audited too).
    const actions = trail.body.records.map((r: { action: string }) => r.action);
    expect(actions.slice(0, 2)).toEqual(['lease.create', 'lease.revoke']);
    const purges = await vault.call('GET', '/v1/audit?action=lease.purge');
    // One transaction walked the expired leases, one the revoked: each with its record.
    expect(purges.body.records).toHaveLength(2);
    expect(purges.body.records[0].actor).toEqual({ type: 'workload', name: 'vault-lease-purger' });
    expect((await vault.call('GET', '/v1/audit/verify')).body.ok).toBe(true);
  });
});
