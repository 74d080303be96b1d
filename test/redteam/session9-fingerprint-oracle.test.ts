import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

/**
 * Red team, session 9: `ifChanged` is now refused to a caller who may not read the value,
 * because "is my guess equal to the stored value?" is an oracle. But the same answer is
 * handed out for free through the version fingerprints every `read-metadata` holder sees
 * (GET /v1/credentials/:name, GET .../versions, and the answer of any create / put-version):
 * a fingerprint is a per-*tenant* keyed HMAC of the value, so two credentials of a tenant
 * with equal values have equal fingerprints.
 *
 * Attack A (a tenant user): a principal with `read-metadata` on `prod-db` and `create` on
 * its own scratch prefix (no `lease`, no `reveal` on anything) creates `scratch-N` with a
 * guessed value and compares the fingerprint it gets back with `prod-db`'s current one.
 * Non-destructive, unlimited guesses, nothing in the audit trail says "compare".
 *
 * Attack B (a stolen controller token): the controller role has `create` and
 * `read-metadata` on every credential of its tenants but must only compare values of
 * credentials carrying `vault.ghoststack.io/owner`. It creates a probe credential with a
 * guessed value and compares fingerprints with any API-made credential (no owner label),
 * which `ifChanged` on that credential correctly refuses.
 *
 * Attack C (a rotation bot: `rotate` + `read-metadata`, no `lease`): it puts its guess as a
 * new version *without* `ifChanged`; the answer lists the previous and the new version's
 * fingerprints side by side.
 *
 * Impact: the `ifChanged` fix (commit 88dee75) is moot; low-entropy values (PINs, human
 * passwords, short API keys from a known format) can be brute-forced offline-ish by anyone
 * who may merely see a credential's metadata in the tenant.
 *
 * Expected once fixed: a principal who may not read the value cannot tell a right guess from
 * a wrong one (e.g. fingerprints are keyed per credential, or withheld from callers without a
 * reading right).
 */
describe('version fingerprints are no guessing oracle for callers who may not read the value', () => {
  let vault: TestVault;
  const secret = 'hunter2-prod-db';

  beforeAll(async () => {
    vault = await startTestVault();
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'prod-db', type: 'api-key', value: secret },
    });
    expect(created.status, created.text).toBe(201);
  });
  afterAll(() => vault?.close());

  const currentFingerprint = (credential: {
    currentVersion: number;
    versions: Array<{ version: number; fingerprint: string }>;
  }) => credential.versions.find((v) => v.version === credential.currentVersion)!.fingerprint;

  /** Creates a probe credential holding `guess`: does its fingerprint equal `targetFp`? */
  const probeMatches = async (
    token: string,
    name: string,
    guess: string,
    targetFp: string,
    metadata?: Record<string, string>,
  ) => {
    const made = await vault.call('POST', '/v1/credentials', {
      token,
      body: { name, type: 'api-key', value: guess, ...(metadata ? { metadata } : {}) },
    });
    expect(made.status, made.text).toBe(201);
    return currentFingerprint(made.body) === targetFp;
  };

  it('a user with read-metadata and create (no lease) cannot confirm a guess via a scratch credential', async () => {
    const policy = await vault.call('PUT', '/v1/policies/snooper', {
      body: {
        rules: [
          { credentials: ['prod-db'], actions: ['read-metadata'] },
          { credentials: ['scratch-*'], actions: ['create', 'read-metadata'] },
        ],
      },
    });
    expect(policy.status, policy.text).toBeLessThan(300);
    const token = await vault.tokenFor({ type: 'human', name: 'mallory' }, ['snooper']);

    // The straightforward oracle is refused, as intended.
    const direct = await vault.call('POST', '/v1/credentials/prod-db/versions', {
      token,
      body: { value: secret, ifChanged: true },
    });
    expect(direct.status).toBe(403);

    const target = await vault.call('GET', '/v1/credentials/prod-db', { token });
    expect(target.status, target.text).toBe(200);
    const targetFp = currentFingerprint(target.body);

    const probe = (name: string, guess: string) => probeMatches(token, name, guess, targetFp);
    const wrong = await probe('scratch-1', 'password123');
    const right = await probe('scratch-2', secret);
    // Once fixed, a right and a wrong guess look alike to this caller.
    expect({ wrong, right }).toEqual({ wrong: false, right: false });
  });

  it('the controller cannot confirm a guess on a credential without the owner label', async () => {
    const identity = { type: 'workload' as const, name: 'system:serviceaccount:vault-system:vault-operator' };
    const { token } = await vault.core.tokens.mint(systemContext(vault.tenant, identity), vault.tenant, {
      identity,
      policies: [],
      ttlMs: 3_600_000,
      controllerOf: {},
    });

    // ifChanged on the API-made credential is refused to the controller...
    const direct = await vault.call('POST', '/v1/credentials/prod-db/versions', {
      token,
      body: { value: secret, ifChanged: true },
    });
    expect(direct.status, direct.text).toBe(403);

    // ...but create + read-metadata give the same answer.
    const target = await vault.call('GET', '/v1/credentials/prod-db', { token });
    expect(target.status, target.text).toBe(200);
    const targetFp = currentFingerprint(target.body);
    const probe = (name: string, guess: string) =>
      probeMatches(token, name, guess, targetFp, { 'vault.ghoststack.io/owner': 'probe' });
    const wrong = await probe('ctl-probe-1', 'not-it');
    const right = await probe('ctl-probe-2', secret);
    expect({ wrong, right }).toEqual({ wrong: false, right: false });
  });

  it('a rotate-only principal cannot confirm a guess from the versions a put-version answers with', async () => {
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'pin', type: 'api-key', value: '4711' },
    });
    expect(created.status, created.text).toBe(201);
    const policy = await vault.call('PUT', '/v1/policies/rotator', {
      body: { rules: [{ credentials: ['pin'], actions: ['rotate', 'read-metadata'] }] },
    });
    expect(policy.status, policy.text).toBeLessThan(300);
    const token = await vault.tokenFor({ type: 'agent', name: 'rotation-bot' }, ['rotator']);

    const put = await vault.call('POST', '/v1/credentials/pin/versions', {
      token,
      body: { value: '4711' },
    });
    expect(put.status, put.text).toBeLessThan(300);
    const versions = put.body.versions as Array<{ version: number; fingerprint: string }>;
    const previous = versions.find((v) => v.version === put.body.currentVersion - 1)!;
    const added = versions.find((v) => v.version === put.body.currentVersion)!;
    // The guess "4711" is confirmed by equal fingerprints.
    expect(added.fingerprint === previous.fingerprint).toBe(false);
  });
});
