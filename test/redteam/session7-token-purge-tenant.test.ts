/**
 * Red team, session 7: the token purger and one tenant whose writes stop.
 *
 * Expired tokens of every tenant sit in one index, oldest first, and the purger deleted them a
 * page at a time, one commit per tenant of the page. A tenant whose commits fail (its audit
 * chain found tampered stops its writes, by design) failed the whole run, and every run started
 * again at the same oldest page: no expired token of any tenant was ever purged again.
 *
 * Real parts: the in-process API server on the embedded store, real HTTP; the tamper is a
 * deleted chain head, as `vault audit verify` would report it; the clock is moved past the
 * retention.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT_POLICY, systemContext } from '../../src/core/index.js';
import { keys } from '../../src/core/keys.js';
import { leaseIndex } from '../../src/core/lease-index.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

let offset = 0;
const clock = () => new Date(Date.now() + offset);
let vault: TestVault;
beforeAll(async () => {
  vault = await startTestVault({ clock, core: { leaseRetentionMs: 60_000 } });
});
afterAll(async () => {
  await vault?.close();
});

describe('a tenant whose writes fail', () => {
  it('does not keep the expired tokens of the others from being purged', async () => {
    const admin = { type: 'human' as const, name: 'admin' };
    await vault.core.tenants.ensure('broken', systemContext('broken', admin));
    // The broken tenant's token expires first: its index key is the oldest.
    const old = await vault.core.tokens.mint(systemContext('broken', admin), 'broken', {
      identity: admin,
      policies: [ROOT_POLICY],
      ttlMs: 60_000,
    });
    offset += 1_000;
    const res = await vault.call('POST', '/v1/auth/tokens', {
      body: { identity: { type: 'agent', name: 'short' }, policies: [], ttl: '2m' },
    });
    expect(res.status, res.text).toBe(201);
    const mine = res.body as { token: string; accessor: string };
    // The broken tenant's chain: a commit there has happened, then its head disappears.
    await vault.call('GET', '/v1/auth/whoami', { token: old.token });
    await vault.store.txn({ success: [{ type: 'delete', key: keys.auditHead('broken') }] });
    vault.core.committer.forget?.();

    offset += 10 * 60_000;
    const purged = await vault.core.tokens.purgeExpired().catch((err: Error) => err);
    expect(purged instanceof Error ? purged.message : purged).toBe(1);
    expect(await vault.store.get(keys.accessor(mine.accessor))).toBeUndefined();
    // The broken tenant's token stays (for a later run); its record was not touched.
    expect(await vault.store.get(keys.accessor(old.accessor))).toBeDefined();
    const purge = vault.auditLines().filter((r) => r.action === 'token.purge');
    expect(purge.map((r) => r.tenant)).toEqual([vault.tenant]);
  }, 20_000);

  it('does not keep the old lease records of the tenants after it from being purged', async () => {
    // "broken" sorts before "zz-later"; its writes fail (above), the later tenant's do not.
    const admin = { type: 'human' as const, name: 'admin' };
    await vault.core.tenants.ensure('zz-later', systemContext('zz-later', admin));
    const ctx = systemContext('zz-later', admin);
    await vault.core.credentials.create(ctx, { name: 'k', type: 'generic', value: 'v' });
    const lease = await vault.core.leases.create(ctx, { credentialName: 'k', ttl: '1m', renewable: true });
    // Something to purge in the broken tenant too: an index key left long ago.
    await vault.store.txn({
      success: [
        { type: 'put', key: `${leaseIndex.expiry('broken')}000000000000001/lease_leftover1`, value: '' },
      ],
    });
    offset += 10 * 60_000;
    const purged = await vault.core.purger.purgeAll().catch((err: Error) => err);
    expect(purged instanceof Error ? purged.message : purged).toBeGreaterThanOrEqual(1);
    expect(await vault.store.get(keys.lease('zz-later', lease.id))).toBeUndefined();
  }, 20_000);
});
