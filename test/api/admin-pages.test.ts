/**
 * `GET /v1/policies` and `GET /v1/identities` answer a page at a time (1,000 at most): a
 * tenant with more than a page is listed completely, in name order, once each, by the API's
 * `continue` tokens and by the SDK (which follows them); a token of one list is refused by the
 * other, and bad limits are 400.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { Vault } from '../../src/sdk/index.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const COUNT = 1_105;
const pad = (i: number) => String(i).padStart(4, '0');

let vault: TestVault;
beforeAll(async () => {
  vault = await startTestVault();
  const ctx = systemContext(vault.tenant, { type: 'human', name: 'root' });
  for (let i = 0; i < COUNT; i += 100)
    await Promise.all(
      Array.from({ length: Math.min(100, COUNT - i) }, (_, j) => pad(i + j)).flatMap((n) => [
        vault.core.policies.put(ctx, `p-${n}`, { rules: [{ credentials: [`c-${n}`], actions: ['lease'] }] }),
        vault.core.identities.put(ctx, 'agent', `a-${n}`, { policies: [`p-${n}`] }),
      ]),
    );
}, 300_000);
afterAll(() => vault?.close());

describe.each([
  { path: '/v1/policies', field: 'policies', prefix: 'p-' },
  { path: '/v1/identities', field: 'identities', prefix: 'a-' },
])('$path in pages', ({ path, field, prefix }) => {
  const ours = (items: Array<{ name: string }>) =>
    items.map((i) => i.name).filter((n) => n.startsWith(prefix));

  it('answers 1,000 at most with a token, and the walk lists every record once, in order', async () => {
    const first = await vault.call('GET', path);
    expect(first.status, first.text).toBe(200);
    expect(first.body[field]).toHaveLength(1_000);
    expect(first.body.continue).toEqual(expect.any(String));
    const seen: string[] = [];
    let next: string | undefined;
    do {
      const page = await vault.call('GET', `${path}?limit=300${next ? `&continue=${next}` : ''}`);
      expect(page.status, page.text).toBe(200);
      expect(page.body[field].length).toBeLessThanOrEqual(300);
      seen.push(...ours(page.body[field]));
      next = page.body.continue;
    } while (next);
    expect(seen).toEqual(Array.from({ length: COUNT }, (_, i) => `${prefix}${pad(i)}`));
  });

  it('is listed whole by the SDK', async () => {
    const sdk = await Vault.connect({ addr: vault.url, token: vault.rootToken, tenant: vault.tenant });
    const all = field === 'policies' ? await sdk.policies.list() : await sdk.identities.list();
    expect(ours(all)).toHaveLength(COUNT);
  });

  it('refuses bad limits and foreign or forged tokens with 400', async () => {
    for (const bad of ['0', '1001', 'x']) {
      const answer = await vault.call('GET', `${path}?limit=${bad}`);
      expect(answer.status, bad).toBe(400);
      expect(answer.body.error.message, bad).toMatch(/limit/);
    }
    const other = path === '/v1/policies' ? '/v1/identities' : '/v1/policies';
    const token = (await vault.call('GET', `${other}?limit=1`)).body.continue;
    const foreign = await vault.call('GET', `${path}?continue=${token}`);
    expect(foreign.status).toBe(400);
    expect(foreign.body.error.message).toMatch(/another list/);
    const forged = await vault.call('GET', `${path}?continue=abc.def`);
    expect(forged.status).toBe(400);
    expect(forged.body.error.message).toMatch(/continue/);
  });
});

describe('/v1/sys/tenants in pages', () => {
  it('pages every tenant once, in id order, and the SDK lists them all', async () => {
    const ctx = systemContext(vault.tenant, { type: 'human', name: 'root' });
    const ids = Array.from({ length: 25 }, (_, i) => `pages-${pad(i)}`);
    for (const id of ids) await vault.core.tenants.create(ctx, id);
    const seen: string[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const page = await vault.call('GET', `/v1/sys/tenants?limit=10${next ? `&continue=${next}` : ''}`);
      expect(page.status, page.text).toBe(200);
      expect(page.body.tenants.length).toBeLessThanOrEqual(10);
      seen.push(...page.body.tenants.map((t: { id: string }) => t.id));
      next = page.body.continue;
      pages += 1;
    } while (next);
    expect(pages).toBe(3);
    expect(seen).toEqual([vault.tenant, ...ids].sort());
    const sdk = await Vault.connect({ addr: vault.url, token: vault.rootToken, tenant: vault.tenant });
    expect((await sdk.tenants.list()).map((t) => t.id)).toEqual(seen);
  });

  it('refuses bad limits and a continue that is no tenant id with 400', async () => {
    for (const bad of ['limit=0', 'limit=1001', 'limit=x', 'continue=..%2Fkeys', 'continue=A'])
      expect((await vault.call('GET', `/v1/sys/tenants?${bad}`)).status, bad).toBe(400);
    // Every list's limit: decimal, given once, with a message saying so.
    for (const path of ['/v1/sys/tenants', '/v1/policies', '/v1/credentials', '/v1/leases', '/v1/audit'])
      for (const bad of ['limit=0x10', 'limit=1&limit=2', 'limit=1e2', 'limit=-1']) {
        const answer = await vault.call('GET', `${path}?${bad}`);
        expect(answer.status, `${path}?${bad}`).toBe(400);
        expect(answer.body.error.message, `${path}?${bad}`).toMatch(/limit is/);
      }
  });
});
