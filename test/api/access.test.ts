import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('authentication and authorization', () => {
  let vault: TestVault;
  let agentToken: string;
  let humanToken: string;

  beforeAll(async () => {
    vault = await startTestVault();
    await vault.call('POST', '/v1/credentials', {
      body: { name: 'openai-key', type: 'api-key', value: 'sk-agent-visible', metadata: { team: 'ml' } },
    });
    await vault.call('POST', '/v1/credentials', {
      body: { name: 'prod-db', type: 'database-url', value: 'postgres://prod', metadata: { team: 'core' } },
    });
    await vault.call('PUT', '/v1/policies/ml-agents', {
      body: {
        rules: [{ labels: { team: 'ml' }, actions: ['list', 'read-metadata', 'lease'], maxTtl: '30m' }],
      },
    });
    await vault.call('PUT', '/v1/policies/ml-lead', {
      body: {
        rules: [{ credentials: ['openai-*'], actions: ['list', 'lease', 'reveal'] }],
        actFor: [{ type: 'agent', name: 'claude-*' }],
      },
    });
    agentToken = await vault.tokenFor({ type: 'agent', name: 'claude-code' }, ['ml-agents']);
    humanToken = await vault.tokenFor({ type: 'human', name: 'ada' }, ['ml-lead']);
  });
  afterAll(() => vault.close());

  it('answers 401 without a token, with a bad one, and with a revoked one', async () => {
    const none = await vault.call('GET', '/v1/credentials', { token: null });
    expect(none.status).toBe(401);
    expect(none.body.error.message).toContain('Authorization: Bearer');
    expect((await vault.call('GET', '/v1/credentials', { token: 'vlt_not-a-real-token' })).status).toBe(401);
    const temp = await vault.call('POST', '/v1/auth/tokens', {
      body: { identity: { type: 'agent', name: 'temp' }, ttl: '5m' },
    });
    expect((await vault.call('GET', '/v1/auth/whoami', { token: temp.body.token })).status).toBe(200);
    expect((await vault.call('DELETE', `/v1/auth/tokens/${temp.body.accessor}`)).status).toBe(200);
    expect((await vault.call('GET', '/v1/auth/whoami', { token: temp.body.token })).status).toBe(401);
  });

  it('whoami answers for a system token addressing another tenant', async () => {
    await vault.call('POST', '/v1/sys/tenants', { body: { id: 'elsewhere' } });
    const me = await vault.call('GET', '/v1/auth/whoami', { tenant: 'elsewhere' });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ tenant: vault.tenant, system: true });
  });

  it('stores tokens only as hashes', async () => {
    const { kvs } = await vault.store.range('/vault/');
    const everything = kvs.map((kv) => kv.key + kv.value).join('\n');
    expect(everything).not.toContain(agentToken);
    expect(everything).not.toContain(agentToken.slice(4));
  });

  it('lets an agent lease what its policy grants, capped by the rule', async () => {
    const lease = await vault.call('POST', '/v1/leases', {
      token: agentToken,
      body: { credentialName: 'openai-key', ttl: '10m' },
    });
    expect(lease.status).toBe(201);
    expect(lease.body.identity).toEqual({ type: 'agent', name: 'claude-code' });
    const long = await vault.call('POST', '/v1/leases', {
      token: agentToken,
      body: { credentialName: 'openai-key', ttl: '1h' },
    });
    expect(long.status).toBe(400);
    expect(long.body.error.message).toContain('your policy');
  });

  it('denies by default: other credentials, admin routes, and listing shows only what is granted', async () => {
    const denied = await vault.call('POST', '/v1/leases', {
      token: agentToken,
      body: { credentialName: 'prod-db', ttl: '1m' },
    });
    expect(denied.status).toBe(403);
    expect(denied.body.error.message).toContain('grants "lease"');
    expect(
      (await vault.call('PUT', '/v1/policies/mine', { token: agentToken, body: { rules: [] } })).status,
    ).toBe(403);
    expect((await vault.call('GET', '/v1/audit', { token: agentToken })).status).toBe(403);
    const list = await vault.call('GET', '/v1/credentials', { token: agentToken });
    expect(list.body.credentials.map((c: { name: string }) => c.name)).toEqual(['openai-key']);
    const reveal = await vault.call('POST', '/v1/credentials', {
      token: agentToken,
      body: { name: 'x', type: 'generic', value: 'y' },
    });
    expect(reveal.status).toBe(403);
  });

  it('audits an agent’s calls as the agent, with the human who minted its token', async () => {
    const minted = await vault.call('POST', '/v1/auth/tokens', {
      token: humanToken,
      body: { identity: { type: 'human', name: 'ada' }, policies: ['ml-lead'], ttl: '5m' },
    });
    expect(minted.status).toBe(201);
    await vault.call('POST', '/v1/leases', {
      token: agentToken,
      body: { credentialName: 'openai-key', ttl: '1m' },
    });
    const records = (await vault.call('GET', '/v1/audit?action=lease.create&identityName=claude-code')).body
      .records;
    expect(records.at(-1)).toMatchObject({
      actor: { type: 'agent', name: 'claude-code' },
      delegatedBy: { type: 'human', name: 'root' },
    });
    expect((await vault.call('GET', '/v1/audit/verify')).body.ok).toBe(true);
  });

  it('an agent acts only for itself', async () => {
    const other = await vault.call('POST', '/v1/leases', {
      token: agentToken,
      body: { credentialName: 'openai-key', ttl: '1m', identity: { type: 'agent', name: 'someone-else' } },
    });
    expect(other.status).toBe(403);
    expect(other.body.error.message).toContain('acts only for itself');
  });

  it('a human acts for the agents its policy names, and the audit record carries both', async () => {
    const lease = await vault.call('POST', '/v1/leases', {
      token: humanToken,
      body: { credentialName: 'openai-key', ttl: '5m', identity: { type: 'agent', name: 'claude-review' } },
    });
    expect(lease.status).toBe(201);
    const notNamed = await vault.call('POST', '/v1/leases', {
      token: humanToken,
      body: { credentialName: 'openai-key', ttl: '5m', identity: { type: 'agent', name: 'other-bot' } },
    });
    expect(notNamed.status).toBe(403);
    const records = await vault.call('GET', `/v1/audit?resource=lease/${lease.body.id}`);
    expect(records.body.records[0]).toMatchObject({
      action: 'lease.create',
      actor: { type: 'human', name: 'ada' },
      actingFor: { type: 'agent', name: 'claude-review' },
      outcome: 'allowed',
    });
  });

  it("refuses another identity's lease with 403 and audits the denial", async () => {
    const adaLease = await vault.call('POST', '/v1/leases', {
      token: humanToken,
      body: { credentialName: 'openai-key', ttl: '5m' },
    });
    const stolen = await vault.call('GET', `/v1/leases/${adaLease.body.id}/value`, { token: agentToken });
    expect(stolen.status).toBe(403);
    expect(stolen.text).not.toContain('sk-agent-visible');
    const denials = await vault.call('GET', '/v1/audit?outcome=denied&identityName=claude-code');
    expect(
      denials.body.records.some((r: { resource: string }) => r.resource === `lease/${adaLease.body.id}`),
    ).toBe(true);
  });

  it('reveal needs the reveal action: off for the agent, on for the lead', async () => {
    const agentLease = await vault.call('POST', '/v1/leases', {
      token: agentToken,
      body: { credentialName: 'openai-key', ttl: '5m' },
    });
    const agentReveal = await vault.call('POST', `/v1/leases/${agentLease.body.id}/reveal`, {
      token: agentToken,
    });
    expect(agentReveal.status).toBe(403);
    const adaLease = await vault.call('POST', '/v1/leases', {
      token: humanToken,
      body: { credentialName: 'openai-key', ttl: '5m' },
    });
    const adaReveal = await vault.call('POST', `/v1/leases/${adaLease.body.id}/reveal`, {
      token: humanToken,
    });
    expect(adaReveal.status).toBe(200);
    expect(adaReveal.body.value).toBe('sk-agent-visible');
  });

  it('a token cannot mint tokens with more policies than it holds', async () => {
    const escalate = await vault.call('POST', '/v1/auth/tokens', {
      token: agentToken,
      body: { identity: { type: 'agent', name: 'claude-code' }, policies: ['ml-lead'] },
    });
    expect(escalate.status).toBe(403);
    const same = await vault.call('POST', '/v1/auth/tokens', {
      token: agentToken,
      body: { identity: { type: 'agent', name: 'claude-code' }, policies: ['ml-agents'], ttl: '5m' },
    });
    expect(same.status).toBe(201);
  });

  it('an admin rule scoped to some credentials does not administer the tenant', async () => {
    await vault.call('PUT', '/v1/policies/app-admin', {
      body: { rules: [{ credentials: ['app-*'], actions: ['admin'] }] },
    });
    const scoped = await vault.tokenFor({ type: 'human', name: 'bob' }, ['app-admin']);
    const escalate = await vault.call('POST', '/v1/auth/tokens', {
      token: scoped,
      body: { identity: { type: 'human', name: 'mallory' }, policies: ['root'] },
    });
    expect(escalate.status).toBe(403);
    expect((await vault.call('GET', '/v1/audit', { token: scoped })).status).toBe(403);
    expect((await vault.call('PUT', '/v1/policies/x', { token: scoped, body: { rules: [] } })).status).toBe(
      403,
    );
    const own = await vault.call('POST', '/v1/credentials', {
      token: scoped,
      body: { name: 'app-web', type: 'generic', value: 'v' },
    });
    expect(own.status).toBe(201);
  });

  it('relabelling a credential is checked against the new labels too', async () => {
    await vault.call('POST', '/v1/credentials', {
      body: { name: 'team-a-prod', type: 'generic', value: 'SUPERSECRET', metadata: { team: 'a' } },
    });
    await vault.call('PUT', '/v1/policies/bob', {
      body: {
        rules: [
          { labels: { team: 'a' }, actions: ['create'] },
          { labels: { sandbox: 'true' }, actions: ['lease'] },
        ],
      },
    });
    const bob = await vault.tokenFor({ type: 'human', name: 'bob2' }, ['bob']);
    const relabel = await vault.call('PATCH', '/v1/credentials/team-a-prod', {
      token: bob,
      body: { metadata: { team: 'a', sandbox: 'true' } },
    });
    expect(relabel.status).toBe(403);
    const lease = await vault.call('POST', '/v1/leases', {
      token: bob,
      body: { credentialName: 'team-a-prod' },
    });
    expect(lease.status).toBe(403);
    expect(lease.text).not.toContain('SUPERSECRET');
  });

  it('a token mints tokens that end no later than itself and die with it', async () => {
    const parent = await vault.call('POST', '/v1/auth/tokens', {
      body: { identity: { type: 'agent', name: 'minter' }, ttl: '10m' },
    });
    const child = await vault.call('POST', '/v1/auth/tokens', {
      token: parent.body.token,
      body: { identity: { type: 'agent', name: 'minter' }, ttl: '36500d' },
    });
    expect(child.status).toBe(201);
    expect(Date.parse(child.body.expiresAt)).toBeLessThanOrEqual(Date.parse(parent.body.expiresAt));
    const grandchild = await vault.call('POST', '/v1/auth/tokens', {
      token: child.body.token,
      body: { identity: { type: 'agent', name: 'minter' }, ttl: '5m' },
    });
    expect(grandchild.status).toBe(201);
    expect((await vault.call('DELETE', `/v1/auth/tokens/${parent.body.accessor}`)).status).toBe(200);
    for (const token of [parent.body.token, child.body.token, grandchild.body.token]) {
      expect((await vault.call('GET', '/v1/auth/whoami', { token })).status).toBe(401);
    }
  });

  it('a token hands on only its own policies, not its identity’s, and only while it exists', async () => {
    await vault.call('PUT', '/v1/policies/lister-only', { body: { rules: [{ actions: ['list'] }] } });
    await vault.call('PUT', '/v1/identities/agent/shifty', { body: { policies: ['lister-only'] } });
    const token = await vault.tokenFor({ type: 'agent', name: 'shifty' });
    const frozen = await vault.call('POST', '/v1/auth/tokens', {
      token,
      body: { identity: { type: 'agent', name: 'shifty' }, policies: ['lister-only'], ttl: '5m' },
    });
    expect(frozen.status).toBe(403);
    const plain = await vault.call('POST', '/v1/auth/tokens', {
      token,
      body: { identity: { type: 'agent', name: 'shifty' }, ttl: '5m' },
    });
    expect(plain.status).toBe(201);
    const me = await vault.call('GET', '/v1/auth/whoami', { token });
    await vault.call('DELETE', `/v1/auth/tokens/${me.body.accessor}`);
    // Whatever a cache elsewhere still believes, the store says the minting token is gone.
    const { mint } = vault.core.tokens;
    await expect(
      mint(
        {
          principal: {
            tenant: vault.tenant,
            identity: { type: 'agent', name: 'shifty' },
            policies: [],
            system: false,
            tokenKey: '/vault/tokens/gone',
            tokenRevision: 5,
          },
          tenant: vault.tenant,
          requestId: 'r',
        },
        vault.tenant,
        { identity: { type: 'agent', name: 'shifty' }, policies: [], ttlMs: 60_000 },
      ),
    ).rejects.toMatchObject({ code: 'unauthenticated' });
  });

  it('rate-limits failed authentication with 429 and Retry-After, yet never refuses a valid token', async () => {
    const limited = await startTestVault({ authFailuresPerMinute: 3 });
    try {
      const statuses: number[] = [];
      // A flood of bad tokens from 127.0.0.1, the address every local client shares.
      for (let i = 0; i < 40; i++)
        statuses.push((await limited.call('GET', '/v1/credentials', { token: `vlt_wrong${i % 4}` })).status);
      expect(statuses.slice(0, 3)).toEqual([401, 401, 401]);
      expect(statuses.at(-1)).toBe(429);
      const response = await fetch(`${limited.url}/v1/credentials`, {
        headers: { authorization: 'Bearer vlt_wrong0' },
      });
      expect(response.status).toBe(429);
      expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
      // The flood locks nobody out: the right token, and another client's, still work.
      expect((await limited.call('GET', '/v1/credentials')).status).toBe(200);
      const agent = await limited.tokenFor({ type: 'agent', name: 'local-agent' });
      expect((await limited.call('GET', '/v1/auth/whoami', { token: agent })).status).toBe(200);
      // Spoofed X-Forwarded-For from an untrusted client changes nothing.
      const spoofed = await fetch(`${limited.url}/v1/credentials`, {
        headers: { authorization: 'Bearer vlt_wrong0', 'x-forwarded-for': '203.0.113.9' },
      });
      expect(spoofed.status).toBe(429);
    } finally {
      await limited.close();
    }
  });

  it('believes X-Forwarded-For only from a configured trusted proxy (audit source, limiter key)', async () => {
    const behind = await startTestVault({ authFailuresPerMinute: 2, trustedProxies: ['127.0.0.1'] });
    const direct = await startTestVault();
    try {
      for (const [vault, expected] of [
        [behind, '203.0.113.7'],
        [direct, '127.0.0.1'],
      ] as const) {
        await fetch(`${vault.url}/v1/credentials`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${vault.rootToken}`,
            'content-type': 'application/json',
            'x-forwarded-for': '203.0.113.7',
          },
          body: JSON.stringify({ name: 'xff', type: 'generic', value: 'v-xff-123' }),
        });
        const records = (await vault.call('GET', '/v1/audit?action=credential.create')).body.records;
        expect(records.at(-1).source).toMatch(new RegExp(`${expected.replaceAll('.', '\\.')}$`));
      }
      // Behind the proxy, one client's failures do not count against another client's.
      const bad = (ip: string) =>
        fetch(`${behind.url}/v1/credentials`, {
          headers: { authorization: 'Bearer vlt_bad', 'x-forwarded-for': ip },
        }).then((r) => r.status);
      for (let i = 0; i < 3; i++) await bad('198.51.100.1');
      expect(await bad('198.51.100.1')).toBe(429);
      expect(await bad('198.51.100.2')).toBe(401);
    } finally {
      await behind.close();
      await direct.close();
    }
  });
});
