/**
 * The Redis engine (ACL users) against a real redis-server from Debian, started by the test
 * as the unprivileged `redis` user on 127.0.0.1: the same dynamic-lease machinery as
 * PostgreSQL, proving the engine interface is general.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisEngine } from '../../src/engines/redis.js';
import { redisCommands } from '../../src/engines/resp.js';
import { freePort } from '../support/etcd.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const available = existsSync('/usr/bin/redis-server') && process.getuid?.() === 0;

const asUser = (url: string) => {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port),
    username: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
  };
};

describe.skipIf(!available)('dynamic Redis credentials (ACL users)', () => {
  let redis: ChildProcess;
  let base: string;
  let port: number;
  let adminUrl: string;
  let vault: TestVault;

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'vault-redis-'));
    const uid = Number(execFileSync('id', ['-u', 'redis']).toString());
    const gid = Number(execFileSync('id', ['-g', 'redis']).toString());
    chownSync(base, uid, gid);
    port = await freePort();
    const password = `admin-${Math.random().toString(36).slice(2)}`;
    const conf = join(base, 'redis.conf');
    writeFileSync(
      conf,
      `bind 127.0.0.1\nport ${port}\ndir ${base}\nsave ""\nappendonly no\nuser default off\nuser admin on >${password} ~* &* +@all\n`,
    );
    chownSync(conf, uid, gid);
    redis = spawn('/usr/bin/redis-server', [conf], { uid, gid, stdio: 'ignore' });
    adminUrl = `redis://admin:${password}@127.0.0.1:${port}`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await redisCommands({ host: '127.0.0.1', port, username: 'admin', password }, [['PING']]);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    vault = await startTestVault({
      engines: { redis: createRedisEngine() },
      dynamic: { sweepIntervalMs: 1000 },
    });
    const created = await vault.call('POST', '/v1/credentials', {
      body: {
        name: 'cache',
        type: 'database-url',
        value: adminUrl,
        dynamic: { engine: 'redis', aclRules: ['~app:*', '+get', '+set'] },
      },
    });
    expect(created.status, created.text).toBe(201);
  }, 30_000);

  afterAll(async () => {
    await vault?.close();
    redis?.kill('SIGKILL');
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('a lease gets its own ACL user with exactly its rules; revoke deletes it and its connections', async () => {
    const a = await vault.call('POST', '/v1/leases', { body: { credentialName: 'cache', ttl: '5m' } });
    const b = await vault.call('POST', '/v1/leases', { body: { credentialName: 'cache', ttl: '5m' } });
    expect(a.status, a.text).toBe(201);
    expect(a.body.value).not.toBe(b.body.value);
    const user = asUser(a.body.value);
    expect(user.username).toBe(`vault_${a.body.id}`);
    expect(
      await redisCommands(user, [
        ['SET', 'app:x', '1'],
        ['GET', 'app:x'],
      ]),
    ).toEqual(['OK', '1']);
    await expect(redisCommands(user, [['SET', 'other:x', '1']])).rejects.toThrow(/NOPERM/);
    await expect(redisCommands(user, [['FLUSHALL']])).rejects.toThrow(/NOPERM/);
    const revoked = await vault.call('POST', `/v1/leases/${a.body.id}/revoke`);
    expect(revoked.status).toBe(200);
    await expect(redisCommands(user, [['PING']])).rejects.toThrow(/authentication refused/);
    expect(await redisCommands(asUser(b.body.value), [['GET', 'app:x']])).toEqual(['1']);
  });

  it('refuses rules that would remove the password', async () => {
    const bad = await vault.call('POST', '/v1/credentials', {
      body: {
        name: 'bad-cache',
        type: 'database-url',
        value: adminUrl,
        dynamic: { engine: 'redis', aclRules: ['>known'] },
      },
    });
    expect(bad.status).toBe(400);
  });

  it('rotating the credential rotates the admin password', async () => {
    const rotated = await vault.call('POST', '/v1/credentials/cache/rotate', { body: {} });
    expect(rotated.status, rotated.text).toBe(200);
    await expect(redisCommands(asUser(adminUrl), [['PING']])).rejects.toThrow(/authentication refused/);
    const c = await vault.call('POST', '/v1/leases', { body: { credentialName: 'cache', ttl: '5m' } });
    expect(c.status, c.text).toBe(201);
    expect(await redisCommands(asUser(c.body.value), [['GET', 'app:x']])).toEqual(['1']);
  });
});
