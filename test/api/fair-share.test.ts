import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';

/**
 * Fair sharing of lease-event streams, tried as an attacker would: open streams until the
 * server refuses, then check that the tenant's admin and other tenants still get theirs.
 */

interface Stream {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: error bodies of every shape
  body?: any;
  /** Held so that it is not garbage-collected: undici cancels the body of a collected response. */
  response: Response;
  close(): void;
}

const open: Stream[] = [];

async function openStream(vault: TestVault, token: string, tenant?: string): Promise<Stream> {
  const controller = new AbortController();
  const response = await fetch(`${vault.url}/v1/leases/events`, {
    headers: { authorization: `Bearer ${token}`, ...(tenant ? { 'x-vault-tenant': tenant } : {}) },
    signal: controller.signal,
  });
  const stream: Stream = {
    status: response.status,
    response,
    close: () => controller.abort(),
    ...(response.status === 200 ? {} : { body: await response.json() }),
  };
  if (response.status === 200) open.push(stream);
  return stream;
}

/** Opens streams with `tokens` in turn until one is refused (at most `max`); returns it and the count. */
async function floodUntilRefused(vault: TestVault, tokens: string[], max: number) {
  for (let i = 0; i < max; i++) {
    const stream = await openStream(vault, tokens[i % tokens.length]!);
    if (stream.status !== 200) return { refused: stream, opened: i };
  }
  throw new Error(`the server accepted ${max} streams without refusing one`);
}

async function tenantWithAdmin(vault: TestVault, id: string) {
  const created = await vault.call('POST', '/v1/sys/tenants', { body: { id } });
  expect(created.status, created.text).toBe(201);
  return created.body.adminToken.token as string;
}

async function policyLessToken(vault: TestVault, tenant: string, name: string) {
  const res = await vault.call('POST', '/v1/auth/tokens', {
    tenant,
    body: { identity: { type: 'agent', name }, policies: [], ttl: '1h' },
  });
  expect(res.status, res.text).toBe(201);
  return res.body.token as string;
}

/** Closes every stream the test opened and waits until the server has let them all go. */
async function closeAll(vault: TestVault) {
  for (const stream of open.splice(0)) stream.close();
  for (let i = 0; i < 200; i++) {
    const metrics = await vault.call('GET', '/metrics');
    if (/^vault_event_streams_open 0$/m.test(metrics.text)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('closed streams were never released');
}

describe('lease-event streams with the default limits', () => {
  let vault: TestVault;
  beforeAll(async () => {
    vault = await startTestVault();
  });
  afterAll(() => vault.close());

  it('one policy-less token gets 16 streams; its admin and another tenant still get theirs', async () => {
    const acmeAdmin = await tenantWithAdmin(vault, 'victim');
    const attacker = await policyLessToken(vault, 'victim', 'greedy');
    const { refused, opened } = await floodUntilRefused(vault, [attacker], 3000);
    expect(opened).toBe(16);
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('rate_limited');
    expect(refused.body.error.message).toContain('for this token');
    expect(refused.body.error.message).toContain('--max-event-streams-per-token');
    expect(refused.body.error.details).toMatchObject({ limit: 'token', max: 16 });

    expect((await openStream(vault, acmeAdmin)).status).toBe(200);
    const otherAdmin = await tenantWithAdmin(vault, 'bystander');
    expect((await openStream(vault, otherAdmin)).status).toBe(200);
    expect((await openStream(vault, await policyLessToken(vault, 'bystander', 'worker'))).status).toBe(200);
    // The system token too.
    expect((await openStream(vault, vault.rootToken)).status).toBe(200);

    const metrics = await vault.call('GET', '/metrics');
    expect(metrics.text).toMatch(/vault_fair_share_refusals_total\{kind="event_streams",scope="token"\} 1/);

    // Closing streams gives the slots back.
    await closeAll(vault);
    expect((await openStream(vault, attacker)).status).toBe(200);
    await closeAll(vault);
  }, 60_000);
});

describe('lease-event streams with small limits (process 40, tenant 16, token 4)', () => {
  let vault: TestVault;
  beforeAll(async () => {
    vault = await startTestVault({
      app: { eventStreams: { perProcess: 40, perTenant: 16, perToken: 4 } },
    });
  });
  afterAll(() => vault.close());

  it('many tokens of one tenant fill only its share; its admin and other tenants get in', async () => {
    const evilAdmin = await tenantWithAdmin(vault, 'evil');
    const tokens = await Promise.all(
      Array.from({ length: 10 }, (_, i) => policyLessToken(vault, 'evil', `bot-${i}`)),
    );
    const { refused, opened } = await floodUntilRefused(vault, tokens, 200);
    // 16 per tenant, the last 2 (an eighth) kept for admins.
    expect(opened).toBe(14);
    expect(refused.status).toBe(429);
    expect(refused.body.error.message).toContain('for tenant "evil"');
    expect(refused.body.error.message).toContain('kept for admins');
    expect(refused.body.error.message).toContain('--max-event-streams-per-tenant');

    expect((await openStream(vault, evilAdmin)).status).toBe(200);
    const fineAdmin = await tenantWithAdmin(vault, 'fine');
    expect((await openStream(vault, await policyLessToken(vault, 'fine', 'worker'))).status).toBe(200);
    expect((await openStream(vault, fineAdmin)).status).toBe(200);
    await closeAll(vault);
  }, 60_000);

  it('tenants together fill only the ordinary share of the process; admins still get in', async () => {
    // Three tenants of 14 ordinary streams each would be 42; the process lets ordinary
    // tokens have 35 (40 less an eighth).
    const attackers: string[] = [];
    for (const id of ['flood-a', 'flood-b', 'flood-c']) {
      await tenantWithAdmin(vault, id);
      for (let i = 0; i < 4; i++) attackers.push(await policyLessToken(vault, id, `bot-${i}`));
    }
    const byTenant = [0, 1, 2].map((t) => attackers.slice(t * 4, t * 4 + 4));
    const tokens = [0, 1, 2, 3].flatMap((i) => byTenant.map((group) => group[i]!));
    const { refused, opened } = await floodUntilRefused(vault, tokens, 200);
    expect(opened).toBe(35);
    expect(refused.body.error.message).toContain('for this server process');
    expect(refused.body.error.message).toContain('--max-event-streams');

    const lateAdmin = await tenantWithAdmin(vault, 'late');
    expect((await openStream(vault, await policyLessToken(vault, 'late', 'worker'))).status).toBe(429);
    expect((await openStream(vault, lateAdmin)).status).toBe(200);
    expect((await openStream(vault, vault.rootToken)).status).toBe(200);
    await closeAll(vault);
  }, 60_000);
});
