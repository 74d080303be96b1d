import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

// Red team, session 5: GET /v1/credentials in pages, and its `continue` tokens.

const decode = (token: string) => Buffer.from(token, 'base64url').toString('utf8');

async function create(vault: TestVault, name: string, metadata?: Record<string, string>) {
  const created = await vault.call('POST', '/v1/credentials', {
    body: { name, type: 'password', value: `value-of-${name}`, ...(metadata ? { metadata } : {}) },
  });
  expect(created.status, created.text).toBe(201);
}

describe('credential pages', () => {
  let vault: TestVault;
  beforeAll(async () => {
    vault = await startTestVault();
    for (const name of ['a-1', 'a-2', 'a-3', 'b-1', 'b-2']) {
      await create(vault, name, { env: name.startsWith('a') ? 'prod' : 'dev' });
    }
  });
  afterAll(() => vault.close());

  it('limit edge cases are 400 with a message naming limit', async () => {
    for (const bad of ['0', '1001', 'abc', '', '1.5', '-1', '1&limit=2']) {
      const answer = await vault.call('GET', `/v1/credentials?limit=${bad}`);
      expect(answer.status, bad).toBe(400);
      expect(answer.body.error.message, bad).toMatch(/limit/);
    }
    expect((await vault.call('GET', '/v1/credentials?limit=1')).body.credentials).toHaveLength(1);
    expect((await vault.call('GET', '/v1/credentials?limit=1000')).body.credentials).toHaveLength(5);
  });

  it('a walk sees every credential that existed throughout, in order, while others come and go', async () => {
    const seen: string[] = [];
    let next: string | undefined;
    let round = 0;
    do {
      const query = new URLSearchParams({ limit: '2', ...(next ? { continue: next } : {}) });
      const page = await vault.call('GET', `/v1/credentials?${query}`);
      expect(page.status, page.text).toBe(200);
      seen.push(...page.body.credentials.map((c: { name: string }) => c.name));
      next = page.body.continue;
      if (round === 0) {
        // Delete the credential the token resumes after, and add one before and one after it.
        expect((await vault.call('DELETE', '/v1/credentials/a-2')).status).toBe(200);
        await create(vault, 'a-0');
        await create(vault, 'a-9');
      }
      round++;
    } while (next);
    expect(seen).toEqual(['a-1', 'a-2', 'a-3', 'a-9', 'b-1', 'b-2']);
  });

  it('a token of a prefix walk is refused on another prefix, and a forged token is 400', async () => {
    const page = await vault.call('GET', '/v1/credentials?prefix=a-&limit=1');
    const token = page.body.continue as string;
    expect(token).toBeTruthy();
    const other = await vault.call('GET', `/v1/credentials?prefix=b-&continue=${token}`);
    expect(other.status).toBe(400);
    expect(other.body.error.message).toMatch(/another list/);
    const none = await vault.call('GET', `/v1/credentials?continue=${token}`);
    expect(none.status).toBe(400);
    const junk = await vault.call('GET', '/v1/credentials?continue=bm90LWEtdG9rZW4');
    expect(junk.status).toBe(400);
    expect(junk.body.error.message).toMatch(/continue/);
  });

  it('a token edited to claim another walk, or with a made-up seal, is 400 (never 500, never applied)', async () => {
    const a = (await vault.call('GET', '/v1/credentials?prefix=a-&limit=1')).body.continue as string;
    const b = (await vault.call('GET', '/v1/credentials?prefix=b-&limit=1')).body.continue as string;
    const [idA, sealedA = ''] = a.split('.');
    const [idB] = b.split('.');
    // The walk id of prefix "b-" spliced onto the sealed position of prefix "a-".
    const moved = await vault.call('GET', `/v1/credentials?prefix=b-&continue=${idB}.${sealedA}`);
    expect(moved.status).toBe(400);
    expect(moved.body.error.message).toMatch(/not a token this server issued/);
    const forged = await vault.call(
      'GET',
      `/v1/credentials?prefix=a-&continue=${idA}.AAAA${sealedA.slice(4)}`,
    );
    expect(forged.status).toBe(400);
    expect(forged.body.error.message).toMatch(/not a token this server issued/);
    const old = Buffer.from(JSON.stringify({ v: 1, w: idA, after: 'a-3' })).toString('base64url');
    expect((await vault.call('GET', `/v1/credentials?prefix=a-&continue=${old}`)).status).toBe(400);
  });

  it('a token of a lease list is refused by the credential list', async () => {
    for (let i = 0; i < 2; i++) {
      expect((await vault.call('POST', '/v1/leases', { body: { credentialName: 'b-1' } })).status).toBe(201);
    }
    const leases = await vault.call('GET', '/v1/leases?limit=1');
    expect(leases.body.continue).toBeTruthy();
    const answer = await vault.call('GET', `/v1/credentials?continue=${leases.body.continue}`);
    expect(answer.status).toBe(400);
  });

  it('a token of a labels-filtered list is refused with other labels (its message says other filters)', async () => {
    const page = await vault.call('GET', '/v1/credentials?labels=env=prod&limit=1');
    expect(page.body.continue).toBeTruthy();
    const other = await vault.call('GET', `/v1/credentials?labels=env=dev&continue=${page.body.continue}`);
    // Silently applied, it skips dev credentials named before the token's position.
    expect(other.status).toBe(400);
  });

  it('a token from another tenant is refused', async () => {
    await vault.call('POST', '/v1/tenants', { body: { name: 'other' } });
    const page = await vault.call('GET', '/v1/credentials?limit=1');
    const answer = await vault.call('GET', `/v1/credentials?continue=${page.body.continue}`, {
      tenant: 'other',
    });
    expect([400, 403, 404]).toContain(answer.status);
    if (answer.status === 400) expect(answer.body.error.message).toMatch(/another list/);
  });
});

describe('credential pages for a token that may list only some credentials', () => {
  let vault: TestVault;
  beforeAll(async () => {
    vault = await startTestVault();
    await create(vault, 'a-visible');
    // 10,001 credentials the token may not list, after the one it may (raw records: the walk
    // reads only their metadata).
    const record = (await vault.store.get(keys.credential(vault.tenant, 'a-visible')))!.value;
    const template = JSON.parse(record);
    for (let batch = 0; batch < 101; batch++) {
      const ops = Array.from({ length: 100 }, (_, i) => {
        const name = `z-hidden-${String(batch * 100 + i).padStart(5, '0')}`;
        return {
          type: 'put' as const,
          key: keys.credential(vault.tenant, name),
          value: JSON.stringify({ ...template, name }),
        };
      });
      await vault.store.txn({ success: ops });
    }
  }, 120_000);
  afterAll(() => vault.close());

  it('no continue token carries the name of a credential the caller may not list', async () => {
    await vault.call('PUT', '/v1/policies/a-only', {
      body: { rules: [{ credentials: ['a-*'], actions: ['list'] }] },
    });
    const token = await vault.tokenFor({ type: 'agent', name: 'scoped' }, ['a-only']);
    const tokens: string[] = [];
    const names: string[] = [];
    let next: string | undefined;
    do {
      const page = await vault.call('GET', `/v1/credentials${next ? `?continue=${next}` : ''}`, { token });
      expect(page.status, page.text).toBe(200);
      names.push(...page.body.credentials.map((c: { name: string }) => c.name));
      next = page.body.continue;
      if (next) tokens.push(next);
    } while (next);
    expect(names).toEqual(['a-visible']);
    for (const t of tokens)
      for (const part of [t, ...t.split('.')]) expect(decode(part)).not.toMatch(/hidden/);
  }, 60_000);
});
