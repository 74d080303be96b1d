import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';

// Red team, session 10b: clipping a reason hides what it was meant to record.
//
// `token.create` records which policies the new token carries only in its reason,
// "policies: a, b, c", and the committer now cuts a reason after 2,000 characters
// ("… (N more characters)"). Policy names may be 253 characters and a token 64 policies, so
// whoever mints a token puts eight long, harmless policy names first and the one that matters
// (`root`, an `actFor` policy) ninth: the audit record, the only lasting trace once the token is
// purged, no longer says the token was given it. Nothing else in the record names the policies.
//
// Fix: do not clip security-relevant lists; e.g. record the policies in a structured, unclipped
// field (or one record per chunk of names), or clip only the free text a caller supplied and
// keep a digest (SHA-256) of the full reason in the record.

describe('clipped token.create reasons', () => {
  let vault: TestVault;
  const long = (i: number) => `p${i}-${'x'.repeat(249)}`;

  beforeAll(async () => {
    vault = await startTestVault();
    for (let i = 0; i < 8; i++) {
      const res = await vault.call('PUT', `/v1/policies/${long(i)}`, {
        body: { rules: [{ credentials: ['none'], actions: ['list'] }] },
      });
      expect(res.status, res.text).toBeLessThan(300);
    }
    const admin = await vault.call('PUT', '/v1/policies/tenant-admin', {
      body: { rules: [{ credentials: ['*'], actions: ['list', 'read-metadata', 'lease', 'reveal'] }] },
    });
    expect(admin.status, admin.text).toBeLessThan(300);
  }, 60_000);
  afterAll(() => vault?.close());

  it('the token.create record names every policy the token got', async () => {
    const policies = [...Array.from({ length: 8 }, (_, i) => long(i)), 'tenant-admin'];
    const minted = await vault.call('POST', '/v1/auth/tokens', {
      body: { identity: { type: 'agent', name: 'quiet' }, policies, ttl: '1h' },
    });
    expect(minted.status, minted.text).toBe(201);
    const who = await vault.call('GET', '/v1/auth/whoami', { token: minted.body.token });
    expect(who.body.policies ?? who.text).toContain('tenant-admin');

    const audit = await vault.call('GET', '/v1/audit?action=token.create&newest=true&limit=1');
    expect(audit.status, audit.text).toBe(200);
    const record = audit.body.records.at(-1);
    expect(record.actingFor).toEqual({ type: 'agent', name: 'quiet' });
    const reason = String(record.reason);
    expect(
      reason.includes('tenant-admin'),
      `the audit record of a token given "tenant-admin" does not say so; its reason ends "${reason.slice(-40)}"`,
    ).toBe(true);
  });
});
