/**
 * `GET /v1/credentials` answers a page at a time: a tenant with more credentials than a page
 * is listed completely, in name order, once each, by the API's `continue` tokens and by the
 * SDK (which follows them); filters and a caller's policy hold across pages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { Vault } from '../../src/sdk/index.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const COUNT = 1_203;
const names = Array.from(
  { length: COUNT },
  (_, i) => `${i % 7 === 0 ? 'team-a' : 'team-b'}-${String(i).padStart(4, '0')}`,
);

let vault: TestVault;
beforeAll(async () => {
  vault = await startTestVault();
  const ctx = systemContext(vault.tenant, { type: 'human', name: 'root' });
  for (let i = 0; i < COUNT; i += 200)
    await Promise.all(
      names.slice(i, i + 200).map((name, j) =>
        vault.core.credentials.create(ctx, {
          name,
          type: 'generic',
          value: 'v',
          metadata: { tier: (i + j) % 3 === 0 ? 'gold' : 'plain' },
        }),
      ),
    );
}, 120_000);
afterAll(() => vault?.close());

async function walk(query: string, token?: string) {
  const seen: string[] = [];
  let next: string | undefined;
  let pages = 0;
  do {
    const res = await vault.call(
      'GET',
      `/v1/credentials?${query}${next ? `&continue=${encodeURIComponent(next)}` : ''}`,
      token ? { token } : {},
    );
    expect(res.status, res.text).toBe(200);
    seen.push(...res.body.credentials.map((c: { name: string }) => c.name));
    next = res.body.continue;
    pages++;
  } while (next);
  return { seen, pages };
}

describe('GET /v1/credentials in pages', () => {
  it('answers at most 1,000 by default and a token for the rest; every name once, in order', async () => {
    const first = await vault.call('GET', '/v1/credentials');
    expect(first.body.credentials).toHaveLength(1_000);
    expect(first.body.continue).toEqual(expect.any(String));
    const { seen, pages } = await walk('limit=100');
    expect(pages).toBe(13);
    expect(seen).toEqual([...names].sort());
  });

  it('keeps filters and the caller’s policy across pages', async () => {
    const gold = await walk('limit=50&labels=tier%3Dgold');
    expect(gold.seen).toHaveLength(names.filter((_, i) => i % 3 === 0).length);
    const prefixed = await walk('limit=40&prefix=team-a-');
    expect(prefixed.seen).toEqual(names.filter((n) => n.startsWith('team-a-')).sort());
    // A token that may list team-a-* only: sparse matches, still every one of them.
    const policy = await vault.call('PUT', '/v1/policies/team-a-lister', {
      body: { rules: [{ credentials: ['team-a-*'], actions: ['list'] }] },
    });
    expect(policy.status, policy.text).toBeLessThan(300);
    const agent = await vault.tokenFor({ type: 'agent', name: 'lister' }, ['team-a-lister']);
    const own = await walk('limit=10', agent);
    expect(own.seen).toEqual(names.filter((n) => n.startsWith('team-a-')).sort());
  });

  it('refuses a continue token it did not issue and a limit out of range, saying what to fix', async () => {
    const forged = await vault.call('GET', '/v1/credentials?continue=not-a-token');
    expect(forged.status).toBe(400);
    expect(forged.text).toMatch(/continue is not a token this server issued/);
    const big = await vault.call('GET', '/v1/credentials?limit=5000');
    expect(big.status).toBe(400);
    expect(big.text).toMatch(/limit/);
  });

  it('refuses a token of another list: other filters, another tenant', async () => {
    const page = await vault.call('GET', '/v1/credentials?limit=5&prefix=team-a-');
    // Opaque: the position is sealed (a walk may stop at a credential the caller may not list).
    for (const part of (page.body.continue as string).split('.'))
      expect(Buffer.from(part, 'base64url').toString('latin1')).not.toMatch(/team-/);
    const token = encodeURIComponent(page.body.continue);
    const labelled = await vault.call(
      'GET',
      `/v1/credentials?limit=5&prefix=team-a-&labels=tier%3Dgold&continue=${token}`,
    );
    expect(labelled.status).toBe(400);
    const tampered = `${page.body.continue.slice(0, -3)}${page.body.continue.endsWith('A') ? 'B' : 'A'}AA`;
    const forged = await vault.call('GET', `/v1/credentials?limit=5&prefix=team-a-&continue=${tampered}`);
    expect(forged.status).toBe(400);
    expect(forged.text).toMatch(/not a token this server issued/);
    const elsewhere = await vault.call('GET', `/v1/credentials?limit=5&continue=${token}`);
    expect(elsewhere.status).toBe(400);
    expect(elsewhere.text).toMatch(/continue belongs to another list/);
    expect((await vault.call('GET', `/v1/credentials?limit=5&prefix=team-a-&continue=${token}`)).status).toBe(
      200,
    );

    for (let i = 0; i < 3; i++)
      for (const credentialName of ['team-a-0000', 'team-b-0001'])
        await vault.call('POST', '/v1/leases', { body: { credentialName, ttl: '5m' } });
    const leases = await vault.call('GET', '/v1/leases?credentialName=team-a-0000&limit=1');
    const leaseToken = encodeURIComponent(leases.body.continue);
    for (const path of [
      `/v1/leases?credentialName=team-b-0001&limit=1&continue=${leaseToken}`,
      `/v1/leases?limit=1&continue=${leaseToken}`,
    ]) {
      const res = await vault.call('GET', path);
      expect(res.status, path).toBe(400);
      expect(res.text).toMatch(/continue belongs to another list/);
    }
    await vault.call('POST', '/v1/sys/tenants', { body: { id: 'other-tenant' } });
    const foreign = await vault.call(
      'GET',
      `/v1/leases?credentialName=team-a-0000&limit=1&continue=${leaseToken}`,
      {
        tenant: 'other-tenant',
      },
    );
    expect(foreign.status).toBe(400);
  });

  it('the SDK lists every credential, following the pages', async () => {
    const sdk = await Vault.connect({ addr: vault.url, token: vault.rootToken, tenant: vault.tenant });
    const all = await sdk.credentials.list();
    expect(all.map((c) => c.name)).toEqual([...names].sort());
  });
});
