/**
 * Repeating a create. For a caller who may read the value, an exact repeat is not a conflict
 * (a script or an example run twice). For anyone else it must be, whatever value they send:
 * an "unchanged" answer would confirm a guessed value without reading it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const secret = 'sk_live_repeat_canary';
const body = { name: 'billing-key', type: 'api-key', value: secret, metadata: { team: 'billing' } };

describe('POST /v1/credentials for a credential that exists', () => {
  let vault: TestVault;

  beforeAll(async () => {
    vault = await startTestVault();
    expect((await vault.call('POST', '/v1/credentials', { body })).status).toBe(201);
    await vault.call('PUT', '/v1/policies/creator', {
      body: { rules: [{ credentials: ['billing-*'], actions: ['create'] }] },
    });
    await vault.call('PUT', '/v1/policies/user', {
      body: { rules: [{ credentials: ['billing-*'], actions: ['create', 'lease'] }] },
    });
  });
  afterAll(() => vault.close());

  it('answers an exact repeat by a caller who may read the value with the credential, unchanged', async () => {
    const again = await vault.call('POST', '/v1/credentials', { body });
    expect(again.status).toBe(201);
    expect(again.body).toMatchObject({ name: 'billing-key', currentVersion: 1, unchanged: true });
    const human = await vault.tokenFor({ type: 'human', name: 'alice' }, ['user']);
    const byHuman = await vault.call('POST', '/v1/credentials', { body, token: human });
    expect(byHuman.body.unchanged).toBe(true);
    const other = await vault.call('POST', '/v1/credentials', { body: { ...body, value: 'other' } });
    expect(other.status).toBe(409);
    expect(other.body.error.message).toMatch(/already exists with another value, type or metadata/);
  });

  it.each([
    ['a creator that may not lease', { type: 'human', name: 'bob' }, ['creator']],
    ['an agent that may lease but not reveal', { type: 'agent', name: 'claude-code' }, ['user']],
  ] as const)('gives %s the same 409 for the right value and a wrong one', async (_, identity, policies) => {
    const token = await vault.tokenFor(identity, [...policies]);
    const right = await vault.call('POST', '/v1/credentials', { body, token });
    const wrong = await vault.call('POST', '/v1/credentials', { body: { ...body, value: 'guess' }, token });
    expect(right.status).toBe(409);
    expect(wrong.status).toBe(409);
    expect(right.body.error).toEqual({ ...wrong.body.error, requestId: right.body.error.requestId });
    expect(right.body.error.message).toBe(
      'credential "billing-key" already exists; put a new version or rotate it instead',
    );
    // Nothing was written, and the audit trail reads the same for both.
    const got = await vault.call('GET', '/v1/credentials/billing-key');
    expect(got.body.currentVersion).toBe(1);
    const records = vault.auditLines().filter((r) => r.actor.name === identity.name);
    expect(records.filter((r) => r.action === 'credential.create' && r.outcome === 'allowed')).toEqual([]);
    expect(JSON.stringify(vault.auditLines())).not.toContain(secret);
  });
});
