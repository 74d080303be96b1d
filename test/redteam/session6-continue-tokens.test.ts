/**
 * Red team, session 6: continue tokens of GET /v1/leases as an attacker, a careless client and
 * a tenant that rotates its key. These held; the tests keep them so.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';

async function walk(vault: TestVault, token: string, query: string) {
  const ids: string[] = [];
  let next: string | undefined;
  do {
    const page = await vault.call(
      'GET',
      `/v1/leases?${query}${next ? `&continue=${encodeURIComponent(next)}` : ''}`,
      { token },
    );
    expect(page.status, page.text).toBe(200);
    ids.push(...page.body.leases.map((l: { id: string }) => l.id));
    next = page.body.continue;
  } while (next);
  return ids;
}

describe('lease list continue tokens', () => {
  let vault: TestVault;
  let alice: string;
  let bob: string;
  const mine: Record<string, string[]> = { alice: [], bob: [] };
  beforeAll(async () => {
    vault = await startTestVault();
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'db', type: 'password', value: 's3cret' },
    });
    expect(created.status).toBe(201);
    await vault.call('PUT', '/v1/policies/leaser', {
      body: { rules: [{ credentials: ['db'], actions: ['lease', 'reveal'] }] },
    });
    alice = await vault.tokenFor({ type: 'agent', name: 'alice' }, ['leaser']);
    bob = await vault.tokenFor({ type: 'agent', name: 'bob' }, ['leaser']);
    for (let i = 0; i < 6; i++) {
      for (const [who, token] of [
        ['alice', alice],
        ['bob', bob],
      ] as const) {
        const lease = await vault.call('POST', '/v1/leases', { body: { credentialName: 'db' }, token });
        expect(lease.status).toBe(201);
        mine[who]!.push(lease.body.id);
      }
    }
  });
  afterAll(() => vault.close());

  it('a caller walking page by page sees its own leases only, each once', async () => {
    expect((await walk(vault, bob, 'limit=1')).sort()).toEqual([...mine.bob!].sort());
  });

  it("bob resuming alice's walk sees only his own leases after it", async () => {
    const page = await vault.call('GET', '/v1/leases?limit=1', { token: alice });
    const token = page.body.continue as string;
    const resumed = await vault.call('GET', `/v1/leases?limit=1000&continue=${encodeURIComponent(token)}`, {
      token: bob,
    });
    expect(resumed.status).toBe(200);
    for (const lease of resumed.body.leases as Array<{ id: string }>) expect(mine.bob).toContain(lease.id);
  });

  it('a token issued before a tenant key rotation still resumes its walk', async () => {
    const page = await vault.call('GET', '/v1/leases?limit=2');
    const seen = page.body.leases.map((l: { id: string }) => l.id);
    const rotated = await vault.call('POST', '/v1/sys/keys/rotate', { body: {} });
    expect(rotated.status, rotated.text).toBe(200);
    const rest = await vault.call(
      'GET',
      `/v1/leases?limit=1000&continue=${encodeURIComponent(page.body.continue)}`,
    );
    expect(rest.status, rest.text).toBe(200);
    expect([...seen, ...rest.body.leases.map((l: { id: string }) => l.id)].sort()).toEqual(
      [...mine.alice!, ...mine.bob!].sort(),
    );
  });

  it('a token of other filters, or a made-up or oversized one, is 400, never 500', async () => {
    const page = await vault.call('GET', '/v1/leases?limit=1&credentialName=db');
    const token = page.body.continue as string;
    const [id, sealed] = token.split('.');
    for (const [query, bad] of [
      ['identityType=agent', token],
      ['state=active', token],
      ['credentialName=db&labels=a%3D1', token],
      ['credentialName=db', `${id}.${'A'.repeat(4000)}`],
      ['credentialName=db', `${id}.${sealed!.slice(0, -2)}`],
      ['credentialName=db', '.'],
      ['credentialName=db', 'x'.repeat(4097)],
    ] as const) {
      const answer = await vault.call('GET', `/v1/leases?${query}&continue=${encodeURIComponent(bad)}`);
      expect(answer.status, `${query} ${bad.slice(0, 20)}`).toBe(400);
      expect(answer.body.error.message).toMatch(/continue/);
    }
  });
});
