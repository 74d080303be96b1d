import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

/**
 * One tenant with 12,000 lease records: more than 4 MiB of them, etcd's response limit, so
 * anything that reads the tenant's whole `leases/` prefix in one request fails on etcd.
 * Seeded through the core (group commit), not 12,000 HTTP calls.
 */
const SEED = [
  { credential: 'big', count: 9_000 },
  { credential: 'revokeme', count: 1_000 },
  { credential: 'doomed', count: 1_000 },
  { credential: 'rotating', count: 1_000 },
] as const;
const TOTAL = SEED.reduce((sum, s) => sum + s.count, 0);
// Long enough to take a record over 4 MiB / 12,000 bytes together with its ids and times.
const bulky = { purpose: 'scale-test '.repeat(20).trim(), owner: 'team-platform' };

describe.each(['etcd', 'embedded'] as const)('a tenant with 12,000 leases on the %s store', (kind) => {
  let etcd: EtcdProcess | undefined;
  let store: Store | undefined;
  let vault: TestVault;
  let offsetMs = 0;
  const clock = () => new Date(Date.now() + offsetMs);

  beforeAll(async () => {
    if (kind === 'etcd') {
      etcd = await startEtcd();
      store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 10_000 });
    }
    vault = await startTestVault({ clock, ...(store ? { store } : {}) });
    const ctx = systemContext(vault.tenant, { type: 'human', name: 'root' });
    for (const { credential, count } of SEED) {
      await vault.call('POST', '/v1/credentials', {
        body: { name: credential, type: 'generic', value: 'v' },
      });
      for (let done = 0; done < count; done += 500) {
        await Promise.all(
          Array.from({ length: Math.min(500, count - done) }, (_, i) =>
            vault.core.leases.create(ctx, {
              credentialName: credential,
              ttl: '1h',
              renewable: true,
              identity: { type: 'agent', name: `agent-${(done + i) % 3}` },
              labels: bulky,
            }),
          ),
        );
      }
    }
  }, 600_000);
  afterAll(async () => {
    await vault?.close();
    await store?.close();
    await etcd?.destroy();
  });

  it('lists leases a page at a time with a continuation token', async () => {
    const seen = new Set<string>();
    let next: string | undefined;
    for (let page = 0; page < 3; page++) {
      const res = await vault.call(
        'GET',
        `/v1/leases?limit=100${next ? `&continue=${encodeURIComponent(next)}` : ''}`,
      );
      expect(res.status).toBe(200);
      expect(res.body.leases).toHaveLength(100);
      for (const lease of res.body.leases) seen.add(lease.id);
      expect(typeof res.body.continue).toBe('string');
      next = res.body.continue;
    }
    expect(seen.size).toBe(300);

    // Every lease of one credential, in pages, each exactly once.
    const ids = new Set<string>();
    next = undefined;
    for (let page = 0; page < 20; page++) {
      const res = await vault.call(
        'GET',
        `/v1/leases?credentialName=revokeme&limit=300${next ? `&continue=${encodeURIComponent(next)}` : ''}`,
      );
      expect(res.status).toBe(200);
      for (const lease of res.body.leases) {
        expect(lease.credentialName).toBe('revokeme');
        ids.add(lease.id);
      }
      next = res.body.continue;
      if (!next) break;
    }
    expect(ids.size).toBe(1_000);

    const bad = await vault.call('GET', '/v1/leases?continue=not-a-token');
    expect(bad.status).toBe(400);
  });

  it('counts leases for the vault_leases gauge', async () => {
    const metrics = await vault.call('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(new RegExp(`vault_leases\\{state="active"\\} ${TOTAL}\\b`));
  });

  it('looks a value up in 12,000 matching audit records: all counted, the first 1,000 answered', async () => {
    // Every seeded credential holds the value "v", so every lease issue carries its HMAC.
    const res = await vault.call('POST', '/v1/audit/lookup', { body: { value: 'v' } });
    expect(res.status).toBe(200);
    expect(res.body.issued).toBe(true);
    expect(res.body.matches).toBeGreaterThanOrEqual(TOTAL);
    expect(res.body.records).toHaveLength(1_000);
    expect(res.body.truncated).toBe(true);
    const seqs = res.body.records.map((r: { seq: number }) => r.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    const none = await vault.call('POST', '/v1/audit/lookup', { body: { value: 'never issued' } });
    expect(none.body).toMatchObject({ issued: false, matches: 0, records: [], truncated: false });
  });

  it("revokes one credential's leases in bulk", async () => {
    const res = await vault.call('POST', '/v1/leases/revoke', { body: { credentialName: 'revokeme' } });
    expect(res.status).toBe(200);
    expect(res.body.revoked).toBe(1_000);
    expect(new Set(res.body.leaseIds).size).toBe(1_000);
    expect(res.body.truncated).toBe(false);
    const left = await vault.call('GET', '/v1/leases?credentialName=revokeme&state=active&limit=1000');
    expect(left.body.leases).toEqual([]);
    // Other credentials' leases are untouched.
    const big = await vault.call('GET', '/v1/leases?credentialName=big&state=active&limit=10');
    expect(big.body.leases).toHaveLength(10);
  });

  it('deletes a credential and revokes its leases', async () => {
    const res = await vault.call('DELETE', '/v1/credentials/doomed');
    expect(res.status).toBe(200);
    const left = await vault.call('GET', '/v1/leases?credentialName=doomed&state=revoked&limit=1000');
    expect(left.body.leases).toHaveLength(1_000);
  });

  it('rotates a credential and revokes the leases of its old version', async () => {
    const res = await vault.call('POST', '/v1/credentials/rotating/rotate', {
      body: { revokeOldLeases: true },
    });
    expect(res.status).toBe(200);
    const left = await vault.call('GET', '/v1/leases?credentialName=rotating&state=active&limit=1000');
    expect(left.body.leases).toEqual([]);
  });

  it('revokes every lease of an identity', async () => {
    const res = await vault.call('POST', '/v1/leases/revoke', {
      body: { identity: { type: 'agent', name: 'agent-0' } },
    });
    expect(res.status).toBe(200);
    expect(res.body.revoked).toBe(3_000);
    // The answer lists the first 1,000 ids and says there were more: a million would not fit.
    expect(res.body.leaseIds).toHaveLength(1_000);
    expect(res.body.truncated).toBe(true);
    const left = await vault.call(
      'GET',
      '/v1/leases?identityType=agent&identityName=agent-0&state=active&limit=10',
    );
    expect(left.body.leases).toEqual([]);
  });

  it('purges ended records in bounded transactions', async () => {
    offsetMs = 26 * 3_600_000;
    expect(await vault.core.purger.purgeAll()).toBe(TOTAL);
    // The embedded store's purge keeps the event loop busy: let the server close the client's
    // idle keep-alive socket before the next request, not while it is sent.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const left = await vault.call('GET', '/v1/leases?limit=10');
    expect(left.body.leases).toEqual([]);
    expect(left.body.continue).toBeUndefined();
    expect((await vault.call('GET', '/v1/audit/verify')).body.ok).toBe(true);
    // 12,000 records in hundreds of transactions: minutes on a busy machine, never a failure.
  }, 180_000);
});
