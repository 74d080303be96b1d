/**
 * Token records do not pile up: a token that expired more than the retention ago is deleted
 * with its accessor, its links and its expiry key (walked from the oldest, never a read of
 * every token); revoking a token takes every token minted from it, however wide or deep the
 * tree, a chunk at a time. On etcd and on the embedded store.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const HOUR = 3_600_000;

describe.each(['etcd', 'embedded'] as const)('token records on the %s store', (kind) => {
  let etcd: EtcdProcess | undefined;
  let store: Store | undefined;
  let vault: TestVault;
  let offsetMs = 0;
  const rootKey = randomBytes(32);
  const clock = () => new Date(Date.now() + offsetMs);

  beforeAll(async () => {
    if (kind === 'etcd') {
      etcd = await startEtcd();
      store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 10_000 });
    }
    vault = await startTestVault({ clock, rootKey, ...(store ? { store } : {}) });
  }, 60_000);
  afterAll(async () => {
    await vault?.close();
    await store?.close();
    await etcd?.destroy();
  });

  const mint = async (ttl: string, name: string, token?: string) => {
    const created = await vault.call('POST', '/v1/auth/tokens', {
      body: { identity: { type: 'agent', name }, ttl },
      ...(token ? { token } : {}),
    });
    expect(created.status, created.text).toBe(201);
    return created.body as { token: string; accessor: string };
  };
  const whoami = (token: string) => vault.call('GET', '/v1/auth/whoami', { token });
  const keysUnder = async (prefix: string) => (await vault.store.range(prefix, { limit: 10_000 })).kvs;

  it('deletes tokens expired more than the retention ago, and only those', async () => {
    const parent = await mint('1h', 'short-lived');
    const child = await mint('30m', 'short-lived', parent.token);
    const lasting = await mint('72h', 'long-lived');

    offsetMs = 2 * HOUR;
    // Expired, within the retention: the answer says so.
    expect((await whoami(parent.token)).body.error.message).toMatch(/expired at/);
    expect(await vault.core.tokens.purgeExpired()).toBe(0);

    offsetMs = 26 * HOUR;
    expect(await vault.core.tokens.purgeExpired()).toBe(2);
    expect((await whoami(parent.token)).body.error.message).toMatch(/unknown or was revoked/);
    expect((await whoami(child.token)).status).toBe(401);
    expect((await whoami(lasting.token)).status).toBe(200);
    const left = (await keysUnder('/vault/')).map((kv) => kv.key);
    for (const accessor of [parent.accessor, child.accessor])
      expect(
        left.filter((key) => key.includes(accessor)),
        `keys of ${accessor}`,
      ).toEqual([]);
    expect(left.filter((key) => key.includes(lasting.accessor)).length).toBeGreaterThan(0);
    // Audited, without naming a token or its hash.
    const purges = await vault.call('GET', '/v1/audit?action=token.purge');
    expect(purges.body.records.map((r: { reason: string }) => r.reason)).toEqual([
      '2 token records expired more than the retention period ago deleted',
    ]);
    expect(JSON.stringify(purges.body)).not.toContain(parent.token);
    expect(await vault.core.tokens.purgeExpired()).toBe(0);
    offsetMs = 0;
  });

  it('finds tokens written before the expiry index', async () => {
    const old = await mint('1h', 'from-before');
    // As a store written by an older version: no expiry keys, no marker.
    await vault.store.txn({
      success: [
        { type: 'deletePrefix', prefix: '/vault/token-expiry/' },
        { type: 'delete', key: '/vault/token-expiry-state' },
      ],
    });
    const restarted = await startTestVault({ clock, rootKey, store: vault.store });
    try {
      offsetMs = 26 * HOUR;
      expect(await restarted.core.tokens.purgeExpired()).toBe(1);
      expect((await whoami(old.token)).status).toBe(401);
      expect((await keysUnder('/vault/token-expiry-state')).length).toBe(1);
    } finally {
      offsetMs = 0;
      await restarted.close();
    }
  });

  it('revoking a token takes every token minted from it, wide and deep, and no other', async () => {
    const root = await mint('2h', 'tree-root');
    const bystander = await mint('2h', 'bystander');
    const minted: Array<{ token: string; accessor: string }> = [];
    // A token mints sub-tokens for its own identity: 45 children (more than a chunk), the
    // first three with two children each, one of those with a child of its own.
    const children = [];
    for (let i = 0; i < 45; i++) children.push(await mint('1h', 'tree-root', root.token));
    minted.push(...children);
    for (const child of children.slice(0, 3))
      for (let j = 0; j < 2; j++) minted.push(await mint('1h', 'tree-root', child.token));
    minted.push(await mint('1h', 'tree-root', minted.at(-1)!.token));
    const bystanderChild = await mint('1h', 'bystander', bystander.token);

    const revoked = await vault.call('DELETE', `/v1/auth/tokens/${root.accessor}`);
    expect(revoked.status, revoked.text).toBe(200);
    for (const t of [root, ...minted]) expect((await whoami(t.token)).status, t.accessor).toBe(401);
    expect((await whoami(bystander.token)).status).toBe(200);
    expect((await whoami(bystanderChild.token)).status).toBe(200);
    const left = (await keysUnder('/vault/')).map((kv) => kv.key);
    for (const t of [root, ...minted])
      expect(
        left.filter((key) => key.includes(t.accessor)),
        `keys of ${t.accessor}`,
      ).toEqual([]);
    const trail = await vault.call('GET', '/v1/audit?action=token.revoke');
    const resources = new Set(trail.body.records.map((r: { resource: string }) => r.resource));
    for (const t of [root, ...minted]) expect(resources.has(`token/${t.accessor}`)).toBe(true);
  }, 60_000);

  it('a new tenant’s admin token never outlives the system token that asked for it', async () => {
    const admin = { type: 'human' as const, name: 'operator' };
    const system = await vault.core.tokens.mint(undefined, vault.tenant, {
      identity: admin,
      policies: [],
      ttlMs: HOUR,
      system: true,
    });
    const created = await vault.call('POST', '/v1/sys/tenants', {
      body: { id: `short-${kind}` },
      token: system.token,
    });
    expect(created.status, created.text).toBe(201);
    expect(Date.parse(created.body.adminToken.expiresAt)).toBeLessThanOrEqual(Date.parse(system.expiresAt));
  });
});
