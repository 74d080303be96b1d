import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';

// Red team, session 8b (held): a tenant admin writing a policy under the operator's reserved
// prefix (k8s-vaultcredential-<credential>) with rules that only look like "read-metadata and
// lease on that credential": other spellings of the name, empty or extra selectors, a second
// rule, tenant-wide admin. Each is refused and nothing is written; names that only resemble the
// prefix are not reserved (and the controller may not attach them: they are not managed).

describe('reserved managed policy names', () => {
  let vault: TestVault;
  beforeAll(async () => {
    vault = await startTestVault();
    for (const name of ['api', 'other']) {
      const created = await vault.call('POST', '/v1/credentials', {
        body: { name, type: 'api-key', value: `sk-${name}-value` },
      });
      expect(created.status).toBe(201);
    }
  });
  afterAll(() => vault?.close());

  it('refuses every rule that is not read-metadata and lease on the one credential', async () => {
    const name = 'k8s-vaultcredential-api';
    const attempts: unknown[] = [
      [{ credentials: ['API'], actions: ['lease'] }],
      [{ credentials: ['\u0430pi'], actions: ['lease'] }], // Cyrillic "а"
      [{ credentials: ['api '], actions: ['lease'] }],
      [{ credentials: ['api*'], actions: ['lease'] }],
      [{ credentials: ['ap?'], actions: ['lease'] }],
      [{ credentials: [], actions: ['lease'] }],
      [{ credentials: ['api'], labels: {}, actions: ['lease'] }],
      [
        { credentials: ['api'], actions: ['lease'] },
        { credentials: ['other'], actions: ['lease'] },
      ],
      [
        { credentials: ['api'], actions: ['lease'] },
        { labels: { env: 'prod' }, actions: ['lease'] },
      ],
      [{ credentials: ['api'], actions: ['admin'] }],
      [{ credentials: ['api'], actions: ['lease', 'list'] }],
    ];
    for (const rules of attempts) {
      const result = await vault.call('PUT', `/v1/policies/${name}`, { body: { rules } });
      expect(result.status, JSON.stringify(rules)).toBe(400);
    }
    expect((await vault.call('GET', `/v1/policies/${name}`)).status).toBe(404);
    // The name itself has no other spelling that the prefix check misses and the store maps
    // onto the same record.
    for (const other of [
      'K8s-vaultcredential-api',
      'k8s-vaultcredential-api.',
      'k8s-vaultcredential-api%20',
    ]) {
      const result = await vault.call('GET', `/v1/policies/${other}`);
      expect(result.status, other).not.toBe(200);
    }
  });
});
