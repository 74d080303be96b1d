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

  it('a rotation that revokes old leases leaves none active on the old version, whatever raced it', async () => {
    await vault.call('POST', '/v1/credentials', {
      body: { name: 'rotating', type: 'generic', value: 'old' },
    });
    const creates = Array.from({ length: 30 }, () =>
      vault.call('POST', '/v1/leases', { body: { credentialName: 'rotating', ttl: '5m' } }),
    );
    const rotate = vault.call('POST', '/v1/credentials/rotating/rotate', { body: { revokeOldLeases: true } });
    const more = Array.from({ length: 30 }, () =>
      vault.call('POST', '/v1/leases', { body: { credentialName: 'rotating', ttl: '5m' } }),
    );
    await Promise.all([...creates, rotate, ...more]);
    // Requests sent together have no order: any of them may land before the rotation (and be
    // revoked by it). One sent after it has finished is on the new version and stays.
    const after = await vault.call('POST', '/v1/leases', { body: { credentialName: 'rotating', ttl: '5m' } });
    expect(after.body.version).toBe(2);
    const active = (await vault.call('GET', '/v1/leases?state=active&credentialName=rotating&limit=1000'))
      .body.leases;
    expect(active.map((lease: { id: string }) => lease.id)).toContain(after.body.id);
    for (const lease of active) expect(lease.version).toBe(2);
    expect((await vault.call('GET', '/v1/audit/verify')).body.ok).toBe(true);
  });

  it('revokes more leases than one transaction may hold', async () => {
    await vault.call('POST', '/v1/credentials', { body: { name: 'popular', type: 'generic', value: 'v' } });
    for (let i = 0; i < 3; i++) {
      await Promise.all(
        Array.from({ length: 50 }, () =>
          vault.call('POST', '/v1/leases', { body: { credentialName: 'popular', ttl: '5m' } }),
        ),
      );
    }
    const deleted = await vault.call('DELETE', '/v1/credentials/popular');
    expect(deleted.status).toBe(200);
    expect(deleted.body.revoked).toBe(150);
    const active = (await vault.call('GET', '/v1/leases?state=active&credentialName=popular&limit=1000')).body
      .leases;
    expect(active).toEqual([]);
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
