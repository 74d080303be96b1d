import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routes } from '../../src/contract/routes.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

/**
 * Every route with a body gets malformed JSON, wrong types, unknown fields and an
 * oversized body: each answers with a 4xx whose message says what to fix, never a 500,
 * and the store holds exactly what it held before (apart from audit records).
 */
describe('bad input on every route', () => {
  let vault: TestVault;
  let leaseId: string;

  beforeAll(async () => {
    vault = await startTestVault({ bodyLimitBytes: 4096 });
    await vault.call('POST', '/v1/credentials', { body: { name: 'api', type: 'api-key', value: 'v-123' } });
    const lease = await vault.call('POST', '/v1/leases', { body: { credentialName: 'api', ttl: '5m' } });
    leaseId = lease.body.id;
  });
  afterAll(() => vault.close());

  const pathOf = (path: string) =>
    path
      .replace(':accessor', 'acc_AAAAAAAAAAAA')
      .replace(':type', 'agent')
      .replace(':name', 'api')
      .replace(':id', () => leaseId);

  const bodyRoutes = Object.entries(routes).filter(([, spec]) => 'body' in spec && spec.auth !== 'none');

  const snapshot = async () => {
    const { kvs } = await vault.store.range('/vault/');
    return kvs
      .filter((kv) => !kv.key.includes('/audit'))
      .map((kv) => `${kv.key}@${kv.modRevision}`)
      .join('\n');
  };

  it.each(bodyRoutes)('%s: malformed JSON → 400 saying the body is not JSON', async (_name, spec) => {
    const before = await snapshot();
    const result = await vault.call(spec.method.toUpperCase(), pathOf(spec.path), { raw: '{"name": "x",' });
    expect(result.status).toBe(400);
    expect(result.body.error.message).toContain('not valid JSON');
    expect(result.body.error.requestId).toBeTruthy();
    expect(await snapshot()).toBe(before);
  });

  it.each(bodyRoutes)('%s: unknown fields → 400 naming the field', async (_name, spec) => {
    const before = await snapshot();
    const result = await vault.call(spec.method.toUpperCase(), pathOf(spec.path), { body: { surprise: 1 } });
    expect(result.status).toBe(400);
    expect(result.text).toMatch(/surprise|invalid body/);
    expect(await snapshot()).toBe(before);
  });

  it.each(bodyRoutes)('%s: wrong types → 400', async (_name, spec) => {
    const before = await snapshot();
    const result = await vault.call(spec.method.toUpperCase(), pathOf(spec.path), {
      body: ['not', 'an', 'object'],
    });
    expect(result.status).toBe(400);
    expect(result.body.error.code).toBe('bad_request');
    expect(await snapshot()).toBe(before);
  });

  it.each(bodyRoutes)('%s: oversized body → 413 with the limit', async (_name, spec) => {
    const before = await snapshot();
    const result = await vault.call(spec.method.toUpperCase(), pathOf(spec.path), {
      body: { value: 'x'.repeat(10_000) },
    });
    expect(result.status).toBe(413);
    expect(result.body.error.message).toContain('larger than 4096 bytes');
    expect(await snapshot()).toBe(before);
  });

  it.each([
    ['-5m', 'is not a duration'],
    ['abc', 'is not a duration'],
    ['0s', 'greater than zero'],
    ['5 minutes', 'is not a duration'],
    ['30d', 'above the maximum'],
  ])('a lease TTL of %s → 400 (%s)', async (ttl, message) => {
    const before = await snapshot();
    const result = await vault.call('POST', '/v1/leases', { body: { credentialName: 'api', ttl } });
    expect(result.status).toBe(400);
    expect(result.body.error.message).toContain(message);
    expect(await snapshot()).toBe(before);
  });

  it.each([
    ['POST', '/v1/credentials', { name: 'a b', type: 'api-key', value: 'v' }, 'name'],
    ['POST', '/v1/credentials', { name: 'ok', type: 'spaceship', value: 'v' }, 'type'],
    ['POST', '/v1/credentials', { name: 'ok', type: 'api-key', value: '' }, 'value'],
    [
      'POST',
      '/v1/credentials',
      { name: 'ok', type: 'api-key', value: 'v', generate: { length: 12 } },
      'either',
    ],
    [
      'POST',
      '/v1/leases',
      { credentialName: 'api', identity: { type: 'robot', name: 'r2' } },
      'identity.type',
    ],
    ['POST', '/v1/leases', { credentialName: 'api', ttl: 15 }, 'ttl'],
    ['POST', '/v1/leases', { credentialName: 'api', ttl: '10m', maxTtl: '5m' }, 'maxTtl'],
    ['PUT', '/v1/policies/p', { rules: [{ actions: ['fly'] }] }, 'rules.0.actions.0'],
    ['POST', '/v1/auth/tokens', { identity: { type: 'agent', name: 'a' }, ttl: 'forever' }, 'ttl'],
    ['GET', '/v1/leases?limit=0', undefined, 'limit'],
    ['GET', '/v1/leases/not-a-lease', undefined, 'lease id'],
  ])('%s %s with a bad field → 400 naming it', async (method, path, body, field) => {
    const result = await vault.call(method, path, body === undefined ? {} : { body });
    expect(result.status).toBe(400);
    expect(result.body.error.message).toContain(field);
  });

  it('a policy under the operator’s reserved name grants read-metadata and lease on its credential only', async () => {
    const before = await snapshot();
    for (const rules of [
      [{ credentials: ['*'], actions: ['lease'] }],
      [{ credentials: ['api'], actions: ['lease', 'reveal'] }],
      [{ credentials: ['api', 'other'], actions: ['lease'] }],
      [{ actions: ['admin'] }],
    ]) {
      const result = await vault.call('PUT', '/v1/policies/k8s-vaultcredential-api', { body: { rules } });
      expect(result.status, JSON.stringify(rules)).toBe(400);
      expect(result.body.error.message).toContain('reserved for the policies the Kubernetes operator writes');
    }
    const actFor = await vault.call('PUT', '/v1/policies/k8s-vaultcredential-api', {
      body: {
        rules: [{ credentials: ['api'], actions: ['lease'] }],
        actFor: [{ type: 'workload', name: '*' }],
      },
    });
    expect(actFor.status).toBe(400);
    expect(await snapshot()).toBe(before);
    const fits = await vault.call('PUT', '/v1/policies/k8s-vaultcredential-api', {
      body: { rules: [{ credentials: ['api'], actions: ['read-metadata', 'lease'], maxTtl: '10m' }] },
    });
    expect(fits.status, fits.text).toBe(200);
  });

  it('a missing body on a route that needs one says to send JSON', async () => {
    const result = await vault.call('POST', '/v1/credentials');
    expect(result.status).toBe(400);
    expect(result.body.error.message).toContain('send a JSON body');
  });

  it('unknown routes answer 404 pointing at the OpenAPI document', async () => {
    const result = await vault.call('GET', '/v1/nothing-here');
    expect(result.status).toBe(404);
    expect(result.body.error.message).toContain('/v1/openapi.json');
  });

  it('unknown credentials and leases answer 404', async () => {
    expect((await vault.call('GET', '/v1/credentials/nope')).status).toBe(404);
    expect((await vault.call('GET', '/v1/leases/lease_AAAAAAAAAAAAAAAAAAAAAA')).status).toBe(404);
    expect((await vault.call('POST', '/v1/leases', { body: { credentialName: 'nope' } })).status).toBe(404);
  });

  it('serves an OpenAPI 3.1 document generated from the schemas', async () => {
    const result = await vault.call('GET', '/v1/openapi.json', { token: null });
    expect(result.status).toBe(200);
    expect(result.body.openapi).toBe('3.1.0');
    const createLease = result.body.paths['/v1/leases'].post;
    expect(
      createLease.requestBody.content['application/json'].schema.properties.credentialName,
    ).toBeDefined();
    expect(createLease.requestBody.content['application/json'].schema.additionalProperties).toBe(false);
    for (const spec of Object.values(routes)) {
      expect(result.body.paths[spec.path.replace(/:([A-Za-z]+)/g, '{$1}')][spec.method]).toBeDefined();
    }
  });
});
