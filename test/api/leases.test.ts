import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';

/** A clock tests can move: expiry and renewal caps without sleeping. */
const movableClock = () => {
  let offsetMs = 0;
  const clock = () => new Date(Date.now() + offsetMs);
  return Object.assign(clock, { advance: (ms: number) => (offsetMs += ms) });
};

describe('credentials and leases over HTTP', () => {
  let vault: TestVault;
  const clock = movableClock();

  beforeAll(async () => {
    vault = await startTestVault({ clock });
    const created = await vault.call('POST', '/v1/credentials', {
      body: {
        name: 'stripe-api-key',
        type: 'api-key',
        value: 'sk_live_first',
        metadata: { service: 'stripe', environment: 'production' },
        leases: { maxTtl: '2h' },
      },
    });
    expect(created.status).toBe(201);
  });
  afterAll(() => vault.close());

  it('creates a credential whose listing and metadata never carry the value', async () => {
    const list = await vault.call('GET', '/v1/credentials');
    expect(list.status).toBe(200);
    expect(list.body.credentials.map((c: { name: string }) => c.name)).toContain('stripe-api-key');
    const got = await vault.call('GET', '/v1/credentials/stripe-api-key');
    expect(got.body).toMatchObject({ name: 'stripe-api-key', type: 'api-key', currentVersion: 1 });
    expect(got.body.versions[0].fingerprint).toMatch(/^hmac-sha256:/);
    expect(got.text).not.toContain('sk_live_first');
    const filtered = await vault.call('GET', '/v1/credentials?labels=environment=staging');
    expect(filtered.body.credentials).toEqual([]);
  });

  it('refuses a second credential of the same name with 409 and keeps the first', async () => {
    const again = await vault.call('POST', '/v1/credentials', {
      body: { name: 'stripe-api-key', type: 'api-key', value: 'sk_other' },
    });
    expect(again.status).toBe(409);
    expect(again.body.error.message).toContain('already exists');
    const lease = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'stripe-api-key', ttl: '1m' },
    });
    expect(lease.body.value).toBe('sk_live_first');
  });

  it('issues a lease for an agent, 15 minutes out, and reads the value through it', async () => {
    const before = clock().getTime();
    const lease = await vault.call('POST', '/v1/leases', {
      body: {
        credentialName: 'stripe-api-key',
        ttl: '15m',
        identity: { type: 'agent', name: 'claude-code' },
      },
    });
    expect(lease.status).toBe(201);
    expect(lease.body).toMatchObject({
      credentialName: 'stripe-api-key',
      version: 1,
      identity: { type: 'agent', name: 'claude-code' },
      issuedBy: { type: 'human', name: 'root' },
      state: 'active',
      value: 'sk_live_first',
    });
    const expiresIn = Date.parse(lease.body.expiresAt) - before;
    expect(expiresIn).toBeGreaterThanOrEqual(15 * 60_000 - 1000);
    expect(expiresIn).toBeLessThanOrEqual(15 * 60_000 + 5000);
    const read = await vault.call('GET', `/v1/leases/${lease.body.id}/value`);
    expect(read.body.value).toBe('sk_live_first');
    const meta = await vault.call('GET', `/v1/leases/${lease.body.id}`);
    expect(meta.body.value).toBeUndefined();
  });

  it('expires a lease by the server clock: reads answer 410, renewals too', async () => {
    const lease = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'stripe-api-key', ttl: '1m' },
    });
    clock.advance(61_000);
    const read = await vault.call('GET', `/v1/leases/${lease.body.id}/value`);
    expect(read.status).toBe(410);
    expect(read.body.error.code).toBe('lease_expired');
    expect(read.body.error.message).toContain('request a new lease');
    const renew = await vault.call('POST', `/v1/leases/${lease.body.id}/renew`, { body: {} });
    expect(renew.status).toBe(410);
    const meta = await vault.call('GET', `/v1/leases/${lease.body.id}`);
    expect(meta.body.state).toBe('expired');
  });

  it('renews up to the max TTL and says what it granted', async () => {
    const lease = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'stripe-api-key', ttl: '30m', maxTtl: '45m' },
    });
    clock.advance(20 * 60_000);
    const renewed = await vault.call('POST', `/v1/leases/${lease.body.id}/renew`, {
      body: { increment: '1h' },
    });
    expect(renewed.status).toBe(200);
    expect(renewed.body.renewCount).toBe(1);
    expect(renewed.body.expiresAt).toBe(lease.body.maxExpiresAt);
    expect(renewed.body.grantedTtlSeconds).toBeGreaterThan(24 * 60);
    expect(renewed.body.grantedTtlSeconds).toBeLessThanOrEqual(25 * 60);
  });

  it('refuses to renew a lease created as not renewable', async () => {
    const lease = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'stripe-api-key', ttl: '5m', renewable: false },
    });
    const renewed = await vault.call('POST', `/v1/leases/${lease.body.id}/renew`, { body: {} });
    expect(renewed.status).toBe(409);
    expect(renewed.body.error.message).toContain('not renewable');
  });

  it('caps TTLs by the credential maximum with a message that says the limit', async () => {
    const tooLong = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'stripe-api-key', ttl: '3h' },
    });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error.message).toContain('above the maximum 2h');
  });

  it('revokes a lease: reads answer 410 lease_revoked and revoking again is harmless', async () => {
    const lease = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'stripe-api-key', ttl: '5m' },
    });
    const revoked = await vault.call('POST', `/v1/leases/${lease.body.id}/revoke`);
    expect(revoked.body.state).toBe('revoked');
    const read = await vault.call('GET', `/v1/leases/${lease.body.id}/value`);
    expect(read.status).toBe(410);
    expect(read.body.error.code).toBe('lease_revoked');
    const again = await vault.call('POST', `/v1/leases/${lease.body.id}/revoke`);
    expect(again.status).toBe(200);
  });

  it('leases the new version after a rotation and can revoke the old leases at once', async () => {
    const old = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'stripe-api-key', ttl: '5m' },
    });
    const rotated = await vault.call('POST', '/v1/credentials/stripe-api-key/rotate', {
      body: { generate: { length: 40 }, revokeOldLeases: true },
    });
    expect(rotated.status).toBe(200);
    expect(rotated.body.currentVersion).toBe(2);
    const fresh = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'stripe-api-key', ttl: '5m' },
    });
    expect(fresh.body.version).toBe(2);
    expect(fresh.body.value).toHaveLength(40);
    expect((await vault.call('GET', `/v1/leases/${old.body.id}/value`)).status).toBe(410);
    const put = await vault.call('POST', '/v1/credentials/stripe-api-key/versions', {
      body: { value: 'sk_live_third' },
    });
    expect(put.status).toBe(201);
    expect(put.body.currentVersion).toBe(3);
  });

  it('bulk-revokes by identity and by credential, and deleting a credential revokes its leases', async () => {
    await vault.call('POST', '/v1/credentials', {
      body: { name: 'db-url', type: 'database-url', value: 'postgres://u:p@h/db' },
    });
    const forBot = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'db-url', ttl: '5m', identity: { type: 'agent', name: 'bot' } },
    });
    const mine = await vault.call('POST', '/v1/leases', { body: { credentialName: 'db-url', ttl: '5m' } });
    const byIdentity = await vault.call('POST', '/v1/leases/revoke', {
      body: { identity: { type: 'agent', name: 'bot' } },
    });
    expect(byIdentity.body.leaseIds).toContain(forBot.body.id);
    expect(byIdentity.body.leaseIds).not.toContain(mine.body.id);
    const deleted = await vault.call('DELETE', '/v1/credentials/db-url');
    expect(deleted.body.leaseIds).toEqual([mine.body.id]);
    expect((await vault.call('GET', `/v1/leases/${mine.body.id}/value`)).status).toBe(410);
    expect((await vault.call('GET', '/v1/credentials/db-url')).status).toBe(404);
  });

  it('a credential deleted and created again under its name leases the new value, never the cached old one', async () => {
    await vault.call('POST', '/v1/credentials', {
      body: { name: 'reborn', type: 'generic', value: 'first-life' },
    });
    expect((await vault.call('POST', '/v1/leases', { body: { credentialName: 'reborn' } })).body.value).toBe(
      'first-life',
    );
    await vault.call('DELETE', '/v1/credentials/reborn');
    clock.advance(5);
    await vault.call('POST', '/v1/credentials', {
      body: { name: 'reborn', type: 'generic', value: 'second-life' },
    });
    expect((await vault.call('POST', '/v1/leases', { body: { credentialName: 'reborn' } })).body.value).toBe(
      'second-life',
    );
  });

  it('lists leases with filters', async () => {
    const active = await vault.call('GET', '/v1/leases?state=active&credentialName=stripe-api-key');
    expect(active.status).toBe(200);
    expect(active.body.leases.length).toBeGreaterThan(0);
    for (const lease of active.body.leases) {
      expect(lease.state).toBe('active');
      expect(lease.value).toBeUndefined();
    }
  });

  it('exports leases by state and lease events as Prometheus metrics, without values', async () => {
    const metrics = await vault.call('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/vault_leases\{state="active"\} [1-9]/);
    expect(metrics.text).toMatch(/vault_leases\{state="revoked"\} [1-9]/);
    expect(metrics.text).toMatch(/vault_leases\{state="expired"\} [1-9]/);
    expect(metrics.text).toMatch(/vault_leases_total\{event="issued"\} [1-9]/);
    expect(metrics.text).toMatch(
      /vault_http_requests_total\{route="\/v1\/leases",method="POST",code="201"\}/,
    );
    expect(metrics.text).not.toContain('sk_live');
  });

  it('streams lease changes to the caller as server-sent events', async () => {
    const controller = new AbortController();
    const response = await fetch(`${vault.url}/v1/leases/events`, {
      headers: { authorization: `Bearer ${vault.rootToken}` },
      signal: controller.signal,
    });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reader = response.body!.getReader();
    let seen = '';
    const lease = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'stripe-api-key', ttl: '5m' },
    });
    await vault.call('POST', `/v1/leases/${lease.body.id}/revoke`);
    const decoder = new TextDecoder();
    while (!seen.includes('event: revoked')) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += decoder.decode(value);
    }
    controller.abort();
    expect(seen).toContain('event: issued');
    expect(seen).toContain(`"id":"${lease.body.id}"`);
    expect(seen).toContain('event: revoked');
    expect(seen).not.toContain('sk_live');
  });
});
