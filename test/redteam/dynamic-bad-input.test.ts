/**
 * Red team: bad engine settings and admin connections for a dynamic credential are refused
 * when they are given (400, a message that says what to fix and never echoes the value,
 * nothing written), not accepted and then failing every lease with 502 from the "upstream".
 * Real `vault dev`, real HTTP; nothing here reaches a database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devApi, startVaultDev, type VaultDev } from '../support/vault-dev.js';

describe('red team: dynamic credentials refuse bad settings up front', () => {
  let vault: VaultDev;

  const api = (method: string, path: string, body?: unknown) => devApi(vault)(method, path, body);

  const postgres = { engine: 'postgres', creationStatements: ['GRANT USAGE ON SCHEMA public TO {{name}}'] };
  const redis = { engine: 'redis', aclRules: ['~cache:*', '+get'] };

  beforeAll(async () => {
    vault = await startVaultDev();
  });

  afterAll(async () => {
    await vault?.stop();
  });

  it.each([
    ['not a URL', 'not a url s3cr3t', postgres, /postgres:\/\//],
    ['another scheme', 'http://admin:s3cr3t@127.0.0.1:5432/db', postgres, /postgres:\/\//],
    // Without a scheme, the URL parser reads the password as one: it is not echoed either.
    ['a password where the scheme goes', 's3cr3t:admin@127.0.0.1:5432/db', postgres, /postgres:\/\//],
    ["another engine's URL", 'redis://admin:s3cr3t@127.0.0.1:6379', postgres, /postgres:\/\//],
    ['no user', 'postgres://127.0.0.1:5432/db?x=s3cr3t', postgres, /user/],
    ['TLS the engine does not speak', 'rediss://admin:s3cr3t@127.0.0.1:6379', redis, /redis:\/\//],
    ['a postgres URL for redis', 'postgres://admin:s3cr3t@127.0.0.1:5432/db', redis, /redis:\/\//],
  ])('an admin connection with %s is refused at create', async (_, value, dynamic, says) => {
    const name = `bad-${Math.random().toString(36).slice(2, 8)}`;
    const res = await api('POST', '/credentials', { name, type: 'database-url', value, dynamic });
    expect(res.status, res.text).toBe(400);
    expect(res.body.error.message).toMatch(says);
    expect(res.text).not.toContain('s3cr3t');
    expect((await api('GET', `/credentials/${name}`)).status).toBe(404);
  });

  it.each([['NoPass'], ['RESET'], ['Off'], ['resetPass'], [`!${'a'.repeat(64)}`]])(
    'the Redis ACL rule %s is refused at create and in PATCH',
    async (rule) => {
      const name = `acl-${Math.random().toString(36).slice(2, 8)}`;
      const res = await api('POST', '/credentials', {
        name,
        type: 'database-url',
        value: 'redis://admin:pw@127.0.0.1:6379',
        dynamic: { engine: 'redis', aclRules: ['+get', rule] },
      });
      expect(res.status, res.text).toBe(400);
      expect((await api('GET', `/credentials/${name}`)).status).toBe(404);

      const created = await api('POST', '/credentials', {
        name,
        type: 'database-url',
        value: 'redis://admin:pw@127.0.0.1:6379',
        dynamic: redis,
      });
      expect(created.status, created.text).toBe(201);
      const patched = await api('PATCH', `/credentials/${name}`, {
        dynamic: { engine: 'redis', aclRules: [rule] },
      });
      expect(patched.status, patched.text).toBe(400);
      expect((await api('GET', `/credentials/${name}`)).body.dynamic).toEqual(redis);
    },
  );

  it('a new version that is not an admin connection for the engine is refused, the current one kept', async () => {
    const created = await api('POST', '/credentials', {
      name: 'versioned-db',
      type: 'database-url',
      value: 'postgres://admin:pw@127.0.0.1:5432/db',
      dynamic: postgres,
    });
    expect(created.status, created.text).toBe(201);
    for (const [path, body] of [
      ['/credentials/versioned-db/versions', { value: 'https://admin:s3cr3t@example.com' }],
      ['/credentials/versioned-db/rotate', { value: 'just-a-password-s3cr3t' }],
    ] as const) {
      const res = await api('POST', path, body);
      expect(res.status, res.text).toBe(400);
      expect(res.text).not.toContain('s3cr3t');
    }
    expect((await api('GET', '/credentials/versioned-db')).body.currentVersion).toBe(1);
  });
});
