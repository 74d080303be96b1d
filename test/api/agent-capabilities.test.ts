/**
 * A lease is a right to use; reading the value is the separate `reveal` right. Played as an
 * agent that holds only `lease` and tries every API route that could hand it the value.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const value = 'sk_live_capability_canary_5Tq/9+x=';

describe('capabilities mean what they say', () => {
  let vault: TestVault;
  let agent: string;
  let revealer: string;
  let lead: string;
  let broker: string;
  let narrowBroker: string;
  let other: string;

  beforeAll(async () => {
    vault = await startTestVault();
    // The broker's uses name a host, which the server checks against metadata.hosts.
    await vault.call('POST', '/v1/credentials', {
      body: { name: 'stripe-key', type: 'api-key', value, metadata: { hosts: 'api.stripe.com' } },
    });
    await vault.call('POST', '/v1/credentials', {
      body: { name: 'db-url', type: 'generic', value: 'pg://x' },
    });
    const put = (name: string, body: unknown) => vault.call('PUT', `/v1/policies/${name}`, { body });
    await put('use-stripe', { rules: [{ credentials: ['stripe-*'], actions: ['list', 'lease'] }] });
    await put('reveal-stripe', { rules: [{ credentials: ['stripe-*'], actions: ['lease', 'reveal'] }] });
    await put('lead', {
      rules: [{ credentials: ['stripe-*'], actions: ['lease'] }],
      actFor: [{ type: 'agent', name: 'claude-*' }],
    });
    await put('broker', {
      rules: [{ credentials: ['stripe-*'], actions: ['lease'] }],
      actFor: [{ type: 'agent', name: '*' }],
    });
    await put('broker-db-only', {
      rules: [{ credentials: ['db-*'], actions: ['lease'] }],
      actFor: [{ type: 'agent', name: '*' }],
    });
    agent = await vault.tokenFor({ type: 'agent', name: 'claude-code' }, ['use-stripe']);
    revealer = await vault.tokenFor({ type: 'agent', name: 'claude-reveal' }, ['reveal-stripe']);
    other = await vault.tokenFor({ type: 'agent', name: 'other-agent' }, ['use-stripe']);
    lead = await vault.tokenFor({ type: 'human', name: 'ada' }, ['lead']);
    broker = await vault.tokenFor({ type: 'workload', name: 'vault-broker' }, ['broker']);
    narrowBroker = await vault.tokenFor({ type: 'workload', name: 'db-broker' }, ['broker-db-only']);
  });
  afterAll(() => vault.close());

  const lease = (token: string, body: Record<string, unknown> = {}) =>
    vault.call('POST', '/v1/leases', { token, body: { credentialName: 'stripe-key', ttl: '5m', ...body } });
  const audit = async (action: string) =>
    (await vault.call('GET', `/v1/audit?action=${action}&limit=1000`)).body.records as Array<{
      outcome: string;
      reason?: string;
      resource: string;
      actor: { name: string };
      actingFor?: { name: string };
    }>;

  it('an agent with lease but not reveal gets a handle without the value', async () => {
    const created = await lease(agent);
    expect(created.status).toBe(201);
    expect(created.body.id).toMatch(/^lease_/);
    expect(created.body).not.toHaveProperty('value');
    expect(created.text).not.toContain(value);
    const record = (await audit('lease.create')).find((r) => r.resource === `lease/${created.body.id}`);
    expect(record?.reason).toMatch(/handle only/);
  });

  it('an agent without reveal cannot read the value: 403 naming the missing grant, audited as denied', async () => {
    const { body } = await lease(agent);
    const read = await vault.call('GET', `/v1/leases/${body.id}/value`, { token: agent });
    expect(read.status).toBe(403);
    expect(read.body.error.message).toMatch(
      /may use lease .* but not read its value: no policy grants "reveal"/,
    );
    expect(read.text).not.toContain(value);
    const reveal = await vault.call('POST', `/v1/leases/${body.id}/reveal`, { token: agent });
    expect(reveal.status).toBe(403);
    const denied = (await audit('lease.read')).filter(
      (r) => r.resource === `lease/${body.id}` && r.outcome === 'denied',
    );
    expect(denied).toHaveLength(1);
    expect(denied[0]!.actor.name).toBe('claude-code');
  });

  it('an agent cannot get the value by leasing for itself through another identity field', async () => {
    const asSelf = await lease(agent, { identity: { type: 'agent', name: 'claude-code' } });
    expect(asSelf.status).toBe(201);
    expect(asSelf.body).not.toHaveProperty('value');
    const asHuman = await lease(agent, { identity: { type: 'human', name: 'ada' } });
    expect(asHuman.status).toBe(403);
    expect(asHuman.text).not.toContain(value);
  });

  it('an agent whose policy grants reveal gets the value on create and on read', async () => {
    const created = await lease(revealer);
    expect(created.body.value).toBe(value);
    const read = await vault.call('GET', `/v1/leases/${created.body.id}/value`, { token: revealer });
    expect(read.status).toBe(200);
    expect(read.body.value).toBe(value);
  });

  it('a human, or the root token, leasing for an agent gets the value (the seed SDK example)', async () => {
    const byHuman = await lease(lead, { identity: { type: 'agent', name: 'claude-code' } });
    expect(byHuman.status).toBe(201);
    expect(byHuman.body.value).toBe(value);
    expect(byHuman.body.identity).toEqual({ type: 'agent', name: 'claude-code' });
    const byRoot = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'stripe-key', ttl: '15m', identity: { type: 'agent', name: 'claude-code' } },
    });
    expect(byRoot.body.value).toBe(value);
    // The agent that lease is for still cannot read it.
    const read = await vault.call('GET', `/v1/leases/${byRoot.body.id}/value`, { token: agent });
    expect(read.status).toBe(403);
  });

  it('use: the holder takes the value to use it, audited as lease.use with its purpose (no query string)', async () => {
    const { body } = await lease(agent);
    const used = await vault.call('POST', `/v1/leases/${body.id}/use`, {
      token: agent,
      body: { purpose: 'vault run' },
    });
    expect(used.status).toBe(200);
    expect(used.body.value).toBe(value);
    const viaBroker = await vault.call('POST', `/v1/leases/${body.id}/use`, {
      token: broker,
      body: { purpose: 'broker', host: 'api.stripe.com', method: 'POST', path: '/v1/charges?key=abc' },
    });
    expect(viaBroker.status).toBe(200);
    expect(viaBroker.body.value).toBe(value);
    const records = (await audit('lease.use')).filter((r) => r.resource === `lease/${body.id}`);
    expect(records.map((r) => [r.actor.name, r.actingFor?.name, r.reason])).toEqual(
      expect.arrayContaining([
        ['claude-code', 'claude-code', 'vault run'],
        ['vault-broker', 'claude-code', 'broker POST api.stripe.com/v1/charges'],
      ]),
    );
    expect(JSON.stringify(records)).not.toContain('key=abc');
  });

  it('use is refused to another agent, to a broker without a lease grant on the credential, and once revoked', async () => {
    const { body } = await lease(agent);
    const stolen = await vault.call('POST', `/v1/leases/${body.id}/use`, { token: other, body: {} });
    expect(stolen.status).toBe(403);
    expect(stolen.text).not.toContain(value);
    const narrow = await vault.call('POST', `/v1/leases/${body.id}/use`, { token: narrowBroker, body: {} });
    expect(narrow.status).toBe(403);
    expect(narrow.text).not.toContain(value);
    await vault.call('POST', `/v1/leases/${body.id}/revoke`, { token: agent });
    const gone = await vault.call('POST', `/v1/leases/${body.id}/use`, { token: broker, body: {} });
    expect(gone.status).toBe(410);
    expect(gone.text).not.toContain(value);
  });

  it('use with a host: 403 unless the credential names host:port; outcome "denied" only records', async () => {
    const { body } = await lease(agent);
    const use = (token: string, input: Record<string, unknown>) =>
      vault.call('POST', `/v1/leases/${body.id}/use`, { token, body: { purpose: 'broker', ...input } });
    for (const input of [
      { host: 'evil.test', port: 443, method: 'GET', path: '/' },
      { host: 'api.stripe.com', port: 8443, method: 'GET', path: '/' },
      { host: 'api.stripe.com:8443', method: 'GET', path: '/' },
    ]) {
      const refused = await use(broker, input);
      expect(refused.status).toBe(403);
      expect(refused.body.error.message).toMatch(/does not name .* in metadata\.hosts/);
      expect(refused.text).not.toContain(value);
    }
    const named = await use(broker, { host: 'api.stripe.com', port: 443, method: 'GET', path: '/v1/x' });
    expect(named.status).toBe(200);
    expect(named.body.value).toBe(value);
    const denied = await use(broker, {
      host: 'evil.test',
      port: 443,
      method: 'GET',
      path: '/steal?key=abc',
      outcome: 'denied',
      reason: 'host not allowed',
    });
    expect(denied.status).toBe(200);
    expect(denied.body).not.toHaveProperty('value');
    const records = (await audit('lease.use')).filter((r) => r.resource === `lease/${body.id}`);
    expect(records.map((r) => [r.outcome, r.reason])).toEqual(
      expect.arrayContaining([
        ['allowed', 'broker GET api.stripe.com:443/v1/x'],
        ['denied', 'broker GET evil.test:443/steal (host not allowed)'],
      ]),
    );
    expect(JSON.stringify(records)).not.toContain('key=abc');
    // A port given twice, or without a host, is bad input.
    expect((await use(broker, { host: 'api.stripe.com:443', port: 443 })).status).toBe(400);
    expect((await use(broker, { port: 443 })).status).toBe(400);
  });

  it('use answers bad input with 400', async () => {
    const { body } = await lease(agent);
    const bad = await vault.call('POST', `/v1/leases/${body.id}/use`, {
      token: agent,
      body: { host: 'not a host/', method: 'get' },
    });
    expect(bad.status).toBe(400);
  });
});
