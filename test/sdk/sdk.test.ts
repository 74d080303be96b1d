/** The SDK against a real `vault dev`: every API group, typed errors, keep-alive and events. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BadRequestError,
  ConflictError,
  LeaseRevokedError,
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
  Vault,
  VaultConnectionError,
} from '../../src/sdk/index.js';
import type { LeaseEvent } from '../../src/sdk/types.js';
import { type HangingProxy, startHangingProxy } from '../support/hanging-proxy.js';
import { devApi, startVaultDev, type VaultDev } from '../support/vault-dev.js';

const until = async (check: () => boolean, what: string, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

describe('SDK against vault dev', () => {
  let dev: VaultDev;
  let vault: Vault;

  beforeAll(async () => {
    dev = await startVaultDev();
    vault = await Vault.connect({ addr: dev.addr, token: dev.token, tenant: dev.tenant });
  });
  afterAll(() => dev?.stop());

  it('connects, validating the token; a bad token is an UnauthenticatedError', async () => {
    expect(vault.tenant).toBe(dev.tenant);
    expect(vault.self.identity).toEqual({ type: 'human', name: 'dev-root' });
    expect(vault.self.expiresAt).toBeInstanceOf(Date);
    const err = await Vault.connect({ addr: dev.addr, token: 'vlt_not-a-real-token' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect((err as UnauthenticatedError).status).toBe(401);
    expect((err as UnauthenticatedError).requestId).toBeTruthy();
  });

  it('manages credentials: create, list, get, update, putVersion, rotate, delete', async () => {
    const created = await vault.credentials.create({
      name: 'sdk-db',
      type: 'database-url',
      value: 'postgres://u:p@db/app',
      metadata: { env: 'test' },
    });
    expect(created).toMatchObject({ name: 'sdk-db', currentVersion: 1, metadata: { env: 'test' } });
    expect(created.createdAt).toBeInstanceOf(Date);
    expect(JSON.stringify(created)).not.toContain('postgres://');

    await expect(
      vault.credentials.create({ name: 'sdk-db', type: 'generic', value: 'x' }),
    ).rejects.toBeInstanceOf(ConflictError);
    await expect(
      vault.credentials.create({ name: '-bad name-', type: 'generic', value: 'x' }),
    ).rejects.toBeInstanceOf(BadRequestError);
    await expect(vault.credentials.get('sdk-missing')).rejects.toBeInstanceOf(NotFoundError);

    expect((await vault.credentials.list({ labels: { env: 'test' } })).map((c) => c.name)).toContain(
      'sdk-db',
    );
    expect(await vault.credentials.list({ prefix: 'nothing-' })).toEqual([]);

    const updated = await vault.credentials.update('sdk-db', { metadata: { env: 'staging' } });
    expect(updated.metadata).toEqual({ env: 'staging' });
    const v2 = await vault.credentials.putVersion('sdk-db', 'postgres://u:p2@db/app');
    expect(v2.currentVersion).toBe(2);
    const v3 = await vault.credentials.rotate('sdk-db', { generate: { length: 40, alphabet: 'hex' } });
    expect(v3.currentVersion).toBe(3);
    expect(v3.versions.map((v) => v.version)).toEqual([1, 2, 3]);
    const lease = await vault.leases.create({ credentialName: 'sdk-db' });
    expect(lease.value).toMatch(/^[0-9a-f]{40}$/);

    const deleted = await vault.credentials.delete('sdk-db');
    expect(deleted.leaseIds).toContain(lease.id);
    await expect(vault.leases.read(lease.id)).rejects.toBeInstanceOf(LeaseRevokedError);
  });

  it('leases: create, get, read, renew, list, revoke, with Dates and typed 410s', async () => {
    await vault.credentials.create({ name: 'sdk-api', type: 'api-key', value: 'sk_test_sdk' });
    const lease = await vault.leases.create({
      credentialName: 'sdk-api',
      ttl: '10m',
      identity: { type: 'agent', name: 'claude-code' },
    });
    expect(lease.value).toBe('sk_test_sdk');
    expect(lease.expiresAt).toBeInstanceOf(Date);
    expect(lease.expiresAt.getTime() - lease.issuedAt.getTime()).toBe(10 * 60_000);
    expect(lease.identity).toEqual({ type: 'agent', name: 'claude-code' });
    expect(lease.issuedBy).toEqual({ type: 'human', name: 'dev-root' });

    const got = await vault.leases.get(lease.id);
    expect(got.value).toBeUndefined();
    expect(got.state).toBe('active');
    expect((await vault.leases.read(lease.id)).value).toBe('sk_test_sdk');

    const renewed = await vault.leases.renew(lease.id, { increment: '20m' });
    expect(renewed.renewCount).toBe(1);
    expect(renewed.expiresAt.getTime()).toBeGreaterThan(lease.expiresAt.getTime());

    const listed = await vault.leases.list({ credentialName: 'sdk-api', state: 'active' });
    expect(listed.map((l) => l.id)).toContain(lease.id);
    expect(listed.every((l) => l.value === undefined)).toBe(true);

    const revoked = await vault.leases.revoke(lease.id);
    expect(revoked.state).toBe('revoked');
    expect(revoked.revokedAt).toBeInstanceOf(Date);
    const err = await vault.leases.read(lease.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaseRevokedError);
    expect((err as LeaseRevokedError).status).toBe(410);
    await expect(vault.leases.get('lease_doesnotexist0000')).rejects.toBeInstanceOf(NotFoundError);

    const a = await vault.leases.create({ credentialName: 'sdk-api' });
    const b = await vault.leases.create({ credentialName: 'sdk-api' });
    const bulk = await vault.leases.revokeBulk({ credentialName: 'sdk-api' });
    expect(bulk.leaseIds.sort()).toEqual([a.id, b.id].sort());
  });

  it('keepAlive renews in the background and stops at the max TTL', async () => {
    await vault.credentials.create({ name: 'sdk-keep', type: 'generic', value: 'kept' });
    const lease = await vault.leases.create({ credentialName: 'sdk-keep', ttl: '2s', maxTtl: '5s' });
    const renewals: Date[] = [];
    const keeper = vault.leases.keepAlive(lease, { onRenew: (l) => renewals.push(l.expiresAt) });
    const end = await keeper.done;
    expect(end.reason).toBe('max-ttl');
    expect(renewals.length).toBeGreaterThanOrEqual(1);
    expect(end.lease.value).toBe('kept');
    expect(Date.now()).toBeGreaterThanOrEqual(lease.maxExpiresAt.getTime() - 50);
  });

  it('keepAlive stops when the lease is revoked, and on stop()', async () => {
    const lease = await vault.leases.create({ credentialName: 'sdk-keep', ttl: '1s', maxTtl: '1m' });
    const keeper = vault.leases.keepAlive(lease);
    await vault.leases.revoke(lease.id);
    expect((await keeper.done).reason).toBe('revoked');

    const other = await vault.leases.create({ credentialName: 'sdk-keep', ttl: '1m' });
    const ends: string[] = [];
    const stopped = vault.leases.keepAlive(other, { onEnd: (e) => ends.push(e.reason) });
    stopped.stop();
    expect((await stopped.done).reason).toBe('stopped');
    expect(ends).toEqual(['stopped']);
  });

  it('streams lease events', async () => {
    const controller = new AbortController();
    const events: LeaseEvent[] = [];
    const reading = (async () => {
      for await (const event of vault.leases.events({ signal: controller.signal })) events.push(event);
    })().catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const lease = await vault.leases.create({ credentialName: 'sdk-keep', ttl: '1m' });
    await vault.leases.revoke(lease.id);
    await until(
      () => events.some((e) => e.type === 'revoked' && e.lease.id === lease.id),
      'the revoked event',
    );
    expect(events.find((e) => e.lease.id === lease.id)?.type).toBe('issued');
    expect(events.every((e) => !('value' in e.lease))).toBe(true);
    expect(events[0]!.lease.expiresAt).toBeInstanceOf(Date);
    controller.abort();
    await reading;
  });

  it('says when a lease event stream is live: a change made right after onOpen arrives', async () => {
    const controller = new AbortController();
    const events: LeaseEvent[] = [];
    let opened!: () => void;
    const open = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const reading = (async () => {
      for await (const event of vault.leases.events({ signal: controller.signal, onOpen: opened }))
        events.push(event);
    })().catch(() => undefined);
    await open;
    // No wait after onOpen: the server answered only once it followed changes.
    const lease = await vault.leases.create({ credentialName: 'sdk-keep', ttl: '1m' });
    await until(() => events.some((e) => e.type === 'issued' && e.lease.id === lease.id), 'the issued event');
    controller.abort();
    await reading;
  });

  it('audit: query, verify and look a value up', async () => {
    const records = await vault.audit.query({ action: 'lease.create', limit: 5 });
    expect(records.length).toBeGreaterThan(0);
    expect(records[0]!.time).toBeInstanceOf(Date);
    const verified = await vault.audit.verify();
    expect(verified.ok).toBe(true);
    expect(verified.records).toBeGreaterThan(0);
    expect((await vault.audit.lookup('sk_test_sdk')).issued).toBe(true);
    expect((await vault.audit.lookup('never-issued-value')).issued).toBe(false);
  });

  it('tokens, policies and identities; an agent without a policy is denied', async () => {
    const policy = await vault.policies.put('sdk-agent', {
      description: 'lease sdk-api',
      rules: [{ credentials: ['sdk-api'], actions: ['list', 'read-metadata', 'lease'] }],
    });
    expect(policy.createdAt).toBeInstanceOf(Date);
    expect((await vault.policies.list()).map((p) => p.name)).toContain('sdk-agent');
    expect((await vault.policies.get('sdk-agent')).rules[0]!.actions).toContain('lease');

    const identity = await vault.identities.put('agent', 'sdk-bot', { policies: ['sdk-agent'] });
    expect(identity.policies).toEqual(['sdk-agent']);
    expect((await vault.identities.get('agent', 'sdk-bot')).name).toBe('sdk-bot');
    expect((await vault.identities.list()).some((i) => i.name === 'sdk-bot')).toBe(true);

    const bare = await vault.tokens.create({ identity: { type: 'agent', name: 'sdk-nobody' }, ttl: '5m' });
    const nobody = await Vault.connect({ addr: dev.addr, token: bare.token });
    await expect(nobody.leases.create({ credentialName: 'sdk-api' })).rejects.toBeInstanceOf(
      PermissionDeniedError,
    );

    const created = await vault.tokens.create({ identity: { type: 'agent', name: 'sdk-bot' }, ttl: '5m' });
    expect(created.token).toBeTruthy();
    const bot = await Vault.connect({ addr: dev.addr, token: created.token });
    expect(bot.self.identity).toEqual({ type: 'agent', name: 'sdk-bot' });
    const lease = await bot.leases.create({ credentialName: 'sdk-api', ttl: '1m' });
    // An agent without `reveal` gets a handle; it may still *use* the lease (audited as lease.use).
    expect(lease.value).toBeUndefined();
    await expect(bot.leases.reveal(lease.id)).rejects.toBeInstanceOf(PermissionDeniedError);
    expect((await bot.leases.use(lease.id, { purpose: 'sdk test' })).value).toBe('sk_test_sdk');
    const denied = await bot.leases.use(lease.id, { purpose: 'sdk test', outcome: 'denied', reason: 'x' });
    expect(denied.value).toBeUndefined();

    expect((await vault.tokens.lookup(created.accessor)).identity.name).toBe('sdk-bot');
    await vault.tokens.revoke(created.accessor);
    await expect(bot.whoami()).rejects.toBeInstanceOf(UnauthenticatedError);

    await vault.identities.delete('agent', 'sdk-bot');
    await vault.policies.delete('sdk-agent');
    await expect(vault.policies.get('sdk-agent')).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('SDK lease event streams over a failing network', () => {
  let dev: VaultDev;
  let proxy: HangingProxy;
  let through: Vault;

  beforeAll(async () => {
    dev = await startVaultDev();
    const { hostname, port } = new URL(dev.addr);
    proxy = await startHangingProxy({ host: hostname, port: Number(port) });
    through = await Vault.connect({
      addr: proxy.urlThrough(dev.addr),
      token: dev.token,
      tenant: dev.tenant,
      timeoutMs: 2_000,
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await dev?.stop();
  });

  const firstOutcome = async (events: AsyncIterable<LeaseEvent>) => {
    try {
      for await (const _ of events) {
        // only the end matters
      }
      return 'ended without an error';
    } catch (err) {
      return err;
    }
  };

  it('a stream that goes silent (packets dropped, no reset) ends with a timeout error', async () => {
    proxy.resume();
    let opened!: () => void;
    const open = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const outcome = firstOutcome(through.leases.events({ onOpen: opened, silenceMs: 1_500 }));
    await open;
    proxy.freeze();
    const err = await outcome;
    expect(err).toBeInstanceOf(VaultConnectionError);
    expect((err as VaultConnectionError).reason).toBe('timeout');
    expect((err as Error).message).toMatch(/sent nothing, not even a heartbeat, for 1.5 s.*reconnect/);
  });

  it('a reader slower than silenceMs is not taken for a silent stream', async () => {
    const direct = await Vault.connect({ addr: dev.addr, token: dev.token, tenant: dev.tenant });
    const api = devApi(dev);
    await api('POST', '/credentials', { name: 'sdk-slow-reader', type: 'generic', value: 'slow-v' });
    let opened!: () => void;
    const open = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const seen: string[] = [];
    const reading = (async () => {
      for await (const event of direct.leases.events({ onOpen: opened, silenceMs: 800 })) {
        seen.push(event.lease.id);
        if (seen.length === 1) {
          // Busy with the first event for longer than silenceMs; the second arrives meanwhile.
          await api('POST', '/leases', { credentialName: 'sdk-slow-reader', ttl: '5m' });
          await new Promise((resolve) => setTimeout(resolve, 2_000));
        }
        if (seen.length === 2) return 'two events';
      }
      return 'ended';
    })().catch((err: unknown) => err);
    await open;
    await api('POST', '/leases', { credentialName: 'sdk-slow-reader', ttl: '5m' });
    expect(await reading).toBe('two events');
  });

  it('a stream whose server never answers fails after timeoutMs instead of waiting forever', async () => {
    proxy.hang();
    const err = await firstOutcome(through.leases.events());
    expect(err).toBeInstanceOf(VaultConnectionError);
    expect((err as VaultConnectionError).reason).toBe('timeout');
    proxy.resume();
  });

  it.each([
    ['the connection is cut', () => proxy.resume()],
    ['the client times out', () => proxy.unmuteAnswers()],
  ])(
    'a lease creation whose answer is lost (%s) is retried with its Idempotency-Key: one lease, not two',
    async (_how, recover) => {
      proxy.resume();
      const api = devApi(dev);
      const name = `sdk-lost-${_how.split(' ').at(-1)}`;
      await api('POST', '/credentials', { name, type: 'generic', value: 'lost-answer-v' });
      const leasesOf = async () =>
        (await api('GET', `/leases?credentialName=${name}`)).body.leases as { id: string }[];
      proxy.muteAnswers();
      const creating = through.leases.create({ credentialName: name, ttl: '5m' });
      // The server issues it; its answer is dropped on the way back.
      const deadline = Date.now() + 10_000;
      while ((await leasesOf()).length === 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      recover();
      const lease = await creating;
      const issued = await leasesOf();
      expect(issued.map((l) => l.id)).toEqual([lease.id]);
      expect(lease.value).toBe('lost-answer-v');
    },
  );
});
